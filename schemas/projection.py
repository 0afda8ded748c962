"""Decoding a ZTF alert without its history, so the daemon decodes only what it reads.

A ZTF alert carries ``prv_candidates`` (the detections and upper limits of the last 30 days,
up to hundreds of records of ~100 fields each) and, from schema 4.x, ``fp_hists`` (forced
photometry); the classifiers read the candidate and the stamps only. An Avro record is its
fields' encodings one after another, so ``projection`` (one per writer schema, cached like
the writer schemas) cuts the writer's fields into runs, each parsed as a record of its own:
the runs of history fields are read against a reader record without fields, which fastavro
skips in its C code instead of building their dicts; the other runs decode as written, with
no schema resolution (a reader schema for the whole record would resolve every candidate
field on every read, slower than the full decode for an alert without history).
``bench/bench_decode.py`` measures it.

Nothing published is lost: the full output is the input record's bytes as they came
(``record_bytes``; see ``encode.py``), and where the encoder writes the record dict instead
(input that is stampflow's own output) it takes ``full_record``, which decodes the history
again from those bytes. Alerts decoded without it lack the ``prv_candidates`` and ``fp_hists``
keys in ``record`` (so ``Alert.prv_candidates`` is empty); Rubin alerts are always whole.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from functools import lru_cache
from itertools import groupby
from typing import IO, Any

import fastavro

from stampflow.schemas.writer_schema import CACHE_SIZE, DecodedRecord, WriterSchema

HISTORY_FIELDS = ("prv_candidates", "fp_hists")
RUN_NAME = "stampflow_projection_run{}"  # a name no alert schema gives a type


@dataclass(frozen=True, slots=True)
class Projection:
    """A writer schema's fields in runs: (the run parsed as a record, None to decode it or
    the reader record without fields that skips it); ``skipped``: the history fields."""

    runs: tuple[tuple[Any, Any], ...]
    skipped: tuple[str, ...]

    def read(self, stream: IO[bytes]) -> dict[str, Any]:
        """One record from ``stream``, its history fields skipped (left out of the dict)."""
        record: dict[str, Any] = {}
        for run, skip in self.runs:
            value = fastavro.schemaless_reader(stream, run, skip)
            if skip is None:
                record.update(value)  # type: ignore[call-overload]
        return record


@lru_cache(maxsize=CACHE_SIZE)
def projection(schema: WriterSchema) -> Projection | None:
    """How to read ``schema``'s records without their history; None when there is none to
    skip (a Rubin schema, or a ZTF schema without ``prv_candidates`` and ``fp_hists``)."""
    if schema.survey != "ztf":
        return None
    fields = schema.schema["fields"]
    skipped = tuple(f["name"] for f in fields if f.get("name") in HISTORY_FIELDS)
    if not skipped:
        return None
    # In the writer's namespace, so the types its fields define get the same full names.
    namespace = schema.fullname.rpartition(".")[0]
    named: dict[str, Any] = {}  # shared: a run may use a type an earlier run defines
    runs = []
    try:
        for index, (skip, group) in enumerate(
            groupby(fields, key=lambda f: f.get("name") in HISTORY_FIELDS)
        ):
            name = ".".join(filter(None, (namespace, RUN_NAME.format(index))))
            run = {"type": "record", "name": name, "fields": list(group)}
            parsed = fastavro.parse_schema(run, named_schemas=named)
            empty = {"type": "record", "name": name, "fields": []}
            runs.append((parsed, fastavro.parse_schema(empty) if skip else None))
    except Exception:  # fastavro's assorted parse errors: decode the whole record instead
        return None
    return Projection(tuple(runs), skipped)


def full_record(alert: DecodedRecord) -> dict[str, Any]:
    """``alert.record`` with its history: decoded again from ``record_bytes`` when the
    decoder skipped it (the record's own values, edits included, win over the re-decode)."""
    found = projection(alert.writer_schema)
    if found is None or alert.record_bytes is None or found.skipped[0] in alert.record:
        return alert.record
    stream = io.BytesIO(alert.record_bytes)
    whole = fastavro.schemaless_reader(stream, alert.writer_schema.parsed, None)
    return {**whole, **alert.record}  # type: ignore[dict-item]
