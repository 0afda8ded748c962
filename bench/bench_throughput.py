"""Throughput against the Kafka floor, CPU, latency, RSS and restart time, in one run.

    .venv/bin/python bench/bench_throughput.py [--quick] [--n 8000] [--pool 1500]

Uses ``KAFKA_BOOTSTRAP`` when set, otherwise starts the local broker from ``deploy/kafka``
(as ``bench_stream.py``). One synthetic night (``stampflow.training.synth``: 10% multiband,
5% broken) of ``--pool`` packets is made once and cycled; ``--n`` of them wait in one
4-partition input topic that every throughput row drains with a fresh consumer group into
its own output (and dead-letter) topic. Rows:

- ``kafka floor``: a plain confluent-kafka consume -> produce of the same bytes (no decode),
  built from stampflow's own ``consumer_properties`` / ``producer_properties``, per batch of
  ``max_batch``: produce, flush, commit (the daemon's guarantee); ``kafka raw`` the same
  without the per-batch flush and commit;
- ``codec floor``: decode + encode (output container) of the same packets, no Kafka, one
  thread;
- ``stampflow run`` with no classifiers, blend, morphology, both, at ``--workers`` 1 and 2.

alerts/s: packets (outputs plus dead letters) between the 5th and the 95th percentile of
their output timestamps, over that time span (start-up and the tail are left out; two
workers need some seconds to load their models and share the partitions, so a row of a few
thousand packets under-states them: 8,000 by default); CPU
ms/alert: utime+stime (/proc/<pid>/stat) of the stampflow process tree, and of the broker
JVM, between the moments the reader saw 5% and 95% of the outputs; peak RSS: VmHWM of each
worker process. Latency: the both-classifiers daemon fed at fixed rates (150, 333, 1,000
packets/s), output Kafka timestamp minus input CreateTime, the first second left out; an
output not there ``--grace`` s after the feed ends counts as infinitely late. Restart: the
both-classifiers daemon with a static ``group.instance.id`` is SIGKILLed while fed and
started again; seconds from the new start to its partitions assigned and to its first
output. Prints one table and one JSON line (prefixed ``JSON``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from confluent_kafka import Consumer, Producer, TopicPartition

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "tests"), str(REPO / "tests" / "stream"), str(REPO / "bench")]

from kafka_broker import LocalKafka, create_topic, unique_topic  # noqa: E402
from stream_helpers import Daemon, produce  # noqa: E402

PARTITIONS = 4
CONFIGS = {"none": "", "blend": "blend", "morphology": "morphology", "both": "blend,morphology"}
RATES = (150.0, 333.0, 1000.0)
TICKS = os.sysconf("SC_CLK_TCK")


# -- /proc ------------------------------------------------------------------------------


def tree(pid: int) -> list[int]:
    """``pid`` and its descendants (alive ones)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def cpu_s(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime
        except (OSError, IndexError, ValueError):
            pass
    return total


def hwm_mb(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def worker_pids(root: int) -> list[int]:
    """The processes that consume: the root itself (1 worker) or its spawned workers."""
    pids = [p for p in tree(root) if p != root and b"spawn_main" in _cmdline(p)]
    pids = [p for p in pids if b"resource_tracker" not in _cmdline(p)]
    return pids or [root]


def _cmdline(pid: int) -> bytes:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read()
    except OSError:
        return b""


class Broker:
    def __init__(self, work: Path) -> None:
        self.local = None
        self.pid: int | None = None
        self.bootstrap = os.environ.get("KAFKA_BOOTSTRAP", "")
        if not self.bootstrap:
            self.local = LocalKafka(work / "kafka", partitions=PARTITIONS).start()
            self.bootstrap = self.local.bootstrap
            self.pid = int((work / "kafka" / "kafka.pid").read_text().strip())

    def cpu(self) -> float:
        return cpu_s([self.pid]) if self.pid else float("nan")

    def stop(self) -> None:
        if self.local is not None:
            self.local.stop()


# -- packets ----------------------------------------------------------------------------


def night(pool: int) -> list[bytes]:
    from stampflow.training.synth import synthesise

    packets = synthesise(pool, 12, broken_fraction=0.05, multiband_fraction=0.1, progress=False)
    return [packet for _name, packet, _row in packets]


def topics(bootstrap: str, *prefixes: str) -> list[str]:
    return [create_topic(bootstrap, unique_topic(p), PARTITIONS) for p in prefixes]


# -- reading outputs with CPU samples ---------------------------------------------------


class Window:
    """Reads ``expect`` messages from ``topics``; CPU and RSS sampled at 5% and 95%."""

    def __init__(self, bootstrap: str, names: list[str], expect: int) -> None:
        self.bootstrap, self.names, self.expect = bootstrap, names, expect
        self.stamps: list[int] = []
        self.samples: dict[str, tuple[float, float, float]] = {}  # mark -> (t, cpu, broker)
        self.rss: list[float] = []

    def read(
        self,
        alive: Callable[[], bool],
        cpu: Callable[[], float],
        broker: Broker,
        rss: Callable[[], list[float]],
        timeout_s: float,
        idle_s: float = 20.0,
    ) -> None:
        consumer = Consumer(
            {
                "bootstrap.servers": self.bootstrap,
                "group.id": unique_topic("bench-reader"),
                "auto.offset.reset": "earliest",
                "enable.auto.commit": False,
                "fetch.queue.backoff.ms": 10,
            }
        )
        consumer.subscribe(self.names)
        lo, hi = max(1, int(0.05 * self.expect)), max(2, int(0.95 * self.expect))
        deadline = time.monotonic() + timeout_s
        last_new = time.monotonic()
        try:
            while len(self.stamps) < self.expect and time.monotonic() < deadline:
                if not alive():
                    raise RuntimeError("the process under test exited early")
                got = [m for m in consumer.consume(1000, timeout=0.2) if m.error() is None]
                if got:
                    last_new = time.monotonic()
                elif self.stamps and time.monotonic() - last_new > idle_s:
                    break  # nothing more is coming
                self.stamps.extend(m.timestamp()[1] for m in got)
                for mark, at in (("lo", lo), ("hi", hi)):
                    if mark not in self.samples and len(self.stamps) >= at:
                        self.samples[mark] = (time.monotonic(), cpu(), broker.cpu())
                        if mark == "hi":
                            self.rss = rss()
        finally:
            consumer.close()

    def result(self) -> dict:
        stamps = np.sort(np.array(self.stamps, dtype=float))
        n = len(stamps)
        if n < 10:
            return {"alerts_s": 0.0, "packets": n}
        i, j = int(0.05 * (n - 1)), int(0.95 * (n - 1))
        rate = (j - i) / max(1e-3, (stamps[j] - stamps[i]) / 1000.0)
        out = {"alerts_s": round(rate, 1), "packets": n}
        if "lo" in self.samples and "hi" in self.samples:
            (_t0, c0, b0), (_t1, c1, b1) = self.samples["lo"], self.samples["hi"]
            count = max(1, int(0.95 * self.expect) - max(1, int(0.05 * self.expect)))
            out["cpu_ms_alert"] = round(1000 * (c1 - c0) / count, 2)
            out["broker_cpu_ms_alert"] = round(1000 * (b1 - b0) / count, 3)
        if self.rss:
            out["rss_mb"] = [round(r) for r in self.rss]
        return out


# -- the rows ---------------------------------------------------------------------------


def floor_child(args: argparse.Namespace) -> int:
    """The floor process: stampflow's own Kafka settings, bytes forwarded unchanged."""
    from stampflow.stream.config import load_config
    from stampflow.stream.kafka_producer import producer_properties
    from stampflow.stream.kafka_source import consumer_properties

    config = load_config(
        overrides={
            "input.bootstrap": args.bootstrap,
            "input.topics": args.source,
            "input.group_id": args.group,
            "output.topic": args.output,
        }
    )
    consumer = Consumer(consumer_properties(config))
    producer = Producer(producer_properties(config))
    consumer.subscribe([args.source])
    done, idle_since = 0, None
    while done < args.n:
        batch = [m for m in consumer.consume(args.max_batch, timeout=0.25) if m.error() is None]
        if not batch:
            idle_since = idle_since or time.monotonic()
            if done and time.monotonic() - idle_since > 10:
                break
            continue
        idle_since = None
        for m in batch:
            while True:
                try:
                    producer.produce(args.output, m.value(), key=m.key(), partition=m.partition())
                    break
                except BufferError:
                    producer.poll(0.05)
            producer.poll(0)
        done += len(batch)
        if not args.raw:
            producer.flush(30)
            highest: dict[tuple[str, int], int] = {}
            for m in batch:
                highest[(m.topic(), m.partition())] = max(
                    m.offset(), highest.get((m.topic(), m.partition()), -1)
                )
            offsets = [TopicPartition(t, p, o + 1) for (t, p), o in highest.items()]
            consumer.commit(offsets=offsets, asynchronous=False)
    producer.flush(30)
    consumer.close()
    return 0


def kafka_floor(broker: Broker, source: str, n: int, raw: bool, work: Path) -> dict:
    (output,) = topics(broker.bootstrap, "floor-out")
    command = [
        sys.executable, __file__, "--floor-child", f"--bootstrap={broker.bootstrap}",
        f"--source={source}", f"--output={output}", f"--group={unique_topic('floor')}",
        f"--n={n}", "--max-batch=256", *(["--raw"] if raw else []),
    ]  # fmt: skip
    with (work / "floor.log").open("ab") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    try:
        window = Window(broker.bootstrap, [output], n)
        window.read(
            lambda: process.poll() in (None, 0),
            lambda: cpu_s([process.pid]),
            broker,
            lambda: [hwm_mb(process.pid)],
            timeout_s=300,
        )
    except RuntimeError as exc:
        raise RuntimeError(f"{exc}\n{(work / 'floor.log').read_text()[-3000:]}") from None
    finally:
        process.wait(60)
    return window.result()


def codec_floor(packets: list[bytes], seconds: float) -> dict:
    from stampflow.schemas.codec import decode_packet
    from stampflow.schemas.encode import OutputEncoder
    from stampflow.schemas.errors import PacketError

    encoder = OutputEncoder()
    done, started = 0, time.process_time()
    wall = time.perf_counter()
    while time.perf_counter() - wall < seconds:
        for data in packets:
            try:
                for alert in decode_packet(data).alerts:
                    record = encoder.encode_record(alert, (), mode="full", processing_time_ms=1.0)
                    record.container()
            except PacketError:
                pass
            done += 1
    cpu = time.process_time() - started
    return {"alerts_s": round(done / (time.perf_counter() - wall), 1),
            "cpu_ms_alert": round(1000 * cpu / done, 3), "packets": done}  # fmt: skip


def daemon(
    broker: Broker, source: str, output: str, dead: str, group: str, classifiers: str,
    workers: int, work: Path, *extra: str, env: dict[str, str] | None = None,
) -> Daemon:  # fmt: skip
    return Daemon(
        broker.bootstrap, topics=source, output=output, dead=dead, group=group,
        extra=(f"--classifiers={classifiers}", f"--workers={workers}", *extra),
        log_path=work / f"{group}.log", env=env,
    ).start()  # fmt: skip


def stampflow_row(broker: Broker, source: str, n: int, classifiers: str, workers: int,
                  work: Path, extra: tuple[str, ...]) -> dict:  # fmt: skip
    output, dead = topics(broker.bootstrap, "out", "dl")
    d = daemon(broker, source, output, dead, unique_topic("g"), classifiers, workers, work, *extra)
    assert d.process is not None
    root = d.process.pid
    try:
        window = Window(broker.bootstrap, [output, dead], n)
        window.read(
            lambda: d.process.poll() is None,
            lambda: cpu_s(tree(root)),
            broker,
            lambda: [hwm_mb(p) for p in worker_pids(root)],
            timeout_s=600,
        )
    except RuntimeError as exc:
        raise RuntimeError(f"{exc}\n{d.log_tail()}") from None
    finally:
        d.stop(90)
    return window.result()


class Feeder(threading.Thread):
    """Produces ``packets`` cyclically at ``rate``/s for ``seconds`` (CreateTime: now)."""

    def __init__(self, bootstrap: str, topic: str, packets: list[bytes], rate: float,
                 seconds: float) -> None:  # fmt: skip
        super().__init__(daemon=True)
        self.producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 1})
        self.topic, self.packets, self.rate, self.seconds = topic, packets, rate, seconds
        self.sent = 0
        self.stop_event = threading.Event()

    def run(self) -> None:
        started = time.monotonic()
        while not self.stop_event.is_set():
            now = time.monotonic()
            if now - started > self.seconds:
                break
            due = int((now - started) * self.rate) + 1
            while self.sent < due:
                value = self.packets[self.sent % len(self.packets)]
                self.producer.produce(self.topic, value, partition=self.sent % PARTITIONS)
                self.sent += 1
            self.producer.poll(0)
            time.sleep(0.002)
        self.producer.flush(30)


