"""Serving-side out-of-distribution score: how unlike the training images an input is.

The score is the Mahalanobis distance of the CNN's penultimate features to the nearest class
mean under one shared covariance (Lee et al. 2018): inputs the network has never seen the
like of land far from every class cluster even when the softmax is confident, which is what
the entropy alone misses. The class means, the precision matrix and the threshold are fitted
offline (``stampflow.training.morphology.ood``) and shipped in the bundle; serving only
computes distances.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MEANS_KEY = "ood.class_means"
PRECISION_KEY = "ood.precision"
OOD_KEYS = (MEANS_KEY, PRECISION_KEY)


@dataclass(frozen=True)
class OodServing:
    """The manifest's ``serving.ood``: the arrays live in the weights file under OOD_KEYS."""

    threshold: float  # distance above which an alert is flagged ambiguous
    feature_dim: int
    method: str = "mahalanobis"

    def __post_init__(self) -> None:
        if self.method != "mahalanobis":
            raise ValueError(f"unknown OOD method {self.method!r}")
        if not self.threshold > 0 or self.feature_dim < 1:
            raise ValueError(f"threshold and feature_dim must be positive: {self}")


@dataclass(frozen=True)
class OodModel:
    serving: OodServing
    class_means: np.ndarray  # (classes, features)
    precision: np.ndarray  # (features, features)

    def __post_init__(self) -> None:
        d = self.serving.feature_dim
        if self.class_means.ndim != 2 or self.class_means.shape[1] != d:
            raise ValueError(f"class means must be (classes, {d}), got {self.class_means.shape}")
        if self.precision.shape != (d, d):
            raise ValueError(f"precision must be ({d}, {d}), got {self.precision.shape}")

    def distance(self, features: np.ndarray) -> np.ndarray:
        return mahalanobis(features, self.class_means, self.precision)

    def score(self, features: np.ndarray) -> np.ndarray:
        """Distance over threshold: above 1 is out of distribution."""
        return self.distance(features) / self.serving.threshold


def mahalanobis(features: np.ndarray, means: np.ndarray, precision: np.ndarray) -> np.ndarray:
    """Distance of each row of (n, d) ``features`` to the nearest of the (k, d) ``means``."""
    diff = np.asarray(features, np.float64)[:, None, :] - np.asarray(means, np.float64)[None]
    squared = np.einsum("nkd,nkd->nk", diff @ np.asarray(precision, np.float64), diff)
    return np.sqrt(np.clip(squared, 0, None).min(axis=1))
