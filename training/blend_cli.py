"""``stampflow train blend`` and ``stampflow study blend``.

stampflow train blend                  # default preset -> classifiers/models/blend/
stampflow train blend --preset small --out /tmp/blend
stampflow study blend                  # default preset -> reports/blend/
stampflow study blend --preset small --out /tmp/blend-study
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

from stampflow.classifiers.bundle import SHIPPED_MODELS
from stampflow.training.blend_train import TrainConfig

REPO = Path(__file__).resolve().parents[1]
PRESETS = {
    "default": TrainConfig(),
    "small": TrainConfig(n_train=4_000, n_val=1_500, n_test=2_000),
}


def _parser(prog: str, default_out: Path) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog)
    parser.add_argument("--preset", choices=sorted(PRESETS), default="default")
    parser.add_argument("--out", type=Path, default=default_out, help=f"default {default_out}")
    parser.add_argument("--seed", type=int, default=None, help="override the preset's seed")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (CNN baseline)")
    return parser


def _config(args: argparse.Namespace) -> TrainConfig:
    config = PRESETS[args.preset]
    return config if args.seed is None else dataclasses.replace(config, seed=args.seed)


def _threads(n: int) -> None:
    import torch

    torch.set_num_threads(max(n, 1))


def train(argv: list[str]) -> int:
    """Simulate, fit and write the blend bundle; print its validation and test metrics."""
    from stampflow.training.blend_train import save_trained, simulate_splits, train_model

    args = _parser("stampflow train blend", SHIPPED_MODELS / "blend").parse_args(argv)
    _threads(args.threads)
    config = _config(args)
    trained = train_model(config, simulate_splits(config))
    out = save_trained(trained, config, args.out)
    print(
        json.dumps(
            {"bundle": str(out), "validation": trained.val_metrics, "test": trained.test_metrics},
            indent=2,
        )
    )
    return 0


def study(argv: list[str]) -> int:
    """Write the Markdown study with its figures (see ``blend_study``)."""
    from stampflow.training.blend_study import run_study

    args = _parser("stampflow study blend", REPO / "reports" / "blend").parse_args(argv)
    _threads(args.threads)
    path = run_study(_config(args), args.out, preset=args.preset)
    print(f"wrote {path}")
    return 0