def wait_log(d: Daemon, text: str, since: int, timeout_s: float) -> float | None:
    """monotonic time when ``text`` first appears in the daemon's log after byte ``since``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        path = d.log_path
        if path is not None and path.exists() and text.encode() in path.read_bytes()[since:]:
            return time.monotonic()
        time.sleep(0.05)
    return None


def latency_row(broker: Broker, packets: list[bytes], rate: float, seconds: float, grace: float,
                workers: int, work: Path, extra: tuple[str, ...]) -> dict:  # fmt: skip
    source, output, dead = topics(broker.bootstrap, "lat-in", "lat-out", "lat-dl")
    d = daemon(broker, source, output, dead, unique_topic("g"), CONFIGS["both"], workers, work,
               *extra)  # fmt: skip
    try:
        d.wait_ready(120)
        warm = Feeder(broker.bootstrap, source, packets[:40], 40, 1.0)  # first-call costs
        warm.run()
        wait_outputs(broker.bootstrap, [output, dead], warm.sent, 60)
        feeder = Feeder(broker.bootstrap, source, packets, rate, seconds)
        started = time.time() * 1000
        feeder.run()
        outputs = read_records(broker.bootstrap, [output, dead], grace)
        batches = batch_figures(d)
    finally:
        d.stop(90)
    inputs = {k: ts for k, ts in read_records(broker.bootstrap, [source], 3).items()}
    latencies = []
    for key, (in_ts, _h) in inputs.items():
        if in_ts[0] < started + 1000:
            continue  # warm-up, and the first second
        out = outputs.get(key)
        latencies.append(np.inf if out is None else out[0][0] - in_ts[0])
    lat = np.array(latencies, dtype=float)
    p50, p95, p99 = (_rank(lat, q) / 1000.0 for q in (50, 95, 99))
    return {"rate": rate, "p50_s": _num(p50), "p95_s": _num(p95), "p99_s": _num(p99),
            "samples": int(len(lat)), "late": int(np.isinf(lat).sum()), **batches}  # fmt: skip


def batch_figures(d: Daemon) -> dict:
    """From the daemon's /metrics: batches, mean batch size, mean ms per batch by stage."""
    try:
        samples = d.metrics()
    except OSError:
        return {}
    count = samples.get(("stampflow_batch_size_count", ()), 0.0)
    if not count:
        return {}
    stages = {
        dict(labels)["stage"]: round(1000 * value / count, 1)
        for (name, labels), value in samples.items()
        if name == "stampflow_stage_duration_seconds_sum"
    }
    size = samples.get(("stampflow_batch_size_sum", ()), 0.0) / count
    return {"batches": int(count), "batch_mean": round(size, 1), "stage_ms": stages}


