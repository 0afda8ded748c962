"""Annotated alerts to output bytes: Avro containers any Avro reader can read.

Full output is the input's writer schema plus a ``stampflow`` field appended last; the
output schema is derived once per distinct writer schema (cached) and repaired where the
input schema breaks the Avro spec in ways strict readers refuse (invalid union defaults).
Because an Avro record is the concatenation of its fields and the repair leaves the encoding
unchanged, the output record is the input record's bytes as they came (``Alert.record_bytes``)
plus the encoded ``stampflow`` field: no re-encoding of the ~40 KB alert, and the published
alert is exactly what the survey sent (edits to ``Alert.record`` are not published). Where
the record dict is re-encoded instead (a writer schema with a ``stampflow`` field: our own
output, re-annotated), it is ``projection.full_record``: the history a decoder skipped
(``skip_history``) is decoded again from ``record_bytes``. Slim output is ``slim.avsc``, for
both surveys (filled from ``alert.view``).

Rubin alerts (``rubin.RubinAlert``) get the same treatment: Rubin's own schema of their
version plus the ``stampflow`` field. On Kafka they travel as Rubin's do, in the Confluent
wire format (``message``): the annotated schema is registered with the encoder's
``registry`` under the subject ``<subject_prefix>-<record full name>`` (Confluent's
TopicRecordNameStrategy; e.g. ``stampflow-annotated-lsst.v7_1.alert``), once per schema,
and its id frames every record. A ``LocalSchemas`` registry gives a deterministic id
(``registry.local_schema_id``) and learns the schema. Without a registry, and for ZTF
alerts and slim records, a message is one Avro container (self-describing) as before.

``encode_record`` gives one record's bytes with the output schema they are written in
(``EncodedRecord``): the Kafka sink publishes ``EncodedRecord.container()`` (what ``encode``
returns), the file sink appends the record bytes as blocks under one header per schema.

Errors: PacketError ``schema_conflict`` (the writer schema already defines stampflow's
named types) and ``encode_failed`` (an annotation value Avro cannot hold).
"""

from __future__ import annotations

import io
import json
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import fastavro

from stampflow.schemas.alert import JD_MINUS_MJD, ZTF_BANDS, Alert
from stampflow.schemas.annotation import Annotation
from stampflow.schemas.avsc import slim_schema, stampflow_info_schema
from stampflow.schemas.container import encode_long, header_prefix, new_sync, single_block
from stampflow.schemas.errors import PacketError
from stampflow.schemas.projection import full_record
from stampflow.schemas.rubin import RubinAlert
from stampflow.schemas.schema_repair import defined_names, repair_defaults
from stampflow.schemas.wire import frame
from stampflow.schemas.writer_schema import CACHE_SIZE, WriterSchema, full_name

MODES = ("full", "slim")
STAMPFLOW_FIELD = "stampflow"
UNION_BRANCH_1 = encode_long(1)  # the stampflow field is ["null", StampflowInfo]


SLIM_KEY = "slim"
SUBJECT_PREFIX = "stampflow-annotated"  # the default output topic's name
AnyAlert = Alert | RubinAlert


@dataclass(frozen=True, slots=True)
class _Output:
    schema: dict[str, Any]
    parsed: Any
    schema_json: bytes  # the schema as the container header holds it
    header_prefix: bytes  # the container header without its trailing sync marker
    splice: bool  # output record = input record bytes + stampflow field (see module doc)
    key: str  # "slim", or the input writer schema's fingerprint (12 hex digits)
    subject: str | None = None  # the registry subject name's record part: Rubin full only


@dataclass(frozen=True, slots=True)
class EncodedRecord:
    """One output record's Avro binary encoding and the output schema it is written in.

    ``key`` names the output schema (one file per key in archive mode); records with equal
    keys share ``schema_json`` and may be written as blocks under one container header.
    """

    key: str
    schema_json: bytes
    header_prefix: bytes  # a container header holding ``schema_json``, without its sync
    record: bytes
    # Rubin full output: the record full name its registry subject is named after (the
    # record travels in the wire format when the encoder has a registry); None otherwise.
    subject: str | None = None

    def container(self, sync: bytes | None = None) -> bytes:
        """One Avro object container holding the output schema and this one record."""
        marker = new_sync() if sync is None else sync
        return single_block(self.header_prefix + marker, marker, self.record)


def _installed_version() -> str:
    try:
        return version("stampflow")
    except PackageNotFoundError:
        return "0.0.0+unknown"


