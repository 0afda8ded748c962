"""Training loop for the morphology CNN: simulate, augment, fit, calibrate, save a bundle.

Domain randomisation: the training set draws every image's PSF, scene and morphology
generator from ``config.mix`` (``families.TRAIN_MIX``: some families of each axis, the rest
held out for evaluation). Calibration uses data training never saw: the temperature and the
two flag thresholds are fitted on the in-family validation set plus a held-out family
(``config.calibration``); the OOD statistics on the training images' features.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from stampflow.classifiers.bundle import save_bundle
from stampflow.classifiers.morphology.net import (
    MorphologyNet,
    NetConfig,
    TorchNetwork,
    state_to_arrays,
)
from stampflow.classifiers.morphology.ood import MEANS_KEY, PRECISION_KEY, OodModel, OodServing
from stampflow.classifiers.morphology.plugin import (
    MorphologyClassifier,
    MorphologyServing,
    normalised_entropy,
)
from stampflow.classifiers.morphology.preprocess import preprocess
from stampflow.classifiers.morphology.spec import SPEC
from stampflow.classifiers.morphology.views import averaged, check
from stampflow.training.morphology.augment import AugmentConfig, augment
from stampflow.training.morphology.export import load_net, onnx_bytes
from stampflow.training.morphology.families import (
    CALIBRATION_MIX,
    TRAIN_MIX,
    FamilyMix,
    simulate_mix,
)
from stampflow.training.morphology.jitter import DustJitter
from stampflow.training.morphology.ood import choose_thresholds, distances, fit_gaussians
from stampflow.training.morphology.sim import SimulatedSet


@dataclass(frozen=True)
class TrainConfig:
    n_train: int = 24000
    n_val: int = 1500
    n_calibration: int = 1500  # from the held-out calibration family
    n_ood_fit: int = 4000  # training images whose features fit the OOD Gaussians
    epochs: int = 12
    batch_size: int = 64
    learning_rate: float = 3e-3
    weight_decay: float = 1e-4
    seed: int = 15  # 2.3.0; 2.2.0's network was seed 5 without detector artefacts
    threads: int = 1  # 2 is the most allowed; 1 is faster while the 2 cores are shared
    class_weighting: bool = True
    distance_temperature: bool = True  # temperature growing with the OOD distance
    flag_accuracy: float = 0.97  # accuracy the unflagged calibration alerts must reach
    ood_quantile: float = 0.95  # the distance threshold's cap: this in-family quantile
    # Calibrate and serve on outputs averaged over this many quarter turns and flips
    # (``classifiers/morphology/views.py``); the network's fit does not depend on it.
    views: int = 4
    net: NetConfig = field(default_factory=NetConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    dust_jitter: DustJitter = field(default_factory=DustJitter)  # training images only
    mix: FamilyMix = TRAIN_MIX
    calibration: FamilyMix = CALIBRATION_MIX

    def __post_init__(self) -> None:
        sizes = (self.n_train, self.n_val, self.n_calibration, self.n_ood_fit)
        if min(*sizes, self.epochs, self.batch_size, self.threads) < 1:
            raise ValueError(f"sizes, epochs and threads must be positive: {self}")
        if not 0 < self.flag_accuracy <= 1 or self.learning_rate <= 0:
            raise ValueError("flag_accuracy must lie in (0, 1], learning_rate > 0")
        if not 0.5 <= self.ood_quantile <= 1:
            raise ValueError(f"ood_quantile must lie in [0.5, 1], got {self.ood_quantile}")
        check(self.views)


@dataclass(frozen=True)
class TrainResult:
    config: TrainConfig
    model: MorphologyNet
    temperature: float
    ambiguous_threshold: float
    metrics: dict[str, float]
    seconds: float
    ood: OodModel | None = None
    temperature_slope: float = 0.0

    def classifier(self) -> MorphologyClassifier:
        """The trained network behind the plugin, as the daemon would run it (in torch here;
        the daemon runs the same network exported to ONNX)."""
        serving = MorphologyServing(
            SPEC,
            self.config.net,
            self.temperature,
            self.ambiguous_threshold,
            None if self.ood is None else self.ood.serving,
            self.temperature_slope if self.ood is not None else 0.0,
            self.config.views,
        )
        return MorphologyClassifier(
            TorchNetwork(self.model), serving, version=SPEC.version, sha256="", ood=self.ood
        )


def logits_of(model: MorphologyNet, stamps: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """Raw logits for (n, 4, 64, 64) stamps, in evaluation mode."""
    return features_and_logits(model, stamps, batch_size)[1]


def features_and_logits(
    model: MorphologyNet, stamps: np.ndarray, batch_size: int = 256, views: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    """Penultimate features and raw logits for (n, 4, 64, 64) stamps, in evaluation mode,
    averaged over ``views`` quarter turns and flips as the plugin serves them."""
    network = TorchNetwork(model)
    features, logits = [], []
    step = max(1, batch_size // views)  # the network sees every view at once
    for start in range(0, len(stamps), step):
        x = preprocess(stamps[start : start + step])
        f, z = averaged(network.run, x, views)
        features.append(f)
        logits.append(z)
    if not logits:
        width = model.config.stages[-1]
        return np.zeros((0, width), np.float32), np.zeros((0, model.config.n_classes), np.float32)
    return np.concatenate(features), np.concatenate(logits)


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


def fit_distance_temperature(
    logits: np.ndarray, scores: np.ndarray, labels: np.ndarray
) -> tuple[float, float]:
    """Temperature ``t0 + t1 * score`` (both >= 0) minimising the NLL: inputs further from
    the training data (higher OOD score) get softer probabilities."""
    z, y = torch.as_tensor(logits, dtype=torch.float64), torch.as_tensor(labels)
    s = torch.as_tensor(scores, dtype=torch.float64)
    params = torch.tensor([0.0, -3.0], dtype=torch.float64, requires_grad=True)
    optimiser = torch.optim.LBFGS([params], lr=0.1, max_iter=300)

    def closure() -> torch.Tensor:
        optimiser.zero_grad()
        temperature = params[0].exp() + params[1].exp() * s
        loss = F.cross_entropy(z / temperature[:, None], y)
        loss.backward()
        return loss

    optimiser.step(closure)
    t0, t1 = (float(v) for v in params.detach().exp())
    return min(max(t0, 0.05), 20.0), min(t1, 20.0)


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
    """Simulate training, validation and calibration sets from ``config.seed`` (seeds
    ``seed``, ``seed + 1``, ``seed + 2``) and fit the network."""
    torch.set_num_threads(config.threads)
    started = time.perf_counter()
    train_set = simulate_mix(
        config.n_train, config.seed, config.mix, progress=progress, jitter=config.dust_jitter
    )
    val_set = simulate_mix(config.n_val, config.seed + 1, config.mix, progress=progress)
    calibration_set = simulate_mix(
        config.n_calibration, config.seed + 2, config.calibration, progress=progress
    )
    result = fit(train_set, val_set, config, calibration_set, progress=progress)
    return replace(result, seconds=time.perf_counter() - started)  # simulation included


def fit(
    train_set: SimulatedSet,
    val_set: SimulatedSet,
    config: TrainConfig,
    calibration_set: SimulatedSet | None = None,
    *,
    progress: bool = True,
) -> TrainResult:
    """Fit on ``train_set``; calibrate the temperature and both flag thresholds on
    ``val_set`` plus ``calibration_set`` (a held-out family), the OOD Gaussians on the
    training images."""
    started = time.perf_counter()
    torch.manual_seed(config.seed)
    gen = torch.Generator().manual_seed(config.seed)
    model = MorphologyNet(config.net)
    weights = class_weights(train_set.labels, config.net.n_classes)
    if not config.class_weighting:
        weights = torch.ones_like(weights)
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
            x = torch.from_numpy(preprocess(augment(images[index], config.augment, gen)))
            loss = F.cross_entropy(model(x), labels[index], weight=weights)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            scheduler.step()
            bar.set_postfix(loss=f"{loss.item():.3f}")
    return calibrate(
        model, train_set, val_set, config, calibration_set, time.perf_counter() - started
    )


def calibrate(
    model: MorphologyNet,
    train_set: SimulatedSet,
    val_set: SimulatedSet,
    config: TrainConfig,
    calibration_set: SimulatedSet | None = None,
    seconds: float = 0.0,
) -> TrainResult:
    """The OOD Gaussians on training features; the (distance-aware) temperature and both
    flag thresholds on ``val_set`` plus ``calibration_set`` (a held-out family)."""
    views = config.views
    val_features, val_logits = features_and_logits(model, val_set.images, views=views)
    val_correct = val_logits.argmax(1) == val_set.labels
    features, logits, labels = val_features, val_logits, val_set.labels
    if calibration_set is not None:
        cal_features, cal_logits = features_and_logits(model, calibration_set.images, views=views)
        features = np.concatenate([val_features, cal_features])
        logits = np.concatenate([val_logits, cal_logits])
        labels = np.concatenate([val_set.labels, calibration_set.labels])
    fit_features, _ = features_and_logits(model, train_set.images[: config.n_ood_fit], views=views)
    means, precision = fit_gaussians(
        fit_features, train_set.labels[: config.n_ood_fit], config.net.n_classes
    )
    distance = distances(features, means, precision)
    # The distance-aware temperature needs a distance scale before the threshold exists:
    # the in-family validation median (the slope is rescaled to the threshold below).
    scale = float(np.median(distance[: len(val_correct)]))
    if config.distance_temperature:
        temperature, slope = fit_distance_temperature(logits, distance / scale, labels)
    else:
        temperature, slope = fit_temperature(logits, labels), 0.0
    per_alert = temperature + slope * distance / scale
    probabilities = softmax(logits / per_alert[:, None])
    correct = probabilities.argmax(axis=1) == labels
    cap = float(np.quantile(distance[: len(val_correct)], config.ood_quantile))
    threshold, distance_threshold, coverage = choose_thresholds(
        normalised_entropy(probabilities), distance, correct, config.flag_accuracy, cap
    )
    ood = OodModel(OodServing(distance_threshold, means.shape[1]), means, precision)
    slope *= distance_threshold / scale  # per unit of the served score, distance / threshold
    targets = torch.as_tensor(labels)
    scaled = torch.as_tensor(logits / per_alert[:, None])
    metrics = {
        "val_accuracy": float(val_correct.mean()),
        "calibration_accuracy": float(correct[len(val_correct) :].mean())
        if len(correct) > len(val_correct)
        else float("nan"),
        "calibration_coverage": coverage,
        "nll_raw": float(F.cross_entropy(torch.as_tensor(logits), targets)),
        "nll_calibrated": float(F.cross_entropy(scaled, targets)),
        "temperature_slope": slope,
        "n_val": len(val_set.labels),
        "n_calibration": len(labels) - len(val_set.labels),
    }
    return TrainResult(config, model, temperature, threshold, metrics, seconds, ood, slope)


def recalibrate(directory: Path, config: TrainConfig, *, progress: bool = True) -> TrainResult:
    """The bundle's trained network, calibrated again as ``train`` would calibrate it with
    ``config`` (its seeds draw the same validation, calibration and OOD-fit images), e.g.
    for another ``views``. The network's fit does not depend on the calibration, so this
    gives what ``train(config)`` gives when ``config`` trained the bundle's weights."""
    torch.set_num_threads(config.threads)
    started = time.perf_counter()
    model = load_net(Path(directory))
    ood_fit = simulate_mix(
        config.n_train,
        config.seed,
        config.mix,
        progress=progress,
        first=config.n_ood_fit,
        jitter=config.dust_jitter,
    )
    val_set = simulate_mix(config.n_val, config.seed + 1, config.mix, progress=progress)
    calibration_set = simulate_mix(
        config.n_calibration, config.seed + 2, config.calibration, progress=progress
    )
    result = calibrate(model, ood_fit, val_set, config, calibration_set)
    return replace(result, seconds=time.perf_counter() - started)


def save(result: TrainResult, out: Path) -> Path:
    """Write the bundle the plugin loads: weights, the network's ONNX graph (what serving
    runs), net config, temperature and threshold."""
    return save_bundle(
        out,
        version=SPEC.version,
        serving=result.classifier().serving,
        arrays={**state_to_arrays(result.model), **ood_arrays(result.ood)},
        training=result.config,
        metrics={**result.metrics, "train_seconds": round(result.seconds, 1)},
        onnx=onnx_bytes(result.model),
    )


def ood_arrays(ood: OodModel | None) -> dict[str, np.ndarray]:
    if ood is None:
        return {}
    return {MEANS_KEY: ood.class_means, PRECISION_KEY: ood.precision}


def summary(result: TrainResult) -> dict[str, float]:
    """What ``stampflow train morphology`` prints."""
    return {
        **result.metrics,
        "temperature": result.temperature,
        "ambiguous_threshold": result.ambiguous_threshold,
        "train_minutes": round(result.seconds / 60, 1),
    }
