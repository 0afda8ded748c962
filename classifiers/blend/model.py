"""The blend model from arrays: preprocessing + embedding + MuyGPs + calibration + flag.

The probability is a logistic (Platt) calibration of the GP's posterior mean fitted on
validation data, P(blend) = 0.5 at mean 0 so it agrees with the label; a stamp is
``ambiguous`` when its mean margin is small against its posterior standard deviation:
``|mean| - kappa * sd < tau``, with kappa and tau chosen on validation data.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from stampflow.classifiers.blend.gp import BlendGP, GPHyperparameters
from stampflow.classifiers.blend.preprocess import Embedding, PreprocessConfig, features_from_crops
from stampflow.classifiers.blend.spec import SPEC, BlendSpec
from stampflow.classifiers.bundle import Bundle


@dataclass(frozen=True)
class AmbiguityRule:
    """``ambiguous`` when ``|mean| - kappa * sd < tau`` (mean on the +1/-1 label scale)."""

    kappa: float
    tau: float

    def __post_init__(self) -> None:
        if self.kappa < 0:
            raise ValueError(f"kappa must be >= 0, got {self.kappa}")

    def score(self, mean: np.ndarray, variance: np.ndarray) -> np.ndarray:
        return np.abs(mean) - self.kappa * np.sqrt(np.maximum(variance, 0.0))

    def __call__(self, mean: np.ndarray, variance: np.ndarray) -> np.ndarray:
        return self.score(mean, variance) < self.tau


@dataclass(frozen=True)
class Calibration:
    """P(blend) = sigmoid(slope * mean + intercept), fitted on validation data."""

    slope: float
    intercept: float

    def __call__(self, mean: np.ndarray) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-(self.slope * mean + self.intercept)))


@dataclass(frozen=True)
class BlendServing:
    """The manifest's ``serving`` section: everything but the arrays."""

    spec: BlendSpec
    preprocess: PreprocessConfig
    gp: GPHyperparameters
    calibration: Calibration
    ambiguity: AmbiguityRule


@dataclass(frozen=True)
class BlendPrediction:
    mean: np.ndarray
    variance: np.ndarray
    p_blend: np.ndarray
    ambiguous: np.ndarray

    @property
    def is_blend(self) -> np.ndarray:
        return self.mean > 0


class BlendModel:
    """Predicts prepared crops; built from a bundle or straight from training's parts."""

    def __init__(
        self,
        prep: PreprocessConfig,
        embedding: Embedding,
        gp: BlendGP,
        calibration: Calibration,
        rule: AmbiguityRule,
    ) -> None:
        self.prep = prep
        self.embedding = embedding
        self.gp = gp
        self.calibration = calibration
        self.rule = rule

    def predict_crops(self, crops: np.ndarray) -> BlendPrediction:
        """Predict prepared crops (n, crop, crop) from ``prepare_stamps``."""
        mean, variance = self.gp.predict(features_from_crops(crops, self.prep, self.embedding))
        return self.predict_posterior(mean, variance)

    def predict_posterior(self, mean: np.ndarray, variance: np.ndarray) -> BlendPrediction:
        """Calibrate and flag a GP posterior (mean, variance) already computed."""
        return BlendPrediction(mean, variance, self.calibration(mean), self.rule(mean, variance))

    def serving(self) -> BlendServing:
        return BlendServing(SPEC, self.prep, self.gp.hyper, self.calibration, self.rule)

    def arrays(self) -> dict[str, np.ndarray]:
        return {
            "pca_mean": self.embedding.mean,
            "pca_components": self.embedding.components,
            "pca_scale": self.embedding.scale,
            "train_features": self.gp.features.astype(np.float32),
            "train_targets": self.gp.targets.astype(np.int8),
        }

    @classmethod
    def from_bundle(cls, bundle: Bundle[BlendServing]) -> BlendModel:
        serving = bundle.serving
        embedding = Embedding(
            bundle.array("pca_mean"), bundle.array("pca_components"), bundle.array("pca_scale")
        )
        gp = BlendGP(
            bundle.array("train_features"),
            bundle.array("train_targets").astype(np.float64),
            serving.gp,
        )
        return cls(serving.preprocess, embedding, gp, serving.calibration, serving.ambiguity)