class OutputEncoder:
    """Encodes annotated alerts; caches one output schema per input writer schema.

    ``registry`` (a ``registry.RemoteRegistry``, ``LocalSchemas`` or a ``RetryingRegistry``
    around one) is where annotated Rubin schemas are registered for the wire format;
    ``subject_prefix`` names their subjects (the output topic).
    """

    def __init__(
        self,
        stampflow_version: str | None = None,
        *,
        registry: Any = None,
        subject_prefix: str = SUBJECT_PREFIX,
    ) -> None:
        self.stampflow_version = stampflow_version or _installed_version()
        self.registry = registry
        self.subject_prefix = subject_prefix
        self._schema_ids: dict[bytes, int] = {}  # output schema JSON -> its registered id
        self._ids_lock = threading.Lock()
        # Keyed by the (cached, shared) WriterSchema object; bounded like the schema cache.
        self._full = lru_cache(maxsize=CACHE_SIZE)(_full_output)
        self._slim = _prepare(slim_schema(), splice=False, key=SLIM_KEY)
        self._info = fastavro.parse_schema(stampflow_info_schema())

    def message(self, encoded: EncodedRecord) -> bytes:
        """The Kafka message value for ``encoded``: the wire format (magic byte, registered
        schema id, record) for Rubin full output when there is a registry, else one Avro
        container. Registering may raise ``registry.RegistryUnavailable``."""
        if encoded.subject is None or self.registry is None:
            return encoded.container()
        return frame(self.schema_id(encoded), encoded.record)

    def schema_id(self, encoded: EncodedRecord) -> int:
        """The registry id of ``encoded``'s output schema (registered on first use)."""
        known = self._schema_ids.get(encoded.schema_json)
        if known is not None:
            return known
        if self.registry is None:
            raise ValueError("no registry to register the output schema with")
        subject = f"{self.subject_prefix}-{encoded.subject}"
        with self._ids_lock:
            known = self._schema_ids.get(encoded.schema_json)
            if known is None:
                known = self.registry.register(subject, encoded.schema_json.decode("utf-8"))
                self._schema_ids[encoded.schema_json] = known
        return known

    def schema_for(self, alert: AnyAlert, mode: str) -> dict[str, Any]:
        """The output schema (JSON dict) an alert is written with in ``mode``."""
        return self._output(alert, mode).schema

    def record(
        self,
        alert: AnyAlert,
        annotations: Sequence[Annotation],
        *,
        mode: str,
        processing_time_ms: float,
    ) -> dict[str, Any]:
        """The output record as a dict (``encode_many`` writes such records far faster)."""
        _check_mode(mode)
        return _record(alert, mode, self._block(annotations, processing_time_ms))

    def encode(
        self,
        alert: AnyAlert,
        annotations: Sequence[Annotation],
        *,
        mode: str = "full",
        processing_time_ms: float,
    ) -> bytes:
        """One Avro object container holding the output schema and one record."""
        return self.encode_record(
            alert, annotations, mode=mode, processing_time_ms=processing_time_ms
        ).container()

    def encode_record(
        self,
        alert: AnyAlert,
        annotations: Sequence[Annotation],
        *,
        mode: str = "full",
        processing_time_ms: float,
    ) -> EncodedRecord:
        """The output record's bytes, with the schema they are written in."""
        output = self._output(alert, mode)
        body = io.BytesIO()
        self._write_record(body, output, alert, annotations, mode, processing_time_ms)
        return EncodedRecord(
            output.key, output.schema_json, output.header_prefix, body.getvalue(), output.subject
        )

    def encode_many(
        self,
        items: Sequence[tuple[AnyAlert, Sequence[Annotation]]],
        *,
        mode: str = "full",
        processing_time_ms: float,
    ) -> bytes:
        """One container holding one record per (alert, annotations), all in one block.

        Every alert must share the output schema (``schema_for``): in full mode, the same
        input writer schema; file sinks group alerts by ``schema_for(...)`` identity.
        """
        if not items:
            raise ValueError("encode_many needs at least one alert")
        output = self._output(items[0][0], mode)
        body = io.BytesIO()
        for alert, alert_annotations in items:
            if self._output(alert, mode) is not output:
                raise ValueError("alerts with different output schemas cannot share a container")
            self._write_record(body, output, alert, alert_annotations, mode, processing_time_ms)
        data = body.getvalue()
        sync = new_sync()
        return b"".join(
            (
                output.header_prefix,
                sync,
                encode_long(len(items)),
                encode_long(len(data)),
                data,
                sync,
            )
        )

    def _write_record(
        self,
        body: io.BytesIO,
        output: _Output,
        alert: AnyAlert,
        annotations: Sequence[Annotation],
        mode: str,
        processing_time_ms: float,
    ) -> None:
        block = self._block(annotations, processing_time_ms)
        if output.splice and alert.record_bytes is not None:
            body.write(alert.record_bytes)
            body.write(UNION_BRANCH_1)
            schema, value = self._info, block
        else:
            schema, value = output.parsed, _record(alert, mode, block)
        try:
            fastavro.schemaless_writer(body, schema, value)
        except (ValueError, TypeError, KeyError, OverflowError) as exc:
            raise PacketError("encode_failed", f"{describe(alert)} does not encode: {exc}") from exc

    def _block(
        self, annotations: Sequence[Annotation], processing_time_ms: float
    ) -> dict[str, Any]:
        """The ``stampflow`` field's value."""
        return {
            "stampflowVersion": self.stampflow_version,
            "processingTimeMs": float(processing_time_ms),
            "annotations": [_annotation(item) for item in annotations],
        }

    def _output(self, alert: AnyAlert, mode: str) -> _Output:
        _check_mode(mode)
        if mode == "slim":
            return self._slim
        output = self._full(alert.writer_schema)
        if isinstance(output, PacketError):  # a fresh one: a re-raised error grows its traceback
            raise PacketError(output.reason, output.detail, field=output.field)
        return output


