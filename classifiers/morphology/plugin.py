"""The morphology classifier behind the daemon's ``Classifier`` interface.

Applies to alerts carrying the ``cutoutMultiband`` extension with the four NIRCam filters
the network was trained on. Each stamp is brought to the network's grid (``preprocess``),
the batch runs through the CNN at once, and the temperature-scaled probabilities give the
label and the uncertainty (entropy normalised to [0, 1]). The ambiguous flag rises when
either the entropy is above its threshold (near a class boundary) or the penultimate features
are far from every class seen in training (``ood.py``: Mahalanobis distance above its
threshold: an input unlike the training data, however confident the softmax). Both
thresholds were chosen on held-out families (see ``stampflow.training.morphology.ood``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from stampflow.classifiers.bundle import BundleError, load_bundle
from stampflow.classifiers.morphology import ENTRY
from stampflow.classifiers.morphology.net import MorphologyNet, NetConfig, arrays_to_model
from stampflow.classifiers.morphology.ood import (
    MEANS_KEY,
    OOD_KEYS,
    PRECISION_KEY,
    OodModel,
    OodServing,
)
from stampflow.classifiers.morphology.preprocess import preprocess, to_grid
from stampflow.classifiers.morphology.spec import SPEC, MorphologySpec
from stampflow.schemas.annotation import Annotation
from stampflow.schemas.errors import PacketError

if TYPE_CHECKING:
    from stampflow.schemas.alert import Alert


@dataclass(frozen=True)
class MorphologyServing:
    """The manifest's ``serving`` section: everything but the weights."""

    spec: MorphologySpec
    net: NetConfig
    temperature: float
    ambiguous_threshold: float
    ood: OodServing | None = None  # None: the flag is the entropy's alone
    # Distance-aware calibration: the temperature grows with the OOD score s (distance over
    # threshold) as temperature + temperature_slope * s, so inputs unlike the training data
    # get softer probabilities; 0 without an OOD model.
    temperature_slope: float = 0.0

    def __post_init__(self) -> None:
        if not self.temperature > 0:
            raise ValueError(f"temperature must be positive, got {self.temperature}")
        if self.temperature_slope < 0 or (self.temperature_slope and self.ood is None):
            raise ValueError("temperature_slope must be >= 0 and needs an OOD model")
        if self.net.n_classes != len(self.spec.labels):
            raise ValueError(
                f"net.n_classes {self.net.n_classes} != {len(self.spec.labels)} labels"
            )
        if self.ood is not None and self.ood.feature_dim != self.net.stages[-1]:
            raise ValueError(
                f"ood.feature_dim {self.ood.feature_dim} != the net's {self.net.stages[-1]}"
            )


@dataclass(frozen=True)
class Prediction:
    """One batch through the network: calibrated probabilities and the OOD score
    (distance / threshold; zeros without an OOD model)."""

    probabilities: np.ndarray
    ood_score: np.ndarray

    @property
    def entropy(self) -> np.ndarray:
        return normalised_entropy(self.probabilities)


def normalised_entropy(probabilities: np.ndarray) -> np.ndarray:
    """Entropy of each row of (n, classes) probabilities, divided by its maximum: in [0, 1]."""
    p = np.clip(probabilities, 1e-12, 1.0)
    return -(p * np.log(p)).sum(axis=1) / np.log(p.shape[1])


