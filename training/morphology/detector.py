"""The exposure and the detector: what turns a noiseless NIRCam scene into a calibrated stamp.

Per band, at its native scale (F200W on the 0.0315" grid, then binned 2x2; the long
wavelengths binned to 0.063" first): sky with an optional gradient, Poisson noise of sky,
source and dark current over the exposure, read noise, gain and digitisation, dark
subtracted. Then what a calibrated image keeps of the detector:

- saturation: a pixel whose first group (exposure / groups) collects more than the full well
  has no usable ramp; the pipeline marks it DO_NOT_USE (NaN) or, in the ``bleed`` family,
  its charge spills along the column;
- cosmic-ray residuals that jump detection missed, and NIRCam "snowballs" (large hits with a
  bright core), each in one band only (bands are separate exposures);
- hot pixels, DO_NOT_USE (NaN) pixels;
- 1/f noise: correlated offsets along the detector rows (fast read direction), which appear
  as stripes at the detector's angle on the sky;
- drizzle: resampling onto the output grid with a pixfrac kernel, which correlates the
  noise of neighbouring pixels (and smooths the image a little).

The development family (``dev_defects``) renders the same kinds of defect a third way, so
that recipes aimed at them can be chosen without the held-out family: a saturated pixel
keeps the full-well rate (a flat-topped core, not NaN) and its excess charge blooms into
an exponential halo along one detector axis (``_bloom``); offsets come as a step between
two readout amplifiers plus a slow drift along the rows (``_amplifier_offsets``); the
resampling is a bilinear sub-pixel shift (``_resample``).
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage

from stampflow.training.morphology.scene import SceneFamily
from stampflow.training.morphology.sim import (
    DARK_E_PER_S,
    E_PER_S_PER_MJYSR,
    GAIN_E_PER_ADU,
    GRID,
    GRID_SCALE,
    NATIVE_SCALE,
    READ_NOISE_E,
    SKY_MJY_SR,
    _bin2,
    pixel_noise_mjysr,
)

FULL_WELL_E = 8.0e4


def _log_uniform(rng: np.random.Generator, low: float, high: float) -> float:
    if low <= 0 or high <= low:
        return float(low)
    return float(np.exp(rng.uniform(math.log(low), math.log(high))))


def _plane(n: int, amplitude: float, angle: float) -> np.ndarray:
    axis = np.linspace(-0.5, 0.5, n)
    x, y = np.meshgrid(axis, axis)
    return amplitude * (x * math.cos(angle) + y * math.sin(angle))


def _bleed(electrons: np.ndarray, full_well: float) -> np.ndarray:
    """Clip at the full well and spill the excess equally up and down each column."""
    out = electrons.copy()
    for col in np.unique(np.nonzero(electrons > full_well)[1]):
        column = out[:, col]
        excess = float(np.clip(column - full_well, 0, None).sum())
        column[:] = np.minimum(column, full_well)
        rows = np.nonzero(electrons[:, col] > full_well)[0]
        up, down = rows.max() + 1, rows.min() - 1
        for direction, start in ((1, up), (-1, down)):
            left, i = excess / 2, start
            while left > 0 and 0 <= i < len(column):
                room = full_well - column[i]
                column[i] += min(room, left)
                left -= room
                i += direction
    return out


def _bloom(electrons: np.ndarray, full_well: float, rng: np.random.Generator) -> np.ndarray:
    """Clip at the full well; the excess spreads along one axis with an exponential profile
    (length 2-8 px), a quarter of it into the neighbouring columns."""
    excess = np.clip(electrons - full_well, 0, None)
    length = rng.uniform(2.0, 8.0)
    offsets = np.arange(-24, 25)
    kernel = np.exp(-np.abs(offsets) / length)
    kernel[24] = 0.0  # the saturated pixel itself stays at the full well
    kernel /= kernel.sum()
    axis = int(rng.integers(0, 2))
    halo = ndimage.convolve1d(excess, kernel, axis=axis, mode="constant")
    halo = 0.75 * halo + 0.125 * (np.roll(halo, 1, 1 - axis) + np.roll(halo, -1, 1 - axis))
    return np.minimum(electrons, full_well) + halo


def _amplifier_offsets(n: int, rng: np.random.Generator) -> np.ndarray:
    """(n, n) offsets in noise units: a step at a random column between two amplifiers and
    a cosine drift along the rows."""
    step = np.where(np.arange(n) < rng.integers(8, n - 8), 0.0, rng.uniform(0.3, 1.5))
    period = rng.uniform(20.0, 200.0)
    drift = rng.uniform(0.2, 0.8) * np.cos(2 * math.pi * np.arange(n) / period + rng.uniform(0, 7))
    return step[None, :] + drift[:, None]


def _resample(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A bilinear shift by a random sub-pixel offset; an output pixel that takes a quarter
    or more of its value from a NaN pixel is NaN (so every bad pixel leaves one to four)."""
    shift = rng.uniform(0.2, 0.8, size=2)
    missing = np.isnan(image)
    filled = np.where(missing, np.nanmedian(image), image)
    out = ndimage.shift(filled, shift, order=1, mode="nearest")
    moved = ndimage.shift(missing.astype(float), shift, order=1, mode="constant") >= 0.25 - 1e-9
    return np.where(moved, np.nan, out)


def _cosmic_rays(image: np.ndarray, rng: np.random.Generator, n: int, sigma: float) -> None:
    size = image.shape[0]
    for _ in range(n):
        length = int(rng.integers(1, 7))
        angle = rng.uniform(0, math.pi)
        x0, y0 = rng.uniform(0, size, size=2)
        steps = np.arange(length)
        xs = np.clip((x0 + steps * math.cos(angle)).astype(int), 0, size - 1)
        ys = np.clip((y0 + steps * math.sin(angle)).astype(int), 0, size - 1)
        image[ys, xs] += sigma * _log_uniform(rng, 5.0, 300.0)


