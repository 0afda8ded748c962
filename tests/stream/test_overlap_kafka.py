"""Overlap on a real broker: offsets never move before their outputs are acknowledged, and
a delivery failure while the next batch is prepared loses nothing (both batches go again
from their lowest offsets)."""

from __future__ import annotations

import time

import pytest
from prometheus_client import CollectorRegistry
from stream_helpers import committed, good_packets, produce, read_topic

from stampflow.stream.config import load_config
from stampflow.stream.dead_letters import KafkaDeadLetters
from stampflow.stream.health import Heartbeat
from stampflow.stream.kafka_producer import AckingProducer, DeliveryFailed, producer_properties
from stampflow.stream.kafka_source import KafkaSource
from stampflow.stream.loop import ProcessingLoop
from stampflow.stream.metrics import DaemonMetrics
from stampflow.stream.sinks import KafkaSink

pytestmark = pytest.mark.integration

PARTITIONS = 3
N = 60


class WatchedSource:
    """The real ``KafkaSource``; each commit checks that nothing is unacknowledged, and the
    loop is stopped once every input is committed."""

    def __init__(self, source: KafkaSource, producer: AckingProducer, events: list) -> None:
        self.source, self.producer, self.events = source, producer, events
        self.done = 0
        self.loop: ProcessingLoop | None = None
        self.deadline = time.monotonic() + 120

    def poll(self, max_messages: int, timeout_s: float):
        got = self.source.poll(max_messages, timeout_s)
        if got:
            self.events.append(("poll", len(got)))
        if time.monotonic() > self.deadline and self.loop is not None:
            self.loop.request_stop()
        return got

    def commit(self, messages) -> None:
        # Offsets move only when every output produced so far is acknowledged.
        assert self.producer.in_flight == 0
        self.events.append(("commit", len(messages)))
        self.source.commit(messages)
        self.done += len(messages)
        if self.done >= N and self.loop is not None:
            self.loop.request_stop()

    def rewind(self, messages) -> None:
        self.events.append(("rewind", len(messages)))
        self.source.rewind(messages)

    def offsets_after(self, messages):
        return self.source.offsets_after(messages)

    @property
    def exhausted(self) -> bool:
        return False

    @property
    def ready(self) -> bool:
        return self.source.ready

    def set_revoke_hook(self, hook) -> None:
        self.source.set_revoke_hook(hook)

    def close(self) -> None:
        self.source.close()


class FailingOnce(KafkaSink):
    """The real sink; its ``fail_at``-th wait (after really waiting) reports a failure, as
    a broker lost past ``message.timeout.ms`` would (the outputs may have landed anyway)."""

    fail_at = 2
    waits = 0

    def wait_for_acks(self, *, beat, deadline) -> None:
        super().wait_for_acks(beat=beat, deadline=deadline)
        self.waits += 1
        if self.waits == self.fail_at:
            self.events.append(("acks", "failed"))
            raise DeliveryFailed("injected: the broker went away")
        self.events.append(("acks", "ok"))


def test_a_failure_while_the_next_batch_is_prepared_loses_nothing(
    kafka_bootstrap: str, make_topic
) -> None:
    source_topic, output, dead = (make_topic(p, PARTITIONS) for p in ("in", "out", "dead"))
    coords = produce(kafka_bootstrap, source_topic, good_packets(N), PARTITIONS)
    group = f"overlap-{time.monotonic_ns()}"
    config = load_config(
        overrides={
            "input.bootstrap": kafka_bootstrap,
            "input.topics": source_topic,
            "input.group_id": group,
            "output.topic": output,
            "dead_letter.topic": dead,
        }
    )
    events: list = []
    producer = AckingProducer(producer_properties(config), 10_000)
    sink = FailingOnce(producer, output, max_message_bytes=1_000_000)
    sink.events = events
    metrics = DaemonMetrics(CollectorRegistry())
    source = WatchedSource(KafkaSource(config, metrics), producer, events)
    loop = ProcessingLoop(
        source=source,
        sink=sink,
        dead_letters=KafkaDeadLetters(producer, dead, max_message_bytes=1_000_000),
        classifiers=[],
        metrics=metrics,
        heartbeat=Heartbeat(),
        max_batch=8,
        max_wait_ms=200,
        drain_timeout_s=10,
        overlap=True,
    )
    source.loop = loop
    try:
        totals = loop.run()
    finally:
        source.close()
        producer.close(10)

    failed = events.index(("acks", "failed"))
    # The failure came while the next batch was in hand, and both went back.
    assert events[failed - 1][0] == "poll" and events[failed + 1][0] == "rewind"
    assert totals.rewinds == 1 and totals.published == N
    records = read_topic(kafka_bootstrap, output, N)
    assert set(r.source for r in records) == set(coords)  # nothing lost (duplicates allowed)
    for partition in range(PARTITIONS):
        firsts: list[int] = []
        for r in sorted((r for r in records if r.partition == partition), key=lambda r: r.offset):
            if r.source[1] not in firsts:
                firsts.append(r.source[1])
        assert firsts == sorted(firsts)  # outputs in input order within their partition
    ends = {p: max(o for q, o in coords if q == p) + 1 for p in range(PARTITIONS)}
    assert committed(kafka_bootstrap, group, source_topic, PARTITIONS) == ends
