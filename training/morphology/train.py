"""Training loop for the morphology CNN: simulate, augment, fit, calibrate, save a bundle."""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from stampflow.classifiers.bundle import save_bundle
from stampflow.classifiers.morphology.net import MorphologyNet, NetConfig, state_to_arrays
from stampflow.classifiers.morphology.plugin import (
    MorphologyClassifier,
    MorphologyServing,
    normalised_entropy,
)
from stampflow.classifiers.morphology.preprocess import preprocess
from stampflow.classifiers.morphology.spec import SPEC
from stampflow.training.morphology.augment import AugmentConfig, augment
from stampflow.training.morphology.sim import SimConfig, SimulatedSet, simulate


@dataclass(frozen=True)
class TrainConfig:
    n_train: int = 8000
    n_val: int = 1500
    epochs: int = 6
    batch_size: int = 64
    learning_rate: float = 3e-3
    weight_decay: float = 1e-4
    seed: int = 5
    threads: int = 1  # 2 is the most allowed; 1 is faster while the 2 cores are shared
    ambiguous_accuracy: float = 0.99  # accuracy the non-ambiguous validation alerts must reach
    net: NetConfig = field(default_factory=NetConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    sim: SimConfig = field(default_factory=SimConfig)

    def __post_init__(self) -> None:
        if min(self.n_train, self.n_val, self.epochs, self.batch_size, self.threads) < 1:
            raise ValueError(f"sizes, epochs and threads must be positive: {self}")
        if not 0 < self.ambiguous_accuracy <= 1 or self.learning_rate <= 0:
            raise ValueError("ambiguous_accuracy must lie in (0, 1], learning_rate > 0")


@dataclass(frozen=True)
class TrainResult:
    config: TrainConfig
    model: MorphologyNet
    temperature: float
    ambiguous_threshold: float
    metrics: dict[str, float]
    seconds: float

    def classifier(self) -> MorphologyClassifier:
        """The trained network behind the plugin, exactly as the daemon would run it."""
        serving = MorphologyServing(
            SPEC, self.config.net, self.temperature, self.ambiguous_threshold
        )
        return MorphologyClassifier(self.model, serving, version=SPEC.version, sha256="")


def logits_of(model: MorphologyNet, stamps: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """Raw logits for (n, 4, 64, 64) stamps, in evaluation mode."""
    model.eval()
    out = []
    with torch.no_grad():
        for start in range(0, len(stamps), batch_size):
            out.append(model(preprocess(stamps[start : start + batch_size])).numpy())
    return np.concatenate(out) if out else np.zeros((0, model.config.n_classes), np.float32)


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """Temperature scaling (Guo et al. 2017): the T minimising validation NLL of logits / T."""
    z, y = torch.as_tensor(logits), torch.as_tensor(labels)
    log_t = torch.zeros(1, requires_grad=True)
    optimiser = torch.optim.LBFGS([log_t], lr=0.1, max_iter=200)

    def closure() -> torch.Tensor:
        optimiser.zero_grad()
        loss = F.cross_entropy(z / log_t.exp(), y)
        loss.backward()
        return loss

    optimiser.step(closure)
    return float(log_t.detach().exp().clamp(0.05, 20.0))


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    z = logits / temperature
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def choose_ambiguous_threshold(entropy: np.ndarray, correct: np.ndarray, target: float) -> float:
    """The largest entropy threshold whose accepted (entropy <= threshold) alerts still reach
    ``target`` accuracy: everything above it is flagged ambiguous."""
    order = np.argsort(entropy)
    running = np.cumsum(correct[order]) / np.arange(1, len(order) + 1)
    passing = np.nonzero(running >= target)[0]
    if len(passing) == 0:
        return 0.0
    return float(entropy[order][passing[-1]])


def class_weights(labels: np.ndarray, n_classes: int) -> torch.Tensor:
    counts = np.bincount(labels, minlength=n_classes).astype(float)
    weights = counts.sum() / (n_classes * np.maximum(counts, 1.0))
    return torch.as_tensor(weights, dtype=torch.float32)


def train(config: TrainConfig, *, progress: bool = True) -> TrainResult:
    """Simulate training and validation sets from ``config.seed`` and fit the network."""
    torch.set_num_threads(config.threads)
    started = time.perf_counter()
    train_set = simulate(config.n_train, config.seed, config.sim, progress=progress)
    val_set = simulate(config.n_val, config.seed + 1, config.sim, progress=progress)
    result = fit(train_set, val_set, config, progress=progress)
    return replace(result, seconds=time.perf_counter() - started)  # simulation included


def fit(
    train_set: SimulatedSet, val_set: SimulatedSet, config: TrainConfig, *, progress: bool = True
) -> TrainResult:
    """Fit on ``train_set``, then calibrate the temperature and the ambiguity threshold on
    ``val_set``."""
    started = time.perf_counter()
    torch.manual_seed(config.seed)
    gen = torch.Generator().manual_seed(config.seed)
    model = MorphologyNet(config.net)
    weights = class_weights(train_set.labels, config.net.n_classes)
    optimiser = torch.optim.AdamW(
        model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay
    )
    steps_per_epoch = -(-config.n_train // config.batch_size)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimiser, config.learning_rate, total_steps=config.epochs * steps_per_epoch
    )
    images = torch.from_numpy(train_set.images)
    labels = torch.from_numpy(train_set.labels)
    for epoch in range(config.epochs):
        model.train()
        order = torch.randperm(len(images), generator=gen)
        bar = tqdm(
            range(0, len(order), config.batch_size),
            desc=f"epoch {epoch + 1}/{config.epochs}",
            unit="batch",
            disable=not progress,
        )
        for start in bar:
            index = order[start : start + config.batch_size]
            x = preprocess(augment(images[index], config.augment, gen))
            loss = F.cross_entropy(model(x), labels[index], weight=weights)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            scheduler.step()
            bar.set_postfix(loss=f"{loss.item():.3f}")
    val_logits = logits_of(model, val_set.images)
    temperature = fit_temperature(val_logits, val_set.labels)
    probabilities = softmax(val_logits, temperature)
    predicted = probabilities.argmax(axis=1)
    correct = predicted == val_set.labels
    threshold = choose_ambiguous_threshold(
        normalised_entropy(probabilities), correct, config.ambiguous_accuracy
    )
    targets = torch.as_tensor(val_set.labels)
    metrics = {
        "val_accuracy": float(correct.mean()),
        "val_nll_raw": float(F.cross_entropy(torch.as_tensor(val_logits), targets)),
        "val_nll_calibrated": float(
            F.cross_entropy(torch.as_tensor(val_logits / temperature), targets)
        ),
        "n_val": len(val_set.labels),
    }
    return TrainResult(
        config, model, temperature, threshold, metrics, time.perf_counter() - started
    )


def save(result: TrainResult, out: Path) -> Path:
    """Write the bundle the plugin loads: weights, net config, temperature and threshold."""
    return save_bundle(
        out,
        version=SPEC.version,
        serving=result.classifier().serving,
        arrays=state_to_arrays(result.model),
        training=result.config,
        metrics={**result.metrics, "train_seconds": round(result.seconds, 1)},
    )


def summary(result: TrainResult) -> dict[str, float]:
    """What ``stampflow train morphology`` prints."""
    return {
        **result.metrics,
        "temperature": result.temperature,
        "ambiguous_threshold": result.ambiguous_threshold,
        "train_minutes": round(result.seconds / 60, 1),
    }
