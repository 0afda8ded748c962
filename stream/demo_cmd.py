"""``stampflow demo``: synthesise a night of alerts, classify it, print what happened.

The README's main command. It needs no broker and no real data: ``stampflow synth`` writes
an archive of synthetic packets (a share deliberately broken), then ``stampflow run``
classifies it in archive mode into Avro files and dead letters, with every classifier whose
shipped model bundle exists. Both steps go through the ``stampflow`` command itself, so
the demo shows exactly what a user would type.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from stampflow.classifiers import registry
from stampflow.stream.demo_score import score_run

TRUTH_NAME = "truth.jsonl"  # written by `stampflow synth` beside its packets


def shipped_classifiers() -> list[str]:
    """Classifiers whose registry entry names a bundle that is installed."""
    return [
        name
        for name, entry in registry.entries().items()
        if entry.bundle is not None and (entry.bundle / "manifest.json").is_file()
    ]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, default=Path("out"), help="work directory (./out)")
    parser.add_argument("--n", type=int, default=2000, help="synthetic packets (2000)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--broken-fraction", type=float, default=0.05)
    parser.add_argument(
        "--multiband-fraction",
        type=float,
        default=0.1,
        help="share of packets with JWST multiband cutouts (for morphology) (0.1)",
    )
    parser.add_argument(
        "--classifiers",
        help="comma-separated names (default: every classifier with a shipped model)",
    )
    parser.add_argument("--mode", choices=("full", "slim"), default="full")


def run(args: argparse.Namespace) -> int:
    from stampflow.stream.cli import main  # the dispatcher imports this module

    names = shipped_classifiers() if args.classifiers is None else args.classifiers.split(",")
    packets, annotated, dead = args.out / "packets", args.out / "annotated", args.out / "dead"
    for stale in (packets, annotated, dead):
        shutil.rmtree(stale, ignore_errors=True)  # a rerun starts from a clean slate

    print(f"1/2 synthesising {args.n} ZTF-style packets into {packets}")
    synth = [
        "synth",
        str(packets),
        f"--n={args.n}",
        f"--seed={args.seed}",
        f"--broken-fraction={args.broken_fraction}",
        f"--multiband-fraction={args.multiband_fraction}",
        "--tar",
    ]
    if main(synth) != 0:
        return 1
    print(f"2/2 classifying with: {', '.join(names) or 'no classifier (pass-through)'}")
    code = main(
        [
            "run",
            f"--archive={packets / 'alerts.tar.gz'}",
            f"--output-dir={annotated}",
            f"--dead-letter-dir={dead}",
            f"--classifiers={','.join(names)}",
            f"--mode={args.mode}",
            "--metrics-port=0",
        ]
    )
    if code == 0:
        print("\n".join(score_run(packets / TRUTH_NAME, annotated, dead)))
        print(
            f"\nAnnotated alerts: {annotated}/*.avro (any Avro reader, e.g. fastavro.reader)\n"
            f"Dead letters:     {dead}/index.jsonl (original bytes beside it)\n"
            f"Ground truth:     {packets / TRUTH_NAME}"
        )
    return code
