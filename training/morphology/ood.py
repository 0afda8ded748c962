"""Fitting the out-of-distribution score and the two flag thresholds (offline only).

Class-conditional Gaussians with one shared covariance on the CNN's penultimate features of
(unaugmented) training images: the class means and the Ledoit-Wolf shrunk precision matrix
go into the bundle (``classifiers/morphology/ood.py`` computes the distances at serve time).

The thresholds are chosen together on calibration data that training never saw: the
in-family validation set plus a whole held-out family (``families.CALIBRATION_MIX``), never
a set the study reports as a test. Among pairs (entropy threshold, distance threshold), the
one that keeps the most alerts unflagged while the unflagged ones reach the target accuracy,
with the distance threshold no higher than a quantile of the in-family validation distances
(``TrainConfig.ood_quantile``, 0.95: the usual operating point of an OOD detector, one
in-family alert in twenty called unusual). Without that cap a calibration family the model
has learnt well lets the search open the distance threshold until nothing far is flagged.
"""

from __future__ import annotations

import numpy as np
from sklearn.covariance import LedoitWolf

from stampflow.classifiers.morphology.ood import mahalanobis


def fit_gaussians(
    features: np.ndarray, labels: np.ndarray, n_classes: int
) -> tuple[np.ndarray, np.ndarray]:
    """Class means (k, d) and the shared precision matrix (d, d)."""
    features = np.asarray(features, np.float64)
    means = np.stack(
        [
            features[labels == k].mean(axis=0) if np.any(labels == k) else features.mean(axis=0)
            for k in range(n_classes)
        ]
    )
    centred = features - means[labels]
    precision = LedoitWolf(assume_centered=True).fit(centred).precision_
    return means.astype(np.float32), precision.astype(np.float32)


def distances(features: np.ndarray, means: np.ndarray, precision: np.ndarray) -> np.ndarray:
    return mahalanobis(features, means, precision)


def choose_thresholds(
    entropy: np.ndarray,
    distance: np.ndarray,
    correct: np.ndarray,
    target: float,
    max_distance: float = np.inf,
) -> tuple[float, float, float]:
    """(entropy threshold, distance threshold, coverage): the pair that leaves the most
    alerts unflagged (entropy <= t_h and distance <= t_d) while those reach ``target``
    accuracy. Distance candidates are quantiles of ``distance``, none above
    ``max_distance``; for each, the entropy threshold is the largest that keeps the target
    on what the distance accepted."""
    n = len(correct)
    top = min(float(np.max(distance)) * 1.0001 if n else 1.0, max_distance)
    best = (0.0, top, 0.0)
    for q in np.linspace(0.5, 1.0, 51):
        t_d = min(float(np.quantile(distance, q)), top)
        kept = distance <= t_d
        if not kept.any():
            continue
        order = np.argsort(entropy[kept])
        running = np.cumsum(correct[kept][order]) / np.arange(1, kept.sum() + 1)
        passing = np.nonzero(running >= target)[0]
        if len(passing) == 0:
            continue
        coverage = (passing[-1] + 1) / n
        if coverage > best[2]:
            best = (float(entropy[kept][order][passing[-1]]), t_d, float(coverage))
    return best
