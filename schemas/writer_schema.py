"""Writer schemas: parsed once per distinct schema and cached, and recognised as a survey's alerts.

Two surveys are known: ZTF (``ztf.alert``, or ``topLevelRecord`` as Spark-based brokers
re-write it) and Rubin (``lsst.vM_m.alert``, one record name per schema version).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import fastavro

from stampflow.schemas.errors import PacketError

# ZTF's own schema, and the record name Spark-based brokers give it when they re-write packets.
ZTF_RECORD_NAMES = frozenset({"ztf.alert", "topLevelRecord"})
# Rubin's alert record, e.g. ``lsst.v7_1.alert`` for schema version 7.1.
RUBIN_RECORD_NAME = re.compile(r"lsst\.v(\d+)_(\d+)\.alert")
# Distinct schemas kept parsed (~130 KB each); real streams carry a handful, and hostile
# input must not grow memory without bound.
CACHE_SIZE = 64


@dataclass(frozen=True, slots=True, eq=False)
class WriterSchema:
    """One writer schema: its JSON as written, fastavro's parsed form, and identity."""

    schema: dict[str, Any]
    parsed: Any  # fastavro's parsed schema, fed to schemaless_reader
    fingerprint: str  # sha256 of the schema JSON as written: one per distinct schema
    fullname: str
    version: str | None  # the schema's own "version" attribute (Rubin: from the name, "7.1")
    survey: str = "ztf"  # "ztf" or "rubin"


def full_name(schema: dict[str, Any]) -> str:
    """The full name of a named Avro type (``namespace.name`` unless the name has a dot)."""
    name = str(schema.get("name", ""))
    namespace = schema.get("namespace")
    return name if "." in name or not namespace else f"{namespace}.{name}"


@lru_cache(maxsize=CACHE_SIZE)
def from_json_bytes(schema_json: bytes) -> WriterSchema:
    """Parse (once, cached by the exact bytes) the schema embedded in a container header."""
    try:
        schema = json.loads(schema_json)
    except (ValueError, RecursionError) as exc:
        raise PacketError(
            "corrupt", f"writer schema is not JSON: {exc}", field="avro.schema"
        ) from exc
    return _build(schema, hashlib.sha256(schema_json).hexdigest())


def from_registry(schema: dict[str, Any] | str) -> WriterSchema:
    """Parse a schema given for a wire-format schema id (the caller caches the result)."""
    text = schema if isinstance(schema, str) else json.dumps(schema, sort_keys=True)
    return from_json_bytes(text.encode("utf-8"))


def _build(schema: Any, fingerprint: str) -> WriterSchema:
    if not isinstance(schema, dict) or schema.get("type") != "record":
        raise PacketError("unknown_schema", "writer schema is not an Avro record")
    name = full_name(schema)
    rubin = RUBIN_RECORD_NAME.fullmatch(name)
    if name not in ZTF_RECORD_NAMES and rubin is None:
        raise PacketError(
            "unknown_schema",
            f"writer schema is {name!r}, not a ZTF alert "
            f"({', '.join(sorted(ZTF_RECORD_NAMES))}) nor a Rubin one (lsst.vM_m.alert)",
        )
    try:
        parsed = fastavro.parse_schema(schema)
    except Exception as exc:  # fastavro raises assorted SchemaParseException/ValueError/KeyError
        raise PacketError(
            "corrupt", f"writer schema does not parse: {exc}", field="avro.schema"
        ) from exc
    # After parsing, so the walk below only meets well-formed schemas.
    endless = _zero_size_array(schema)
    if endless:
        raise PacketError(
            "corrupt",
            f"writer schema has an array of zero-byte items ({endless}): a hostile count "
            "would make decoding loop for ever",
            field="avro.schema",
        )
    if rubin is not None:
        version = f"{int(rubin[1])}.{int(rubin[2])}"
        return WriterSchema(schema, parsed, fingerprint, name, version, "rubin")
    version = schema.get("version")
    return WriterSchema(schema, parsed, fingerprint, name, str(version) if version else None)


def _zero_size_array(schema: Any, zero_named: set[str] | None = None) -> str | None:
    """Path of an array whose items encode to zero bytes (null, empty record, fixed 0), if any.

    Such arrays are legal Avro, but no real alert has one, and their item count is the only
    bound on the decode loop.
    """
    zero_named = set() if zero_named is None else zero_named
    if isinstance(schema, str):
        return None
    if isinstance(schema, list):
        return next(filter(None, (_zero_size_array(b, zero_named) for b in schema)), None)
    if not isinstance(schema, dict):
        return None
    kind = schema.get("type")
    if kind == "array":
        items = schema.get("items")
        if _encodes_to_nothing(items, zero_named):
            return f"array of {items!r}"
        return _zero_size_array(items, zero_named)
    if kind == "map":
        return _zero_size_array(schema.get("values"), zero_named)
    if kind in ("record", "error"):
        fields = schema.get("fields") or []
        if not isinstance(fields, list):
            return None
        found = next(
            filter(
                None,
                (
                    _zero_size_array(f.get("type"), zero_named)
                    for f in fields
                    if isinstance(f, dict)
                ),
            ),
            None,
        )
        if _encodes_to_nothing(schema, zero_named):
            zero_named.add(str(schema.get("name")))
        return found
    if kind == "fixed" and _encodes_to_nothing(schema, zero_named):
        zero_named.add(str(schema.get("name")))
    return _zero_size_array(kind, zero_named) if isinstance(kind, dict | list) else None


def _encodes_to_nothing(schema: Any, zero_named: set[str]) -> bool:
    if isinstance(schema, str):
        return schema == "null" or schema.rpartition(".")[2] in zero_named
    if not isinstance(schema, dict):
        return False
    kind = schema.get("type")
    if kind == "null":
        return True
    if kind == "fixed":
        return schema.get("size") == 0
    if kind in ("record", "error"):
        fields = schema.get("fields") or []
        return all(
            isinstance(f, dict) and _encodes_to_nothing(f.get("type"), zero_named) for f in fields
        )
    return False


class DecodedRecord:
    """What an alert of any survey holds: ``raw``, the whole packet or message it came from
    (kept for dead letters); ``record``, as decoded (stamps or cutouts still compressed);
    ``record_bytes``, its encoding under ``writer_schema``, which the encoder copies into the
    output unchanged; ``schema_id``, the wire format's registry id (None from a container).
    Subclasses add their survey's lazily decoded parts."""

    __slots__ = ("raw", "record", "record_bytes", "writer_schema", "schema_id")

    def __init__(
        self,
        raw: bytes,
        record: dict[str, Any],
        writer_schema: WriterSchema,
        record_bytes: bytes | None = None,
        schema_id: int | None = None,
    ) -> None:
        self.raw = raw
        self.record = record
        self.record_bytes = record_bytes
        self.writer_schema = writer_schema
        self.schema_id = schema_id
