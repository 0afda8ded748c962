"""``stampflow demo``: synthesise a night of alerts, classify it, print what happened.

The README's main command. It needs no broker and no real data: ``stampflow synth`` writes
an archive of synthetic ZTF packets and one of synthetic Rubin alerts (Confluent wire
format under Rubin's schema id; ``--rubin-n``), a share of each deliberately broken; then
``stampflow run`` classifies them in archive mode into Avro files and dead letters, with
every classifier whose shipped model bundle exists, each on the alerts of the surveys it
takes (``ClassifierSpec.surveys``: the Rubin blend model on the Rubin alerts, read with
``--schema-dir rubin``). Every step goes through the ``stampflow`` command itself, so the
demo shows exactly what a user would type.
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
RUBIN_DIR = "rubin"  # packets/rubin/: the Rubin night, with its own truth table


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


def _takes(name: str, survey: str) -> bool:
    """Whether classifier ``name`` annotates alerts of ``survey`` (its spec's ``surveys``)."""
    return survey in registry.get(name).spec.surveys


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
    parser.add_argument("--n", type=int, default=2000, help="synthetic ZTF packets (2000)")
    parser.add_argument(
        "--rubin-n",
        type=int,
        help="synthetic Rubin alerts, for the Rubin blend model "
        "(default: a tenth of --n, at least 1; 0: none)",
    )
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
        if args.rubin_n is None:
            args.rubin_n = max(1, args.n // 10)
        if args.rubin_n < 0:
            raise DemoError(f"--rubin-n must be 0 or more, got {args.rubin_n}")
        _clear_work_dirs(args.out, force=args.force)
    except DemoError as exc:
        print(f"stampflow demo: {exc}", file=sys.stderr)
        return 2
    packets, annotated, dead = (args.out / name for name in WORK_DIRS)
    rubin = packets / RUBIN_DIR
    steps = 3 if args.rubin_n else 2
    night = [f"--seed={args.seed}", f"--broken-fraction={args.broken_fraction}", "--tar"]

    print(f"1/{steps} synthesising {args.n} ZTF-style packets into {packets}")
    ztf_synth = ["synth", str(packets), f"--n={args.n}", *night]
    if main([*ztf_synth, f"--multiband-fraction={args.multiband_fraction}"]) != 0:
        return 1
    if args.rubin_n:
        print(f"2/{steps} synthesising {args.rubin_n} Rubin alerts (wire format) into {rubin}")
        if main(["synth", str(rubin), f"--n={args.rubin_n}", *night, "--survey=rubin"]) != 0:
            return 1
    runs = [(packets, [n for n in names if _takes(n, "ztf")], [])]
    if args.rubin_n:  # Rubin's ids: the schemas stampflow ships (--schema-dir rubin)
        runs.append((rubin, [n for n in names if _takes(n, "rubin")], ["--schema-dir=rubin"]))
    for night_dir, chosen, extra in runs:
        survey = "Rubin" if extra else "ZTF"
        print(
            f"{steps}/{steps} classifying the {survey} alerts with: "
            f"{', '.join(chosen) or 'no classifier (pass-through)'}"
        )
        code = main(
            [
                "run",
                f"--archive={night_dir / 'alerts.tar.gz'}",
                f"--output-dir={annotated}",
                f"--dead-letter-dir={dead}",
                f"--classifiers={','.join(chosen)}",
                f"--mode={args.mode}",
                "--metrics-port=0",
                *extra,
            ]
        )
        if code != 0:
            return code
    truths = [night_dir / TRUTH_NAME for night_dir, _names, _extra in runs]
    print("\n".join(score_run(truths, annotated, dead)))
    print(
        f"\nAnnotated alerts: {annotated}/*.avro (any Avro reader, e.g. fastavro.reader)\n"
        f"Dead letters:     {dead}/index.jsonl (original bytes beside it)\n"
        f"Ground truth:     {', '.join(map(str, truths))}"
    )
    return 0
