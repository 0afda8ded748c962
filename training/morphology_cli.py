"""``stampflow train morphology`` and ``stampflow study morphology``."""

from __future__ import annotations

import argparse
from pathlib import Path

from stampflow.classifiers.bundle import SHIPPED_MODELS
from stampflow.training.morphology_augment import AugmentConfig
from stampflow.training.morphology_train import TrainConfig, save_model
from stampflow.training.morphology_train import train as train_model

VERSION = "1.0.0"
DEFAULT_MODEL_DIR = SHIPPED_MODELS / "morphology"
DEFAULT_REPORT_DIR = Path("reports/morphology")


def _train_parser() -> argparse.ArgumentParser:
    defaults = TrainConfig()
    parser = argparse.ArgumentParser(
        prog="stampflow train morphology",
        description="Simulate NIRCam images and train the morphology CNN (fixed seeds).",
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_MODEL_DIR, help="bundle directory")
    parser.add_argument("--n-train", type=int, default=defaults.n_train)
    parser.add_argument("--n-val", type=int, default=defaults.n_val)
    parser.add_argument("--epochs", type=int, default=defaults.epochs)
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--threads", type=int, default=defaults.threads, choices=(1, 2))
    parser.add_argument(
        "--no-physics-augment", action="store_true", help="flips and rotations only (ablation)"
    )
    parser.add_argument("--version", default=VERSION, help="model version in the manifest")
    return parser


def config_from(args: argparse.Namespace) -> TrainConfig:
    return TrainConfig(
        n_train=args.n_train,
        n_val=args.n_val,
        epochs=args.epochs,
        batch_size=args.batch_size,
        seed=args.seed,
        threads=args.threads,
        augment=AugmentConfig(physics=not args.no_physics_augment),
    )


def train(argv: list[str]) -> int:
    args = _train_parser().parse_args(argv)
    config = config_from(args)
    result = train_model(config)
    bundle = save_model(result, config, args.out, args.version)
    print(
        f"morphology model {bundle.version} -> {args.out} (sha256 {bundle.sha256[:12]}): "
        f"validation accuracy {result.metrics['val_accuracy']:.4f}, "
        f"temperature {result.temperature:.3f}, ambiguous above entropy "
        f"{result.ambiguous_threshold:.3f}, {result.seconds / 60:.1f} min with "
        f"{config.threads} threads"
    )
    return 0


def study(argv: list[str]) -> int:
    from stampflow.training.morphology_study import run_study

    return run_study(argv)
