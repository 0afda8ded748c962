"""The MuyGPs core of the blend classifier: predict mean and variance (fitting is in
``stampflow.training.blend.fit``).

Classification is regression on labels coded +1 (blend) and -1 (single); with two classes the
one-column-per-class coding of MuyGPyS has columns that are exact negatives of each other, so
one column carries everything: the sign of the posterior mean is the argmax, and the
posterior variance (one value per point) is the uncertainty.

The numpy backend is selected before MuyGPyS is imported (its jax backend is not reliable in
0.9.1). Predictions run in chunks because MuyGPyS builds (chunk, k, k, d) difference tensors.
"""

from __future__ import annotations

import os

os.environ.setdefault("MUYGPYS_BACKEND", "numpy")

from dataclasses import dataclass  # noqa: E402

import numpy as np  # noqa: E402
from MuyGPyS.gp import MuyGPS  # noqa: E402
from MuyGPyS.gp.deformation import Isotropy, l2  # noqa: E402
from MuyGPyS.gp.hyperparameter import FixedScale, Parameter  # noqa: E402
from MuyGPyS.gp.kernels import Matern  # noqa: E402
from MuyGPyS.gp.noise import HomoscedasticNoise  # noqa: E402
from MuyGPyS.neighbors import NN_Wrapper  # noqa: E402

# Bytes allowed for one chunk's (chunk, k, k, d) float64 difference tensor.
_TENSOR_BUDGET = 256 * 2**20
MAX_CHUNK = 1024


@dataclass(frozen=True)
class GPHyperparameters:
    """Everything needed to rebuild a fitted MuyGPS model; stored in the bundle manifest."""

    nn_count: int
    smoothness: float
    length_scale: float
    noise: float
    scale: float

    def __post_init__(self) -> None:
        if self.nn_count < 2:
            raise ValueError(f"nn_count must be >= 2, got {self.nn_count}")
        for name in ("smoothness", "length_scale", "scale"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        if self.noise < 0:
            raise ValueError(f"noise must be >= 0, got {self.noise}")


def _model(smoothness: float, length_scale: float | Parameter, noise: float | Parameter) -> MuyGPS:
    ls = length_scale if isinstance(length_scale, Parameter) else Parameter(length_scale)
    nz = noise if isinstance(noise, Parameter) else Parameter(noise)
    return MuyGPS(
        kernel=Matern(smoothness=Parameter(smoothness), deformation=Isotropy(l2, length_scale=ls)),
        noise=HomoscedasticNoise(nz()),
        scale=FixedScale(),
    )


class BlendGP:
    """A fitted MuyGPs regressor on +1/-1 labels with exact brute-force neighbour search."""

    def __init__(self, features: np.ndarray, targets: np.ndarray, hyper: GPHyperparameters) -> None:
        if len(features) != len(targets) or len(features) <= hyper.nn_count:
            raise ValueError(
                f"need more than nn_count={hyper.nn_count} training points with one target "
                f"each, got {len(features)} points and {len(targets)} targets"
            )
        self.features = np.ascontiguousarray(features, dtype=np.float64)
        self.targets = np.asarray(targets, dtype=np.float64)
        self.hyper = hyper
        self.model = _model(hyper.smoothness, hyper.length_scale, hyper.noise)
        self.nbrs = NN_Wrapper(
            self.features, hyper.nn_count, nn_method="exact", algorithm="brute", n_jobs=1
        )
        dim = self.features.shape[1]
        self.chunk = int(
            np.clip(_TENSOR_BUDGET // (8 * hyper.nn_count**2 * max(dim, 1)), 16, MAX_CHUNK)
        )

    def predict(self, features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Posterior mean (n,) and variance (n,), computed ``self.chunk`` points at a time."""
        features = np.ascontiguousarray(features, dtype=np.float64)
        mean = np.empty(len(features))
        variance = np.empty(len(features))
        for start in range(0, len(features), self.chunk):
            part = features[start : start + self.chunk]
            nn_indices, _ = self.nbrs.get_nns(part)
            crosswise, pairwise, nn_targets = self.model.make_predict_tensors(
                np.arange(len(part)), nn_indices, part, self.features, self.targets
            )
            k_in = self.model.kernel(pairwise)
            k_cross = self.model.kernel(crosswise)
            mean[start : start + len(part)] = np.ravel(
                self.model.posterior_mean(k_in, k_cross, nn_targets)
            )
            # FixedScale(1) in the model; the fitted analytic scale multiplies here.
            variance[start : start + len(part)] = self.hyper.scale * np.ravel(
                self.model.posterior_variance(k_in, k_cross)
            )
        return mean, variance
