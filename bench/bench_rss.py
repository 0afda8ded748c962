"""Does a worker's memory stay flat over a long run? RSS over a 200,000-alert archive replay.

    .venv/bin/python bench/bench_rss.py [--alerts 200000] [--pool 2000]

One synthetic night (``stampflow.training.synth``: 10% multiband, 5% broken) of ``--pool``
distinct packets is written once; a directory of ``--alerts`` symbolic links cycles through
them, so the daemon reads ``--alerts`` packets (the same bytes again and again: memory held
per alert, per batch or per dead letter would show as growth). ``stampflow run`` on it, both
classifiers, slim output; twice a second its resident size (``VmRSS``) is read beside the
alerts it has consumed (``stampflow_alerts_consumed_total`` scraped from its /metrics).
Prints RSS at each tenth of the alerts, the growth from the first tenth to the end and the
slope over the second half (MB per 100,000 alerts), alerts/s, and one JSON line.
"""

from __future__ import annotations

import argparse
import json
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def rss_mb(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def consumed(port: int) -> float | None:
    """The daemon's ``stampflow_alerts_consumed_total`` summed over topics, None before its
    metrics answer."""
    try:
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2).read()
    except OSError:
        return None
    lines = text.decode().splitlines()
    return sum(float(x.rsplit(" ", 1)[1]) for x in lines if x.startswith(COUNTER + "{"))


COUNTER = "stampflow_alerts_consumed_total"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_stream(work: Path, alerts: int, pool: int) -> Path:
    from stampflow.training.synth import synthesise

    packets = synthesise(pool, 12, broken_fraction=0.05, multiband_fraction=0.1, progress=False)
    source = work / "pool"
    source.mkdir()
    names = []
    for i, (_name, packet, _row) in enumerate(packets):
        path = source / f"{i:05d}.avro"
        path.write_bytes(packet)
        names.append(path)
    stream = work / "stream"
    stream.mkdir()
    for i in range(alerts):
        (stream / f"{i:07d}.avro").symlink_to(names[i % len(names)])
    return stream


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--alerts", type=int, default=200_000)
    parser.add_argument("--pool", type=int, default=2_000)
    parser.add_argument("--classifiers", default="blend,morphology")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="stampflow-rss-") as tmp:
        work = Path(tmp)
        stream = write_stream(work, args.alerts, args.pool)
        port = free_port()
        command = [
            sys.executable, "-m", "stampflow", "run", f"--archive={stream}",
            f"--output-dir={work / 'out'}", "--mode=slim", f"--classifiers={args.classifiers}",
            f"--metrics-port={port}", "--workers=1", "--threads=1",
        ]  # fmt: skip
        started = time.perf_counter()
        process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, text=True)
        samples: list[tuple[float, float]] = []  # (alerts consumed, RSS MB)
        first: float | None = None  # when the first alert was consumed
        while process.poll() is None:
            rss, done = rss_mb(process.pid), consumed(port)
            if rss is not None and done:
                first = first or time.perf_counter()
                samples.append((done, rss))
            time.sleep(0.5)
        summary = process.stdout.read() if process.stdout else ""
    if process.returncode != 0 or len(samples) < 5:
        print(f"stampflow run failed (exit {process.returncode}):\n{summary}", file=sys.stderr)
        return 1
    alerts_at, rss = np.array(samples).T
    seconds = time.perf_counter() - (first or started)
    tenths = [float(np.max(rss[alerts_at <= args.alerts * k / 10])) for k in range(1, 11)]
    second_half = alerts_at >= args.alerts / 2
    slope = float(np.polyfit(alerts_at[second_half], rss[second_half], 1)[0]) * 1e5
    result = {
        "alerts": args.alerts,
        "classifiers": args.classifiers,
        "alerts_per_s": round(args.alerts / seconds, 1),  # from the first alert consumed
        "rss_mb_by_tenth": [round(x) for x in tenths],
        "growth_mb_first_tenth_to_end": round(tenths[-1] - tenths[0], 1),
        "slope_mb_per_100k_second_half": round(slope, 1),
        "peak_mb": round(float(rss.max())),
    }
    print(summary.strip())
    print(f"{args.alerts} alerts, {args.classifiers}: {result['alerts_per_s']} alerts/s")
    print(
        "RSS (MB, max so far) at each tenth of the run:",
        " ".join(map(str, result["rss_mb_by_tenth"])),
    )
    print(
        f"growth from the first tenth to the end {result['growth_mb_first_tenth_to_end']} MB; "
        f"slope over the second half {result['slope_mb_per_100k_second_half']} MB per 100k alerts"
    )
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
