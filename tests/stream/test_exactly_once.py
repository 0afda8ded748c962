"""On a real broker: ``processing: exactly_once`` survives SIGKILLs with nothing lost or doubled."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import pytest
from stream_helpers import Daemon, good_packets, metric, read_topic, start_daemon
from test_kafka_recovery import produce_slowly

pytestmark = pytest.mark.integration

EXACTLY_ONCE = ("--max-batch=10", "--max-wait-ms=100", "--processing=exactly_once")
KILLS = 3


def test_repeated_sigkills_lose_nothing_and_duplicate_nothing(
    kafka_bootstrap: str, make_topic, daemons: list[Daemon], tmp_path: Path
) -> None:
    source, output, dead = (make_topic(p, 2) for p in ("in", "out", "dead"))
    packets = good_packets(240, seed=31)
    topics = (kafka_bootstrap, source, output, dead)
    # The same static member id after each restart: the restarted worker takes the killed
    # one's place at once, and its transactional id aborts what the killed one left open.
    env = {"STAMPFLOW_KAFKA__GROUP_INSTANCE_ID": "eos-0"}
    log = tmp_path / "d.log"
    feeder = produce_slowly(kafka_bootstrap, source, packets, 2, seconds=8)
    for _ in range(KILLS):
        daemon = start_daemon(daemons, *topics, *EXACTLY_ONCE, env=env, log_path=log)
        daemon.wait_ready()
        deadline = time.monotonic() + 30
        while metric(daemon.metrics(), "stampflow_alerts_published_total", topic=output) < 20:
            assert time.monotonic() < deadline, daemon.log_tail()
            time.sleep(0.02)
        daemon.kill()  # mid-stream, most likely mid-transaction

    last = start_daemon(daemons, *topics, *EXACTLY_ONCE, env=env, log_path=log)
    feeder.join(30)
    records = read_topic(kafka_bootstrap, output, len(packets), timeout_s=90)
    assert last.stop() == 0, last.log_tail()
    counts = Counter(r.source for r in records)
    assert len(counts) == len(packets), f"{len(packets) - len(counts)} input packets lost"
    doubled = {source: n for source, n in counts.items() if n > 1}
    assert not doubled, f"{sum(doubled.values()) - len(doubled)} duplicates: {doubled}"


def test_a_second_worker_with_the_same_identity_fences_the_first(
    kafka_bootstrap: str, make_topic, daemons: list[Daemon], tmp_path: Path
) -> None:
    source, output, dead = (make_topic(p) for p in ("in", "out", "dead"))
    topics = (kafka_bootstrap, source, output, dead)
    env = {"STAMPFLOW_KAFKA__GROUP_INSTANCE_ID": "eos-twin"}
    first = start_daemon(daemons, *topics, *EXACTLY_ONCE, env=env, log_path=tmp_path / "a.log")
    first.wait_ready()
    second = start_daemon(daemons, *topics, *EXACTLY_ONCE, env=env, log_path=tmp_path / "b.log")
    second.wait_ready()
    # The older one is the zombie: it stops by itself, cleanly, saying why.
    assert first.process.wait(60) == 0, first.log_tail()
    assert "a newer member took" in first.log_tail() or "newer worker" in first.log_tail()
    assert second.process.poll() is None, second.log_tail()
    assert second.stop() == 0, second.log_tail()
