"""The blend model from arrays: preprocessing + embedding + MuyGPs + calibration + flag.

The probability is a monotone calibration of the GP's posterior mean fitted on validation
data (isotonic regression on each side of 0), P(blend) = 0.5 at mean 0 so it agrees with the
label. A stamp is
``ambiguous`` for the first of three reasons that holds (``BlendPrediction.reason``):

- ``no_source``: the central peak is below ``SPEC.min_peak_snr`` times the noise, or less
  than ``SPEC.min_coverage`` of the crop lay on unmasked stamp: nothing to judge;
- ``unlike_training``: the stamp is far from everything the model learnt from: its distance
  from the PCA subspace (``max_residual``), its GP posterior variance (``max_variance``,
  large when the nearest training neighbours are far) or its largest standardised crop
  moment (``max_moment_z``: a shape far too small, peaked or wide) exceeds what the
  validation set reaches at a high quantile;
- ``margin``: its mean margin is small against its posterior standard deviation,
  ``|mean| - kappa * sd < tau``, with kappa and tau chosen on validation data.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from stampflow.classifiers.blend.gp import BlendGP, GPHyperparameters
from stampflow.classifiers.blend.preprocess import Embedding, Prepared, PreprocessConfig, normalise
from stampflow.classifiers.blend.spec import SPEC, BlendSpec
from stampflow.classifiers.bundle import Bundle

REASONS = ("no_source", "unlike_training", "margin")


@dataclass(frozen=True)
class Posterior:
    """What the model says of prepared crops before any flag: the GP's mean and variance,
    each crop's distance from the PCA subspace and its largest |standardised moment| (zeros
    for an embedding without moments; None where not computed: no moment limit applies)."""

    mean: np.ndarray
    variance: np.ndarray
    residual: np.ndarray
    moment_outlier: np.ndarray | None = None


@dataclass(frozen=True)
class AmbiguityRule:
    """When a prediction is not to be trusted (see the module docstring)."""

    kappa: float
    tau: float
    max_variance: float | None = None  # None: no limit
    max_residual: float | None = None
    max_moment_z: float | None = None

    def __post_init__(self) -> None:
        if self.kappa < 0:
            raise ValueError(f"kappa must be >= 0, got {self.kappa}")

    def score(self, mean: np.ndarray, variance: np.ndarray) -> np.ndarray:
        return np.abs(mean) - self.kappa * np.sqrt(np.maximum(variance, 0.0))

    def reasons(self, post: Posterior, prepared: Prepared, spec: BlendSpec = SPEC) -> np.ndarray:
        """Per stamp, why it is ambiguous ("" when it is not); ``spec`` sets the no-source
        limits (ZTF's by default)."""
        no_source = (prepared.peak_snr < spec.min_peak_snr) | (
            prepared.coverage < spec.min_coverage
        )
        unlike = np.zeros(len(post.mean), dtype=bool)
        if self.max_variance is not None:
            unlike |= post.variance > self.max_variance
        if self.max_residual is not None:
            unlike |= post.residual > self.max_residual
        if self.max_moment_z is not None and post.moment_outlier is not None:
            unlike |= post.moment_outlier > self.max_moment_z
        margin = self.score(post.mean, post.variance) < self.tau
        out = np.full(len(post.mean), "", dtype=object)
        out[margin] = "margin"
        out[unlike] = "unlike_training"
        out[no_source] = "no_source"
        return out


@dataclass(frozen=True)
class Calibration:
    """P(blend) as a non-decreasing function of the posterior mean: linear interpolation
    between knots (``means`` increasing, ``p_blend`` non-decreasing), constant beyond them.
    The default maps [-1, 1] linearly onto [0, 1] (an uncalibrated stand-in)."""

    means: tuple[float, ...] = (-1.0, 0.0, 1.0)
    p_blend: tuple[float, ...] = (0.0, 0.5, 1.0)

    def __post_init__(self) -> None:
        x, p = np.asarray(self.means), np.asarray(self.p_blend)
        if len(x) < 2 or len(x) != len(p):
            raise ValueError("calibration needs >= 2 knots, as many means as probabilities")
        if np.any(np.diff(x) <= 0) or np.any(np.diff(p) < 0) or p.min() < 0 or p.max() > 1:
            raise ValueError("calibration knots must increase and probabilities lie in [0, 1]")

    def __call__(self, mean: np.ndarray) -> np.ndarray:
        return np.interp(mean, self.means, self.p_blend)


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
    reason: np.ndarray  # why each stamp is ambiguous, "" if it is not

    @property
    def is_blend(self) -> np.ndarray:
        return self.mean > 0

    @property
    def ambiguous(self) -> np.ndarray:
        return self.reason != ""


class BlendModel:
    """Predicts prepared crops; built from a bundle or straight from training's parts."""

    def __init__(
        self,
        prep: PreprocessConfig,
        embedding: Embedding,
        gp: BlendGP,
        calibration: Calibration,
        rule: AmbiguityRule,
        spec: BlendSpec = SPEC,
    ) -> None:
        self.spec = spec  # which survey's stamps: ZTF's unless a model says otherwise
        self.prep = prep
        self.embedding = embedding
        self.gp = gp
        self.calibration = calibration
        self.rule = rule

    def posterior(self, crops: np.ndarray) -> Posterior:
        x = normalise(crops, self.prep)
        features, moment_outlier = self.embedding.embed(x)
        mean, variance = self.gp.predict(features)
        return Posterior(mean, variance, self.embedding.residual(x), moment_outlier)

    def predict(self, prepared: Prepared) -> BlendPrediction:
        return self.decide(self.posterior(prepared.crops), prepared)

    def decide(self, post: Posterior, prepared: Prepared) -> BlendPrediction:
        """Calibrate and flag a posterior already computed."""
        reason = self.rule.reasons(post, prepared, self.spec)
        return BlendPrediction(post.mean, post.variance, self.calibration(post.mean), reason)

    def serving(self) -> BlendServing:
        return BlendServing(self.spec, self.prep, self.gp.hyper, self.calibration, self.rule)

    def arrays(self) -> dict[str, np.ndarray]:
        arrays = {
            "pca_mean": self.embedding.mean,
            "pca_components": self.embedding.components,
            "pca_scale": self.embedding.scale,
            "train_features": self.gp.features.astype(np.float32),
            "train_targets": self.gp.targets.astype(np.int8),
        }
        if self.prep.moments:
            arrays["moment_centre"] = self.embedding.moment_centre.astype(np.float32)
            arrays["moment_scale"] = self.embedding.moment_scale.astype(np.float32)
        return arrays

    @classmethod
    def from_bundle(cls, bundle: Bundle[BlendServing]) -> BlendModel:
        serving = bundle.serving
        moments = ("moment_centre", "moment_scale") if serving.preprocess.moments else ()
        embedding = Embedding(
            bundle.array("pca_mean"),
            bundle.array("pca_components"),
            bundle.array("pca_scale"),
            *(bundle.array(k) for k in moments),
        )
        gp = BlendGP(
            bundle.array("train_features"),
            bundle.array("train_targets").astype(np.float64),
            serving.gp,
        )
        return cls(
            serving.preprocess, embedding, gp, serving.calibration, serving.ambiguity, serving.spec
        )
