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
   r-th root local min-max, l2) and a PCA projection (or none, the flattened pixels),
   optionally followed by eight windowed moments of the crop's light (``crop_moments``: sizes
   along and across the major axis, ellipticity, skewness and kurtosis along it,
   concentration, peak fraction, centroid offset), which see a companion's elongation and
   lopsidedness in a few numbers where a 16-component PCA spreads it thinly.

The PCA and the moments' standardisation are stored as plain arrays so a bundle needs no
pickle; they are fitted in ``stampflow.training.blend.fit``.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass, field, fields

import numpy as np
from scipy import ndimage, special

from stampflow.classifiers.blend.spec import SPEC, BlendSpec
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
    moments: bool = False  # append ``crop_moments`` to the PCA components

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
        pca = f"pca{self.pca_components}" if self.pca_components else "none"
        return f"{pca}+moments" if self.moments else pca


def _axis_centre_candidates(size: int) -> tuple[int, ...]:
    """Possible source indices along one axis of a stamp that may have been cut on one side."""
    nominal = FULL_STAMP // 2
    if size >= FULL_STAMP:
        return (size // 2,)
    # Cut on the high side keeps index 31; cut on the low side shifts it to size - 32.
    return tuple(sorted({min(nominal, size - 1), max(size - 1 - nominal, 0)}))


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


@dataclass(frozen=True)
class PreparedBatch:
    """``prepare_each``'s answer: the usable stamps prepared in one pass, and why each of
    the others is unusable. ``kept`` holds the input index of each row of ``prepared``."""

    prepared: Prepared
    kept: np.ndarray  # (n_ok,) int, ascending
    errors: dict[int, PacketError]  # input index -> why that stamp is unusable


def prepare(
    stamps: Sequence[np.ndarray],
    config: PreprocessConfig,
    field: str = "stamp",
    spec: BlendSpec = SPEC,
) -> Prepared:
    """Crop and NaN-fill a list of stamps of any shape into an (n, crop, crop) float32 array.

    Raises ``PacketError(reason="bad_stamp")`` naming the index of a stamp with too few
    finite pixels to estimate its sky, so a caller can skip just that one.
    """
    batch = prepare_each(stamps, config, field, spec=spec)
    if batch.errors:
        raise batch.errors[min(batch.errors)]
    return batch.prepared


def prepare_stamps(
    stamps: Sequence[np.ndarray],
    config: PreprocessConfig,
    field: str = "stamp",
    spec: BlendSpec = SPEC,
) -> np.ndarray:
    """The crops of ``prepare``."""
    return prepare(stamps, config, field, spec).crops


def prepare_each(
    stamps: Sequence[np.ndarray],
    config: PreprocessConfig,
    field: str = "stamp",
    names: Sequence[str] | None = None,
    spec: BlendSpec = SPEC,
) -> PreparedBatch:
    """``prepare`` for every usable stamp at once; each unusable one gets its ``PacketError``.

    Vectorised: the stamps are laid on one NaN canvas (edge-cut ones in its top-left corner,
    NaN being "off the stamp" already) and every step runs on the whole stack, the rotation
    as one ``map_coordinates`` call. The arithmetic is the per-stamp code's, in the same
    dtypes and summation order, so the results equal what the per-stamp code gave bit for
    bit (tests/classifiers/blend/test_fast_paths.py keeps that code and checks). An error
    names its stamp ``names[i]`` (default ``stamp i``).
    """
    names = [f"stamp {i}" for i in range(len(stamps))] if names is None else list(names)
    arrays = [np.asarray(s, dtype=np.float32) for s in stamps]
    errors: dict[int, PacketError] = {}
    shaped = []
    for i, a in enumerate(arrays):
        if a.ndim != 2 or min(a.shape, default=0) < spec.min_side:
            side = spec.min_side
            errors[i] = PacketError(
                "bad_stamp",
                f"{names[i]} has shape {a.shape}, need 2-D >= {side}x{side}",
                field=field,
            )
        else:
            shaped.append(i)
    index = np.asarray(shaped, dtype=int)
    if len(index):
        heights = np.array([arrays[i].shape[0] for i in shaped])
        widths = np.array([arrays[i].shape[1] for i in shaped])
        if (heights == heights[0]).all() and (widths == widths[0]).all():
            canvas = np.stack([arrays[i] for i in shaped])
        else:
            canvas = np.full((len(index), heights.max(), widths.max()), np.nan, np.float32)
            for k, i in enumerate(shaped):
                canvas[k, : heights[k], : widths[k]] = arrays[i]
        canvas = np.where(np.abs(canvas) < spec.fill_sentinel, canvas, np.nan)  # inf too
        count = np.isfinite(canvas).reshape(len(index), -1).sum(axis=1)
        good = count >= spec.min_finite_fraction * heights * widths
        for i, c in zip(index[~good], count[~good], strict=True):
            errors[int(i)] = PacketError(
                "bad_stamp", f"{names[i]} has only {int(c)} finite pixels", field=field
            )
        index, canvas = index[good], canvas[good]
        heights, widths, count = heights[good], widths[good], count[good]
    if not len(index):
        side = config.crop
        empty = Prepared(np.empty((0, side, side), np.float32), np.empty(0), np.empty(0))
        return PreparedBatch(empty, index, errors)
    crops, sky, peak_snr, coverage = _crop_canvas(
        canvas, heights, widths, count, config, spec.stamp_size
    )
    crops = fill_nan(crops, sky)
    if config.orient:
        crops = orient_stack(crops, sky)
    return PreparedBatch(Prepared(crops, peak_snr, coverage), index, errors)


def _median_of_finite(flat: np.ndarray, count: np.ndarray) -> np.ndarray:
    """Row-wise ``np.median`` of the finite values of (m, p) float32 rows, NaN elsewhere.

    NaN sorts last, so row r's finite values are its first ``count[r]`` ordered ones; the
    median is the mean of the two middle ones, in float32 as ``np.median`` computes it.
    Rows with the most common count (all 63x63 stamps without a masked pixel) take one
    ``np.partition``, the others a sort.
    """
    lo = np.empty(len(flat), dtype=np.float32)
    hi = np.empty(len(flat), dtype=np.float32)
    values, counts = np.unique(count, return_counts=True)
    common = values[np.argmax(counts)]
    same = count == common
    k = int(common) // 2
    part = np.partition(flat[same], k, axis=1)
    hi[same] = part[:, k]
    lo[same] = part[:, k] if common % 2 else part[:, :k].max(axis=1)
    if not same.all():
        ordered = np.sort(flat[~same], axis=1)
        rows, c = np.arange(len(ordered)), count[~same]
        lo[~same], hi[~same] = ordered[rows, (c - 1) // 2], ordered[rows, c // 2]
    return (lo + hi) / np.float32(2)


def _gather(stack: np.ndarray, rows: np.ndarray, cols: np.ndarray, half: int) -> np.ndarray:
    """(m, 2*half+1, 2*half+1) windows of the stack centred on (rows, cols), contiguous,
    NaN where they leave the stack."""
    offsets = np.arange(-half, half + 1)
    r = rows[:, None] + offsets
    c = cols[:, None] + offsets
    r_in = (r >= 0) & (r < stack.shape[1])
    c_in = (c >= 0) & (c < stack.shape[2])
    r, c = np.clip(r, 0, stack.shape[1] - 1), np.clip(c, 0, stack.shape[2] - 1)
    out = stack[np.arange(len(stack))[:, None, None], r[:, :, None], c[:, None, :]]
    if not (r_in.all() and c_in.all()):
        out[~(r_in[:, :, None] & c_in[:, None, :])] = np.nan
    return out


def _axis_candidates(size: np.ndarray, full: int = FULL_STAMP) -> tuple[np.ndarray, np.ndarray]:
    """``_axis_centre_candidates`` per stamp as (first, second); equal when there is one.
    ``full`` is the survey's nominal stamp side."""
    nominal = full // 2
    a = np.where(size >= full, size // 2, np.minimum(nominal, size - 1))
    b = np.where(size >= full, size // 2, np.maximum(size - 1 - nominal, 0))
    return np.minimum(a, b), np.maximum(a, b)


def _crop_canvas(
    canvas: np.ndarray,
    heights: np.ndarray,
    widths: np.ndarray,
    count: np.ndarray,
    config: PreprocessConfig,
    full: int = FULL_STAMP,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Crops (NaN off stamp), sky, peak S/N and coverage of usable stamps laid in the
    top-left corner of a NaN canvas (m, H, W), masked pixels already NaN."""
    m = len(canvas)
    flat = canvas.reshape(m, -1)
    sky = _median_of_finite(flat, count)
    noise = 1.4826 * _median_of_finite(np.abs(flat - sky[:, None]), count).astype(np.float64)
    filled = np.where(np.isfinite(canvas), canvas, sky[:, None, None])
    if canvas.shape[1:] != (heights.min(), widths.min()):
        rr = np.arange(canvas.shape[1])[None, :, None]
        cc = np.arange(canvas.shape[2])[None, None, :]
        off_stamp = (rr >= heights[:, None, None]) | (cc >= widths[:, None, None])
        filled[off_stamp] = np.nan
    # The brightest 5x5 window of the sky-filled stamp among the candidate centres (float32
    # sums in the candidates' order, the first maximum wins); one leaving the stamp is NaN
    # and never wins, and without any the centre of the stamp stays.
    best_row, best_col = heights // 2, widths // 2
    best_flux = np.full(m, -np.inf)
    for row in _axis_candidates(heights, full):
        for col in _axis_candidates(widths, full):
            flux = _gather(filled, row, col, 2).reshape(m, -1).sum(axis=1)
            better = flux.astype(np.float64) > best_flux
            best_row = np.where(better, row, best_row)
            best_col = np.where(better, col, best_col)
            best_flux = np.where(better, flux, best_flux)
    rows, cols = best_row, best_col
    if config.recentre_px:
        near = _gather(filled, rows, cols, config.recentre_px).reshape(m, -1)
        near = np.where(np.isfinite(near), near, -np.inf)
        dr, dc = np.divmod(np.argmax(near, axis=1), 2 * config.recentre_px + 1)
        rows, cols = rows + dr - config.recentre_px, cols + dc - config.recentre_px
    half = config.crop // 2
    crops = _gather(canvas, rows, cols, half)
    coverage = np.isfinite(crops).reshape(m, -1).mean(axis=1)
    centre = crops[:, half - 1 : half + 2, half - 1 : half + 2].reshape(m, -1)
    peak_value = np.maximum(np.where(np.isnan(centre), -np.inf, centre).max(axis=1), sky)
    peak = peak_value.astype(np.float64) - sky.astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        peak_snr = np.where(noise > 0, peak / noise, 0.0)  # a flat stamp shows no source
    return crops, sky, peak_snr, coverage


def orient(crop: np.ndarray, sky: float) -> np.ndarray:
    """Rotate a crop so its light's major axis is along x, then flip the brighter half right/up
    (one crop; ``orient_stack`` does a stack at once)."""
    crop = np.asarray(crop, dtype=np.float32)
    return orient_stack(crop[None], np.array([sky], dtype=np.float32))[0]


def orient_stack(crops: np.ndarray, sky: np.ndarray) -> np.ndarray:
    """Rotate each crop (n, s, s) so its light's major axis is along x, then flip the
    brighter half right/up.

    The angle comes from second moments of the square-root of the sky-subtracted light
    (relative to the peak), which lifts a faint companion above the PSF's own ellipticity.
    The rotation is ``ndimage.rotate(crop, angle, reshape=False, order=1, mode="constant",
    cval=sky)`` per crop, done as one ``map_coordinates`` over the stack: the same sampling
    coordinates, the stack index as an exact integer coordinate, NaN as the constant so each
    crop's own sky can replace it afterwards.
    """
    n, side = len(crops), crops.shape[1]
    half = side // 2
    crops = np.asarray(crops, dtype=np.float32)
    sky = np.asarray(sky, dtype=np.float32)
    flat = crops.reshape(n, -1)
    span = np.maximum(flat.max(axis=1).astype(np.float64) - sky.astype(np.float64), 1e-12)
    light = (flat - sky[:, None]) / span.astype(np.float32)[:, None]
    light = np.clip(light, 0.0, 1.0) ** 0.5
    yy, xx = np.mgrid[:side, :side] - half
    xx, yy = xx.ravel(), yy.ravel()
    w = light * (xx**2 + yy**2 <= half**2)
    total = np.maximum(w.sum(axis=1).astype(np.float64), 1e-12)
    ixx = (w * xx * xx).sum(axis=1) / total
    iyy = (w * yy * yy).sum(axis=1) / total
    ixy = (w * xx * yy).sum(axis=1)
    angle = 0.5 * np.degrees(np.arctan2(2.0 * ixy / total, ixx - iyy))
    # ndimage.rotate's affine map: input = R @ output + offset, R = [[c, s], [-s, c]].
    c, s = special.cosdg(angle), special.sindg(angle)
    centre = (side - 1) / 2
    off_r = centre - (c * centre + s * centre)
    off_c = centre - (-s * centre + c * centre)
    i = np.arange(side, dtype=np.float64)[None, :, None]
    j = np.arange(side, dtype=np.float64)[None, None, :]
    coords = np.empty((3, n, side, side))
    coords[0] = np.arange(n, dtype=np.float64)[:, None, None]
    coords[1] = (c[:, None, None] * i + s[:, None, None] * j) + off_r[:, None, None]
    coords[2] = (-s[:, None, None] * i + c[:, None, None] * j) + off_c[:, None, None]
    turned = ndimage.map_coordinates(
        crops, coords, output=np.float32, order=1, mode="constant", cval=np.nan, prefilter=False
    )
    turned = np.where(np.isnan(turned), sky[:, None, None], turned)
    light = turned - sky[:, None, None]
    right = np.ascontiguousarray(light[:, :, half + 1 :]).reshape(n, -1).sum(axis=1)
    left = np.ascontiguousarray(light[:, :, :half]).reshape(n, -1).sum(axis=1)
    top = np.ascontiguousarray(light[:, half + 1 :, :]).reshape(n, -1).sum(axis=1)
    bottom = np.ascontiguousarray(light[:, :half, :]).reshape(n, -1).sum(axis=1)
    turned[right < left] = turned[right < left, :, ::-1]
    turned[top < bottom] = turned[top < bottom, ::-1, :]
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


N_MOMENTS = 8
_INNER_RADIUS = 2.0  # px: the core whose share of the light is the concentration
_WINDOW_SIGMA = 3.0  # px: the Gaussian window that keeps far noise out of the moments


def crop_moments(features: np.ndarray) -> np.ndarray:
    """Eight shape numbers (n, 8) of normalised, oriented square crops flattened to (n, d).

    The light is the crop less its median (the sky) under a Gaussian window of 3 px about
    the centre: unclipped, so noise averages out instead of inflating the sizes of faint
    stars, and windowed, so the far noise-only pixels do not dominate. From it: log second
    moments along x (the major axis after ``orient``) and y about the centroid, ellipticity
    (Ixx - Iyy) / (Ixx + Iyy), skewness and kurtosis along x, the share of the light within
    2 px of the centre, the brightest pixel's share, and the centroid's offset along x. A
    single star is round-ish, symmetric and concentrated; a companion stretches, skews and
    dilutes it.
    """
    x = features.astype(np.float64)
    basis = _moment_basis(int(round(np.sqrt(x.shape[1]))))
    # Every sum is linear in the light, (x - median) * window: one product for all of them,
    # the central moments from the raw ones about the centre.
    above_sky = x - np.median(x, axis=1, keepdims=True)
    sums = above_sky @ basis
    total = np.maximum(sums[:, 0], 1e-12)
    cx, cy, s_xx, s_yy, s_x3, s_x4, s_inner = (sums[:, j] / total for j in range(1, 8))
    ixx = np.maximum(s_xx - cx**2, 1e-6)
    iyy = np.maximum(s_yy - cy**2, 1e-6)
    skew = (s_x3 - 3 * cx * s_xx + 2 * cx**3) / ixx**1.5
    kurt = (s_x4 - 4 * cx * s_x3 + 6 * cx**2 * s_xx - 3 * cx**4) / ixx**2
    peak = (above_sky * basis[:, 0]).max(axis=1) / total
    out = [np.log(ixx), np.log(iyy), (ixx - iyy) / (ixx + iyy), skew, kurt, s_inner, peak, cx]
    return np.stack(out, axis=1)


@functools.cache
def _moment_basis(side: int) -> np.ndarray:
    """(side^2, 8) columns: the window times 1, x, y, x^2, y^2, x^3, x^4 and the inner disc."""
    half = side // 2
    yy, xx = np.mgrid[:side, :side] - half
    xx, yy = xx.ravel().astype(np.float64), yy.ravel().astype(np.float64)
    r2 = xx**2 + yy**2
    window = np.exp(-r2 / (2 * _WINDOW_SIGMA**2))
    columns = [np.ones_like(xx), xx, yy, xx**2, yy**2, xx**3, xx**4, r2 <= _INNER_RADIUS**2]
    basis = window[:, None] * np.stack(columns, axis=1)
    basis.flags.writeable = False
    return basis


_MOMENT_CLIP = 6.0  # standardised moments are clipped here so no outlier dominates distances


def _empty() -> np.ndarray:
    return np.zeros(0, np.float32)


@dataclass(frozen=True)
class Embedding:
    """A PCA projection stored as plain arrays, zero components meaning the identity; with
    ``moment_centre``/``moment_scale`` non-empty, the standardised ``crop_moments`` follow."""

    mean: np.ndarray  # (d,)
    components: np.ndarray  # (k, d); empty (0, d) for no embedding
    scale: np.ndarray  # (k,) divisor per component: its training std if whitened, else 1
    moment_centre: np.ndarray = field(default_factory=_empty)  # (8,) training medians, or ()
    moment_scale: np.ndarray = field(default_factory=_empty)  # (8,) robust spreads (1.4826 MAD)

    def transform(self, features: np.ndarray) -> np.ndarray:
        return self.embed(features)[0]

    def embed(self, features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The embedded features (n, k [+ 8]) and each stamp's largest |standardised moment|
        (n,): how far its shape lies outside what training showed (a cosmic ray is far too
        small and peaked, a galaxy too wide); 0 without moments. The moments are computed
        once for both."""
        if len(self.components) == 0:
            out = features.astype(np.float32)
        else:
            out = (((features - self.mean) @ self.components.T) / self.scale).astype(np.float32)
        if len(self.moment_centre) == 0:
            return out, np.zeros(len(features))
        z = (crop_moments(features) - self.moment_centre) / self.moment_scale
        clipped = np.clip(z, -_MOMENT_CLIP, _MOMENT_CLIP).astype(np.float32)
        return np.hstack([out, clipped]), np.abs(z).max(axis=1)

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
