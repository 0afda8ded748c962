"""Dead letters: packets the daemon could not process, kept byte for byte with why and where.

Kafka mode publishes the original bytes to a topic with headers (as Kafka Connect does), so
an operator can inspect a packet and replay it; archive mode writes each packet to a file in
a directory plus one line per packet in ``index.jsonl``.

A dead letter must always get out, or its offset could never be committed: one too large
for the dead-letter topic is published **without its payload**, its headers then carrying
the original size, the sha256 of the original bytes and ``stampflow.payload=omitted`` (the
packet is still in the input topic at the offset the headers name, until retention ends).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from confluent_kafka import KafkaError

from stampflow.stream.kafka_producer import AckingProducer, DeliveryFailed, Headers
from stampflow.stream.messages import DeadLetter
from stampflow.stream.topic_limits import message_size

log = logging.getLogger(__name__)

HEADER_ERROR = "stampflow.error"
HEADER_REASON = "stampflow.reason"
HEADER_STAGE = "stampflow.stage"
HEADER_FIELD = "stampflow.field"
HEADER_TOPIC = "stampflow.source.topic"
HEADER_PARTITION = "stampflow.source.partition"
HEADER_OFFSET = "stampflow.source.offset"
HEADER_TIMESTAMP = "stampflow.source.timestamp"
HEADER_PAYLOAD = "stampflow.payload"  # "omitted" when the original bytes were left out
HEADER_PAYLOAD_WHY = "stampflow.payload.omitted"  # why they were
HEADER_SIZE = "stampflow.source.size"
HEADER_SHA256 = "stampflow.source.sha256"
PAYLOAD_OMITTED = b"omitted"
INDEX_NAME = "index.jsonl"
MAX_ERROR_CHARS = 2000  # headers stay small even for long tracebacks


class DeadLetterSink(Protocol):
    def send(self, dead: DeadLetter) -> None: ...

    def wait_for_acks(self, *, beat: Callable[[], None], deadline: float | None) -> None: ...

    def close(self) -> None: ...


def dead_letter_headers(dead: DeadLetter) -> Headers:
    source = dead.message
    headers = [
        (HEADER_ERROR, dead.error[:MAX_ERROR_CHARS].encode()),
        (HEADER_REASON, dead.reason.encode()),
        (HEADER_STAGE, dead.stage.encode()),
        (HEADER_TOPIC, source.topic.encode()),
        (HEADER_PARTITION, str(source.partition).encode()),
        (HEADER_OFFSET, str(source.offset).encode()),
    ]
    if dead.field:
        headers.append((HEADER_FIELD, dead.field.encode()))
    if source.timestamp_ms is not None:
        headers.append((HEADER_TIMESTAMP, str(source.timestamp_ms).encode()))
    return headers


def payload_omitted_headers(dead: DeadLetter, why: str) -> Headers:
    """The headers of a dead letter published without its payload."""
    value = dead.message.value
    return [
        *dead_letter_headers(dead),
        (HEADER_PAYLOAD, PAYLOAD_OMITTED),
        (HEADER_PAYLOAD_WHY, why[:MAX_ERROR_CHARS].encode()),
        (HEADER_SIZE, str(len(value)).encode()),
        (HEADER_SHA256, hashlib.sha256(value).hexdigest().encode()),
    ]


class KafkaDeadLetters:
    """Publishes dead letters to ``topic``; ``max_message_bytes`` is that topic's limit."""

    def __init__(self, producer: AckingProducer, topic: str, *, max_message_bytes: int) -> None:
        self.topic = topic
        self._producer = producer
        self._max_bytes = max_message_bytes
        self._refused: list[tuple[DeadLetter, str]] = []
        producer.partition_count(topic)  # fail at start-up, naming the topic, if it is missing

    def send(self, dead: DeadLetter) -> None:
        headers = dead_letter_headers(dead)
        size = message_size(dead.message.value, dead.message.key, headers)
        if size > self._max_bytes:
            why = f"{size} bytes with headers, over the limit of {self._max_bytes} bytes"
            self._send_without_payload(dead, why)
            return
        self._producer.produce(
            self.topic,
            dead.message.value,
            key=dead.message.key,
            headers=headers,
            partition=None,
            on_ack=_ignore,
            on_reject=lambda error: self._refused.append((dead, _why(error))),
        )

    def wait_for_acks(self, *, beat: Callable[[], None], deadline: float | None) -> None:
        """Wait for every dead letter; those the broker refused go again, without payload."""
        self._producer.wait_for_acks(beat=beat, deadline=deadline)
        refused, self._refused = self._refused, []
        if not refused:
            return
        for dead, why in refused:
            self._send_without_payload(dead, f"refused by the broker: {why}")
        self._producer.wait_for_acks(beat=beat, deadline=deadline)
        if self._refused:
            _, why = self._refused[0]
            self._refused = []
            raise DeliveryFailed(f"dead letter refused even without its payload: {why}")

    def close(self) -> None:
        return  # the shared producer is closed by the daemon

    def _send_without_payload(self, dead: DeadLetter, why: str) -> None:
        source = dead.message
        log.warning(
            "dead letter %s[%d]@%d published without its payload: %s",
            source.topic,
            source.partition,
            source.offset,
            why,
        )
        self._producer.produce(
            self.topic,
            b"",
            key=source.key,
            headers=payload_omitted_headers(dead, why),
            partition=None,
            on_ack=_ignore,
            on_reject=lambda error: self._refused.append((dead, _why(error))),
        )


def _why(error: KafkaError) -> str:
    return f"{error.name()}: {error.str()}"


def _ignore(_message: object) -> None:
    return  # dead letters are counted from the batch result, at the checkpoint


class DirectoryDeadLetters:
    """``<dir>/dead-<n>.avro`` (the original bytes) plus a line in ``<dir>/index.jsonl``."""

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self._index = (self.directory / INDEX_NAME).open("a", encoding="utf-8")
        with (self.directory / INDEX_NAME).open(encoding="utf-8") as existing:
            self._count = sum(1 for _ in existing)

    def send(self, dead: DeadLetter) -> None:
        name = f"dead-{self._count:08d}.avro"
        self._count += 1
        (self.directory / name).write_bytes(dead.message.value)
        entry = {
            "file": name,
            "stage": dead.stage,
            "reason": dead.reason,
            "field": dead.field,
            "error": dead.error[:MAX_ERROR_CHARS],
            "source": dead.message.topic,
            "offset": dead.message.offset,
            "key": (dead.message.key or b"").decode(errors="replace"),
        }
        self._index.write(json.dumps(entry) + "\n")

    def wait_for_acks(self, *, beat: Callable[[], None], deadline: float | None) -> None:
        self._index.flush()

    def close(self) -> None:
        self._index.close()
