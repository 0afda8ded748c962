"""Packet bytes to ``Alert`` (ZTF) and ``RubinAlert`` objects.

Two framings are read:

* Avro object container files (ZTF, and brokers re-writing ZTF packets; Rubin's sample
  files): the header is read here, the writer schema parsed once per distinct schema (cached
  by its bytes), and each record of each block decoded with fastavro's ``schemaless_reader``;
* the Confluent wire format (Rubin; magic byte 0, 4-byte big-endian schema id, one record),
  given a ``registry``: a ``registry.SchemaRegistry`` (``LocalSchemas``, ``RemoteRegistry``)
  or any mapping of schema ids to schemas.

``skip_history`` (the daemon's decoder) leaves a ZTF alert's ``prv_candidates`` and
``fp_hists`` out of ``record``: fastavro skips their bytes (``projection.py``), and the
published output, made from ``record_bytes``, still carries them.

The writer schema's record name says the survey (``writer_schema``), and so which of the two
alert classes the record becomes; both have ``view``, the survey-neutral ``SurveyAlert``.

Everything that goes wrong becomes one ``PacketError`` with a stable ``reason``:

==================== =====================================================================
empty                the message has no bytes
no_container_header  no ``Obj\\x01`` magic (e.g. bare Avro records of the 2017 prototype)
truncated            the bytes end inside the header, a block, or a record
corrupt              broken header, block shape, sync marker, compression, or record bytes
unsupported_codec    a container codec other than null, deflate and snappy
unknown_schema       the writer schema is neither a ZTF nor a Rubin alert (``atlas.alert``)
no_records           a container header with no records after it
unknown_schema_id    wire format: the schema id is not in the registry
missing_field        a record lacks objectId, candid or a candidate field the daemon needs
                     (Rubin: alertId/diaSourceId, diaSource.ra, .dec, .midpointMjdTai);
                     also ``Alert.stamp`` for a stamp the packet does not carry
unsupported_stamp    JPEG stamps (2017 prototype packets)
bad_stamp            a stamp that is not valid gzip FITS (raised lazily by ``Alert.stamp``)
==================== =====================================================================

A ``RemoteRegistry`` that cannot be reached raises ``registry.RegistryUnavailable`` instead:
not a bad packet, so not a dead letter; retry it.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from fastavro import schemaless_reader

from stampflow.schemas import writer_schema
from stampflow.schemas.alert import STAMP_FIELDS, Alert
from stampflow.schemas.container import MAGIC, iter_blocks, read_header
from stampflow.schemas.errors import PacketError
from stampflow.schemas.projection import Projection, projection
from stampflow.schemas.registry import SchemaRegistry, unknown_schema_id
from stampflow.schemas.rubin import RubinAlert, make_rubin_alert
from stampflow.schemas.stamps import JPEG_MAGIC
from stampflow.schemas.wire import WIRE_HEADER, WIRE_MAGIC
from stampflow.schemas.writer_schema import WriterSchema

__all__ = ["WIRE_HEADER", "WIRE_MAGIC", "AnyAlert", "Decoded", "decode_alert", "decode_packet"]

AnyAlert = Alert | RubinAlert
Registry = SchemaRegistry | Mapping[int, Any]
REQUIRED_CANDIDATE = ("jd", "fid", "ra", "dec", "magpsf")


@dataclass(frozen=True, slots=True)
class Decoded:
    """The alerts a packet yielded, and the error that stopped decoding the rest (if any)."""

    alerts: list[AnyAlert]
    error: PacketError | None = field(default=None)


def decode_packet(
    data: bytes, *, registry: Registry | None = None, skip_history: bool = False
) -> Decoded:
    """Decode every alert in one packet.

    Raises PacketError when nothing usable decodes; when some records decode and the rest
    of the packet is broken (e.g. a corrupt tail) returns those alerts with ``error`` set.
    ``registry`` (a ``SchemaRegistry``, or a mapping of schema id to schema dict or JSON)
    enables the Confluent wire format. ``skip_history``: ZTF records without
    ``prv_candidates`` and ``fp_hists`` (``projection.full_record`` has them back).
    """
    data = bytes(data)
    if not data:
        raise PacketError("empty", "the message has no bytes")
    if registry is not None and data[0] == WIRE_MAGIC and not data.startswith(MAGIC):
        return Decoded([_decode_wire(data, registry, skip_history)])
    return _decode_container(data, skip_history)


def decode_alert(
    data: bytes, *, registry: Registry | None = None, skip_history: bool = False
) -> AnyAlert:
    """The first alert of a packet; PacketError when there is none."""
    return decode_packet(data, registry=registry, skip_history=skip_history).alerts[0]


def _decode_container(data: bytes, skip_history: bool) -> Decoded:
    header = read_header(data)
    schema = writer_schema.from_json_bytes(header.schema_bytes)
    lean = projection(schema) if skip_history else None
    alerts: list[AnyAlert] = []
    try:
        for block_index, block in enumerate(iter_blocks(data, header)):
            stream = io.BytesIO(block.data)
            for record_index in range(block.count):
                where = f"record {record_index} of block {block_index}"
                start = stream.tell()
                record = _read_record(stream, schema, lean, where)
                record_bytes = block.data[start : stream.tell()]
                alerts.append(_make_alert(data, record, record_bytes, schema, where))
            if stream.tell() != len(block.data):
                raise PacketError(
                    "corrupt",
                    f"block {block_index} has {len(block.data) - stream.tell()} bytes "
                    f"after its {block.count} records",
                )
    except PacketError as exc:
        if not alerts:
            raise
        return Decoded(alerts, exc)
    if not alerts:
        raise PacketError("no_records", "the container holds no records")
    return Decoded(alerts)


# schema id -> (the registry's schema object, parsed); the identity check notices a registry
# that maps the id to a new schema, and holding the object keeps its id() from being reused.
_wire_schemas: dict[int, tuple[Any, WriterSchema]] = {}


def _decode_wire(data: bytes, registry: Registry, skip_history: bool) -> AnyAlert:
    if len(data) <= WIRE_HEADER:
        raise PacketError("truncated", f"wire-format message of {len(data)} bytes has no record")
    schema_id = int.from_bytes(data[1:WIRE_HEADER], "big")
    lookup = getattr(registry, "lookup", None)  # a SchemaRegistry (its errors name it)
    if lookup is not None:
        given = lookup(schema_id)
    else:
        given = registry.get(schema_id)
        if given is None:
            raise unknown_schema_id(schema_id)
    cached = _wire_schemas.get(schema_id)
    if cached is None or cached[0] is not given:
        cached = _wire_schemas[schema_id] = (given, writer_schema.from_registry(given))
    schema = cached[1]
    stream = io.BytesIO(data[WIRE_HEADER:])
    where = f"wire-format record (schema id {schema_id})"
    lean = projection(schema) if skip_history else None
    record = _read_record(stream, schema, lean, where)
    left = len(data) - WIRE_HEADER - stream.tell()
    if left:
        raise PacketError("corrupt", f"{left} bytes after the {where}")
    return _make_alert(data, record, data[WIRE_HEADER:], schema, where, schema_id)


def _read_record(
    stream: io.BytesIO, schema: WriterSchema, lean: Projection | None, where: str
) -> dict[str, Any]:
    """One record; ``lean``: without the history (see ``projection.py``)."""
    try:
        if lean is not None:
            return lean.read(stream)
        return schemaless_reader(stream, schema.parsed, None)
    except EOFError as exc:
        raise PacketError("truncated", f"{where} ends early: {exc}") from exc
    except Exception as exc:  # fastavro raises whatever the bad bytes provoke
        raise PacketError("corrupt", f"{where} does not decode: {type(exc).__name__}") from exc


def _make_alert(
    raw: bytes,
    record: dict[str, Any],
    record_bytes: bytes,
    schema: WriterSchema,
    where: str,
    schema_id: int | None = None,
) -> AnyAlert:
    if schema.survey == "rubin":
        return make_rubin_alert(raw, record, record_bytes, schema, where, schema_id)
    for field_name in STAMP_FIELDS.values():
        cutout = record.get(field_name)
        blob = cutout.get("stampData") if isinstance(cutout, dict) else None
        if isinstance(blob, bytes) and blob.startswith(JPEG_MAGIC):
            raise PacketError(
                "unsupported_stamp",
                f"{where} has a JPEG stamp (2017 prototype format); gzip FITS expected",
                field=field_name,
            )
    if not isinstance(record.get("objectId"), str):
        raise PacketError("missing_field", f"{where} has no objectId string", field="objectId")
    candidate = record.get("candidate")
    if not isinstance(candidate, dict):
        raise PacketError("missing_field", f"{where} has no candidate record", field="candidate")
    # Broker re-written packets (topLevelRecord) keep candid only inside the candidate.
    if not isinstance(record.get("candid", candidate.get("candid")), int):
        raise PacketError("missing_field", f"{where} has no candid integer", field="candid")
    for name in REQUIRED_CANDIDATE:
        if not isinstance(candidate.get(name), int | float):
            raise PacketError(
                "missing_field",
                f"{where} has no numeric candidate.{name}",
                field=f"candidate.{name}",
            )
    return Alert(raw, record, schema, record_bytes, schema_id)
