"""End-to-end daemon benchmark through a real Kafka broker: alerts/s and latency percentiles.

    .venv/bin/python bench/bench_stream.py [--n 3000] [--rate 150] [--classifiers blend]

Uses ``KAFKA_BOOTSTRAP`` when set, otherwise starts the local broker from ``deploy/kafka``.
Two phases, each with ``stampflow run`` as a subprocess:

1. throughput: ``--n`` synthetic packets are replayed first (a backlog), then the daemon
   drains them; alerts/s = outputs / (last output time - first output time);
2. latency: with the daemon running, packets are replayed at ``--rate`` packets/s; each
   output's latency is its Kafka timestamp (set when produced) minus its input's timestamp.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from confluent_kafka import Consumer

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from kafka_broker import LocalKafka, create_topic, unique_topic  # noqa: E402

from stampflow.stream.replay_cmd import replay  # noqa: E402
from stampflow.training.synth import synthesise, write_archive  # noqa: E402

STAMPFLOW = str(Path(sys.executable).parent / "stampflow")
PARTITIONS = 4


class DaemonDied(RuntimeError):
    pass


def read_all(
    bootstrap: str, topic: str, expect: int, timeout_s: float, daemon: Daemon | None = None
) -> list:
    """(timestamp_ms, partition, offset, headers) of every message, waiting for ``expect``."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": unique_topic("bench-reader"),
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([topic])
    out = []
    deadline = time.monotonic() + timeout_s
    while len(out) < expect and time.monotonic() < deadline:
        if daemon is not None and daemon.process.poll() is not None:
            raise DaemonDied(f"the daemon exited early; its log:\n{daemon.log_tail()}")
        for m in consumer.consume(1000, timeout=0.5):
            if m.error() is None:
                out.append((m.timestamp()[1], m.partition(), m.offset(), dict(m.headers() or [])))
    consumer.close()
    return out


class Daemon:
    """``stampflow run`` as a subprocess, its log in a file."""

    def __init__(self, bootstrap: str, source: str, output: str, dead: str, args, log: Path):
        command = [
            STAMPFLOW, "run", f"--bootstrap={bootstrap}", f"--topics={source}",
            f"--output-topic={output}", f"--dead-letter-topic={dead}", f"--group-id=g-{source}",
            f"--classifiers={args.classifiers}", f"--max-batch={args.max_batch}",
            f"--max-wait-ms={args.max_wait_ms}", f"--workers={args.workers}",
            "--metrics-port=0", f"--mode={args.mode}",
        ]  # fmt: skip
        self.log = log
        with log.open("wb") as out:
            self.process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)

    def log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(90)


def topics(bootstrap: str) -> tuple[str, str, str]:
    return tuple(create_topic(bootstrap, unique_topic(p), PARTITIONS) for p in ("in", "out", "dl"))


def throughput(bootstrap: str, archive: Path, n: int, args) -> float:
    source, output, dead = topics(bootstrap)
    replay(str(archive), source, bootstrap, progress=False)
    daemon = Daemon(bootstrap, source, output, dead, args, archive.parent / "throughput.log")
    try:
        records = read_all(bootstrap, output, n, timeout_s=600, daemon=daemon)
    finally:
        daemon.stop()
    stamps = sorted(r[0] for r in records)
    return (len(stamps) - 1) / max(1e-3, (stamps[-1] - stamps[0]) / 1000.0)


def latency(bootstrap: str, archive: Path, n: int, args) -> np.ndarray:
    source, output, dead = topics(bootstrap)
    daemon = Daemon(bootstrap, source, output, dead, args, archive.parent / "latency.log")
    try:
        time.sleep(8)  # join the group before the first packet
        replay(str(archive), source, bootstrap, rate=args.rate, progress=True)
        outputs = read_all(bootstrap, output, n, timeout_s=300, daemon=daemon)
    finally:
        daemon.stop()
    inputs = {(p, o): ts for ts, p, o, _h in read_all(bootstrap, source, n, timeout_s=60)}
    return np.array(
        [
            ts - inputs[(int(h["stampflow.source.partition"]), int(h["stampflow.source.offset"]))]
            for ts, _p, _o, h in outputs
        ],
        dtype=float,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=3000, help="packets for the throughput phase")
    parser.add_argument("--latency-n", type=int, default=1500)
    parser.add_argument("--rate", type=float, default=150.0, help="replay rate, latency phase")
    parser.add_argument("--classifiers", default="", help="comma-separated; empty: none")
    parser.add_argument("--max-batch", type=int, default=256)
    parser.add_argument("--max-wait-ms", type=int, default=100)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--mode", default="full", choices=("full", "slim"))
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="stampflow-bench-") as tmp:
        work = Path(tmp)
        broker = None
        bootstrap = os.environ.get("KAFKA_BOOTSTRAP")
        if not bootstrap:
            broker = LocalKafka(work / "kafka", partitions=PARTITIONS).start()
            bootstrap = broker.bootstrap
        try:
            big = write_archive(
                work / "big", synthesise(args.n, 1, broken_fraction=0.0, progress=False), tar=True
            )
            small = write_archive(
                work / "small",
                synthesise(args.latency_n, 2, broken_fraction=0.0, progress=False),
                tar=True,
            )
            rate = throughput(bootstrap, big, args.n, args)
            lat = latency(bootstrap, small, args.latency_n, args)
        finally:
            if broker is not None:
                broker.stop()
    p50, p95, p99 = np.percentile(lat, [50, 95, 99])
    classifiers = args.classifiers or "none (pass-through)"
    print()
    cores = os.cpu_count()
    print(f"stampflow end to end through Apache Kafka ({cores} cores, {PARTITIONS} partitions)")
    print(
        f"classifiers: {classifiers}; mode {args.mode}; workers {args.workers}; "
        f"max_batch {args.max_batch}; max_wait_ms {args.max_wait_ms}"
    )
    rows = [
        (f"throughput, backlog of {args.n} packets", f"{rate:.0f} alerts/s"),
        (f"latency p50 at {args.rate:.0f} packets/s", f"{p50:.0f} ms"),
        ("latency p95", f"{p95:.0f} ms"),
        ("latency p99", f"{p99:.0f} ms"),
        ("latency samples", str(len(lat))),
    ]
    print(f"| {'measure':<36} | {'value':>14} |")
    print(f"|{'-' * 38}|{'-' * 16}|")
    for name, value in rows:
        print(f"| {name:<36} | {value:>14} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
