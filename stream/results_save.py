"""Write selected output records to ``.avro`` (slim records), ``.csv`` or ``.parquet``.

Avro files hold slim 1.1 records (``slim.avsc``: ids, position, time, survey, band and the
whole ``stampflow`` block) whatever mode the daemon wrote, so one file holds records from
any input schema and either survey (ZTF and Rubin); CSV and Parquet hold
``results.flatten`` rows (the same identity columns first). Parquet needs pyarrow
(``pip install 'stampflow[parquet]'``).
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import fastavro

from stampflow.schemas.avsc import slim_schema
from stampflow.stream.results import Record, flatten, identity

FORMATS = (".avro", ".csv", ".parquet")
EMPTY_BLOCK = {"stampflowVersion": "", "processingTimeMs": 0.0, "annotations": []}


class SaveError(ValueError):
    """A destination that cannot be written (format, existing file, missing package)."""


def check_destination(path: Path, *, force: bool) -> None:
    """Fail before any work when ``path`` has no known format or exists (without ``force``)."""
    if path.suffix.lower() not in FORMATS:
        raise SaveError(f"{path}: unknown format {path.suffix!r}; use one of {', '.join(FORMATS)}")
    if path.exists() and not force:
        raise SaveError(f"{path} exists; pass --force to overwrite it")
    if path.suffix.lower() == ".parquet":
        _pyarrow()


def save(records: Sequence[Record], path: Path) -> None:
    """Write ``records`` to ``path`` in the format its suffix names."""
    suffix = path.suffix.lower()
    path.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".avro":
        with path.open("wb") as handle:
            fastavro.writer(handle, slim_schema(), [slim(r) for r in records], codec="deflate")
    elif suffix == ".csv":
        rows = [flatten(r) for r in records]
        with path.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=_columns(rows))
            writer.writeheader()
            writer.writerows(rows)
    elif suffix == ".parquet":
        pyarrow, parquet = _pyarrow()
        rows = [flatten(r) for r in records]
        columns = _columns(rows)
        table = pyarrow.Table.from_pylist([{c: row.get(c) for c in columns} for row in rows])
        parquet.write_table(table, path)
    else:
        check_destination(path, force=True)  # raises, naming the formats


def slim(record: Record) -> dict[str, Any]:
    """A full (ZTF or Rubin) or slim output record as a slim 1.1 record."""
    block = record.get("stampflow")
    return {**identity(record), "stampflow": block if block else EMPTY_BLOCK}


def _columns(rows: Sequence[dict[str, Any]]) -> list[str]:
    """Every column of any row, in the order they first appear (identity columns first)."""
    return list(dict.fromkeys(name for row in rows for name in row))


def _pyarrow() -> tuple[Any, Any]:
    try:
        import pyarrow
        import pyarrow.parquet as parquet
    except ImportError:
        raise SaveError(
            "saving .parquet needs the pyarrow package, which is not installed: "
            "pip install 'stampflow[parquet]' (or save .csv or .avro)"
        ) from None
    return pyarrow, parquet
