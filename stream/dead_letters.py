"""Dead letters: packets the daemon could not process, kept byte for byte with why and where.

Kafka mode publishes the original bytes to a topic with headers (as Kafka Connect does), so
an operator can inspect a packet and replay it; archive mode writes each packet to a file in
a directory plus one line per packet in ``index.jsonl``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from stampflow.stream.kafka_producer import AckingProducer
from stampflow.stream.messages import DeadLetter
from stampflow.stream.metrics import DaemonMetrics

HEADER_ERROR = "stampflow.error"
HEADER_REASON = "stampflow.reason"
HEADER_STAGE = "stampflow.stage"
HEADER_FIELD = "stampflow.field"
HEADER_TOPIC = "stampflow.source.topic"
HEADER_PARTITION = "stampflow.source.partition"
HEADER_OFFSET = "stampflow.source.offset"
HEADER_TIMESTAMP = "stampflow.source.timestamp"
INDEX_NAME = "index.jsonl"
MAX_ERROR_CHARS = 2000  # headers stay small even for long tracebacks


class DeadLetterSink(Protocol):
    def send(self, dead: DeadLetter) -> None: ...

    def wait_for_acks(self, *, beat: Callable[[], None], deadline: float | None) -> None: ...

    def close(self) -> None: ...


def dead_letter_headers(dead: DeadLetter) -> list[tuple[str, bytes]]:
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


class KafkaDeadLetters:
    def __init__(self, producer: AckingProducer, topic: str, metrics: DaemonMetrics) -> None:
        self.topic = topic
        self._producer = producer
        self._metrics = metrics
        producer.partition_count(topic)  # fail at start-up, naming the topic, if it is missing

    def send(self, dead: DeadLetter) -> None:
        self._producer.produce(
            self.topic,
            dead.message.value,
            key=dead.message.key,
            headers=dead_letter_headers(dead),
            partition=None,
            on_ack=lambda _message: self._metrics.dead_letters.labels(
                dead.stage, dead.reason
            ).inc(),
        )

    def wait_for_acks(self, *, beat: Callable[[], None], deadline: float | None) -> None:
        self._producer.wait_for_acks(beat=beat, deadline=deadline)

    def close(self) -> None:
        return  # the shared producer is closed by the daemon


class DirectoryDeadLetters:
    """``<dir>/dead-<n>.avro`` (the original bytes) plus a line in ``<dir>/index.jsonl``."""

    def __init__(self, directory: str | Path, metrics: DaemonMetrics) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self._metrics = metrics
        self._index = (self.directory / INDEX_NAME).open("a", encoding="utf-8")
        with (self.directory / INDEX_NAME).open(encoding="utf-8") as existing:
            self._count = sum(1 for _ in existing)
        self._unflushed: list[DeadLetter] = []

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
        self._unflushed.append(dead)

    def wait_for_acks(self, *, beat: Callable[[], None], deadline: float | None) -> None:
        self._index.flush()
        for dead in self._unflushed:
            self._metrics.dead_letters.labels(dead.stage, dead.reason).inc()
        self._unflushed = []

    def close(self) -> None:
        self._index.close()
