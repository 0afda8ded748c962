"""stampflow's output records as rows: read, filter and flatten what the daemon published.

An output record is a full alert with a ``stampflow`` field appended (ZTF's schema, or
Rubin's of its version), or a slim record (``slim.avsc``); all carry the same ``stampflow``
block (``annotation.avsc``). ``identity`` gives the slim 1.1 identity fields (objectId,
candid, ra, dec, jd, fid, survey, band) of any of them: from ``candidate`` in full ZTF
records, from ``diaSource`` (and ``alertId``/``diaSourceId``) in full Rubin records, from the
top level in slim ones, by the rules ``schemas/encode.py`` fills slim records with. Any Avro
reader's records work (``fastavro.reader`` on archive-mode files, confluent-kafka's
``AvroDeserializer`` on wire-format messages).

Confluent wire-format messages and files (annotated Rubin output on Kafka) need the
registry their schema id was registered in: ``read_message`` and ``read_files`` take one
(``schemas.registry.open_registry``).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import fastavro

from stampflow.schemas.alert import JD_MINUS_MJD, ZTF_BANDS
from stampflow.schemas.codec import decode_packet
from stampflow.schemas.errors import PacketError

Record = Mapping[str, Any]
IDENTITY_FIELDS = ("objectId", "candid", "ra", "dec", "jd", "fid", "survey", "band")
WIRE_MAGIC = b"\x00"  # the Confluent wire format's first byte
CONTAINER_MAGIC = b"Obj\x01"  # an Avro object container file's
WIRE_HINT = (
    "a Confluent wire-format message (annotated Rubin output) needs the registry its schema "
    "id is in: pass --schema-registry URL (the daemon's) or --schema-dir DIR|rubin"
)


class ResultsError(ValueError):
    """Output records that cannot be read (a missing file, not an Avro container, ...)."""


def annotations(record: Record) -> list[Mapping[str, Any]]:
    """The record's annotations (empty for pass-through output or a record without a block)."""
    block = record.get("stampflow")
    return list(block.get("annotations") or []) if isinstance(block, Mapping) else []


def identity(record: Record) -> dict[str, Any]:
    """The slim 1.1 identity fields of a full (ZTF or Rubin) or a slim record.

    objectId, candid, ra, dec, jd, fid, survey and band, as a slim record of the alert
    holds them: Rubin's objectId is ``diaObjectId``, else ``ssObjectId``, as text (``""``
    when neither), its candid ``alertId`` (7.x) or ``diaSourceId`` (8.0+), its jd
    ``midpointMjdTai`` + 2400000.5 and its fid 0; slim 1.0 records (no survey) are ZTF's.
    """
    source = record.get("diaSource")
    if isinstance(source, Mapping):
        return _rubin_identity(record, source)
    candidate = record.get("candidate")
    candidate = candidate if isinstance(candidate, Mapping) else {}
    found = {name: record.get(name, candidate.get(name)) for name in IDENTITY_FIELDS}
    if found["candid"] is None:
        found["candid"] = candidate.get("candid")
    if found["survey"] is None:
        found["survey"] = "ztf"
    if found["band"] is None and found["survey"] == "ztf":
        found["band"] = ZTF_BANDS.get(found["fid"])
    return found


def _rubin_identity(record: Record, source: Mapping[str, Any]) -> dict[str, Any]:
    # the rules of rubin.RubinAlert (alert_id, object_id) and of its slim record
    object_id = next((source[n] for n in ("diaObjectId", "ssObjectId") if source.get(n)), None)
    alert_id = record.get("alertId")
    mjd = source.get("midpointMjdTai")
    return {
        "objectId": "" if object_id is None else str(object_id),
        "candid": record.get("diaSourceId") if alert_id is None else alert_id,
        "ra": source.get("ra"),
        "dec": source.get("dec"),
        "jd": None if mjd is None else mjd + JD_MINUS_MJD,
        "fid": 0,
        "survey": "rubin",
        "band": source.get("band"),
    }


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


def read_files(paths: Iterable[Path], registry: Any = None) -> Iterator[dict[str, Any]]:
    """Every record of every Avro container file in ``paths`` (see ``output_files``); with
    ``registry``, a file holding one Confluent wire-format message gives its record too."""
    for path in output_files(paths):
        with path.open("rb") as handle:
            start = handle.read(len(CONTAINER_MAGIC))
            handle.seek(0)
            if is_wire_format(start):
                if registry is None:
                    raise ResultsError(f"{path}: {WIRE_HINT}")
                try:
                    yield read_message(handle.read(), registry)
                except PacketError as exc:
                    raise ResultsError(f"{path}: {exc}") from None
                continue
            if start != CONTAINER_MAGIC:
                raise ResultsError(f"{path}: not an Avro container file (no Obj\\x01 header)")
            try:
                reader = fastavro.reader(handle)
            except ValueError as exc:  # fastavro: "cannot read header - is it an avro file?"
                raise ResultsError(f"{path}: not an Avro container file ({exc})") from None
            yield from reader


def is_wire_format(value: bytes) -> bool:
    """Whether a message is in the Confluent wire format (annotated Rubin output on Kafka)."""
    return value[:1] == WIRE_MAGIC


def read_message(value: bytes, registry: Any) -> dict[str, Any]:
    """The record of one Confluent wire-format message, its writer schema from ``registry``
    (a ``schemas.registry`` registry): the daemon's own decoder reads it.

    An id the registry lacks, or bytes that do not decode, are ``PacketError`` (the message's
    fault: skip it); a registry that cannot be reached is ``RegistryUnavailable``.
    """
    (alert,) = decode_packet(value, registry=registry).alerts
    return alert.record
