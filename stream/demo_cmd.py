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
import sys
from pathlib import Path

from stampflow.classifiers import registry
from stampflow.stream.demo_score import score_run

TRUTH_NAME = "truth.jsonl"  # written by `stampflow synth` beside its packets
# Written into --out by every demo: only folders under a marked --out are deleted unasked.
MARKER_NAME = ".stampflow-demo"
WORK_DIRS = ("packets", "annotated", "dead")


def shipped_classifiers() -> list[str]:
    """Classifiers whose registry entry names a bundle that is installed."""
    return [
        name
        for name, entry in registry.entries().items()
        if entry.bundle is not None and (entry.bundle / "manifest.json").is_file()
    ]


class DemoError(ValueError):
    """A demo that must not start (an unknown classifier, a work directory not its own)."""


def _classifier_names(given: str | None) -> list[str]:
    """The classifiers to run, checked against the registry before any work is done."""
    if given is None:
        return shipped_classifiers()
    names = [name.strip() for name in given.split(",") if name.strip()]
    for name in names:
        try:
            registry.get(name)
        except registry.RegistryError as exc:
            raise DemoError(f"--classifiers: {exc}") from None
    return names


def _clear_work_dirs(out: Path, *, force: bool) -> None:
    """Empty the demo's folders in ``out`` (a rerun starts from a clean slate), but only
    those a previous demo made: ``./out/annotated`` is also ``stampflow run``'s default."""
    marker = out / MARKER_NAME
    if not marker.is_file() and not force:
        taken = [out / name for name in WORK_DIRS if _non_empty(out / name)]
        if taken:
            raise DemoError(
                f"{', '.join(map(str, taken))} exist(s) and no demo made them (no {marker}); "
                "pass --force to replace them, or choose another --out"
            )
    for name in WORK_DIRS:
        shutil.rmtree(out / name, ignore_errors=True)
    out.mkdir(parents=True, exist_ok=True)
    marker.write_text(
        "made by `stampflow demo`: its packets/, annotated/ and dead/ are "
        "replaced by the next demo\n",
        encoding="utf-8",
    )


def _non_empty(path: Path) -> bool:
    return (path.is_dir() and any(path.iterdir())) or path.is_file()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("out"),
        help="work directory (./out); its packets/, annotated/ and dead/ are replaced",
    )
    parser.add_argument(
        "--force",
        action="store_true",
        help="replace packets/, annotated/ and dead/ in --out even if no demo made them",
    )
    parser.add_argument("--n", type=int, default=2000, help="synthetic packets (2000)")
    parser.add_argument("--seed", type=int, default=0, help="random seed of the night (0)")
    parser.add_argument(
        "--broken-fraction",
        type=float,
        default=0.05,
        help="share of deliberately broken packets, for the dead letters (0.05)",
    )
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
    parser.add_argument(
        "--mode",
        choices=("full", "slim"),
        default="full",
        help="output records: the whole alert, or ids, position and annotations (full)",
    )


def run(args: argparse.Namespace) -> int:
    from stampflow.stream.cli import main  # the dispatcher imports this module

    try:
        names = _classifier_names(args.classifiers)
        _clear_work_dirs(args.out, force=args.force)
    except DemoError as exc:
        print(f"stampflow demo: {exc}", file=sys.stderr)
        return 2
    packets, annotated, dead = (args.out / name for name in WORK_DIRS)

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
