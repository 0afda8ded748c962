"""Training the blend model: simulate, preprocess, fit MuyGPs, calibrate, choose the threshold.

Three disjoint simulated sets from one seed: train (neighbours for MuyGPs, PCA fit),
validation (hyperparameter-free choices: Platt calibration and the ambiguity threshold),
test (held out, only for reporting). Everything is reproducible from ``TrainConfig``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score, roc_auc_score
from tqdm import tqdm

from stampflow.classifiers.blend.gp import BlendGP
from stampflow.classifiers.blend.model import (
    AmbiguityRule,
    BlendModel,
    BlendPrediction,
    Calibration,
)
from stampflow.classifiers.blend.preprocess import (
    Embedding,
    PreprocessConfig,
    normalise,
    prepare_stamps,
)
from stampflow.classifiers.blend.spec import SPEC
from stampflow.classifiers.bundle import save_bundle
from stampflow.training.blend.fit import fit_embedding, fit_hyperparameters
from stampflow.training.blend.sim import SimConfig, simulate_templates
from stampflow.training.calibration import expected_calibration_error

_SIM_CHUNK = 500  # stamps simulated at once: bounds the oversampled render's memory
_KAPPAS = (0.0, 0.25, 0.5, 1.0, 2.0)


@dataclass(frozen=True)
class TrainConfig:
    """One training run; its dict is stored in the bundle manifest."""

    seed: int = 2024
    n_train: int = 30_000
    n_val: int = 5_000
    n_test: int = 6_000
    nn_count: int = 50
    opt_batch: int = 1_000
    smoothness: float = 1.5
    target_accuracy: float = 0.98  # on non-ambiguous validation stamps (goal: 97% on test)
    max_flagged: float = 0.25
    sim: SimConfig = field(default_factory=SimConfig)
    prep: PreprocessConfig = field(default_factory=PreprocessConfig)

    def __post_init__(self) -> None:
        if min(self.n_train, self.n_val, self.n_test) < 100:
            raise ValueError("n_train, n_val and n_test must each be >= 100")
        if not 0.5 < self.target_accuracy < 1.0:
            raise ValueError(f"target_accuracy must be in (0.5, 1), got {self.target_accuracy}")
        if not 0.0 < self.max_flagged < 1.0:
            raise ValueError(f"max_flagged must be in (0, 1), got {self.max_flagged}")


@dataclass(frozen=True)
class Dataset:
    """Prepared crops (n, crop, crop), labels (n,) with 1 = blend, and truth columns."""

    crops: np.ndarray
    labels: np.ndarray
    truth: dict[str, np.ndarray]

    def subset(self, index: np.ndarray | slice) -> Dataset:
        return Dataset(
            self.crops[index], self.labels[index], {k: v[index] for k, v in self.truth.items()}
        )


def simulate_dataset(
    rng: np.random.Generator, n: int, sim: SimConfig, prep: PreprocessConfig, desc: str = "sim"
) -> Dataset:
    """Simulate ``n`` template stamps and prepare them exactly as the plugin does."""
    crops, truths = [], []
    with tqdm(total=n, desc=desc, unit="stamp", leave=False) as bar:
        for start in range(0, n, _SIM_CHUNK):
            stamps, truth = simulate_templates(rng, min(_SIM_CHUNK, n - start), sim)
            crops.append(prepare_stamps(stamps, prep))
            truths.append(truth)
            bar.update(len(stamps))
    truth = {k: np.concatenate([t[k] for t in truths]) for k in truths[0]}
    return Dataset(np.concatenate(crops), truth["label"].astype(np.int64), truth)


@dataclass(frozen=True)
class Splits:
    train: Dataset
    val: Dataset
    test: Dataset


def simulate_splits(config: TrainConfig) -> Splits:
    """Three independent simulated sets, each from its own child seed of ``config.seed``."""
    seeds = np.random.SeedSequence(config.seed).spawn(3)
    sizes = (config.n_train, config.n_val, config.n_test)
    sets = [
        simulate_dataset(np.random.default_rng(s), n, config.sim, config.prep, desc=name)
        for s, n, name in zip(seeds, sizes, ("train", "val", "test"), strict=True)
    ]
    return Splits(*sets)


def signed(labels: np.ndarray) -> np.ndarray:
    """Class 1 (blend) -> +1, class 0 (single) -> -1: MuyGPyS's classification coding."""
    return np.where(labels == 1, 1.0, -1.0)


def fit_gp(
    train: Dataset, prep: PreprocessConfig, config: TrainConfig
) -> tuple[Embedding, BlendGP]:
    """PCA on the training set, then MuyGPs hyperparameters on a batch of it."""
    normalised = normalise(train.crops, prep)
    embedding = fit_embedding(normalised, prep.pca_components, whiten=prep.whiten)
    features = embedding.transform(normalised)
    targets = signed(train.labels)
    hyper = fit_hyperparameters(
        features,
        targets,
        nn_count=config.nn_count,
        batch_count=config.opt_batch,
        smoothness=config.smoothness,
        seed=config.seed,
    )
    return embedding, BlendGP(features, targets, hyper)


