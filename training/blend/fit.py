"""Fitting the blend model's parts: the PCA embedding and the MuyGPs hyperparameters.

Serving (``stampflow.classifiers.blend``) only loads and predicts; everything that learns
from data lives here.
"""

from __future__ import annotations

import numpy as np

# stampflow.classifiers.blend.gp selects the MuyGPyS backend before MuyGPyS is imported.
from MuyGPyS.gp import MuyGPS  # noqa: E402, I001
from MuyGPyS.gp.deformation import Isotropy, l2  # noqa: E402
from MuyGPyS.gp.hyperparameter import AnalyticScale, Parameter  # noqa: E402
from MuyGPyS.gp.kernels import Matern  # noqa: E402
from MuyGPyS.gp.noise import HomoscedasticNoise  # noqa: E402
from MuyGPyS.neighbors import NN_Wrapper  # noqa: E402
from MuyGPyS.optimize import L_BFGS_B_optimize  # noqa: E402
from MuyGPyS.optimize.loss import mse_fn  # noqa: E402

from stampflow.classifiers.blend.gp import GPHyperparameters
from stampflow.classifiers.blend.preprocess import Embedding, crop_moments


def fit_embedding(
    features: np.ndarray, n_components: int, whiten: bool = False, moments: bool = False
) -> Embedding:
    """PCA of (n, d) normalised crops; zero components is the identity (flattened pixels).
    With ``moments``, the crops' moments are standardised by their median and MAD here."""
    mean = features.mean(axis=0).astype(np.float32)
    if n_components == 0:
        components = np.zeros((0, features.shape[1]), np.float32)
        scale = np.ones(0, np.float32)
    else:
        # SVD of the centred data: rows of vt are the principal axes, largest variance first.
        _, singular, vt = np.linalg.svd(features - mean, full_matrices=False)
        std = singular[:n_components] / np.sqrt(max(len(features) - 1, 1))
        scale = (np.maximum(std, 1e-12) if whiten else np.ones(n_components)).astype(np.float32)
        components = vt[:n_components].astype(np.float32)
    if not moments:
        return Embedding(mean, components, scale)
    m = crop_moments(features)
    centre = np.median(m, axis=0)
    spread = np.maximum(1.4826 * np.median(np.abs(m - centre), axis=0), 1e-6)
    return Embedding(mean, components, scale, centre, spread)


def fit_hyperparameters(
    features: np.ndarray,
    targets: np.ndarray,
    *,
    nn_count: int = 30,
    batch_count: int = 1000,
    smoothness: float = 1.5,
    seed: int = 0,
) -> GPHyperparameters:
    """Fit the length scale and noise with L-BFGS-B on the leave-one-out MSE of a batch.

    ``smoothness`` stays fixed: the half-integer Matern kernels have closed forms and are an
    order of magnitude faster to optimise than a free smoothness. The variance scale is then
    set analytically on the same batch.
    """
    rng = np.random.default_rng(seed)
    n = len(features)
    nbrs = NN_Wrapper(features, nn_count, nn_method="exact", algorithm="brute", n_jobs=1)
    batch = np.sort(rng.choice(n, size=min(batch_count, n), replace=False))
    batch_nn, _ = nbrs.get_batch_nns(batch)
    # A data-driven starting point and bounds: typical neighbour distances in this embedding.
    typical = float(np.median(np.linalg.norm(features[batch_nn[:, -1]] - features[batch], axis=1)))
    start = MuyGPS(
        kernel=Matern(
            smoothness=Parameter(smoothness),
            deformation=Isotropy(
                l2, length_scale=Parameter(typical, (typical / 20.0, typical * 20.0))
            ),
        ),
        noise=HomoscedasticNoise(1e-2, (1e-5, 1.0)),
        scale=AnalyticScale(),
    )
    crosswise, pairwise, batch_targets, batch_nn_targets = start.make_train_tensors(
        batch, batch_nn, features, targets
    )
    fitted = L_BFGS_B_optimize(
        start, batch_targets, batch_nn_targets, crosswise, pairwise, loss_fn=mse_fn
    )
    fitted = fitted.optimize_scale(pairwise, batch_nn_targets)
    return GPHyperparameters(
        nn_count=nn_count,
        smoothness=smoothness,
        length_scale=float(fitted.kernel.deformation.length_scale()),
        noise=float(fitted.noise()),
        scale=float(np.ravel(fitted.scale())[0]),
    )
