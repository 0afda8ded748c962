"""Multiband stamps to network input, the one code path for training and serving (numpy).

``to_grid`` brings each band to the network's grid (the spec's 0.063"/px, 64x64):
block-averaged when its pixels are an integer fraction of that scale, as F200W at 0.031"/px
is, bilinearly resampled otherwise, then centre-cropped or NaN-padded. ``preprocess`` turns
the (n, 4, 64, 64) surface brightness into what the CNN sees.

No torch here: serving runs without it. The numerics are those the shipped network was
trained with, when this module ran on torch: the resampling is ``F.interpolate(...,
mode="bilinear", align_corners=False)``, the bad-pixel fill ``F.conv2d`` with a 3x3 box,
the medians ``torch.nanmedian`` (the lower middle value of an even count). Training code
that needs tensors converts at its boundary (``torch.from_numpy(preprocess(x))``).
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from stampflow.classifiers.morphology.spec import SPEC

MAD_TO_SIGMA = 1.4826  # a Gaussian's standard deviation per unit of median absolute deviation


def to_grid(stamp: np.ndarray, pixel_scale: float, size: int = SPEC.input_size) -> np.ndarray:
    """One band (H, W) at ``pixel_scale`` arcsec/px -> (size, size) on the network grid."""
    if pixel_scale <= 0 or not np.isfinite(pixel_scale):
        raise ValueError(f"pixel scale must be a positive number, got {pixel_scale}")
    image = np.asarray(stamp, dtype=np.float32)
    ratio = SPEC.grid_scale_arcsec / pixel_scale
    factor = round(ratio)
    if factor >= 1 and abs(ratio - factor) / ratio < SPEC.scale_tolerance:
        if factor > 1:  # block average (surface brightness is an average over the area)
            h, w = (image.shape[0] // factor) * factor, (image.shape[1] // factor) * factor
            image = image[:h, :w].reshape(h // factor, factor, w // factor, factor)
            image = np.nanmean(image, axis=(1, 3))
    else:
        h, w = image.shape
        out_h, out_w = max(round(h / ratio), 1), max(round(w / ratio), 1)
        image = bilinear(image, out_h, out_w)
    return _centre(image, size)


def bilinear(image: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    """(H, W) -> (out_h, out_w), as ``F.interpolate(mode="bilinear", align_corners=False)``
    with an output size: pixel centres mapped through the size ratio, clamped at the edges;
    a NaN among a pixel's four taps makes it NaN (as in torch, even at weight 0)."""
    image = np.asarray(image, dtype=np.float32)
    r0, r1, rw0, rw1 = _taps(image.shape[0], out_h)
    c0, c1, cw0, cw1 = _taps(image.shape[1], out_w)
    across = cw0 * image[:, c0] + cw1 * image[:, c1]  # (H, out_w)
    return rw0[:, None] * across[r0] + rw1[:, None] * across[r1]


