"""The values that travel between the daemon's stages."""

from __future__ import annotations

from dataclasses import dataclass

from stampflow.schemas.annotation import Annotation
from stampflow.schemas.codec import AnyAlert
from stampflow.schemas.encode import EncodedRecord

STAGES = ("decode", "classify", "encode", "produce")


@dataclass(frozen=True, slots=True)
class SourceMessage:
    """One input packet with the coordinates needed to commit it and to find it again.

    ``timestamp_ms`` is the Kafka message timestamp (None in archive mode); ``topic`` is the
    archive's path in archive mode, ``offset`` the packet's index there.
    """

    value: bytes
    topic: str
    partition: int
    offset: int
    timestamp_ms: int | None = None
    key: bytes | None = None


@dataclass(frozen=True, slots=True)
class DecodedAlert:
    """An alert decoded from ``message`` (a container packet may hold several): a ZTF
    ``Alert`` or a ``RubinAlert``; both have ``view``, ``survey`` and ``candid``."""

    message: SourceMessage
    alert: AnyAlert
    decode_s: float  # this packet's share of decode time, for ``processing_time_ms``


@dataclass(frozen=True, slots=True)
class AnnotatedAlert:
    message: SourceMessage
    alert: AnyAlert
    annotations: tuple[Annotation, ...]
    processing_time_ms: float


@dataclass(frozen=True, slots=True)
class EncodedOutput:
    """An annotated alert as output bytes: what a sink transports, and nothing else.

    ``container`` is the Kafka message value (one Avro object container: schema + record;
    a Rubin alert's full output with a registry: the Confluent wire format instead);
    file sinks append ``encoded.record`` under one header per ``encoded.key`` instead, so
    it is only built when the sink asks for it (``encode_batch(containers=True)``).
    """

    item: AnnotatedAlert
    encoded: EncodedRecord
    key: bytes | None  # the Kafka message key: the alert's object id (None: it has none)
    container: bytes | None = None

    @property
    def message(self) -> SourceMessage:
        return self.item.message


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A packet the daemon could not process, kept byte for byte with why and where."""

    message: SourceMessage
    stage: str
    reason: str
    error: str
    field: str | None = None

    def __post_init__(self) -> None:
        if self.stage not in STAGES:
            raise ValueError(f"stage must be one of {STAGES}, got {self.stage!r}")