def _rank(values: np.ndarray, q: float) -> float:
    """The ``q``-th percentile by rank (no interpolation: late outputs are infinite)."""
    if not len(values):
        return np.nan
    ordered = np.sort(values)
    return float(ordered[max(0, int(np.ceil(q / 100 * len(ordered))) - 1)])


def _num(x: float) -> float | None:
    return None if not np.isfinite(x) else round(float(x), 3)


def wait_outputs(bootstrap: str, names: list[str], expect: int, timeout_s: float) -> None:
    window = Window(bootstrap, names, expect)
    window.read(lambda: True, lambda: 0.0, _NoBroker(), lambda: [], timeout_s, idle_s=timeout_s)


class _NoBroker:
    def cpu(self) -> float:
        return 0.0


def read_records(bootstrap: str, names: list[str], idle_s: float) -> dict:
    """(source partition, offset) -> ((timestamp,), headers), until ``idle_s`` without news.

    For output topics the key is the input's coordinates from stampflow's headers; for an
    input topic it is the message's own.
    """
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": unique_topic("bench-reader"),
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe(names)
    out: dict = {}
    last = time.monotonic()
    while time.monotonic() - last < idle_s:
        got = [m for m in consumer.consume(1000, timeout=0.2) if m.error() is None]
        if got:
            last = time.monotonic()
        for m in got:
            headers = dict(m.headers() or [])
            part = headers.get("stampflow.source.partition")
            off = headers.get("stampflow.source.offset")
            key = (int(part), int(off)) if part is not None else (m.partition(), m.offset())
            out.setdefault(key, ((m.timestamp()[1],), headers))
    consumer.close()
    return out