def _snowball(image: np.ndarray, rng: np.random.Generator, sigma: float) -> None:
    size = image.shape[0]
    radius = rng.uniform(1.5, 5.0)
    cx, cy = rng.uniform(0, size, size=2)
    y, x = np.indices(image.shape)
    r = np.hypot(x - cx, y - cy)
    image += sigma * rng.uniform(10, 60) * (r < radius) + sigma * rng.uniform(50, 400) * (r < 1)


def _one_over_f(n: int, rng: np.random.Generator) -> np.ndarray:
    """Row offsets with a 1/f power spectrum, unit standard deviation."""
    freq = np.fft.rfftfreq(n)
    freq[0] = freq[1]
    spectrum = (rng.normal(size=freq.size) + 1j * rng.normal(size=freq.size)) / np.sqrt(freq)
    rows = np.fft.irfft(spectrum, n)
    return rows / max(float(rows.std()), 1e-12)


def observe(
    scene_mjysr: np.ndarray,
    family: SceneFamily,
    rng: np.random.Generator,
    exposure_s: float,
    row: dict,
) -> np.ndarray:
    """(4, 128, 128) noiseless MJy/sr on the fine grid -> (4, 64, 64) calibrated stamp."""
    out = np.empty((len(NATIVE_SCALE), GRID, GRID), dtype=np.float32)
    n_groups = int(rng.integers(3, 11))
    gradient = rng.uniform(*family.gradient_sigma) if family.gradient_sigma[1] > 0 else 0.0
    gradient_angle = rng.uniform(0, 2 * math.pi)
    stripes = rng.uniform(*family.one_over_f_sigma) if family.one_over_f_sigma[1] > 0 else 0.0
    stripe_axis = int(rng.integers(0, 2))
    sky_scale = rng.uniform(0.7, 1.5)
    hot = _log_uniform(rng, *family.hot_fraction)
    bad = _log_uniform(rng, *family.nan_fraction)
    n_saturated = 0
    for b in range(len(NATIVE_SCALE)):
        image = scene_mjysr[b] if NATIVE_SCALE[b] < GRID_SCALE else _bin2(scene_mjysr[b])
        size = image.shape[0]
        sky = SKY_MJY_SR[b] * sky_scale
        sigma = pixel_noise_mjysr(b, exposure_s, sky - SKY_MJY_SR[b])
        conv = E_PER_S_PER_MJYSR[b]
        sky_map = sky + _plane(size, gradient * sigma, gradient_angle)
        rate = np.clip(image + sky_map, 0, None) * conv
        electrons = rng.poisson(rate * exposure_s).astype(np.float64)
        electrons += rng.poisson(DARK_E_PER_S[b] * exposure_s, image.shape)
        electrons += rng.normal(0.0, READ_NOISE_E[b], image.shape)
        first_group = rate * exposure_s / n_groups
        saturated = first_group > FULL_WELL_E
        if family.bleed and saturated.any():
            electrons = _bleed(electrons / n_groups, FULL_WELL_E) * n_groups
            saturated = np.zeros_like(saturated)
        elif family.dev_defects and saturated.any():
            n_saturated += int(saturated.sum())  # counted here: not NaN below
            electrons = _bloom(electrons / n_groups, FULL_WELL_E, rng) * n_groups
            saturated = np.zeros_like(saturated)
        adu = np.round(electrons / GAIN_E_PER_ADU[b])
        image = adu * GAIN_E_PER_ADU[b] / exposure_s / conv - DARK_E_PER_S[b] / conv
        n_saturated += int(saturated.sum())
        image[saturated] = np.nan
        if stripes > 0:
            offsets = _one_over_f(size, rng) * stripes * sigma
            image += offsets[:, None] if stripe_axis == 0 else offsets[None, :]
        if family.dev_defects:
            image += _amplifier_offsets(size, rng) * sigma
        if b == int(rng.integers(0, 4)) or rng.uniform() < 0.3:  # hits land in some bands
            _cosmic_rays(image, rng, int(rng.integers(*family.cosmic_rays, endpoint=True)), sigma)
            if rng.uniform() < family.p_snowball:
                _snowball(image, rng, sigma)
        if hot > 0:
            chosen = rng.uniform(size=image.shape) < hot
            image[chosen] += sigma * np.exp(rng.uniform(np.log(10), np.log(2000), chosen.sum()))
        if bad > 0:
            image[rng.uniform(size=image.shape) < bad] = np.nan
        out[b] = image if size == GRID else _bin2(image)
    if family.drizzle:
        w = rng.uniform(0.1, 0.25)  # pixfrac-like overlap with the neighbours
        kernel = np.array([w, 1 - 2 * w, w])
        for b in range(len(out)):
            missing = np.isnan(out[b])
            filled = np.where(missing, np.nanmedian(out[b]), out[b])
            filled = ndimage.convolve1d(filled, kernel, axis=0, mode="nearest")
            filled = ndimage.convolve1d(filled, kernel, axis=1, mode="nearest")
            out[b] = np.where(missing, np.nan, filled)
    if family.dev_defects:
        out = np.stack([_resample(band, rng) for band in out]).astype(np.float32)
    row.update(
        exposure_s=exposure_s,
        n_groups=n_groups,
        sky_gradient_sigma=gradient,
        one_over_f_sigma=stripes,
        n_saturated_px=n_saturated,
    )
    return out
