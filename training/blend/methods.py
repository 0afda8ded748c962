"""Other methods on the same crops, embeddings and splits as MuyGPs, for the study.

- logistic regression and histogram gradient boosting on the same PCA embedding;
- a small CNN on the normalised crops themselves (no embedding), trained with fixed seeds.

Each returns ``MethodResult`` with P(blend) on the test set and the timings the study
reports (training seconds, prediction throughput in stamps per second).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from torch import nn

from stampflow.classifiers.blend.preprocess import PreprocessConfig, normalise


@dataclass(frozen=True)
class MethodResult:
    name: str
    p_blend: np.ndarray  # (n_test,)
    train_seconds: float
    predict_per_second: float


def _timed(
    name: str, fit: Callable[[], Callable[[np.ndarray], np.ndarray]], test: np.ndarray
) -> MethodResult:
    start = time.perf_counter()
    predict = fit()
    trained = time.perf_counter() - start
    start = time.perf_counter()
    p = predict(test)
    elapsed = max(time.perf_counter() - start, 1e-9)
    return MethodResult(name, np.asarray(p, dtype=float), trained, len(test) / elapsed)


def logistic_regression(
    train: np.ndarray, labels: np.ndarray, test: np.ndarray, seed: int
) -> MethodResult:
    def fit() -> Callable[[np.ndarray], np.ndarray]:
        model = LogisticRegression(max_iter=2000, random_state=seed).fit(train, labels)
        return lambda x: model.predict_proba(x)[:, 1]

    return _timed("logistic regression", fit, test)


def gradient_boosting(
    train: np.ndarray, labels: np.ndarray, test: np.ndarray, seed: int
) -> MethodResult:
    def fit() -> Callable[[np.ndarray], np.ndarray]:
        model = HistGradientBoostingClassifier(max_iter=300, random_state=seed)
        model.fit(train, labels)
        return lambda x: model.predict_proba(x)[:, 1]

    return _timed("gradient boosting", fit, test)


class SmallCNN(nn.Module):
    """Three conv blocks and a linear head: ~20k parameters for 21x21 single-band crops."""

    def __init__(self, width: int = 16) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(1, width, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(width, width, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(width, 2 * width, 3, padding=1),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(3),
        )
        self.head = nn.Linear(2 * width * 9, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x).flatten(1)).squeeze(1)


def small_cnn(
    train_crops: np.ndarray,
    labels: np.ndarray,
    test_crops: np.ndarray,
    prep: PreprocessConfig,
    seed: int,
    epochs: int = 8,
) -> MethodResult:
    """A small CNN on the normalised (not embedded) crops, Adam, fixed seed."""
    side = prep.crop

    def as_tensor(crops: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(normalise(crops, prep).reshape(-1, 1, side, side))

    def fit() -> Callable[[np.ndarray], np.ndarray]:
        torch.manual_seed(seed)
        model = SmallCNN()
        x, y = as_tensor(train_crops), torch.from_numpy(labels.astype(np.float32))
        optimiser = torch.optim.Adam(model.parameters(), lr=2e-3)
        loss_fn = nn.BCEWithLogitsLoss()
        generator = torch.Generator().manual_seed(seed)
        model.train()
        for _ in range(epochs):
            for idx in torch.randperm(len(x), generator=generator).split(128):
                optimiser.zero_grad()
                loss_fn(model(x[idx]), y[idx]).backward()
                optimiser.step()
        model.eval()

        def predict(crops: np.ndarray) -> np.ndarray:
            with torch.no_grad():
                return torch.sigmoid(model(as_tensor(crops))).numpy()

        return predict

    return _timed("small CNN (crops)", fit, test_crops)