def restart_row(broker: Broker, packets: list[bytes], work: Path, extra: tuple[str, ...]) -> dict:
    source, output, dead = topics(broker.bootstrap, "rs-in", "rs-out", "rs-dl")
    group = unique_topic("g")
    env = {"STAMPFLOW_KAFKA__GROUP_INSTANCE_ID": "bench-restart"}
    feeder = Feeder(broker.bootstrap, source, packets, 50, 600)
    feeder.start()
    first = daemon(broker, source, output, dead, group, CONFIGS["both"], 1, work, *extra, env=env)
    try:
        first.wait_ready(120)
        wait_outputs(broker.bootstrap, [output, dead], 100, 120)
        first.kill()
        since = first.log_path.stat().st_size if first.log_path else 0
        killed_ms = time.time() * 1000
        started = time.monotonic()
        second = daemon(broker, source, output, dead, group, CONFIGS["both"], 1, work, *extra,
                        env=env)  # fmt: skip
        try:
            assigned = wait_log(second, "kafka_source: assigned", since, 120)
            out_at = None
            consumer = Consumer({"bootstrap.servers": broker.bootstrap,
                                 "group.id": unique_topic("bench-reader"),
                                 "auto.offset.reset": "earliest"})  # fmt: skip
            consumer.subscribe([output])
            deadline = time.monotonic() + 120
            while out_at is None and time.monotonic() < deadline:
                for m in consumer.consume(100, timeout=0.2):
                    if m.error() is None and m.timestamp()[1] > killed_ms:
                        out_at = time.monotonic()
                        break
            consumer.close()
        finally:
            second.stop(90)
    finally:
        feeder.stop_event.set()
        feeder.join(30)
        first.ensure_stopped()
    return {
        "to_assigned_s": None if assigned is None else round(assigned - started, 2),
        "to_first_output_s": None if out_at is None else round(out_at - started, 2),
    }


