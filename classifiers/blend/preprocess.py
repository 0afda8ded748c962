"""Stamp preprocessing and embedding: the one code path shared by training and serving.

A stamp goes through three steps, always in this order:

1. ``locate_and_crop``: find the source's pixel (ZTF centres it at (31, 31) of a 63x63
   stamp; a stamp cut at the CCD edge loses rows or columns on one side, so the source sits
   either 31 pixels from the kept edge or at the same index as an uncut stamp; the brighter
   candidate wins), refine to the brightest pixel within ``recentre_px``, and cut a
   ``crop`` x ``crop`` window around it. Pixels outside the stamp become NaN.
2. ``fill_nan``: NaN pixels (bad pixels, -FLT_MAX masked pixels, off-stamp pixels) take
   the median of the stamp's finite pixels, i.e. the sky level, so they carry no shape
   information.
3. ``orient`` (optional, on by default): rotate each crop so the principal axis of its
   light lies along x and flip it so the brighter half is on the right and top. A
   companion can sit at any angle; without this, PCA and nearest neighbours would need
   examples of every angle, with it a companion always lands on the same side.
4. ``normalise`` then ``Embedding.transform``: per-stamp normalisation (none, min-max, log,
   r-th root local min-max, l2) and a PCA projection (or none, the flattened pixels).

The PCA is stored as plain arrays (mean, components, scale) so a bundle needs no pickle;
it is fitted in ``stampflow.training.blend.fit``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields

import numpy as np
from scipy import ndimage

from stampflow.classifiers.blend.spec import SPEC
from stampflow.schemas.errors import PacketError

NORMALISATIONS = ("none", "minmax", "log", "rroot", "l2")
FULL_STAMP = SPEC.stamp_size
_LOG_SOFTENING = 1000.0  # dynamic range kept by the log normalisation (3 decades)


@dataclass(frozen=True)
class PreprocessConfig:
    """How a stamp becomes a feature vector; stored in the model bundle's manifest."""

    crop: int = 21
    recentre_px: int = 2
    normalisation: str = "minmax"
    root: float = 3.0
    pca_components: int = 16  # 0 means no embedding (the flattened pixels)
    whiten: bool = True  # scale each PCA component to unit variance on the training set
    orient: bool = True

    def __post_init__(self) -> None:
        if self.crop < 5 or self.crop % 2 == 0 or self.crop > FULL_STAMP:
            raise ValueError(f"crop must be odd and in [5, {FULL_STAMP}], got {self.crop}")
        if not 0 <= self.recentre_px <= 5:
            raise ValueError(f"recentre_px must be in [0, 5], got {self.recentre_px}")
        if self.normalisation not in NORMALISATIONS:
            raise ValueError(
                f"normalisation must be one of {NORMALISATIONS}, got {self.normalisation!r}"
            )
        if self.root < 1.0:
            raise ValueError(f"root must be >= 1, got {self.root}")
        if not 0 <= self.pca_components <= self.crop * self.crop:
            raise ValueError(f"pca_components must be in [0, crop^2], got {self.pca_components}")

    @property
    def embedding(self) -> str:
        return f"pca{self.pca_components}" if self.pca_components else "none"


