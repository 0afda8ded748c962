"""Where output bytes go: ``KafkaSink`` (the output topic) or ``AvroFileSink`` (files).

Sinks only transport what the encode stage made (``EncodedOutput``): ``send`` queues it,
``wait_for_acks`` returns once everything sent is durable or raises ``DeliveryFailed``. An
output the destination refuses for good (too large, invalid) is reported through the
``on_reject(reason, error)`` given with it; the checkpoint dead-letters it.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import IO, Protocol

from fastavro.schema import to_parsing_canonical_form

from stampflow.schemas.container import (
    SYNC_SIZE,
    encode_long,
    header_prefix,
    new_sync,
    read_header,
)
from stampflow.schemas.encode import EncodedRecord
from stampflow.schemas.errors import PacketError
from stampflow.stream.kafka_producer import AckingProducer, Headers
from stampflow.stream.messages import EncodedOutput, SourceMessage
from stampflow.stream.topic_limits import TOO_LARGE, message_size

log = logging.getLogger(__name__)

# Headers on every output record: where its input came from (replay, audit, dedup).
SOURCE_TOPIC = "stampflow.source.topic"
SOURCE_PARTITION = "stampflow.source.partition"
SOURCE_OFFSET = "stampflow.source.offset"

OnReject = Callable[[str, str], None]  # (reason, error)


class Sink(Protocol):
    label: str  # the topic (or directory) in metric labels
    containers: bool  # True: each output travels as its own container (``output.container``)

    def send(self, output: EncodedOutput, on_reject: OnReject) -> None: ...

    def wait_for_acks(self, *, beat: Callable[[], None], deadline: float | None) -> None: ...

    def close(self) -> None: ...


def source_headers(source: SourceMessage) -> Headers:
    return [
        (SOURCE_TOPIC, source.topic.encode()),
        (SOURCE_PARTITION, str(source.partition).encode()),
        (SOURCE_OFFSET, str(source.offset).encode()),
    ]


class KafkaSink:
    """Publishes one Avro container (record + schema) per alert to ``topic``.

    The output partition is the input partition (modulo the output's partition count), so
    records from one input partition stay in order in one output partition. An output over
    ``max_message_bytes`` (the topic's limit, read at start-up) is refused here, before it
    is produced, so it never becomes a batch-wide delivery failure.
    """

    containers = True

    def __init__(self, producer: AckingProducer, topic: str, *, max_message_bytes: int) -> None:
        self.label = topic
        self._producer = producer
        self._partitions = producer.partition_count(topic)
        self._max_bytes = max_message_bytes

    def send(self, output: EncodedOutput, on_reject: OnReject) -> None:
        value = output.container
        if value is None:
            raise ValueError("KafkaSink publishes containers: encode with containers=True")
        source = output.message
        headers = source_headers(source)
        size = message_size(value, output.key, headers)
        if size > self._max_bytes:
            on_reject(
                TOO_LARGE,
                f"output of {size} bytes is over the limit of {self._max_bytes} bytes for "
                f"topic {self.label!r} (max.message.bytes, capped by the producer's)",
            )
            return
        self._producer.produce(
            self.label,
            value,
            key=output.key,
            headers=headers,
            partition=source.partition % self._partitions,
            on_ack=_ignore,
            on_reject=lambda error: on_reject(error.name().lower().lstrip("_"), error.str()),
        )

    def wait_for_acks(self, *, beat: Callable[[], None], deadline: float | None) -> None:
        self._producer.wait_for_acks(beat=beat, deadline=deadline)

    def close(self) -> None:
        return  # the producer is shared with the dead letters; the daemon closes it


def _ignore(_message: object) -> None:
    return  # what was published is counted from the batch result, at the checkpoint


# Records of one block at most this many bytes: readers hold one block in memory.
BLOCK_BYTES = 1 << 20
HEADER_READ_BYTES = 1 << 16


class AvroFileSink:
    """Appends output records to Avro container files in ``directory``, one per output schema.

    Full records keep the input's writer schema, so a night mixing ZTF schema versions gives
    one file per version (``annotated-full-<writer schema fingerprint>.avro``); any Avro reader
    opens them. A file's header is written once; each batch appends one block of records per
    file (null codec), so files are appended to across runs. A file whose existing header
    holds a different schema (another stampflow version's block) is left alone: records go
    to ``annotated-<mode>-<key>-<schema hash>.avro`` beside it.
    """

    containers = False

    def __init__(self, directory: str | Path, *, mode: str) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.label = str(self.directory)
        self._mode = mode
        self._files: dict[str, _ContainerFile] = {}
        self._pending: dict[str, list[EncodedRecord]] = {}

    @property
    def files(self) -> list[Path]:
        return sorted(self.directory.glob(f"annotated-{self._mode}-*.avro"))

    def send(self, output: EncodedOutput, on_reject: OnReject) -> None:
        self._pending.setdefault(output.encoded.key, []).append(output.encoded)

    def wait_for_acks(self, *, beat: Callable[[], None], deadline: float | None) -> None:
        pending, self._pending = self._pending, {}
        for key, records in pending.items():
            self._file_for(key, records[0]).append(records)
            beat()
        for file in self._files.values():
            file.handle.flush()

    def close(self) -> None:
        for file in self._files.values():
            file.handle.close()
        self._files.clear()

    def _file_for(self, key: str, first: EncodedRecord) -> _ContainerFile:
        file = self._files.get(key)
        if file is None:
            path = self.directory / f"annotated-{self._mode}-{key}.avro"
            file = _ContainerFile.open(path, first.schema_json)
            if file is None:
                suffix = _short_hash(first.schema_json)
                path = path.with_name(f"{path.stem}-{suffix}.avro")
                file = _ContainerFile.open(path, first.schema_json)
                if file is None:
                    raise OSError(f"{path}: holds records of another schema; move it away")
            self._files[key] = file
        return file


class _ContainerFile:
    """One Avro object container file opened for appending blocks of encoded records."""

    def __init__(self, handle: IO[bytes], sync: bytes) -> None:
        self.handle = handle
        self.sync = sync

    @classmethod
    def open(cls, path: Path, schema_json: bytes) -> _ContainerFile | None:
        """Append to ``path`` (writing its header if new); None if its schema differs."""
        if path.exists() and path.stat().st_size > 0:
            sync = _existing_sync(path, schema_json)
            return None if sync is None else cls(path.open("ab"), sync)
        handle = path.open("ab")
        sync = new_sync()
        handle.write(header_prefix(schema_json) + sync)
        return cls(handle, sync)

    def append(self, records: list[EncodedRecord]) -> None:
        """Write ``records`` as blocks of about ``BLOCK_BYTES`` each."""
        block: list[bytes] = []
        size = 0
        for record in records:
            if block and size + len(record.record) > BLOCK_BYTES:
                self._write_block(block, size)
                block, size = [], 0
            block.append(record.record)
            size += len(record.record)
        if block:
            self._write_block(block, size)

    def _write_block(self, block: list[bytes], size: int) -> None:
        self.handle.write(encode_long(len(block)) + encode_long(size))
        self.handle.writelines(block)
        self.handle.write(self.sync)


def _existing_sync(path: Path, schema_json: bytes) -> bytes | None:
    """The sync marker of ``path`` when its records are encoded like ours (else None).

    Schemas that differ only in docs, defaults or spelling (a file fastavro wrote) encode
    alike: their parsing canonical forms are equal.
    """
    with path.open("rb") as handle:
        data = handle.read(HEADER_READ_BYTES)
        while True:
            try:
                header = read_header(data)
                break
            except PacketError as exc:
                more = handle.read(len(data))
                if exc.reason != "truncated" or not more:
                    raise OSError(f"{path}: not an Avro container file ({exc})") from exc
                data += more
    if header.codec != "null" or len(header.sync) != SYNC_SIZE:
        return None
    if _canonical(header.schema_bytes) != _canonical(schema_json):
        return None
    return header.sync


def _canonical(schema_json: bytes) -> str:
    return to_parsing_canonical_form(json.loads(schema_json))


def _short_hash(schema_json: bytes) -> str:
    return hashlib.sha256(schema_json).hexdigest()[:8]
