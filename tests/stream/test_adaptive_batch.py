"""Adaptive batch close: a batch closes once the input pauses, and still fills when busy.

The unit tests drive the ``MicroBatcher`` with fake sources; the integration tests use the
real ``KafkaSource`` on the session broker, with ``max_wait_ms`` a minute long so that only
the early close can end a batch that does not fill.
"""

from __future__ import annotations

import time

import pytest
from confluent_kafka import Producer
from prometheus_client import CollectorRegistry

from stampflow.stream.batcher import MicroBatcher
from stampflow.stream.config import load_config
from stampflow.stream.kafka_source import KafkaSource
from stampflow.stream.messages import SourceMessage
from stampflow.stream.metrics import DaemonMetrics


class Bursts:
    """Hands out the bursts in ``sizes`` (one per poll, at most what is asked), then
    nothing, recording each poll's wait."""

    exhausted = False
    ready = True

    def __init__(self, *sizes: int) -> None:
        self.sizes = list(sizes)
        self.offset = 0
        self.waits: list[float] = []

    def poll(self, max_messages: int, timeout_s: float) -> list[SourceMessage]:
        self.waits.append(timeout_s)
        if not self.sizes:
            return []
        size = min(self.sizes[0], max_messages)
        self.sizes[0] -= size
        if not self.sizes[0]:
            self.sizes.pop(0)
        out = [SourceMessage(b"x", "t", 0, self.offset + i) for i in range(size)]
        self.offset += size
        return out


def never() -> bool:
    return False


def test_a_lone_message_closes_its_batch_after_a_short_idle_wait() -> None:
    source = Bursts(1)
    batcher = MicroBatcher(source, max_batch=256, max_wait_ms=60_000, idle_ms=5)
    assert len(batcher.next_batch(never, lambda: None)) == 1
    assert source.waits[1] == pytest.approx(0.005)  # waited idle_ms for more, not a minute


def test_a_burst_fills_whole_batches_then_the_rest_closes_early() -> None:
    source = Bursts(100, 100, 30)  # arriving in pieces, as fetch responses do
    batcher = MicroBatcher(source, max_batch=64, max_wait_ms=60_000, idle_ms=5)
    sizes = [len(batcher.next_batch(never, lambda: None)) for _ in range(4)]
    assert sizes == [64, 64, 64, 38]


def test_without_idle_close_a_batch_waits_for_its_deadline() -> None:
    source = Bursts(1)
    batcher = MicroBatcher(source, max_batch=256, max_wait_ms=30, idle_ms=None)
    started = time.monotonic()
    batch: list[SourceMessage] = []
    while not batch:
        batch = batcher.next_batch(never, lambda: None)
    assert len(batch) == 1 and time.monotonic() - started >= 0.03


# -- on the real broker -------------------------------------------------------------------


def kafka_source(bootstrap: str, topic: str) -> KafkaSource:
    config = load_config(
        overrides={
            "input.bootstrap": bootstrap,
            "input.topics": topic,
            "input.group_id": f"adaptive-{time.monotonic_ns()}",
            "output.topic": "unused",
        }
    )
    return KafkaSource(config, DaemonMetrics(CollectorRegistry()))


def publish(bootstrap: str, topic: str, values: list[bytes]) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
    for value in values:
        producer.produce(topic, value, partition=0)
    assert producer.flush(30) == 0


def first_batch(batcher: MicroBatcher, timeout_s: float) -> list[SourceMessage]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        batch = batcher.next_batch(never, lambda: None)
        if batch:
            return batch
    return []


@pytest.mark.integration
def test_on_kafka_a_lone_message_comes_out_without_waiting_for_max_wait(
    kafka_bootstrap: str, make_topic
) -> None:
    topic = make_topic("lone")
    source = kafka_source(kafka_bootstrap, topic)
    try:
        batcher = MicroBatcher(source, max_batch=256, max_wait_ms=60_000)
        assert first_batch(batcher, 20) == []  # joined the group; nothing there yet
        publish(kafka_bootstrap, topic, [b"lone"])
        started = time.monotonic()
        batch = first_batch(batcher, 30)
        # Well inside the minute of max_wait_ms: only the idle close can have ended it.
        assert [m.value for m in batch] == [b"lone"]
        assert time.monotonic() - started < 30
    finally:
        source.close()


@pytest.mark.integration
def test_on_kafka_a_waiting_burst_fills_whole_batches(kafka_bootstrap: str, make_topic) -> None:
    topic = make_topic("burst")
    publish(kafka_bootstrap, topic, [b"%d" % i for i in range(250)])
    source = kafka_source(kafka_bootstrap, topic)
    try:
        batcher = MicroBatcher(source, max_batch=100, max_wait_ms=60_000)
        batches = [first_batch(batcher, 30)]
        while sum(map(len, batches)) < 250:
            batches.append(first_batch(batcher, 30))
            assert batches[-1], "the burst stopped short"
        assert [len(b) for b in batches[:2]] == [100, 100]
        offsets = [m.offset for b in batches for m in b]
        assert offsets == list(range(250))
    finally:
        source.close()
