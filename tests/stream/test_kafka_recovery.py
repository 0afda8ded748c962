"""On a real broker: crashes, rebalances and outages lose nothing (at-least-once)."""

from __future__ import annotations

import threading
import time
from collections import Counter
from pathlib import Path

import pytest
from stream_helpers import (
    Daemon,
    good_packets,
    http_status,
    metric,
    produce,
    read_topic,
    start_daemon,
    wait_for,
)

pytestmark = pytest.mark.integration

MAX_BATCH = 10
BATCHING = (f"--max-batch={MAX_BATCH}", "--max-wait-ms=100")


def produce_slowly(
    bootstrap: str, topic: str, packets: list[bytes], partitions: int, seconds: float
) -> threading.Thread:
    """Publish ``packets`` in small bursts over ``seconds`` from a background thread."""
    chunks = [packets[i : i + 10] for i in range(0, len(packets), 10)]

    def work() -> None:
        for chunk in chunks:
            produce(bootstrap, topic, chunk, partitions)
            time.sleep(seconds / len(chunks))

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    return thread


def assert_complete(records, expected: int, max_duplicates: int) -> None:
    counts = Counter(r.source for r in records)
    assert len(counts) == expected, f"{expected - len(counts)} input packets never came out"
    duplicates = sum(c - 1 for c in counts.values())
    assert duplicates <= max_duplicates, f"{duplicates} duplicates > {max_duplicates}"


def test_sigkill_mid_stream_then_restart_loses_nothing(
    kafka_bootstrap: str, make_topic, daemons: list[Daemon], tmp_path: Path
) -> None:
    source, output, dead = (make_topic(p, 2) for p in ("in", "out", "dead"))
    packets = good_packets(160, seed=21)
    topics = (kafka_bootstrap, source, output, dead)
    first = start_daemon(daemons, *topics, *BATCHING, log_path=tmp_path / "d.log")
    first.wait_ready()
    feeder = produce_slowly(kafka_bootstrap, source, packets, 2, seconds=4)
    deadline = time.monotonic() + 30
    while metric(first.metrics(), "stampflow_alerts_published_total", topic=output) < 30:
        assert time.monotonic() < deadline, first.log_tail()
        time.sleep(0.05)
    first.kill()  # SIGKILL: no drain, no commit of the batch in hand
    assert feeder.is_alive() or len(read_topic(kafka_bootstrap, output, 0, 2)) < len(packets)

    second = start_daemon(daemons, *topics, *BATCHING, log_path=tmp_path / "d.log")
    feeder.join(30)
    records = read_topic(kafka_bootstrap, output, len(packets), timeout_s=90)
    assert second.stop() == 0, second.log_tail()
    assert_complete(records, len(packets), max_duplicates=MAX_BATCH)


def test_two_workers_split_partitions_and_one_takes_over(
    kafka_bootstrap: str, make_topic, daemons: list[Daemon], tmp_path: Path
) -> None:
    source, output, dead = (make_topic(p, 4) for p in ("in", "out", "dead"))
    packets = good_packets(200, seed=22)
    topics = (kafka_bootstrap, source, output, dead)
    a = start_daemon(daemons, *topics, *BATCHING, log_path=tmp_path / "a.log")
    b = start_daemon(daemons, *topics, *BATCHING, log_path=tmp_path / "b.log")
    a.wait_ready()
    b.wait_ready()
    deadline = time.monotonic() + 60
    while True:  # both members hold partitions: the group split the four between them
        shares = [metric(d.metrics(), "stampflow_assigned_partitions") for d in (a, b)]
        if shares[0] >= 1 and shares[1] >= 1 and sum(shares) == 4:
            break
        assert time.monotonic() < deadline, f"partitions never split: {shares}"
        time.sleep(0.2)

    feeder = produce_slowly(kafka_bootstrap, source, packets, 4, seconds=4)
    time.sleep(1.5)
    assert a.stop() == 0, a.log_tail()  # a leaves cleanly in the middle of the stream
    feeder.join(30)
    records = read_topic(kafka_bootstrap, output, len(packets), timeout_s=90)
    assert metric(b.metrics(), "stampflow_assigned_partitions") == 4
    assert b.stop() == 0, b.log_tail()
    assert_complete(records, len(packets), max_duplicates=2 * MAX_BATCH)


def test_workers_flag_runs_a_group_with_metrics_on_one_port(
    kafka_bootstrap: str, make_topic, daemons: list[Daemon], tmp_path: Path
) -> None:
    source, output, dead = (make_topic(p, 4) for p in ("in", "out", "dead"))
    packets = good_packets(80, seed=23)
    produce(kafka_bootstrap, source, packets, 4)
    daemon = start_daemon(
        daemons,
        kafka_bootstrap,
        source,
        output,
        dead,
        "--workers=2",
        "--max-batch=10",
        log_path=tmp_path / "w.log",
    )
    daemon.wait_ready(timeout_s=90)
    records = read_topic(kafka_bootstrap, output, len(packets))
    assert_complete(records, len(packets), max_duplicates=0)
    samples = daemon.metrics()
    # Both workers' counters, summed on the one port.
    assert metric(samples, "stampflow_alerts_published_total", topic=output) == len(packets)
    assert metric(samples, "stampflow_assigned_partitions") == 4
    assert daemon.stop() == 0, daemon.log_tail()


def test_broker_outage_under_load_loses_nothing(
    restartable_kafka, daemons: list[Daemon], tmp_path: Path
) -> None:
    from kafka_broker import create_topic

    bootstrap = restartable_kafka.bootstrap
    source, output, dead = (create_topic(bootstrap, name, 2) for name in ("in", "out", "dead"))
    packets = good_packets(120, seed=24)
    daemon = start_daemon(
        daemons,
        bootstrap,
        source,
        output,
        dead,
        *BATCHING,
        group="g-outage",
        log_path=tmp_path / "d.log",
    )
    daemon.wait_ready()
    produce(bootstrap, source, packets[:60], 2)
    time.sleep(0.5)  # the daemon is busy with the first half
    restartable_kafka.stop()
    # Readiness sees the outage (liveness does not: the worker is fine, the broker is not).
    assert wait_for(lambda: http_status(daemon.port, "/readyz") == 503, timeout_s=30)
    assert http_status(daemon.port, "/healthz") == 200
    restartable_kafka.start()
    assert wait_for(lambda: http_status(daemon.port, "/readyz") == 200, timeout_s=60)
    produce(bootstrap, source, packets[60:], 2)
    records = read_topic(bootstrap, output, len(packets), timeout_s=120)
    assert daemon.process.poll() is None, daemon.log_tail()  # it rode the outage out
    assert daemon.stop() == 0, daemon.log_tail()
    assert_complete(records, len(packets), max_duplicates=2 * MAX_BATCH)
