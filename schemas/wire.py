"""The Confluent wire format: magic byte 0, a 4-byte big-endian schema id, one Avro record.

Rubin publishes its alerts this way, with the writer schema in a schema registry under that
id. ``codec.decode_packet`` reads it; ``frame`` and ``encode_wire`` write it.
"""

from __future__ import annotations

import io
from typing import Any

from fastavro import schemaless_writer

from stampflow.schemas import writer_schema

WIRE_MAGIC = 0
WIRE_HEADER = 5  # the magic byte and the schema id
MAX_SCHEMA_ID = 2**31 - 1  # registries hand out non-negative 32-bit ints


def frame(schema_id: int, record_bytes: bytes) -> bytes:
    """One wire-format message: the header for ``schema_id``, then an encoded record.

    ``frame(alert.schema_id, alert.record_bytes)`` gives back a decoded message's bytes.
    """
    if not 0 <= schema_id <= MAX_SCHEMA_ID:
        raise ValueError(f"a schema id is a non-negative 32-bit integer, got {schema_id}")
    return bytes([WIRE_MAGIC]) + schema_id.to_bytes(4, "big") + bytes(record_bytes)


def schema_id_of(data: bytes) -> int | None:
    """The schema id of a wire-format message, or None when ``data`` is not one."""
    if len(data) < WIRE_HEADER or data[0] != WIRE_MAGIC:
        return None
    return int.from_bytes(data[1:WIRE_HEADER], "big")


def encode_wire(record: dict[str, Any], schema: dict[str, Any] | str, schema_id: int) -> bytes:
    """Encode ``record`` with ``schema`` (the one registered under ``schema_id``) and frame it.

    The schema is parsed once and cached, as for decoding; it must be a survey's alert
    schema (``PacketError`` ``unknown_schema`` otherwise). A record that does not match the
    schema raises ``ValueError``.
    """
    parsed = writer_schema.from_registry(schema).parsed
    body = io.BytesIO()
    try:
        schemaless_writer(body, parsed, record)
    except (TypeError, ValueError, KeyError, AttributeError) as exc:  # fastavro's complaints
        raise ValueError(f"record does not match schema id {schema_id}: {exc}") from exc
    return frame(schema_id, body.getvalue())
