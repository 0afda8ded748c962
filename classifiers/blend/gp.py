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

import importlib.abc
import os
import sys

os.environ.setdefault("MUYGPYS_BACKEND", "numpy")


class _HideTorch(importlib.abc.MetaPathFinder):
    """MuyGPyS imports torch whenever it is installed (for a backend this model never uses):
    about 600 MB resident in every worker of a training install. Hidden while MuyGPyS loads,
    unless torch is loaded already."""

    def find_spec(self, name: str, path: object = None, target: object = None) -> None:
        if name.partition(".")[0] == "torch":
            raise ImportError("torch is hidden while MuyGPyS loads (numpy backend)")
        return None


_hide = None if "torch" in sys.modules else _HideTorch()
if _hide:
    sys.meta_path.insert(0, _hide)
try:
    from dataclasses import dataclass

    import numpy as np
    from MuyGPyS.gp import MuyGPS
    from MuyGPyS.gp.deformation import Isotropy, l2
    from MuyGPyS.gp.hyperparameter import FixedScale, Parameter
    from MuyGPyS.gp.kernels import Matern
    from MuyGPyS.gp.noise import HomoscedasticNoise
    from MuyGPyS.neighbors import NN_Wrapper
finally:
    if _hide:
        sys.meta_path.remove(_hide)

# Bytes allowed for one chunk's (chunk, k, k, d) float64 difference tensor.
_TENSOR_BUDGET = 256 * 2**20
MAX_CHUNK = 1024
# Queries per neighbour search / posterior step: bounds the (chunk, n_train) distances.
_QUERY_CHUNK = 64
_SPARE = 16  # extra candidates re-ranked on exact distances


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