def fit_calibration(mean: np.ndarray, labels: np.ndarray) -> Calibration:
    """Platt scaling: a one-feature logistic regression of the label on the posterior mean.

    No intercept, so P(blend) = 0.5 exactly where the mean changes sign and the label (the
    argmax of the mean) always agrees with the larger probability.
    """
    lr = LogisticRegression(C=1e4, fit_intercept=False).fit(mean[:, None], labels)
    return Calibration(slope=float(lr.coef_[0, 0]), intercept=0.0)


def choose_rule(
    mean: np.ndarray, variance: np.ndarray, labels: np.ndarray, target: float, max_flagged: float
) -> AmbiguityRule:
    """The rule that flags the fewest validation stamps while the rest reach ``target``.

    For each kappa, stamps are sorted by their score and the smallest tau is found whose
    unflagged stamps are at least ``target`` correct. If no rule reaches the target within
    ``max_flagged``, the rule with the best unflagged accuracy at ``max_flagged`` is taken.
    """
    correct = (mean > 0) == (labels == 1)
    best: tuple[float, AmbiguityRule] | None = None  # (flagged fraction, rule)
    fallback: tuple[float, AmbiguityRule] | None = None  # (accuracy at max_flagged, rule)
    n = len(mean)
    for kappa in _KAPPAS:
        score = AmbiguityRule(kappa, 0.0).score(mean, variance)
        order = np.argsort(score)
        # kept_acc[j]: accuracy of the stamps left when the j lowest scores are flagged.
        kept_correct = np.cumsum(correct[order][::-1])[::-1]
        kept_acc = kept_correct / np.arange(n, 0, -1)
        ok = np.nonzero(kept_acc >= target)[0]
        if len(ok):
            j = int(ok[0])
            tau = float(score[order[j]]) if j else float(score[order[0]]) - 1e-9
            if best is None or j / n < best[0]:
                best = (j / n, AmbiguityRule(kappa, tau))
        j_max = min(int(max_flagged * n), n - 1)
        acc = float(kept_acc[j_max])
        if fallback is None or acc > fallback[0]:
            fallback = (acc, AmbiguityRule(kappa, float(score[order[j_max]])))
    assert fallback is not None
    if best is not None and best[0] <= max_flagged:
        return best[1]
    return fallback[1]


def evaluate(pred: BlendPrediction, labels: np.ndarray) -> dict[str, float]:
    """Accuracy, non-ambiguous accuracy, flagged fraction, ECE, ROC AUC, F1 on one set."""
    correct = pred.is_blend == (labels == 1)
    keep = ~pred.ambiguous
    confidence = np.where(pred.is_blend, pred.p_blend, 1.0 - pred.p_blend)
    return {
        "n": int(len(labels)),
        "accuracy": float(correct.mean()),
        "f1_blend": float(f1_score(labels, pred.is_blend.astype(int))),
        "roc_auc": float(roc_auc_score(labels, pred.mean)),
        "non_ambiguous_accuracy": float(correct[keep].mean()) if keep.any() else float("nan"),
        "flagged_fraction": float(pred.ambiguous.mean()),
        "ece": expected_calibration_error(confidence, correct),
    }


@dataclass(frozen=True)
class TrainedBlend:
    config: TrainConfig
    model: BlendModel
    val_metrics: dict[str, float]
    test_metrics: dict[str, float]


def train(config: TrainConfig) -> TrainedBlend:
    """Simulate the three splits from ``config.seed`` and fit on them."""
    return fit(config, simulate_splits(config))


def fit(config: TrainConfig, splits: Splits) -> TrainedBlend:
    """Fit on train, calibrate and choose the ambiguity rule on validation, score on test."""
    embedding, gp = fit_gp(splits.train, config.prep, config)
    provisional = BlendModel(config.prep, embedding, gp, Calibration(1.0, 0.0), AmbiguityRule(0, 0))
    val = provisional.predict_crops(splits.val.crops)
    calibration = fit_calibration(val.mean, splits.val.labels)
    rule = choose_rule(
        val.mean, val.variance, splits.val.labels, config.target_accuracy, config.max_flagged
    )
    model = BlendModel(config.prep, embedding, gp, calibration, rule)
    val_metrics = evaluate(model.predict_posterior(val.mean, val.variance), splits.val.labels)
    test_metrics = evaluate(model.predict_crops(splits.test.crops), splits.test.labels)
    return TrainedBlend(config, model, val_metrics, test_metrics)


def save(trained: TrainedBlend, out: Path) -> Path:
    """Write the bundle (safetensors arrays + manifest) the plugin loads."""
    return save_bundle(
        out,
        version=SPEC.version,
        serving=trained.model.serving(),
        arrays=trained.model.arrays(),
        training=trained.config,
        metrics={"validation": trained.val_metrics, "test": trained.test_metrics},
    )


def summary(trained: TrainedBlend) -> dict[str, dict[str, float]]:
    """What ``stampflow train blend`` prints."""
    return {"validation": trained.val_metrics, "test": trained.test_metrics}
