"""The stellar blend classifier: is the static point source one star or several?

Which cutout: the **template**. ZTF's template (reference) stamp is a deep coadd of the
static sky resampled to the science frame, so it shows the source as it is without the
transient, with sqrt(n_coadd) less noise than one 30 s exposure. Blending is a property of
the static source: the science stamp can be dominated by the transient (a brightening star
swamps its faint companion), and the difference stamp subtracts the static scene, blend
included. The simulator (``stampflow.training.blend_sim``) draws templates the same way.

Pipeline (the same code at training and serving, see ``stamp_preprocess``): locate the
source, crop, fill NaN with the sky, orient, normalise, PCA-embed; then MuyGPs on +1/-1
labels gives a posterior mean and variance per stamp. The probability is a logistic
(Platt) calibration of the mean fitted on validation data, P(blend) = 0.5 at mean 0 so it
agrees with the label; a stamp is ``ambiguous`` when
its mean margin is small against its posterior standard deviation:
``|mean| - kappa * sd < tau``, with kappa and tau chosen on validation data.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from stampflow.classifiers.blend_gp import BlendGP, GPHyperparameters
from stampflow.classifiers.bundle import BundleError, load_model_bundle
from stampflow.classifiers.stamp_preprocess import (
    Embedding,
    PreprocessConfig,
    features_from_crops,
    prepare_stamps,
)
from stampflow.schemas.annotation import Annotation
from stampflow.schemas.errors import PacketError

if TYPE_CHECKING:  # only duck-typed here: has_stamp, stamp, object_id, candid
    from stampflow.schemas.alert import Alert

NAME = "blend"
LABELS = ("single", "blend")
STAMP_KIND = "template"
STAMP_FIELD = "cutoutTemplate"


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
class BlendPrediction:
    mean: np.ndarray
    variance: np.ndarray
    p_blend: np.ndarray
    ambiguous: np.ndarray

    @property
    def is_blend(self) -> np.ndarray:
        return self.mean > 0


class BlendModel:
    """Preprocessing + embedding + MuyGPs + calibration + ambiguity rule, all from arrays."""

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

    def arrays(self) -> dict[str, np.ndarray]:
        return {
            "pca_mean": self.embedding.mean,
            "pca_components": self.embedding.components,
            "pca_scale": self.embedding.scale,
            "train_features": self.gp.features.astype(np.float32),
            "train_targets": self.gp.targets.astype(np.int8),
        }

    def config(self) -> dict[str, dict[str, float | int | str | bool]]:
        return {
            "preprocess": asdict(self.prep),
            "gp": self.gp.hyper.as_dict(),
            "calibration": asdict(self.calibration),
            "ambiguity": asdict(self.rule),
        }

    @classmethod
    def from_arrays(
        cls, arrays: dict[str, np.ndarray], config: dict[str, dict[str, float | int | str | bool]]
    ) -> BlendModel:
        try:
            prep = PreprocessConfig(**config["preprocess"])
            embedding = Embedding(arrays["pca_mean"], arrays["pca_components"], arrays["pca_scale"])
            gp = BlendGP(
                arrays["train_features"],
                arrays["train_targets"].astype(np.float64),
                GPHyperparameters(**config["gp"]),
            )
            return cls(
                prep,
                embedding,
                gp,
                Calibration(**config["calibration"]),
                AmbiguityRule(**config["ambiguity"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise BundleError(f"blend model bundle is incomplete or invalid: {exc!r}") from exc


class BlendClassifier:
    """The daemon plugin: annotates alerts with a usable template stamp, a batch at once."""

    name = NAME
    labels = LABELS

    def __init__(self, model: BlendModel, version: str, sha256: str) -> None:
        self.model = model
        self.version = version
        self.sha256 = sha256

    @classmethod
    def load(cls, model_dir: Path | None = None) -> BlendClassifier:
        """Load a bundle (default: the one shipped in ``classifiers/models/blend``)."""
        bundle = load_model_bundle(NAME, model_dir)
        return cls(
            BlendModel.from_arrays(bundle.arrays, bundle.config), bundle.version, bundle.sha256
        )

    def applies_to(self, alert: Alert) -> bool:
        return alert.has_stamp(STAMP_KIND)

    def classify(self, alerts: Sequence[Alert]) -> list[Annotation]:
        """One annotation per alert, in order, from one vectorised prediction.

        Every stamp is decoded and checked before any model work; a broken one raises the
        ``PacketError`` naming that alert, so the pipeline's retry (in halves, down to
        single alerts) costs little and dead-letters only the broken alert.
        """
        if not alerts:
            return []
        pred = self.model.predict_crops(np.stack([self._crop(alert) for alert in alerts]))
        return [
            Annotation(
                classifier=NAME,
                model_version=self.version,
                label=LABELS[int(pred.is_blend[i])],
                probabilities={
                    "single": float(1.0 - pred.p_blend[i]),
                    "blend": float(pred.p_blend[i]),
                },
                uncertainty=float(pred.variance[i]),
                ambiguous=bool(pred.ambiguous[i]),
            )
            for i in range(len(alerts))
        ]

    def _crop(self, alert: Alert) -> np.ndarray:
        """The alert's prepared template crop, or a ``PacketError`` naming the alert."""
        try:
            return prepare_stamps([alert.stamp(STAMP_KIND)], self.model.prep, field=STAMP_FIELD)[0]
        except PacketError as exc:
            who = f"alert {alert.object_id} candid {alert.candid}: "
            raise PacketError(exc.reason, who + exc.detail, field=STAMP_FIELD) from exc
