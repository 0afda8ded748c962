"""Where annotated alerts go: ``KafkaSink`` (the output topic) or ``AvroFileSink`` (files).

Both split the work in two steps the checkpoint loop times separately: ``encode`` (schemas'
``OutputEncoder``; a failure there dead-letters the alert) and ``send``; then
``wait_for_acks`` returns once everything sent is durable, or raises ``DeliveryFailed``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any, Protocol

from fastavro import parse_schema
from fastavro.write import Writer

from stampflow.schemas.alert import Alert
from stampflow.schemas.encode import OutputEncoder
from stampflow.stream.kafka_producer import AckingProducer
from stampflow.stream.messages import AnnotatedAlert
from stampflow.stream.metrics import DaemonMetrics

# Headers on every output record: where its input came from (replay, audit, dedup).
SOURCE_TOPIC = "stampflow.source.topic"
SOURCE_PARTITION = "stampflow.source.partition"
SOURCE_OFFSET = "stampflow.source.offset"


class Sink(Protocol):
    label: str  # the topic (or directory) in metric labels

    def encode(self, item: AnnotatedAlert) -> Any: ...

    def send(self, item: AnnotatedAlert, encoded: Any) -> None: ...

    def wait_for_acks(self, *, beat: Callable[[], None], deadline: float | None) -> None: ...

    def take_rejected(self) -> list[tuple[AnnotatedAlert, str, str]]:
        """Alerts the destination refused for good since the last call: (item, reason, error)."""
        ...

    def close(self) -> None: ...


def count_annotations(metrics: DaemonMetrics, item: AnnotatedAlert) -> None:
    for annotation in item.annotations:
        metrics.classifications.labels(annotation.classifier, annotation.label).inc()
        if annotation.ambiguous:
            metrics.ambiguous.labels(annotation.classifier).inc()


class KafkaSink:
    """Publishes one Avro container (record + schema) per alert to ``topic``.

    The output partition is the input partition (modulo the output's partition count), so
    records from one input partition stay in order in one output partition.
    """

    def __init__(
        self,
        producer: AckingProducer,
        topic: str,
        *,
        mode: str,
        metrics: DaemonMetrics,
        encoder: OutputEncoder | None = None,
    ) -> None:
        self.label = topic
        self._producer = producer
        self._partitions = producer.partition_count(topic)
        self._mode = mode
        self._metrics = metrics
        self._encoder = encoder or OutputEncoder()
        self._rejected: list[tuple[AnnotatedAlert, str, str]] = []

    def encode(self, item: AnnotatedAlert) -> bytes:
        return self._encoder.encode(
            item.alert,
            list(item.annotations),
            mode=self._mode,
            processing_time_ms=item.processing_time_ms,
        )

    def send(self, item: AnnotatedAlert, encoded: bytes) -> None:
        source = item.message
        self._producer.produce(
            self.label,
            encoded,
            key=item.alert.object_id.encode(),
            headers=[
                (SOURCE_TOPIC, source.topic.encode()),
                (SOURCE_PARTITION, str(source.partition).encode()),
                (SOURCE_OFFSET, str(source.offset).encode()),
            ],
            partition=source.partition % self._partitions,
            on_ack=lambda _message: self._acked(item),
            on_reject=lambda error: self._rejected.append(
                (item, error.name().lower().lstrip("_"), error.str())
            ),
        )

    def take_rejected(self) -> list[tuple[AnnotatedAlert, str, str]]:
        rejected, self._rejected = self._rejected, []
        return rejected

    def wait_for_acks(self, *, beat: Callable[[], None], deadline: float | None) -> None:
        self._producer.wait_for_acks(beat=beat, deadline=deadline)

    def close(self) -> None:
        return  # the producer is shared with the dead letters; the daemon closes it

    def _acked(self, item: AnnotatedAlert) -> None:
        self._metrics.published.labels(self.label).inc()
        count_annotations(self._metrics, item)
        if item.message.timestamp_ms is not None:
            latency = time.time() - item.message.timestamp_ms / 1000.0
            self._metrics.end_to_end_latency.observe(max(0.0, latency))


class AvroFileSink:
    """Appends annotated alerts to Avro container files in ``directory``, one per output schema.

    Full records keep the input's writer schema, so a night mixing ZTF schema versions gives
    one file per version (``annotated-full-<writer schema fingerprint>.avro``); any Avro reader
    opens them. Files are appended to across runs.
    """

    def __init__(
        self,
        directory: str | Path,
        *,
        mode: str,
        metrics: DaemonMetrics,
        encoder: OutputEncoder | None = None,
        # "null": the stamps, most of each record, are gzip already; deflate over them cost
        # 0.8 ms per alert for little gain. Any Avro reader reads null (and deflate).
        codec: str = "null",
    ) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.label = str(self.directory)
        self._mode = mode
        self._metrics = metrics
        self._encoder = encoder or OutputEncoder()
        self._codec = codec
        self._writers: dict[str, tuple[IO[bytes], Writer]] = {}
        self._unflushed: list[AnnotatedAlert] = []

    @property
    def files(self) -> list[Path]:
        return sorted(self.directory.glob(f"annotated-{self._mode}-*.avro"))

    def encode(self, item: AnnotatedAlert) -> dict[str, Any]:
        return self._encoder.record(
            item.alert,
            list(item.annotations),
            mode=self._mode,
            processing_time_ms=item.processing_time_ms,
        )

    def send(self, item: AnnotatedAlert, encoded: dict[str, Any]) -> None:
        self._writer_for(item.alert).write(encoded)
        self._unflushed.append(item)

    def wait_for_acks(self, *, beat: Callable[[], None], deadline: float | None) -> None:
        for handle, writer in self._writers.values():
            writer.flush()
            handle.flush()
        for item in self._unflushed:
            self._metrics.published.labels(self.label).inc()
            count_annotations(self._metrics, item)
        self._unflushed = []

    def take_rejected(self) -> list[tuple[AnnotatedAlert, str, str]]:
        return []  # a file takes every record

    def close(self) -> None:
        for handle, writer in self._writers.values():
            writer.flush()
            handle.close()
        self._writers.clear()

    def _writer_for(self, alert: Alert) -> Writer:
        # A full record's schema is the input's writer schema plus the stampflow field, so the
        # writer schema's fingerprint names its file; slim records share one schema.
        key = alert.writer_schema.fingerprint[:12] if self._mode == "full" else "slim"
        entry = self._writers.get(key)
        if entry is None:
            path = self.directory / f"annotated-{self._mode}-{key}.avro"
            schema = self._encoder.schema_for(alert, self._mode)
            # "a+b": fastavro reads the existing header and appends blocks under it.
            handle = path.open("a+b")
            writer = Writer(handle, parse_schema(schema), codec=self._codec)
            entry = self._writers[key] = (handle, writer)
        return entry[1]
