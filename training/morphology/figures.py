"""The morphology study's figures (PNG): galleries, the family matrix, risk-coverage curves,
confusion matrices, t-SNE maps, mistakes."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np

from stampflow.classifiers.morphology.preprocess import preprocess
from stampflow.training.morphology.sim import CLASSES, SimulatedSet

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def _show(ax: Any, stamp: np.ndarray, title: str) -> None:
    rgb = preprocess(stamp[None])[0].transpose(1, 2, 0)[..., [3, 1, 0]]
    ax.imshow(rgb.clip(0, 1), origin="lower")
    ax.set_title(title, fontsize=6)
    ax.axis("off")


def gallery(
    groups: Mapping[str, SimulatedSet], path: Path, per_row: int = 10, title: str = ""
) -> None:
    """One row per group: its first images, classes in turn (R,G,B = F444W, F277W, F200W)."""
    fig, axes = plt.subplots(
        len(groups), per_row, figsize=(per_row * 1.25, len(groups) * 1.45), squeeze=False
    )
    for r, (name, data) in enumerate(groups.items()):
        order = np.argsort(data.labels, kind="stable")
        picks = []
        for k in range(len(CLASSES)):  # round-robin over classes present
            picks.extend(order[data.labels[order] == k][: max(per_row // len(CLASSES), 1)])
        picks = (picks + list(order))[:per_row]
        for c, ax in enumerate(axes[r]):
            if c < len(picks):
                i = picks[c]
                _show(ax, data.images[i], f"{name}: {CLASSES[data.labels[i]]}")
            else:
                ax.axis("off")
    fig.suptitle(title or "R,G,B = F444W, F277W, F200W (asinh, noise units)", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def psf_gallery(psfs: Mapping[str, np.ndarray], path: Path) -> None:
    """Each PSF family's first member, F200W and F444W, log stretch over 4"."""
    fig, axes = plt.subplots(2, len(psfs), figsize=(len(psfs) * 2.2, 4.6), squeeze=False)
    for c, (name, stack) in enumerate(psfs.items()):
        centre = stack.shape[-1] // 2
        for r, band in enumerate((0, 3)):
            cut = stack[band][centre - 64 : centre + 64, centre - 64 : centre + 64]
            axes[r, c].imshow(np.log10(cut + 1e-9), vmin=-7, vmax=-1, origin="lower")
            axes[r, c].set_title(f"{name} {('F200W', 'F444W')[r]}", fontsize=7)
            axes[r, c].axis("off")
    fig.suptitle('PSF families (log10, 4" square)', fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def family_matrix(
    values: np.ndarray, rows: Sequence[str], cols: Sequence[str], path: Path, title: str
) -> None:
    fig, ax = plt.subplots(figsize=(1.3 * len(cols) + 3.5, 0.55 * len(rows) + 1.8))
    ax.imshow(values, cmap="RdYlGn", vmin=0.4, vmax=1.0, aspect="auto")
    for i in range(len(rows)):
        for j in range(len(cols)):
            ax.text(j, i, f"{values[i, j]:.2f}", ha="center", va="center", fontsize=8)
    ax.set_xticks(range(len(cols)))
    ax.set_xticklabels(cols, rotation=25, ha="right", fontsize=7)
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels(rows, fontsize=7)
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def risk_coverage(
    curves: Mapping[str, tuple[np.ndarray, np.ndarray, float, float]], path: Path
) -> None:
    """``curves[name] = (coverage, accuracy, operating coverage, operating accuracy)``."""
    fig, ax = plt.subplots(figsize=(6, 4.5))
    for name, (coverage, accuracy, op_cov, op_acc) in curves.items():
        (line,) = ax.plot(coverage, accuracy, lw=1.3, label=name)
        ax.plot([op_cov], [op_acc], "o", color=line.get_color())
    ax.axhline(0.95, color="grey", ls=":", lw=1)
    ax.axvline(0.75, color="grey", ls=":", lw=1)
    ax.set(
        xlabel="coverage (share not flagged, least suspicious first)",
        ylabel="accuracy of the kept alerts",
        ylim=(0.4, 1.005),
        title="risk-coverage (dots: the shipped flag's operating point)",
    )
    ax.legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def confusions(matrices: Mapping[str, np.ndarray], path: Path) -> None:
    n = len(matrices)
    cols = min(n, 3)
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 3.6, rows * 3.4), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, (name, matrix) in zip(axes.ravel(), matrices.items(), strict=False):
        ax.axis("on")
        share = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
        ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
        for i in range(len(CLASSES)):
            for j in range(len(CLASSES)):
                color = "white" if share[i, j] > 0.5 else "black"
                ax.text(j, i, str(matrix[i, j]), ha="center", va="center", color=color, fontsize=7)
        ax.set_xticks(range(len(CLASSES)))
        ax.set_xticklabels(CLASSES, rotation=35, fontsize=6)
        ax.set_yticks(range(len(CLASSES)))
        ax.set_yticklabels(CLASSES, fontsize=6)
        ax.set_title(name, fontsize=8)
    fig.supxlabel("predicted", fontsize=8)
    fig.supylabel("true", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def tsne(
    embedding: np.ndarray,
    labels: np.ndarray,
    groups: np.ndarray,
    names: Sequence[str],
    path: Path,
) -> None:
    fig, axes = plt.subplots(1, 2, figsize=(11, 5))
    for k, name in enumerate(CLASSES):
        chosen = labels == k
        axes[0].scatter(embedding[chosen, 0], embedding[chosen, 1], s=4, label=name, alpha=0.7)
    for g, name in enumerate(names):
        chosen = groups == g
        axes[1].scatter(embedding[chosen, 0], embedding[chosen, 1], s=4, label=name, alpha=0.7)
    for ax, title in zip(axes, ("by class", "by family set"), strict=True):
        ax.legend(markerscale=3, fontsize=7)
        ax.set(title=f"t-SNE of the penultimate features, {title}", xticks=[], yticks=[])
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def mistakes(items: Sequence[tuple[np.ndarray, str]], path: Path, cols: int = 6) -> None:
    rows = max(1, -(-len(items) // cols))
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 1.8, rows * 2.0), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, (stamp, title) in zip(axes.ravel(), items, strict=False):
        _show(ax, stamp, title)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
