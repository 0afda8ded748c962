"""``stampflow train MODEL`` and ``stampflow study MODEL``: one interface for every model.

The registry names the module holding a model's jobs (``ClassifierEntry.training``); that
module exposes the same names for every model:

- ``TRAIN_PRESETS`` / ``STUDY_PRESETS``: named frozen configs (at least ``default``);
- ``train(config) -> trained``, ``save(trained, out) -> Path`` (a bundle directory) and
  ``summary(trained) -> dict`` (what this command prints);
- ``study(config, out) -> Path`` (the Markdown report it wrote, figures beside it);
- optionally ``recalibrate(bundle_dir, config) -> trained``: the bundle's trained weights
  calibrated as ``train(config)`` would calibrate them (``stampflow train --weights``).

Options are the same for every model: ``--preset``, ``--seed``, ``--threads``, ``--out`` and
``--set KEY=VALUE`` for any config field (dotted for nested ones). The default output is
under ``runs/`` in the working directory, never the installed bundle: shipping a model is
``--out classifiers/<model>/shipped`` on purpose.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import json
from pathlib import Path
from typing import Any

from stampflow.classifiers import registry
from stampflow.classifiers.typed import TypedError, with_overrides


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="which model: " + ", ".join(registry.names()))
    parser.add_argument("--preset", default="default", help="a named config (default, small)")
    parser.add_argument("--seed", type=int, help="override the preset's seed")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads for torch")
    parser.add_argument("--out", type=Path, help="output directory (default runs/<job>-<model>)")
    parser.add_argument(
        "--weights",
        type=Path,
        help="train: keep the network of this bundle (trained with the same config) and "
        "only calibrate it again, e.g. after a change of views (models with recalibrate)",
    )
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override one config field, e.g. --set n_train=2000 --set augment.physics=false",
    )


def run(args: argparse.Namespace) -> int:
    try:
        entry = registry.get(args.model)
    except registry.RegistryError as exc:
        raise SystemExit(f"stampflow {args.command}: {exc}") from None
    if entry.training is None:
        raise SystemExit(f"stampflow {args.command}: {args.model} has no training jobs")
    jobs = _import_jobs(entry.training, f"stampflow {args.command} {args.model}")
    presets = jobs.TRAIN_PRESETS if args.command == "train" else jobs.STUDY_PRESETS
    if args.preset not in presets:
        raise SystemExit(
            f"stampflow {args.command} {args.model}: unknown preset {args.preset!r}; "
            f"known: {', '.join(presets)}"
        )
    try:
        config = configure(presets[args.preset], args)
    except TypedError as exc:
        raise SystemExit(f"stampflow {args.command} {args.model}: --set {exc}") from None
    _threads(args.threads)
    out = args.out or Path("runs") / f"{args.command}-{args.model}"
    if args.command == "train":
        weights = getattr(args, "weights", None)
        if weights is not None and not hasattr(jobs, "recalibrate"):
            raise SystemExit(f"stampflow train {args.model}: --weights is not supported")
        trained = jobs.recalibrate(weights, config) if weights else jobs.train(config)
        path = jobs.save(trained, out)
        print(json.dumps({"bundle": str(path), **jobs.summary(trained)}, indent=2, default=str))
    else:
        print(f"wrote {jobs.study(config, out)}")
    return 0


def configure(config: Any, args: argparse.Namespace) -> Any:
    """The preset with --seed, --threads (for configs that have them) and --set applied."""
    names = {f.name for f in dataclasses.fields(config)}
    if args.seed is not None:
        config = dataclasses.replace(config, seed=args.seed)
    if "threads" in names:
        config = dataclasses.replace(config, threads=args.threads)
    return with_overrides(config, args.overrides)


# What only `pip install 'stampflow[train]'` brings; serving installs leave it out.
TRAIN_ONLY = ("torch", "galsim", "onnx", "onnxscript")


def _import_jobs(module: str, who: str) -> Any:
    """The model's jobs module, or one line naming the extra that a serving install lacks."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if (exc.name or "").split(".")[0] not in TRAIN_ONLY:
            raise
        raise SystemExit(
            f"{who}: needs {exc.name}, which a serving install leaves out: "
            "pip install 'stampflow[train]'"
        ) from None


def _threads(n: int) -> None:
    import torch

    torch.set_num_threads(max(n, 1))
