"""One idempotent producer shared by the output and dead-letter sinks, with delivery tracking.

Every message carries a callback; ``wait_for_acks`` returns only when librdkafka has an answer
(ack or final failure) for every message produced so far. The number of unacknowledged
messages is bounded: at ``max_in_flight`` producing waits, serving callbacks, instead of
queueing more (backpressure).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from stampflow.stream.config import DaemonConfig, redact
from stampflow.stream.kafka_log import KafkaLog

log = logging.getLogger(__name__)

OnAck = Callable[[Message], None]
OnReject = Callable[[KafkaError], None]
# Errors about one message itself: retrying the batch would fail the same way for ever, so
# the message is rejected (its packet dead-lettered) instead.
PERMANENT_MESSAGE_ERRORS = frozenset(
    {
        KafkaError.MSG_SIZE_TOO_LARGE,
        KafkaError.INVALID_RECORD,
        KafkaError.INVALID_MSG,
        KafkaError.RECORD_LIST_TOO_LARGE,
    }
)
Headers = list[tuple[str, bytes]]


def producer_properties(
    config: DaemonConfig, transactional_id: str | None = None
) -> dict[str, str | int | bool]:
    """librdkafka producer settings: ours first, then the user's pass-through properties."""
    props: dict[str, str | int | bool] = {
        "bootstrap.servers": config.input.bootstrap or "",
        "enable.idempotence": True,  # also implies acks=all and ordered retries
        "acks": "all",
        "compression.type": config.output.compression,
        "linger.ms": 5,
        "queue.buffering.max.messages": config.backpressure.max_in_flight,
    }
    props.update(config.kafka)
    # Consumer-only pass-through properties would make the producer warn at every start.
    for consumer_only in (
        "group.id",
        "group.instance.id",
        "auto.offset.reset",
        "enable.auto.commit",
        "session.timeout.ms",
        "isolation.level",
        "enable.auto.offset.store",
        "queued.min.messages",
        "queued.max.messages.kbytes",
        "fetch.queue.backoff.ms",
        "fetch.max.bytes",
    ):
        props.pop(consumer_only, None)
    if transactional_id is not None:
        props["transactional.id"] = transactional_id
    return props


class MissingTopic(ValueError):
    """An output or dead-letter topic the broker does not have."""


class DeliveryFailed(RuntimeError):
    """Some outputs of a batch were not acknowledged; the batch must not be committed."""


class Fenced(RuntimeError):
    """A newer worker took this one's identity (transactional id, static member id): stop."""


class AckingProducer:
    def __init__(self, properties: dict[str, str | int | bool], max_in_flight: int) -> None:
        log.info("producer settings: %s", redact(properties))
        self._log = KafkaLog("producer", log)
        self._producer = Producer({**properties, **self._log.properties()})
        self._max_in_flight = max_in_flight
        self._unacknowledged = 0  # ours, exact: len(producer) also counts librdkafka's events
        self._failures: list[str] = []

    def partition_count(self, topic: str, timeout_s: float = 10.0) -> int:
        """Partitions of ``topic``; raises ``MissingTopic`` naming it when it does not exist.

        Asks again for ``timeout_s``: a topic created a moment ago may not be in the
        broker's metadata yet.
        """
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                # All topics: metadata asked for one topic by name auto-creates it.
                found = self._producer.list_topics(timeout=timeout_s).topics.get(topic)
            except KafkaException as exc:
                raise MissingTopic(f"topic {topic!r}: no metadata from the broker ({exc})") from exc
            if found is not None and found.error is None and found.partitions:
                return len(found.partitions)
            if time.monotonic() > deadline:
                why = found.error.str() if found is not None and found.error else "not found"
                raise MissingTopic(f"topic {topic!r} is not usable ({why}); create it first")
            time.sleep(0.5)

    def produce(
        self,
        topic: str,
        value: bytes,
        *,
        key: bytes | None,
        headers: Headers,
        partition: int | None,
        on_ack: OnAck,
        on_reject: OnReject | None = None,
    ) -> None:
        """Produce one message; ``on_ack`` runs on acknowledgement.

        ``on_reject`` (when given) receives errors about the message itself (too large,
        invalid) instead of failing the whole batch; other failures fail the batch.
        """
        while self._unacknowledged >= self._max_in_flight:
            self._producer.poll(0.05)  # backpressure: serve callbacks until there is room
        kwargs = {} if partition is None else {"partition": partition}
        callback = self._callback(topic, on_ack, on_reject)
        while True:
            try:
                self._producer.produce(
                    topic, value, key=key, headers=headers, on_delivery=callback, **kwargs
                )
                self._unacknowledged += 1
                return
            except BufferError:  # librdkafka's own byte bound reached
                self._producer.poll(0.1)
            except KafkaException as exc:  # refused locally, e.g. larger than message.max.bytes
                self._unacknowledged += 1
                callback(exc.args[0], None)
                return

    def wait_for_acks(self, *, beat: Callable[[], None], deadline: float | None) -> None:
        """Block until every produced message is acknowledged or failed.

        Raises ``DeliveryFailed`` when any failed, or when ``deadline`` (monotonic) passes
        first (shutdown drain); ``beat`` is called between waits so liveness shows.
        """
        while self._producer.flush(0.5) > 0:
            beat()
            if deadline is not None and time.monotonic() > deadline:
                raise DeliveryFailed(f"{self._unacknowledged} outputs still unacknowledged")
        if self._failures:
            failures, self._failures = self._failures, []
            raise DeliveryFailed(f"{len(failures)} deliveries failed, first: {failures[0]}")

    @property
    def transactions(self) -> Producer:
        """The librdkafka producer, for the transaction calls (``transactions.py``)."""
        return self._producer

    def forget_failures(self) -> None:
        """An aborted transaction's failed deliveries: its batch is delivered again."""
        self._failures.clear()

    @property
    def in_flight(self) -> int:
        """Messages produced and not yet acknowledged (or failed)."""
        return self._unacknowledged

    def close(self, timeout_s: float) -> int:
        """Flush; returns how many messages are still undelivered after ``timeout_s``."""
        left = self._producer.flush(timeout_s)
        self._log.flush()
        return left

    def _callback(
        self, topic: str, on_ack: OnAck, on_reject: OnReject | None
    ) -> Callable[[KafkaError | None, Message | None], None]:
        def delivered(error: KafkaError | None, message: Message | None) -> None:
            self._unacknowledged -= 1
            if error is None and message is not None:
                on_ack(message)
            elif error is not None and on_reject is not None and _permanent(error):
                on_reject(error)
            else:
                self._failures.append(f"{topic}: {error}")

        return delivered


def _permanent(error: KafkaError) -> bool:
    return error.code() in PERMANENT_MESSAGE_ERRORS and not error.retriable()