class MorphologyClassifier:
    """The CNN with its calibration; ``load`` for a bundle, the constructor for training."""

    name = SPEC.name
    labels = SPEC.labels

    def __init__(
        self,
        model: MorphologyNet,
        serving: MorphologyServing,
        *,
        version: str,
        sha256: str,
        ood: OodModel | None = None,
    ) -> None:
        if (ood is None) != (serving.ood is None):
            raise ValueError("serving.ood and the OOD arrays come together")
        self.model = model.eval()
        self.serving = serving
        self.version = version
        self.sha256 = sha256
        self.ood = ood

    @classmethod
    def load(cls, model_dir: Path | None = None) -> MorphologyClassifier:
        """Load a bundle; weights from safetensors, never pickle."""
        bundle = load_bundle(model_dir or ENTRY.bundle, MorphologyServing, SPEC)
        weights = {k: v for k, v in bundle.arrays.items() if k not in OOD_KEYS}
        try:
            model = arrays_to_model(weights, bundle.serving.net)
        except RuntimeError as exc:  # torch names the missing or misshapen tensors
            first = str(exc).strip().splitlines()
            raise BundleError(
                f"{bundle.directory / bundle.manifest.weights}: does not fit serving.net: "
                + " ".join(line.strip() for line in first[:3])
            ) from None
        ood = None
        if bundle.serving.ood is not None:
            try:
                ood = OodModel(
                    bundle.serving.ood, bundle.array(MEANS_KEY), bundle.array(PRECISION_KEY)
                )
            except ValueError as exc:
                raise BundleError(f"{bundle.directory / bundle.manifest.weights}: {exc}") from None
        return cls(model, bundle.serving, version=bundle.version, sha256=bundle.sha256, ood=ood)

    @property
    def temperature(self) -> float:
        return self.serving.temperature

    @property
    def ambiguous_threshold(self) -> float:
        return self.serving.ambiguous_threshold

    def applies_to(self, alert: Alert) -> bool:
        try:
            multiband = alert.multiband
        except PacketError:
            return True  # broken extension: classify() reports it for this alert
        return multiband is not None and set(SPEC.filters) <= set(multiband.filters)

    def stamps_of(self, alert: Alert) -> np.ndarray:
        """(4, 64, 64) float32 on the network grid, or PacketError naming the alert."""
        who = f"alert {alert.object_id}/{alert.candid}"
        try:
            multiband = alert.multiband
            if multiband is None:
                raise PacketError("bad_stamp", "no multiband stamps", field=SPEC.cutout)
            missing = set(SPEC.filters) - set(multiband.filters)
            if missing:
                raise PacketError(
                    "bad_stamp", f"filters {sorted(missing)} missing", field=SPEC.cutout
                )
            planes = multiband.stamps()
            index = [multiband.filters.index(f) for f in SPEC.filters]
            return np.stack([to_grid(planes[i], multiband.pixel_scale[i]) for i in index])
        except PacketError as exc:
            raise PacketError(exc.reason, f"{who}: {exc.detail}", field=exc.field) from exc
        except ValueError as exc:
            raise PacketError("bad_stamp", f"{who}: {exc}", field=SPEC.cutout) from exc

    def predict(self, stamps: np.ndarray, batch_size: int = 256) -> Prediction:
        """Probabilities and OOD scores for (n, 4, 64, 64) stamps, one network pass."""
        probabilities, scores = [], []
        with torch.no_grad():
            for start in range(0, len(stamps), batch_size):
                features = self.model.features(preprocess(stamps[start : start + batch_size]))
                logits = self.model.head(features)  # dropout is the identity in eval mode
                score = np.zeros(len(logits))
                if self.ood is not None:
                    score = self.ood.score(features.numpy())
                    scores.append(score)
                temperature = self.temperature + self.serving.temperature_slope * score
                scaled = logits / torch.as_tensor(temperature, dtype=logits.dtype)[:, None]
                probabilities.append(torch.softmax(scaled, dim=1).numpy())
        if not probabilities:
            return Prediction(np.zeros((0, len(self.labels))), np.zeros(0))
        p = np.concatenate(probabilities).astype(np.float64)
        return Prediction(p, np.concatenate(scores) if scores else np.zeros(len(p)))

    def probabilities(self, stamps: np.ndarray, batch_size: int = 256) -> np.ndarray:
        """Calibrated class probabilities for (n, 4, 64, 64) stamps on the network grid."""
        return self.predict(stamps, batch_size).probabilities

    def flags(self, prediction: Prediction) -> np.ndarray:
        """The ambiguous flag: near a class boundary, or unlike the training data."""
        return (prediction.entropy > self.ambiguous_threshold) | (prediction.ood_score > 1.0)

    def annotate(self, stamps: np.ndarray) -> list[Annotation]:
        """Annotations for stamps on the network grid: what ``classify`` returns."""
        prediction = self.predict(stamps)
        probabilities, entropy = prediction.probabilities, prediction.entropy
        flagged = self.flags(prediction)
        return [
            Annotation(
                classifier=self.name,
                model_version=self.version,
                label=self.labels[int(np.argmax(row))],
                probabilities={label: float(v) for label, v in zip(self.labels, row, strict=True)},
                uncertainty=float(h),
                ambiguous=bool(flag),
            )
            for row, h, flag in zip(probabilities, entropy, flagged, strict=True)
        ]

    def classify(self, alerts: Sequence[Alert]) -> list[Annotation]:
        if not alerts:
            return []
        return self.annotate(np.stack([self.stamps_of(a) for a in alerts]))