def _axis_centre_candidates(size: int) -> tuple[int, ...]:
    """Possible source indices along one axis of a stamp that may have been cut on one side."""
    nominal = FULL_STAMP // 2
    if size >= FULL_STAMP:
        return (size // 2,)
    # Cut on the high side keeps index 31; cut on the low side shifts it to size - 32.
    return tuple(sorted({min(nominal, size - 1), max(size - 1 - nominal, 0)}))


def _window(stamp: np.ndarray, row: int, col: int, half: int) -> np.ndarray:
    """The (2*half+1)^2 window centred on (row, col), NaN where it leaves the stamp."""
    side = 2 * half + 1
    out = np.full((side, side), np.nan, dtype=np.float32)
    r0, c0 = row - half, col - half
    rs, cs = max(r0, 0), max(c0, 0)
    re, ce = min(r0 + side, stamp.shape[0]), min(c0 + side, stamp.shape[1])
    if rs < re and cs < ce:
        out[rs - r0 : re - r0, cs - c0 : ce - c0] = stamp[rs:re, cs:ce]
    return out


def locate_and_crop(stamp: np.ndarray, config: PreprocessConfig) -> np.ndarray:
    """Cut the ``crop`` x ``crop`` window centred on the source (see the module docstring)."""
    stamp = np.asarray(stamp, dtype=np.float32)
    sky = float(np.nanmedian(stamp))
    filled = np.where(np.isfinite(stamp), stamp, sky).astype(np.float64)
    best, best_flux = (stamp.shape[0] // 2, stamp.shape[1] // 2), -np.inf
    for row in _axis_centre_candidates(stamp.shape[0]):
        for col in _axis_centre_candidates(stamp.shape[1]):
            flux = float(np.sum(_window(filled, row, col, 2)))
            if flux > best_flux:
                best, best_flux = (row, col), flux
    row, col = best
    if config.recentre_px:
        near = _window(filled, row, col, config.recentre_px)
        near = np.where(np.isfinite(near), near, -np.inf)
        dr, dc = np.unravel_index(int(np.argmax(near)), near.shape)
        row, col = row + int(dr) - config.recentre_px, col + int(dc) - config.recentre_px
    return _window(stamp, row, col, config.crop // 2)


def fill_nan(stamps: np.ndarray, sky: np.ndarray) -> np.ndarray:
    """Replace NaN pixels of each stamp (n, h, w) by that stamp's sky level (n,)."""
    return np.where(np.isfinite(stamps), stamps, sky[:, None, None]).astype(np.float32)


@dataclass(frozen=True)
class Prepared:
    """Prepared crops (n, crop, crop) and what says whether each holds a usable source:
    ``peak_snr``, the central peak over the stamp's noise (MAD), and ``coverage``, the share
    of the crop that lay on the stamp and was not masked."""

    crops: np.ndarray
    peak_snr: np.ndarray
    coverage: np.ndarray

    @classmethod
    def concat(cls, parts: Sequence[Prepared]) -> Prepared:
        return cls(*(np.concatenate([getattr(p, f.name) for p in parts]) for f in fields(cls)))

    def subset(self, index: np.ndarray | slice) -> Prepared:
        return Prepared(self.crops[index], self.peak_snr[index], self.coverage[index])


def prepare(
    stamps: Sequence[np.ndarray], config: PreprocessConfig, field: str = "stamp"
) -> Prepared:
    """Crop and NaN-fill a list of stamps of any shape into an (n, crop, crop) float32 array.

    Raises ``PacketError(reason="bad_stamp")`` naming the index of a stamp with too few
    finite pixels to estimate its sky, so a caller can skip just that one.
    """
    crops = np.empty((len(stamps), config.crop, config.crop), dtype=np.float32)
    sky = np.empty(len(stamps), dtype=np.float32)
    peak_snr = np.empty(len(stamps))
    coverage = np.empty(len(stamps))
    centre = slice(config.crop // 2 - 1, config.crop // 2 + 2)
    for i, stamp in enumerate(stamps):
        stamp = np.asarray(stamp, dtype=np.float32)
        stamp = np.where(np.abs(stamp) < SPEC.fill_sentinel, stamp, np.nan)  # inf too
        if stamp.ndim != 2 or min(stamp.shape) < SPEC.min_side:
            side = SPEC.min_side
            raise PacketError(
                "bad_stamp",
                f"stamp {i} has shape {stamp.shape}, need 2-D >= {side}x{side}",
                field=field,
            )
        finite = np.isfinite(stamp)
        if finite.sum() < SPEC.min_finite_fraction * stamp.size:
            raise PacketError(
                "bad_stamp", f"stamp {i} has only {int(finite.sum())} finite pixels", field=field
            )
        values = stamp[finite]
        sky[i] = np.median(values)
        noise = 1.4826 * float(np.median(np.abs(values - sky[i])))
        crops[i] = locate_and_crop(stamp, config)
        coverage[i] = float(np.isfinite(crops[i]).mean())
        peak = float(np.nanmax(crops[i][centre, centre], initial=sky[i])) - float(sky[i])
        peak_snr[i] = peak / noise if noise > 0 else 0.0  # a flat stamp shows no source
    crops = fill_nan(crops, sky)
    if config.orient:
        crops = np.stack([orient(crop, float(s)) for crop, s in zip(crops, sky, strict=True)])
    return Prepared(crops, peak_snr, coverage)


def prepare_stamps(
    stamps: Sequence[np.ndarray], config: PreprocessConfig, field: str = "stamp"
) -> np.ndarray:
    """The crops of ``prepare``."""
    return prepare(stamps, config, field).crops


def orient(crop: np.ndarray, sky: float) -> np.ndarray:
    """Rotate a crop so its light's major axis is along x, then flip the brighter half right/up.

    The angle comes from second moments of the square-root of the sky-subtracted light
    (relative to the peak), which lifts a faint companion above the PSF's own ellipticity.
    """
    side = crop.shape[0]
    light = np.clip((crop - sky) / max(float(crop.max()) - sky, 1e-12), 0.0, 1.0) ** 0.5
    yy, xx = np.mgrid[:side, :side] - side // 2
    w = light * (xx**2 + yy**2 <= (side // 2) ** 2)
    total = max(float(w.sum()), 1e-12)
    ixx, iyy, ixy = (w * xx * xx).sum() / total, (w * yy * yy).sum() / total, (w * xx * yy).sum()
    angle = 0.5 * np.degrees(np.arctan2(2.0 * ixy / total, ixx - iyy))
    # ndimage.rotate turns the array by +angle in (row, col) display terms; undo the tilt.
    turned = ndimage.rotate(crop, angle, reshape=False, order=1, mode="constant", cval=sky)
    light = turned - sky
    if light[:, side // 2 + 1 :].sum() < light[:, : side // 2].sum():
        turned = turned[:, ::-1]
    if light[side // 2 + 1 :, :].sum() < light[: side // 2, :].sum():
        turned = turned[::-1, :]
    return np.ascontiguousarray(turned, dtype=np.float32)


def normalise(crops: np.ndarray, config: PreprocessConfig) -> np.ndarray:
    """Per-stamp normalisation of (n, h, w) crops, returned flattened to (n, h*w) float32."""
    x = crops.reshape(len(crops), -1).astype(np.float64)
    method = config.normalisation
    if method == "none":
        return x.astype(np.float32)
    if method == "l2":
        # Subtract the sky (the median) so the norm measures the source, not the background.
        x = x - np.median(x, axis=1, keepdims=True)
        norm = np.linalg.norm(x, axis=1, keepdims=True)
        return (x / np.maximum(norm, 1e-12)).astype(np.float32)
    x = _minmax(x)
    if method == "log":
        x = np.log10(1.0 + _LOG_SOFTENING * x) / np.log10(1.0 + _LOG_SOFTENING)
    elif method == "rroot":
        # Eleh et al. (2024): the r-th root lifts the faint wings where a companion hides.
        x = _minmax(x ** (1.0 / config.root))
    return x.astype(np.float32)


def _minmax(x: np.ndarray) -> np.ndarray:
    lo = x.min(axis=1, keepdims=True)
    span = x.max(axis=1, keepdims=True) - lo
    return (x - lo) / np.maximum(span, 1e-12)


@dataclass(frozen=True)
class Embedding:
    """A PCA projection stored as plain arrays; zero components means the identity."""

    mean: np.ndarray  # (d,)
    components: np.ndarray  # (k, d); empty (0, d) for no embedding
    scale: np.ndarray  # (k,) divisor per component: its training std if whitened, else 1

    def transform(self, features: np.ndarray) -> np.ndarray:
        if len(self.components) == 0:
            return features.astype(np.float32)
        return (((features - self.mean) @ self.components.T) / self.scale).astype(np.float32)

    def residual(self, features: np.ndarray) -> np.ndarray:
        """Distance of each feature vector from the embedding's subspace: what PCA throws
        away. Large for stamps unlike the training set (galaxies, artefacts, bad templates)."""
        centred = features - self.mean
        if len(self.components) == 0:
            return np.zeros(len(features))
        kept = (centred @ self.components.T) @ self.components
        return np.linalg.norm(centred - kept, axis=1)


def features_from_crops(
    crops: np.ndarray, config: PreprocessConfig, embedding: Embedding
) -> np.ndarray:
    """Normalised, embedded feature vectors (n, k) from prepared crops."""
    return embedding.transform(normalise(crops, config))
