"""stampflow's output records as rows: read, filter and flatten what the daemon published.

An output record is a full alert with a ``stampflow`` field appended, or a slim record
(``slim.avsc``); both carry the same ``stampflow`` block (``annotation.avsc``). Position and
time sit in ``candidate`` in full records and at the top level in slim ones; ``identity``
reads either. Nothing here needs stampflow's codec: any Avro reader's records work.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import fastavro

Record = Mapping[str, Any]
IDENTITY_FIELDS = ("objectId", "candid", "ra", "dec", "jd", "fid")


class ResultsError(ValueError):
    """Output records that cannot be read (a missing file, not an Avro container, ...)."""


def annotations(record: Record) -> list[Mapping[str, Any]]:
    """The record's annotations (empty for pass-through output or a record without a block)."""
    block = record.get("stampflow")
    return list(block.get("annotations") or []) if isinstance(block, Mapping) else []


def identity(record: Record) -> dict[str, Any]:
    """objectId, candid, ra, dec, jd and fid from a full or a slim record."""
    candidate = record.get("candidate")
    candidate = candidate if isinstance(candidate, Mapping) else {}
    found = {name: record.get(name, candidate.get(name)) for name in IDENTITY_FIELDS}
    if found["candid"] is None:
        found["candid"] = candidate.get("candid")
    return found


def top_probability(annotation: Mapping[str, Any]) -> float:
    """The probability of the annotation's label (0.0 when the map lacks it)."""
    return float((annotation.get("probabilities") or {}).get(annotation.get("label"), 0.0))


@dataclass(frozen=True)
class Filter:
    """Which records to keep: those with one annotation meeting every condition given.

    ``classifier`` chooses whose annotation counts (any classifier's when None); ``label``,
    ``min_probability`` (of the annotation's label) and ``ambiguous`` must all hold for
    that same annotation. A filter with no condition keeps every record.
    """

    classifier: str | None = None
    label: str | None = None
    min_probability: float | None = None
    ambiguous: bool | None = None

    def __post_init__(self) -> None:
        if self.min_probability is not None and not 0.0 <= self.min_probability <= 1.0:
            raise ValueError(f"min probability must be within [0, 1], got {self.min_probability}")

    @property
    def empty(self) -> bool:
        return (self.classifier, self.label, self.min_probability, self.ambiguous) == (None,) * 4

    def keeps(self, record: Record) -> bool:
        if self.empty:
            return True
        return any(self._meets(annotation) for annotation in annotations(record))

    def _meets(self, annotation: Mapping[str, Any]) -> bool:
        if self.classifier is not None and annotation.get("classifier") != self.classifier:
            return False
        if self.label is not None and annotation.get("label") != self.label:
            return False
        if self.min_probability is not None and top_probability(annotation) < self.min_probability:
            return False
        return self.ambiguous is None or bool(annotation.get("ambiguous")) == self.ambiguous


def flatten(record: Record) -> dict[str, Any]:
    """One flat row: the identity fields, then ``<classifier>_<what>`` per annotation.

    ``what`` is ``label``, ``probability`` (of the label), ``ambiguous``, ``uncertainty``
    and ``model_version``; a classifier that did not annotate the record has no columns in
    its row (a table of several rows fills them with missing values).
    """
    row: dict[str, Any] = identity(record)
    for annotation in annotations(record):
        name = annotation.get("classifier")
        row[f"{name}_label"] = annotation.get("label")
        row[f"{name}_probability"] = top_probability(annotation)
        row[f"{name}_ambiguous"] = bool(annotation.get("ambiguous"))
        row[f"{name}_uncertainty"] = annotation.get("uncertainty")
        row[f"{name}_model_version"] = annotation.get("modelVersion")
    return row


def output_files(paths: Iterable[Path]) -> list[Path]:
    """The Avro files named, a directory's ``*.avro`` files in name order; missing ones fail."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found.extend(sorted(p for p in path.glob("*.avro") if p.is_file()))
        elif path.is_file():
            found.append(path)
        else:
            raise ResultsError(f"{path}: no such file or directory")
    return found


def read_files(paths: Iterable[Path]) -> Iterator[dict[str, Any]]:
    """Every record of every Avro container file in ``paths`` (see ``output_files``)."""
    for path in output_files(paths):
        with path.open("rb") as handle:
            try:
                reader = fastavro.reader(handle)
            except ValueError as exc:  # fastavro: "cannot read header - is it an avro file?"
                raise ResultsError(f"{path}: not an Avro container file ({exc})") from None
            yield from reader
