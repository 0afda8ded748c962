"""``stampflow train|study {blend,morphology}``: dispatch to each model's command module.

Each target module exposes ``train(argv) -> int`` and ``study(argv) -> int``.
"""

from __future__ import annotations

import argparse
import importlib

TARGETS = {
    "blend": "stampflow.training.blend_cli",
    "morphology": "stampflow.training.morphology_cli",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("target", choices=sorted(TARGETS), help="which model")
    parser.add_argument("rest", nargs=argparse.REMAINDER, help="that model's own options (--help)")


def run(args: argparse.Namespace) -> int:
    entry_point = getattr(importlib.import_module(TARGETS[args.target]), args.command)
    return int(entry_point(args.rest) or 0)
