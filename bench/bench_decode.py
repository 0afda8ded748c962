"""Decode with and without the alert's history (``skip_history``), as ratios in one run.

    .venv/bin/python bench/bench_decode.py [--repeat N] [--synth N] [--history N]

Each set of packets is decoded both ways (``decode_packet``, stamps untouched, writer schemas
already parsed; best of ``--repeat`` passes, the two ways interleaved): the real ZTF packets
in ../shared/alerts/ztf; ``stampflow synth`` packets, which carry no history (what the
reader schema costs on its own); and those synth packets again with ``--history``
prv_candidates and as many fp_hists (random values, ``alert.avsc``), the history of a source
detected night after night for a month.
"""

from __future__ import annotations

import argparse
import io
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import fastavro
from fastavro.utils import generate_many

from stampflow.schemas.avsc import input_alert_schema
from stampflow.schemas.codec import decode_packet
from stampflow.schemas.packets import write_alert_packet
from stampflow.training.synth import synthesise

PACKETS = Path(__file__).resolve().parents[1].parent / "shared" / "alerts" / "ztf"


def _pass(packets: list[bytes], work: Callable[[bytes], object]) -> float:
    start = time.perf_counter()
    for data in packets:
        work(data)
    return time.perf_counter() - start


def _full(data: bytes) -> object:
    return decode_packet(data).alerts


def _lean(data: bytes) -> object:
    return decode_packet(data, skip_history=True).alerts


def _us_per_packet(packets: list[bytes], repeat: int) -> tuple[float, float]:
    for data in packets[:5]:  # parsed schemas and projections cached, as in a running daemon
        _full(data), _lean(data)
    full = lean = float("inf")
    for _ in range(repeat):  # interleaved: a busy neighbour slows both alike
        full = min(full, _pass(packets, _full))
        lean = min(lean, _pass(packets, _lean))
    return full / len(packets) * 1e6, lean / len(packets) * 1e6


def _history_items(field: str, n: int, seed: int) -> list[dict[str, Any]]:
    schema = next(f for f in input_alert_schema()["fields"] if f["name"] == field)["type"]
    items = next(branch for branch in schema if isinstance(branch, dict))["items"]
    random.seed(seed)  # generate_many draws from the random module
    return list(generate_many(fastavro.parse_schema(items), n))


def _with_history(packets: list[bytes], n: int) -> list[bytes]:
    out = []
    prv = _history_items("prv_candidates", n, 0)
    fp = _history_items("fp_hists", n, 1)
    for data in packets:
        record = dict(next(iter(fastavro.reader(io.BytesIO(data)))))
        record.update(prv_candidates=prv, fp_hists=fp)
        out.append(write_alert_packet(record))
    return out


def _history_count(data: bytes) -> int:
    record = next(iter(fastavro.reader(io.BytesIO(data))))
    return sum(len(record.get(field) or []) for field in ("prv_candidates", "fp_hists"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7, help="timed passes; the best is kept")
    parser.add_argument("--synth", type=int, default=200, help="synth packets (no broken ones)")
    parser.add_argument("--history", type=int, default=300, help="history items per field")
    args = parser.parse_args()
    synth = [p for _n, p, _r in synthesise(args.synth, 7, broken_fraction=0.0, progress=False)]
    sets = {
        "real ZTF (../shared/alerts/ztf)": [p.read_bytes() for p in sorted(PACKETS.glob("*.avro"))],
        "synth, no history": synth,
        f"synth + {args.history} prv_candidates + {args.history} fp_hists": _with_history(
            synth, args.history
        ),
    }
    print(f"decode_packet, stamps untouched, best of {args.repeat}; ratio = full / projected")
    header = f"{'packets':<48}{'n':>5}{'KB':>7}{'history':>9}{'full us':>10}{'lean us':>10}"
    print(header + f"{'ratio':>8}")
    for name, packets in sets.items():
        if not packets:
            print(f"{name:<48} (none found)")
            continue
        full, lean = _us_per_packet(packets, args.repeat)
        kb = sum(map(len, packets)) / len(packets) / 1024
        history = sum(map(_history_count, packets)) / len(packets)
        print(
            f"{name:<48}{len(packets):>5}{kb:>7.1f}{history:>9.1f}{full:>10.0f}{lean:>10.0f}"
            f"{full / lean:>8.2f}"
        )


if __name__ == "__main__":
    main()