def _taps(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Source indices and weights along one axis: torch's ``area_pixel_compute_source_index``
    for align_corners=False, ``scale * (dst + 0.5) - 0.5`` with the float32 scale, rounded
    once to float32 as torch's fused multiply-add does (exact in float64 first)."""
    scale = np.float64(np.float32(n_in) / np.float32(n_out))
    source = (scale * (np.arange(n_out, dtype=np.float64) + 0.5) - 0.5).astype(np.float32)
    source = np.maximum(source, np.float32(0))
    first = source.astype(np.int64)  # floor: source >= 0
    second = np.minimum(first + 1, n_in - 1)
    weight = (source - first).astype(np.float32)
    return first, second, np.float32(1) - weight, weight


def _centre(image: np.ndarray, size: int) -> np.ndarray:
    out = np.full((size, size), np.nan, dtype=np.float32)
    h, w = image.shape
    src_y, src_x = max((h - size) // 2, 0), max((w - size) // 2, 0)
    dst_y, dst_x = max((size - h) // 2, 0), max((size - w) // 2, 0)
    ch, cw = min(h, size), min(w, size)
    out[dst_y : dst_y + ch, dst_x : dst_x + cw] = image[src_y : src_y + ch, src_x : src_x + cw]
    return out


def fill_bad_pixels(stamps: Any, passes: int = 3) -> np.ndarray:
    """NaN pixels (DO_NOT_USE: saturated cores, bad pixels) filled from their valid
    neighbours by normalised convolution (a masked 3x3 mean, repeated so larger holes fill
    from their rims). A saturated star's core then stays a bright plateau instead of turning
    into a dark hole that looks like a ring; what is still NaN after ``passes`` (edge cuts)
    is left for ``preprocess`` to set to sky.

    ``stamps``: (..., H, W), a numpy array or anything ``np.asarray`` reads (a CPU tensor);
    returns a new float32 array."""
    x = np.asarray(stamps, dtype=np.float32).copy()
    missing = np.isnan(x)
    if not missing.any():
        return x
    for _ in range(passes):
        valid = (~missing).astype(np.float32)
        total = _box3(np.nan_to_num(x, nan=0.0) * valid)
        count = _box3(valid)
        fill = missing & (count > 0)
        x = np.where(fill, total / np.maximum(count, np.float32(1.0)), x)
        missing &= ~fill
        if not missing.any():
            break
    return x


def _box3(a: np.ndarray) -> np.ndarray:
    """Sum over each pixel's 3x3 neighbourhood in the last two axes, zero outside: three rows,
    then three columns of those sums."""
    h, w = a.shape[-2:]
    p = np.pad(a, [(0, 0)] * (a.ndim - 2) + [(1, 1), (1, 1)])
    rows = p[..., 0:h, :] + p[..., 1 : h + 1, :] + p[..., 2 : h + 2, :]
    return rows[..., 0:w] + rows[..., 1 : w + 1] + rows[..., 2 : w + 2]


def _sky_and_noise(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per band of (..., H, W) images, NaNs ignored: the sky (median) and the noise
    (1.4826 x the median absolute deviation from it), each shaped (..., 1, 1)."""
    sky = _nanmedian(x)[..., None, None]
    noise = _nanmedian(np.abs(x - sky))[..., None, None] * np.float32(MAD_TO_SIGMA)
    return sky, noise


def _nanmedian(x: np.ndarray) -> np.ndarray:
    """Median over the last two axes ignoring NaNs, the lower middle value of an even count
    (``torch.nanmedian``'s convention); NaN where every pixel is."""
    flat = x.reshape(*x.shape[:-2], -1)
    nan = np.isnan(flat)
    if not nan.any():
        kth = (flat.shape[-1] - 1) // 2
        return np.partition(flat, kth, axis=-1)[..., kth]
    count = flat.shape[-1] - nan.sum(axis=-1)
    index = np.maximum((count - 1) // 2, 0)[..., None]
    median = np.take_along_axis(np.sort(flat, axis=-1), index, axis=-1)[..., 0]  # NaNs last
    return np.where(count > 0, median, np.float32(np.nan))


def preprocess(stamps: Any) -> np.ndarray:
    """(n, 4, H, W) surface brightness -> network input, float32: bad pixels filled
    (``fill_bad_pixels``), then per band, subtract the sky and express pixels in units of
    the noise (``_sky_and_noise``), then an asinh stretch.

    In noise units the input no longer depends on flux calibration, exposure or distance
    dimming, only on what the detector could see; asinh keeps faint arms and bright stars on
    one scale. NaN pixels left (edge cuts) become sky (0).
    """
    x = fill_bad_pixels(stamps)
    sky, noise = _sky_and_noise(x)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        out = np.arcsinh((x - sky) / (np.float32(3.0) * np.maximum(noise, np.float32(1e-12))))
    out /= np.float32(3.0)
    return np.nan_to_num(out, nan=0.0, posinf=0.0, neginf=0.0)


DETECTION_SNR = 5.0  # the usual detection limit


def detected(inputs: np.ndarray, threshold: float = DETECTION_SNR) -> np.ndarray:
    """(n,) bool: does the preprocessed (n, 4, H, W) ``inputs`` hold a source, seen at one
    place in at least two bands: a 3x3 aperture whose summed signal reaches ``threshold``
    times its noise in both, each pixel counted at most at ``threshold`` (so one hot pixel
    or the brightest pixel of a cosmic ray cannot make a detection alone)? Bands are
    separate exposures: a cosmic ray or snowball is in one only, stars and dust in several.
    The stretch is undone (back to noise units). Of 700 simulated targets (training and
    crowded-detector mixes, dust from F444W peak S/N 6) all are detected, of 200 pure-noise
    stamps with detector defects 2%. Without a source there is no morphology to read: the
    plugin flags such stamps whatever the network says."""
    z = np.float32(3.0) * np.sinh(np.float32(3.0) * np.asarray(inputs, np.float32))
    z = np.minimum(z, np.float32(threshold))
    aperture_snr = _box3(z) / np.float32(3.0)  # a sum of 9 unit-noise pixels has noise 3
    return _second_largest(aperture_snr).reshape(len(z), -1).max(axis=1) >= threshold


def _second_largest(a: np.ndarray) -> np.ndarray:
    """(n, b, ...) -> (n, ...): the second largest of the b values along axis 1, as
    ``np.partition(a, -2, axis=1)[:, -2]`` gives it: the largest minimum of a pair of them
    (the top two's minimum is it, every other pair's is no larger), elementwise over whole
    bands instead of a selection per pixel."""
    bands = range(a.shape[1])
    pairs = [np.minimum(a[:, i], a[:, j]) for i in bands for j in bands if i < j]
    return functools.reduce(np.maximum, pairs)


def saturated_core(stamps: np.ndarray, half: int = 3, least: int = 3) -> np.ndarray:
    """(n,) bool: is the target's core saturated at the dust's wavelengths: at least
    ``least`` DO_NOT_USE (NaN) pixels in the central (2 half)^2 of F356W or F444W of the raw
    (n, 4, H, W) stamps? Around such a star faint dust hides under the PSF's wings, so
    ``no_gas`` there is not an established absence (the study's ``faint_dust`` stress set).
    Random bad pixels (under 1%) reach three in that box in under 0.5% of stamps."""
    x = np.asarray(stamps)
    c_y, c_x = x.shape[-2] // 2, x.shape[-1] // 2
    core = np.isnan(x[:, 2:, c_y - half : c_y + half, c_x - half : c_x + half])
    return core.sum(axis=(2, 3)).max(axis=1) >= least
