"""On a real broker: N packets in, N annotated records out, order per partition kept."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from kafka_broker import unique_topic
from stream_helpers import (
    Daemon,
    decode_output,
    good_packets,
    metric,
    produce,
    read_topic,
    start_daemon,
)

from stampflow.stream.cli import main

pytestmark = pytest.mark.integration

PARTITIONS = 3
N = 90


def test_every_packet_comes_out_once_in_partition_order(
    kafka_bootstrap: str, make_topic, daemons: list[Daemon], tmp_path: Path
) -> None:
    source, output, dead = (make_topic(p, PARTITIONS) for p in ("in", "out", "dead"))
    packets = good_packets(N)
    coords = produce(kafka_bootstrap, source, packets, PARTITIONS)
    daemon = start_daemon(
        daemons,
        kafka_bootstrap,
        source,
        output,
        dead,
        "--max-batch=16",
        "--max-wait-ms=200",
        "--mode=full",
        log_path=tmp_path / "d.log",
    )
    daemon.wait_ready()

    records = read_topic(kafka_bootstrap, output, N)
    assert daemon.stop() == 0, daemon.log_tail()

    assert len(records) == N
    assert sorted(r.source for r in records) == sorted(coords)
    for partition in range(PARTITIONS):
        mine = sorted((r for r in records if r.partition == partition), key=lambda r: r.offset)
        sources = [r.source for r in mine]
        assert all(p == partition for p, _ in sources)  # outputs stay in their input partition
        assert [o for _, o in sources] == sorted(o for _, o in sources)  # and in order
    by_coord = {c: packet for c, packet in zip(coords, packets, strict=True)}
    for record in records[:10]:
        (decoded,) = decode_output(record.value)  # a plain fastavro reader opens the output
        original = decode_output(by_coord[record.source])[0]
        assert decoded["candid"] == original["candid"]
        assert decoded["stampflow"]["annotations"] == []  # no classifiers configured


def test_metrics_agree_with_what_was_sent(
    kafka_bootstrap: str, make_topic, daemons: list[Daemon], tmp_path: Path
) -> None:
    source, output, dead = (make_topic(p, 2) for p in ("in", "out", "dead"))
    good = good_packets(30, seed=11)
    garbage = [b"", b"not avro at all", b"Obj\x01\x02truncated"]
    produce(kafka_bootstrap, source, good + garbage, 2)
    daemon = start_daemon(
        daemons,
        kafka_bootstrap,
        source,
        output,
        dead,
        "--max-batch=8",
        "--max-wait-ms=100",
        log_path=tmp_path / "d.log",
    )
    daemon.wait_ready()
    read_topic(kafka_bootstrap, output, len(good))
    read_topic(kafka_bootstrap, dead, len(garbage))

    samples = daemon.metrics()
    assert metric(samples, "stampflow_alerts_consumed_total", topic=source) == 33
    assert metric(samples, "stampflow_alerts_published_total", topic=output) == 30
    dead_total = sum(
        v for (name, _labels), v in samples.items() if name == "stampflow_dead_letters_total"
    )
    assert dead_total == 3
    assert metric(samples, "stampflow_dead_letters_total", stage="decode", reason="empty") == 1
    assert metric(samples, "stampflow_batch_size_sum") == 33
    assert metric(samples, "stampflow_ready") == 1
    assert metric(samples, "stampflow_assigned_partitions") == 2
    assert metric(samples, "stampflow_end_to_end_latency_seconds_count") == 30
    assert metric(samples, "stampflow_stage_duration_seconds_count", stage="commit") >= 1
    assert any(name == "process_resident_memory_bytes" for name, _ in samples)
    deadline = time.monotonic() + 20  # lag is refreshed every few seconds, from watermarks
    while not all(
        metric(samples, "stampflow_consumer_lag", topic=source, partition=str(p)) == 0
        and ("stampflow_consumer_lag", (("partition", str(p)), ("topic", source))) in samples
        for p in range(2)
    ):
        assert time.monotonic() < deadline, "no consumer lag reported"
        time.sleep(0.5)
        samples = daemon.metrics()
    assert daemon.stop() == 0


def test_replay_publishes_an_archive_in_packet_order(
    kafka_bootstrap: str, tmp_path: Path, capsys
) -> None:
    night = tmp_path / "night"
    assert main(["synth", str(night), "--n=40", "--seed=8", "--tar", "--quiet"]) == 0
    topic = unique_topic("replayed")
    code = main([
        "replay", str(night / "alerts.tar.gz"), f"--to={topic}", f"--bootstrap={kafka_bootstrap}",
        "--partitions=2", "--rate=400", "--quiet",
    ])  # fmt: skip
    assert code == 0
    assert "replayed 40 packets" in capsys.readouterr().out
    records = read_topic(kafka_bootstrap, topic, 40)
    names = [json.loads(line)["file"] for line in (night / "truth.jsonl").read_text().splitlines()]
    for partition in range(2):
        mine = sorted((r for r in records if r.partition == partition), key=lambda r: r.offset)
        assert [r.key.decode() for r in mine] == names[partition::2]  # archive order kept
