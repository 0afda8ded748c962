"""The Rubin blend model's jobs for ``stampflow train|study blend_rubin`` (see
``training/model_cmd.py``): the ZTF blend model's training (``training.blend.train``) on the
sky simulator configured for Rubin (``config.py``), and a short study of a trained bundle.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from stampflow.classifiers.blend.model import BlendModel, BlendServing
from stampflow.classifiers.blend_rubin import ENTRY
from stampflow.classifiers.blend_rubin.spec import SPEC
from stampflow.classifiers.bundle import load_bundle
from stampflow.training.blend import train as blend_train
from stampflow.training.blend.sim import SimConfig
from stampflow.training.blend.sky import SkyConfig
from stampflow.training.blend.train import TrainConfig, TrainedBlend, evaluate, simulate_dataset
from stampflow.training.blend_rubin.config import (
    N_FWHM,
    RUBIN_MOFFAT,
    RUBIN_PREP,
    RUBIN_SKY,
    derived_crop,
)

TRAIN_PRESETS = {
    # ~10 minutes on one core, most of it GalSim (~45 ms a Rubin stamp).
    "default": TrainConfig(
        n_train=8_000, n_val=2_000, n_test=2_000, sim=RUBIN_SKY, prep=RUBIN_PREP
    ),
    "small": TrainConfig(n_train=2_000, n_val=600, n_test=600, sim=RUBIN_SKY, prep=RUBIN_PREP),
    "tiny": TrainConfig(
        n_train=300,
        n_val=150,
        n_test=150,
        nn_count=20,
        opt_batch=200,
        sim=RUBIN_SKY,
        prep=RUBIN_PREP,
    ),
}


def train(config: TrainConfig) -> TrainedBlend:
    return blend_train.train(config, SPEC)


def save(trained: TrainedBlend, out: Path) -> Path:
    return blend_train.save(trained, out)


def summary(trained: TrainedBlend) -> dict:
    return blend_train.summary(trained)


@dataclass(frozen=True)
class StudyConfig:
    """A trained bundle (the shipped one by default) on fresh sets from ``seed``: held-out
    sky-Rubin stamps (the training family) and the Moffat generator for Rubin (out of
    family: another PSF, white noise, no hosts or galaxies)."""

    seed: int = 2026
    n_sky: int = 2_000
    n_moffat: int = 2_000
    bundle: str = ""  # a bundle directory; empty: the shipped one
    sky: SkyConfig = field(default_factory=lambda: RUBIN_SKY)
    moffat: SimConfig = field(default_factory=lambda: RUBIN_MOFFAT)


STUDY_PRESETS = {
    "default": StudyConfig(),
    "small": StudyConfig(n_sky=300, n_moffat=300),
}


def evaluate_bundle(config: StudyConfig) -> dict[str, dict[str, float]]:
    """Metrics of the bundle on each set (``training.blend.train.evaluate``)."""
    bundle = load_bundle(Path(config.bundle) if config.bundle else ENTRY.bundle, BlendServing, SPEC)
    model = BlendModel.from_bundle(bundle)
    seeds = np.random.SeedSequence(config.seed).spawn(2)
    out = {}
    for name, seed, n, generator in (
        ("sky_rubin", seeds[0], config.n_sky, config.sky),
        ("moffat_rubin", seeds[1], config.n_moffat, config.moffat),
    ):
        data = simulate_dataset(np.random.default_rng(seed), n, generator, model.prep, name, SPEC)
        out[name] = evaluate(model.predict(data.prepared), data.labels)
    return out


def study(config: StudyConfig, out: Path) -> Path:
    """``report.md`` and ``summary.json`` in ``out``: in family and out of family."""
    metrics = evaluate_bundle(config)
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.json").write_text(json.dumps(metrics, indent=2) + "\n")
    rows = [
        "| set | n | accuracy | ROC AUC | correct among not flagged | flagged | ECE |",
        "|---|---|---|---|---|---|---|",
    ]
    titles = {
        "sky_rubin": "sky simulator for Rubin (held out, in family)",
        "moffat_rubin": "Moffat generator for Rubin (out of family)",
    }
    for name, m in metrics.items():
        rows.append(
            f"| {titles[name]} | {m['n']} | {m['accuracy']:.3f} | {m['roc_auc']:.3f} | "
            f"{m['non_ambiguous_accuracy']:.3f} | {m['flagged_fraction']:.1%} | {m['ece']:.3f} |"
        )
    report = "\n".join(
        [
            "# The Rubin blend model (`blend_rubin`)",
            "",
            "The ZTF blend model's code (oriented crops, PCA, MuyGPs, isotonic calibration, the",
            'ambiguity flag) trained on the GalSim sky simulator configured for Rubin (0.2"/px,',
            '31 px cutouts, seeing 0.5-1.2", 8.36 m aperture, coadds of 20-100 visits; see',
            "`training/blend_rubin/config.py`). The crop: ZTF's covers "
            f"{N_FWHM:.1f} FWHM, {derived_crop()} Rubin px at the",
            f"median seeing, more than the cutout: the whole {RUBIN_PREP.crop} px cutout is used.",
            "",
            f"Fresh sets from seed {config.seed}, bundle "
            f"`{config.bundle or 'classifiers/blend_rubin/shipped'}`:",
            "",
            *rows,
            "",
            "Reproduce: `stampflow study blend_rubin --out reports/blend_rubin`.",
            "",
        ]
    )
    path = out / "report.md"
    path.write_text(report)
    return path


__all__ = ["STUDY_PRESETS", "TRAIN_PRESETS", "save", "study", "summary", "train"]
