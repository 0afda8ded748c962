"""Calibration measures shared by the studies: expected calibration error and its diagram."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def reliability_bins(
    confidence: np.ndarray, correct: np.ndarray, n_bins: int = 15
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per equal-width confidence bin: mean confidence, accuracy and count."""
    confidence = np.asarray(confidence, dtype=float)
    correct = np.asarray(correct, dtype=float)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    index = np.clip(np.digitize(confidence, edges[1:-1]), 0, n_bins - 1)
    counts = np.bincount(index, minlength=n_bins).astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_conf = np.bincount(index, weights=confidence, minlength=n_bins) / counts
        accuracy = np.bincount(index, weights=correct, minlength=n_bins) / counts
    return mean_conf, accuracy, counts


def expected_calibration_error(
    confidence: np.ndarray, correct: np.ndarray, n_bins: int = 15
) -> float:
    """ECE: the count-weighted mean gap between confidence and accuracy over bins."""
    mean_conf, accuracy, counts = reliability_bins(confidence, correct, n_bins)
    filled = counts > 0
    gaps = np.abs(mean_conf[filled] - accuracy[filled])
    return float(np.sum(gaps * counts[filled]) / max(counts.sum(), 1.0))


def plot_reliability(
    curves: dict[str, tuple[np.ndarray, np.ndarray]], path: Path, n_bins: int = 15, title: str = ""
) -> Path:
    """Reliability diagram: one curve per method, ``curves[name] = (confidence, correct)``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot([0, 1], [0, 1], "k--", lw=1, label="perfect")
    for name, (confidence, correct) in curves.items():
        mean_conf, accuracy, counts = reliability_bins(confidence, correct, n_bins)
        filled = counts > 0
        ece = expected_calibration_error(confidence, correct, n_bins)
        ax.plot(mean_conf[filled], accuracy[filled], "o-", label=f"{name} (ECE {ece:.3f})")
    ax.set(xlabel="confidence", ylabel="accuracy", xlim=(0, 1), ylim=(0, 1), title=title)
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return Path(path)