def _full_output(writer_schema: WriterSchema) -> _Output | PacketError:
    """The output for one writer schema, or why there is none (cached alike: a stream of
    packets with a conflicting schema costs one derivation, not one per packet)."""
    writer = writer_schema.schema
    # A writer that already has the field (our own output, re-annotated) is re-encoded.
    splice = all(f.get("name") != STAMPFLOW_FIELD for f in writer["fields"])
    try:
        schema = _full_schema(writer)
    except PacketError as exc:
        return exc
    subject = full_name(writer) if writer_schema.survey == "rubin" else None
    try:
        return _prepare(schema, splice=splice, key=writer_schema.fingerprint[:12], subject=subject)
    except Exception as exc:  # e.g. a reference to a type only the dropped field defined
        return PacketError(
            "schema_conflict",
            f"writer schema {full_name(writer)!r} plus stampflow's field does not parse: {exc}",
        )


def _full_schema(writer: dict[str, Any]) -> dict[str, Any]:
    schema = json.loads(json.dumps(writer))  # a private deep copy
    # Re-annotating our own output replaces the old block instead of adding a second one.
    schema["fields"] = [f for f in schema["fields"] if f.get("name") != STAMPFLOW_FIELD]
    info = stampflow_info_schema()
    clash = defined_names(schema) & defined_names(info)
    if clash:
        raise PacketError(
            "schema_conflict",
            f"writer schema {full_name(writer)!r} already defines {sorted(clash)}",
        )
    repair_defaults(schema)
    schema["fields"].append(
        {
            "name": STAMPFLOW_FIELD,
            "type": ["null", info],
            "default": None,
            "doc": "stampflow's annotations (see stampflow's annotation.avsc)",
        }
    )
    return schema


def _prepare(
    schema: dict[str, Any], *, splice: bool, key: str, subject: str | None = None
) -> _Output:
    schema_json = json.dumps(schema, separators=(",", ":")).encode()
    return _Output(
        schema,
        fastavro.parse_schema(schema),
        schema_json,
        header_prefix(schema_json),
        splice,
        key,
        subject,
    )


def describe(alert: AnyAlert) -> str:
    """``alert <objectId>/<alert id>`` for messages (Rubin: diaObjectId/diaSourceId)."""
    return f"alert {alert.object_id}/{alert.candid}"


def _record(alert: AnyAlert, mode: str, block: dict[str, Any]) -> dict[str, Any]:
    if mode == "full":
        return {**full_record(alert), STAMPFLOW_FIELD: block}
    if isinstance(alert, RubinAlert):
        object_id = alert.object_id
        return {
            "objectId": "" if object_id is None else str(object_id),
            "candid": alert.alert_id,
            "ra": alert.ra,
            "dec": alert.dec,
            "jd": alert.mjd + JD_MINUS_MJD,
            "fid": 0,
            "survey": alert.survey,
            "band": alert.band,
            STAMPFLOW_FIELD: block,
        }
    return {
        "objectId": alert.object_id,
        "candid": alert.candid,
        "ra": alert.ra,
        "dec": alert.dec,
        "jd": alert.jd,
        "fid": alert.fid,
        "survey": alert.survey,
        "band": ZTF_BANDS.get(alert.fid),
        STAMPFLOW_FIELD: block,
    }


def _annotation(item: Annotation) -> dict[str, Any]:
    return {
        "classifier": item.classifier,
        "modelVersion": item.model_version,
        "label": item.label,
        "probabilities": {str(k): float(v) for k, v in item.probabilities.items()},
        "uncertainty": float(item.uncertainty),
        "ambiguous": bool(item.ambiguous),
    }


def _check_mode(mode: str) -> None:
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