# -- main -------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a ~2 minute run: fewer rows")
    parser.add_argument("--n", type=int, help="packets per throughput row (8000; quick 1200)")
    parser.add_argument("--pool", type=int, help="distinct packets synthesised (1500; quick 600)")
    parser.add_argument("--seconds", type=float, help="feed time per latency rate (30; quick 6)")
    parser.add_argument("--grace", type=float, default=5.0, help="seconds after a feed ends")
    parser.add_argument(
        "--latency-workers",
        type=int,
        default=len(os.sched_getaffinity(0)),
        help="workers of the latency daemon (default: the cores, as `workers: auto` runs)",
    )
    parser.add_argument("--extra", default="", help="more `stampflow run` flags, space separated")
    parser.add_argument("--skip", default="", help="comma list: floor,codec,rows,latency,restart")
    # the floor process (internal)
    parser.add_argument("--floor-child", action="store_true", help=argparse.SUPPRESS)
    for name in ("bootstrap", "source", "output", "group"):
        parser.add_argument(f"--{name}", help=argparse.SUPPRESS)
    parser.add_argument("--max-batch", type=int, default=256, help=argparse.SUPPRESS)
    parser.add_argument("--raw", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.floor_child:
        return floor_child(args)
    n = args.n or (1200 if args.quick else 8000)
    pool = args.pool or (600 if args.quick else 1500)
    seconds = args.seconds or (6.0 if args.quick else 30.0)
    skip = set(filter(None, args.skip.split(",")))
    extra = tuple(args.extra.split())
    rows_wanted = (
        [("none", 1), ("both", 1), ("both", 2)]
        if args.quick
        else [(c, w) for w in (1, 2) for c in CONFIGS]
    )

    began = time.monotonic()
    results: dict = {"cores": os.cpu_count(), "n": n, "pool": pool, "extra": list(extra)}
    with tempfile.TemporaryDirectory(prefix="stampflow-bench-") as tmp:
        work = Path(tmp)
        broker = Broker(work)
        try:
            packets = night(pool)
            (source,) = topics(broker.bootstrap, "in")
            produce(broker.bootstrap, source, [packets[i % pool] for i in range(n)], PARTITIONS)
            if "codec" not in skip:
                results["codec"] = codec_floor(packets, 3.0 if args.quick else 5.0)
            if "floor" not in skip:
                results["kafka_floor"] = kafka_floor(broker, source, n, False, work)
                results["kafka_raw"] = kafka_floor(broker, source, n, True, work)
            if "rows" not in skip:
                results["rows"] = []
                for name, workers in rows_wanted:
                    try:
                        row = stampflow_row(broker, source, n, CONFIGS[name], workers, work, extra)
                    except RuntimeError as exc:  # a classifier that cannot load, ...
                        row = {"error": str(exc).strip().splitlines()[-1][:300]}
                    results["rows"].append({"classifiers": name, "workers": workers, **row})
                    print(f"  {name} x{workers}: {row}", file=sys.stderr, flush=True)
            if "latency" not in skip:
                results["latency"] = [
                    latency_row(
                        broker,
                        packets,
                        rate,
                        seconds,
                        args.grace,
                        args.latency_workers,
                        work,
                        extra,
                    )  # fmt: skip
                    for rate in RATES
                ]
            if "restart" not in skip:
                results["restart"] = restart_row(broker, packets, work, extra)
        finally:
            broker.stop()
    results["seconds"] = round(time.monotonic() - began, 1)
    print_table(results)
    print("JSON " + json.dumps(results, sort_keys=True))
    return 0


def print_table(r: dict) -> None:
    floor = r.get("kafka_floor", {}).get("alerts_s") or float("nan")
    print(f"\nstampflow vs the Kafka floor ({r['cores']} cores, {PARTITIONS} partitions, "
          f"{r['n']} packets per row, 10% multiband, 5% broken; {r['seconds']:.0f} s)")  # fmt: skip
    head = ("path", "workers", "alerts/s", "x floor", "CPU ms/alert", "broker ms/alert", "RSS MB")
    print("| " + " | ".join(head) + " |")
    print("|" + "|".join("---" for _ in head) + "|")

    def line(name: str, workers: str, row: dict) -> None:
        if "error" in row:
            print(f"| {name} | {workers} | failed: {row['error']} | | | | |")
            return
        rate = row.get("alerts_s", float("nan"))
        rss = "/".join(str(x) for x in row.get("rss_mb", [])) or "-"
        cells = (name, workers, f"{rate:,.0f}", f"{rate / floor:.2f}",
                 f"{row.get('cpu_ms_alert', float('nan')):.2f}",
                 f"{row.get('broker_cpu_ms_alert', float('nan')):.2f}", rss)  # fmt: skip
        print("| " + " | ".join(cells) + " |")

    if "kafka_floor" in r:
        line("kafka floor: consume, produce, flush, commit", "1", r["kafka_floor"])
        line("kafka raw: consume, produce", "1", r["kafka_raw"])
    if "codec" in r:
        line("codec floor: decode + encode, no Kafka", "1", r["codec"])
    for row in r.get("rows", []):
        line(f"stampflow run, classifiers {row['classifiers']}", str(row["workers"]), row)
    for lat in r.get("latency", []):
        cells = [
            "late" if v is None else f"{v:.2f}" for v in (lat["p50_s"], lat["p95_s"], lat["p99_s"])
        ]
        size = f", batches of {lat['batch_mean']:.0f}" if "batch_mean" in lat else ""
        print(f"| latency at {lat['rate']:.0f}/s (both): p50/p95/p99 s | | {' / '.join(cells)} "
              f"| | {lat['samples']} samples, {lat['late']} late{size} | | |")  # fmt: skip
    if "restart" in r:
        rs = r["restart"]
        print(f"| restart after SIGKILL (static member, both): assigned / first output s | | "
              f"{rs['to_assigned_s']} / {rs['to_first_output_s']} | | | | |")  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