class ExactNeighbours:
    """Exact k nearest neighbours by brute force, in numpy: the same answers as the
    brute-force ``NN_Wrapper`` without its per-call overhead.

    Approximate squared distances come from one float32 BLAS product per chunk: the
    queries with a column of ones times the training points' ``-2 x`` with a row of
    ``|x|^2``, so ``|x|^2 - 2 q.x`` needs no pass of its own. Selecting the best
    ``k + _SPARE`` among all training points is the costly step, so a threshold is taken
    first from a fixed stride of the training points (an order statistic that leaves about
    ``3 (k + _SPARE)`` points below it): when at
    least ``k + _SPARE`` fall below it, the best ones are all among them, and only those are
    partitioned (a query with too few falls back to all). The candidates are then re-ranked
    on exact float64 squared differences, ties broken by the lower training index, so the
    neighbour set does not depend on how queries are batched. The candidates are exact
    unless training points differ in distance by less than float32 resolves (about 1e-7 of
    their squared norm): on the shipped model's features every neighbour set of 6,000
    simulated templates has the brute-force distances.
    """

    def __init__(self, features: np.ndarray, k: int) -> None:
        self.features = features
        self.k = k
        self.spare = min(k + _SPARE, len(features))
        features32 = np.asarray(features, dtype=np.float32)
        sq = np.einsum("ij,ij->i", features32, features32)
        self.augmented = np.ascontiguousarray(np.vstack([-2.0 * features32.T, sq[None, :]]))
        self.stride = max(1, len(features) // 1000)
        sample = len(range(0, len(features), self.stride))
        self.rank = min(sample - 1, 3 * self.spare // self.stride)

    def query(self, queries: np.ndarray) -> np.ndarray:
        k = self.k
        ones = np.ones((len(queries), 1), dtype=np.float32)
        approx = np.hstack([queries.astype(np.float32), ones]) @ self.augmented
        cand = self._candidates(approx)
        diff = queries[:, None, :] - self.features[cand]
        exact = np.einsum("ijk,ijk->ij", diff, diff)
        order = np.lexsort((cand, exact), axis=-1)[:, :k]
        return np.take_along_axis(cand, order, axis=1)

    def _candidates(self, approx: np.ndarray) -> np.ndarray:
        """(n, k + _SPARE) training indices with the smallest approximate distances."""
        n, spare = len(approx), self.spare
        sample = approx[:, :: self.stride]
        limit = np.partition(sample, self.rank, axis=1)[:, self.rank]
        # The flat index of a 1-D nonzero is ten times cheaper than 2-D nonzero's pairs.
        rows, cols = np.divmod(np.flatnonzero(approx < limit[:, None]), approx.shape[1])
        counts = np.bincount(rows, minlength=n)
        cand = np.empty((n, spare), dtype=np.intp)
        # A query with too few below the threshold is partitioned on its own: taking all
        # its points into the common (n, width) table would make every row that wide.
        few = counts < spare
        if few.any():
            cand[few] = np.argpartition(approx[few], spare - 1, axis=1)[:, :spare]
        if not few.all():
            keep = ~few[rows]
            rows, cols = rows[keep], cols[keep]
            counts = np.where(few, 0, counts)
            pos = np.arange(len(rows)) - (np.cumsum(counts) - counts)[rows]
            width = int(counts.max())
            index = np.zeros((n, width), dtype=np.intp)
            dist = np.full((n, width), np.inf, dtype=np.float32)
            index[rows, pos] = cols
            dist[rows, pos] = approx[rows, cols]
            best = np.argpartition(dist[~few], spare - 1, axis=1)[:, :spare]
            cand[~few] = np.take_along_axis(index[~few], best, axis=1)
        return cand


class HnswNeighbours:
    """Approximate k nearest neighbours from a faiss HNSW graph (optional: ``faiss-cpu``)."""

    def __init__(self, features: np.ndarray, k: int, m: int = 16, ef_search: int = 128) -> None:
        import faiss

        self.k = k
        self.index = faiss.IndexHNSWFlat(features.shape[1], m)
        self.index.hnsw.efConstruction = 200
        self.index.add(np.ascontiguousarray(features, dtype=np.float32))
        self.index.hnsw.efSearch = max(ef_search, k)

    def query(self, queries: np.ndarray) -> np.ndarray:
        _, indices = self.index.search(np.ascontiguousarray(queries, dtype=np.float32), self.k)
        return indices.astype(np.intp)


NEIGHBOURS = ("exact", "hnsw")


class BlendGP:
    """A fitted MuyGPs regressor on +1/-1 labels.

    ``predict`` is MuyGPs' posterior (the same kernel, noise, solve and scale as
    ``MuyGPS.posterior_mean`` / ``posterior_variance``) computed without the (chunk, k, k, d)
    difference tensors: the distances among each query's neighbours come from their Gram
    matrix, and one solve serves the mean and the variance. ``predict_muygpys`` is the
    library's own path, kept as the reference. Neighbours are exact by default;
    ``neighbours="hnsw"`` uses an approximate faiss index.
    """

    def __init__(
        self,
        features: np.ndarray,
        targets: np.ndarray,
        hyper: GPHyperparameters,
        neighbours: str = "exact",
    ) -> None:
        if len(features) != len(targets) or len(features) <= hyper.nn_count:
            raise ValueError(
                f"need more than nn_count={hyper.nn_count} training points with one target "
                f"each, got {len(features)} points and {len(targets)} targets"
            )
        if neighbours not in NEIGHBOURS:
            raise ValueError(f"neighbours must be one of {NEIGHBOURS}, got {neighbours!r}")
        self.features = np.ascontiguousarray(features, dtype=np.float64)
        self.targets = np.asarray(targets, dtype=np.float64)
        self.hyper = hyper
        self.model = _model(hyper.smoothness, hyper.length_scale, hyper.noise)
        self.neighbours = neighbours
        self.index = (
            ExactNeighbours(self.features, hyper.nn_count)
            if neighbours == "exact"
            else HnswNeighbours(self.features, hyper.nn_count)
        )
        self._nbrs: NN_Wrapper | None = None
        # Training points over the length scale, and their squared norms, for the Gram trick.
        self._scaled = self.features / hyper.length_scale
        self._scaled_sq = np.einsum("ij,ij->i", self._scaled, self._scaled)
        self._k0 = float(self._matern(np.zeros(1))[0])
        dim = self.features.shape[1]
        self.chunk = int(
            np.clip(_TENSOR_BUDGET // (8 * hyper.nn_count**2 * max(dim, 1)), 16, MAX_CHUNK)
        )

    @property
    def nbrs(self) -> NN_Wrapper:
        """The library's exact brute-force neighbour search (the reference path)."""
        if self._nbrs is None:
            self._nbrs = NN_Wrapper(
                self.features, self.hyper.nn_count, nn_method="exact", algorithm="brute", n_jobs=1
            )
        return self._nbrs

    def nearest(self, features: np.ndarray) -> np.ndarray:
        """(n, nn_count) training indices of each point's neighbours."""
        features = np.ascontiguousarray(features, dtype=np.float64)
        parts = [
            self.index.query(features[start : start + _QUERY_CHUNK])
            for start in range(0, len(features), _QUERY_CHUNK)
        ]
        return np.concatenate(parts) if parts else np.empty((0, self.hyper.nn_count), np.intp)

    def predict(
        self, features: np.ndarray, nn_indices: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Posterior mean (n,) and variance (n,); neighbours found here unless given."""
        features = np.ascontiguousarray(features, dtype=np.float64)
        if nn_indices is None:
            nn_indices = self.nearest(features)
        mean = np.empty(len(features))
        variance = np.empty(len(features))
        for start in range(0, len(features), _QUERY_CHUNK):
            part = slice(start, start + _QUERY_CHUNK)
            mean[part], variance[part] = self._posterior(features[part], nn_indices[part])
        return mean, variance

    def _posterior(self, x: np.ndarray, nn: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        h = self.hyper
        # Crosswise distances exactly as MuyGPyS: l2 of (x - x_nn) / length_scale.
        cross = np.sqrt(np.sum(((x[:, None, :] - self.features[nn]) / h.length_scale) ** 2, -1))
        # Pairwise distances among the neighbours from their Gram matrix.
        scaled = self._scaled[nn]
        sq = self._scaled_sq[nn]
        gram = scaled @ scaled.transpose(0, 2, 1)
        pair = np.sqrt(np.maximum(sq[:, :, None] + sq[:, None, :] - 2.0 * gram, 0.0))
        k_cross = self._matern(cross)
        k_in = self._matern(pair)
        diag = np.arange(nn.shape[1])
        k_in[:, diag, diag] = self._k0 + h.noise  # the kernel at distance 0, plus the noise
        solved = np.linalg.solve(k_in, k_cross[:, :, None])[:, :, 0]
        mean = np.einsum("ij,ij->i", solved, self.targets[nn])
        # FixedScale(1) in the model; the fitted analytic scale multiplies here.
        variance = h.scale * (1.0 - np.einsum("ij,ij->i", solved, k_cross))
        return mean, variance

    def _matern(self, dists: np.ndarray) -> np.ndarray:
        """MuyGPyS' Matern of scaled distances (its numpy formulas), whatever its backend."""
        nu = self.hyper.smoothness
        if nu == 0.5:
            return np.exp(-dists)
        if nu == 1.5:
            k = dists * np.sqrt(3)
            return (1.0 + k) * np.exp(-k)
        if nu == 2.5:
            k = dists * np.sqrt(5)
            return (1.0 + k + k**2 / 3.0) * np.exp(-k)
        return np.asarray(self.model.kernel._predef_fn(dists))

    def predict_muygpys(self, features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The reference: MuyGPyS' ``make_predict_tensors``, ``posterior_mean`` and
        ``posterior_variance`` on ``NN_Wrapper`` neighbours, ``self.chunk`` points at a time."""
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
            variance[start : start + len(part)] = self.hyper.scale * np.ravel(
                self.model.posterior_variance(k_in, k_cross)
            )
        return mean, variance
