"""Crash soak and throughput of both processing modes through a real Kafka broker.

    .venv/bin/python bench/bench_soak.py [--kills 10] [--packets 1200] [--backlog 3000]

Uses ``KAFKA_BOOTSTRAP`` when set, otherwise starts the local broker from ``deploy/kafka``.
For ``at_least_once`` and ``exactly_once`` in turn, with ``stampflow run`` as a subprocess
(no classifiers: the commit path is what is measured):

1. soak: ``--packets`` packets wait in a 2-partition topic; the daemon is started, SIGKILLed
   once it has published a few batches, started again, ``--kills`` times, then left to
   finish. A ``read_committed`` reader then counts input packets lost (never out) and
   duplicated (out more than once); ``aborted`` is what a ``read_uncommitted`` reader sees
   beyond that (records of transactions the kills cut short). RSS is the largest resident
   size of a daemon just before its kill;
2. throughput: ``--backlog`` packets wait, one daemon drains them (``--max-batch``, 256);
   alerts/s = outputs / (last output time - first output time), as ``bench_stream.py``.

On the development machine (2 cores shared with model training, the local broker,
defaults: 10 kills over 1,200 packets, backlog 3,000 at max_batch 256)::

    mode            lost   dup  aborted  RSS soak  alerts/s  RSS drain
    at_least_once      0    40        0      90 M       525      168 M
    exactly_once       0     0       50      89 M       523      111 M

At-least-once re-delivers the batch in hand at each kill (40 duplicates, 10-packet
batches); exactly-once shows none to a read_committed reader, the kills' cut-short
transactions (50 records) aborted. At 256-packet batches the two extra coordinator round
trips per batch cost nothing measurable here: the shared CPUs bound both.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections import Counter
from pathlib import Path

from confluent_kafka import Consumer

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "tests"), str(REPO / "tests" / "stream")]

from kafka_broker import LocalKafka, create_topic, unique_topic  # noqa: E402
from stream_helpers import Daemon, good_packets, metric, produce  # noqa: E402

MODES = ("at_least_once", "exactly_once")
PARTITIONS = 2


def read_output(bootstrap: str, topic: str, expect: int, isolation: str, timeout_s: float):
    """(source partition, offset) and timestamp of every output, waiting for ``expect``."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": unique_topic("soak-reader"),
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "isolation.level": isolation,
        }
    )
    consumer.subscribe([topic])
    out: list[tuple[tuple[int, int], int]] = []
    deadline = time.monotonic() + timeout_s
    quiet = None
    while time.monotonic() < deadline:
        for m in consumer.consume(1000, timeout=0.5):
            if m.error() is None:
                headers = dict(m.headers() or [])
                source = (
                    int(headers["stampflow.source.partition"]),
                    int(headers["stampflow.source.offset"]),
                )
                out.append((source, m.timestamp()[1]))
        if len(out) >= expect:
            quiet = quiet or time.monotonic() + 2.0  # late duplicates
            if time.monotonic() > quiet:
                break
    consumer.close()
    return out


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def daemon(bootstrap: str, topics: tuple[str, str, str], mode: str, batch: int, log: Path):
    source, output, dead = topics
    extra = (f"--max-batch={batch}", "--max-wait-ms=100", f"--processing={mode}")
    env = {"STAMPFLOW_KAFKA__GROUP_INSTANCE_ID": "soak-0"}
    return Daemon(
        bootstrap,
        topics=source,
        output=output,
        dead=dead,
        group=f"g-{source}",
        extra=extra,
        log_path=log,
        env=env,
    ).start()


def new_topics(bootstrap: str) -> tuple[str, str, str]:
    return tuple(  # type: ignore[return-value]
        create_topic(bootstrap, unique_topic(p), PARTITIONS) for p in ("soak-in", "out", "dead")
    )


def soak(bootstrap: str, mode: str, packets: list[bytes], kills: int, log: Path) -> dict:
    topics = new_topics(bootstrap)
    produce(bootstrap, topics[0], packets, PARTITIONS)
    rss = 0.0
    for _ in range(kills):
        d = daemon(bootstrap, topics, mode, 10, log)
        d.wait_ready(90)
        deadline = time.monotonic() + 60
        # A few batches out, then the kill: mid-stream, most likely mid-batch.
        while metric(d.metrics(), "stampflow_alerts_published_total", topic=topics[1]) < 30:
            if time.monotonic() > deadline:
                raise RuntimeError(f"no progress\n{d.log_tail()}")
            time.sleep(0.02)
        rss = max(rss, rss_mib(d.process.pid))
        d.kill()
    last = daemon(bootstrap, topics, mode, 10, log)
    committed = read_output(bootstrap, topics[1], len(packets), "read_committed", 180)
    last.stop()
    everything = read_output(bootstrap, topics[1], len(committed), "read_uncommitted", 30)
    counts = Counter(source for source, _ in committed)
    return {
        "lost": len(packets) - len(counts),
        "duplicates": sum(n - 1 for n in counts.values()),
        "aborted": len(everything) - len(committed),
        "rss": rss,
    }


def throughput(bootstrap: str, mode: str, packets: list[bytes], batch: int, log: Path) -> dict:
    topics = new_topics(bootstrap)
    produce(bootstrap, topics[0], packets, PARTITIONS)
    d = daemon(bootstrap, topics, mode, batch, log)
    out = read_output(bootstrap, topics[1], len(packets), "read_committed", 300)
    rss = rss_mib(d.process.pid)
    d.stop()
    stamps = sorted(stamp for _, stamp in out)
    seconds = max(1e-3, (stamps[-1] - stamps[0]) / 1000)
    return {"alerts_per_s": len(out) / seconds, "rss": rss}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument("--packets", type=int, default=1200, help="soak input packets")
    parser.add_argument("--backlog", type=int, default=3000, help="throughput input packets")
    parser.add_argument("--max-batch", type=int, default=256, help="throughput batch size")
    args = parser.parse_args()

    broker = None
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP")
    workdir = Path(os.environ.get("TMPDIR", "/tmp")) / f"bench-soak-{os.getpid()}"
    if not bootstrap:
        broker = LocalKafka(workdir / "kafka").start()
        bootstrap = broker.bootstrap
    log = workdir / "daemon.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    packets = good_packets(max(args.packets, args.backlog), seed=5)
    rows = []
    try:
        for mode in MODES:
            print(f"{mode}: soak with {args.kills} kills ...", flush=True)
            crash = soak(bootstrap, mode, packets[: args.packets], args.kills, log)
            print(f"{mode}: throughput on a backlog of {args.backlog} ...", flush=True)
            speed = throughput(bootstrap, mode, packets[: args.backlog], args.max_batch, log)
            rows.append((mode, crash, speed))
    finally:
        if broker is not None:
            broker.stop()
    print(f"\n{args.kills} SIGKILLs over {args.packets} packets; throughput on {args.backlog}")
    print(
        f"{'mode':<14} {'lost':>5} {'dup':>5} {'aborted':>8} {'RSS soak':>9} "
        f"{'alerts/s':>9} {'RSS drain':>10}"
    )
    for mode, crash, speed in rows:
        print(
            f"{mode:<14} {crash['lost']:>5} {crash['duplicates']:>5} {crash['aborted']:>8} "
            f"{crash['rss']:>7.0f} M {speed['alerts_per_s']:>9.0f} {speed['rss']:>8.0f} M"
        )
    print(f"daemon log: {log}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
