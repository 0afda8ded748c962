"""Augmentation for the morphology CNN, on batches of raw stamps (n, 4, H, W) in MJy/sr.

Standard: flips and quarter turns (the sky has no preferred orientation).
Physics-informed, each applied to a random share of the batch, before the preprocessing
that turns stamps into noise units (so the network sees what the detector would):

- distance: the same system further away looks smaller (angles shrink by ``k`` up to 1.7)
  and a fainter target has a lower S/N: the sky-subtracted signal is scaled by ``f`` and
  Gaussian noise ``sigma * sqrt(1 - f**2)`` added back to keep each band's noise level;
- optics: an extra Gaussian blur of the same width (arcsec) in every band, as from
  wavefront error or pointing jitter, with the noise the blur removed put back;
- detector: a shorter effective exposure, i.e. noise added with the detector's own variance
  (sky, dark and read noise from the pixel level plus source shot noise ~ signal);
- viewing angle: a rotation by any angle with a foreshortening of up to cos(35 deg) along a
  random axis, as if the structure were seen at a different inclination;
- detector artefacts (``p_artefacts``, ``artefacts``), on the raw stamp before its bad
  pixels are filled: bleed trails out of saturated (NaN) cores along the detector's columns,
  row or column offsets (white plus a random walk) and noise correlated between neighbouring
  pixels by a small Gaussian kernel. The held-out ``crowded_detector`` scene family makes
  the same kinds of defect with other code and other physics (``detector.py``: the excess
  charge spilled to the full well, a 1/f spectrum, a 3-tap drizzle kernel), so the test
  asks whether training on one rendering of a defect carries to another.

Geometric changes sample the nearest pixel (so the noise stays white and at its level);
pixels that come from outside the stamp are filled with sky noise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage

from stampflow.classifiers.morphology.preprocess import fill_bad_pixels
from stampflow.training.morphology.sim import E_PER_S_PER_MJYSR, GRID_SCALE


@dataclass(frozen=True)
class AugmentConfig:
    physics: bool = True
    p_distance: float = 0.5
    p_optics: float = 0.3
    p_detector: float = 0.4
    p_view: float = 0.5
    min_dimming: float = 0.35  # smallest brightness factor (S/N drop of a fainter target)
    max_zoom_out: float = 1.7  # the same target up to 1.7x further looks 1.7x smaller
    max_blur_arcsec: float = 0.08  # extra Gaussian sigma
    min_exposure_share: float = 0.3
    max_tilt_deg: float = 35.0
    exposure_s: float = 1200.0
    # On in the shipped recipe since 2.3.0 (the study's family-matrix text gives the record).
    p_artefacts: float = 0.3
    max_stripe_sigma: float = 1.0  # row/column offsets, in units of the pixel noise
    max_bleed_px: int = 16  # trail length out of a saturated core, each way

    def __post_init__(self) -> None:
        for name in ("p_distance", "p_optics", "p_detector", "p_view", "p_artefacts"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be a probability, got {getattr(self, name)}")
        if not 0 < self.min_dimming <= 1 or not 0 < self.min_exposure_share <= 1:
            raise ValueError("min_dimming and min_exposure_share must lie in (0, 1]")
        if self.max_zoom_out < 1:
            raise ValueError(f"max_zoom_out must be >= 1, got {self.max_zoom_out}")


def _sky_and_noise(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    flat = x.flatten(2)
    sky = flat.median(dim=2).values[..., None, None]
    noise = (x - sky).abs().flatten(2).median(dim=2).values[..., None, None] * 1.4826
    return sky, noise


def flips_and_turns(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    n = x.shape[0]
    flip = torch.rand(n, generator=gen) < 0.5
    x = torch.where(flip[:, None, None, None], x.flip(-1), x)
    turns = torch.randint(0, 4, (n,), generator=gen)
    out = x.clone()
    for k in (1, 2, 3):
        chosen = turns == k
        if chosen.any():
            out[chosen] = torch.rot90(x[chosen], k, dims=(-2, -1))
    return out


def _gaussian_blur(x: torch.Tensor, sigma_px: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Blur each image with its own Gaussian; also returns the noise reduction factor."""
    radius = 4
    grid = torch.arange(-radius, radius + 1, dtype=x.dtype)
    kernel = torch.exp(-0.5 * (grid[None, :] / sigma_px[:, None].clamp_min(1e-3)) ** 2)
    kernel = kernel / kernel.sum(dim=1, keepdim=True)  # (n, k)
    n, c, h, w = x.shape
    flat = x.reshape(1, n * c, h, w)
    k1 = kernel.repeat_interleave(c, dim=0)
    padded = F.pad(flat, (radius, radius, radius, radius), mode="reflect")
    out = F.conv2d(padded, k1[:, None, None, :], groups=n * c)
    out = F.conv2d(out, k1[:, None, :, None], groups=n * c)
    shrink = (kernel**2).sum(dim=1) ** 2  # white-noise variance kept by the separable blur
    return out.reshape(n, c, h, w), shrink


def physics_augment(x: torch.Tensor, config: AugmentConfig, gen: torch.Generator) -> torch.Tensor:
    n = x.shape[0]
    sky, noise = _sky_and_noise(x)
    signal = x - sky

    def chosen(p: float) -> torch.Tensor:
        return torch.rand(n, generator=gen) < p

    def gaussian() -> torch.Tensor:
        return torch.randn(x.shape, generator=gen)

    def per_image(values: torch.Tensor) -> torch.Tensor:
        return values[:, None, None, None]

    # Geometry first, on the sky-subtracted signal: viewing angle and distance (zoom out).
    far = chosen(config.p_distance)
    view = chosen(config.p_view)
    angle = torch.where(view, torch.rand(n, generator=gen) * 2 * math.pi, 0.0)
    axis = torch.rand(n, generator=gen) * 2 * math.pi
    tilt = torch.rand(n, generator=gen) * math.radians(config.max_tilt_deg)
    squash = torch.where(view, torch.cos(tilt), 1.0)
    zoom = torch.where(far, 1 + (config.max_zoom_out - 1) * torch.rand(n, generator=gen), 1.0)
    signal, inside = _view_transform(signal, angle, axis, squash, zoom)
    signal = signal + (1 - inside) * noise * gaussian()  # sky noise where no pixel mapped

    # Distance: dim the signal, restore the detector's noise level.
    f = config.min_dimming + (1 - config.min_dimming) * torch.rand(n, generator=gen)
    f = per_image(torch.where(far, f, 1.0))
    signal = signal * f + noise * torch.sqrt(1 - f**2) * gaussian()

    # Optics: extra blur, same in arcsec for all bands; put the lost noise back.
    sigma_px = torch.rand(n, generator=gen) * config.max_blur_arcsec / GRID_SCALE
    blurred, kept = _gaussian_blur(signal, sigma_px)
    lost = noise * per_image(torch.sqrt((1 - kept).clamp_min(0)))
    signal = torch.where(per_image(chosen(config.p_optics)), blurred + lost * gaussian(), signal)

    # Detector: a shorter exposure t*T scales the variance by 1/t (sky/read + shot noise).
    t = config.min_exposure_share + (1 - config.min_exposure_share) * torch.rand(n, generator=gen)
    conv = torch.tensor(E_PER_S_PER_MJYSR, dtype=x.dtype)[None, :, None, None]
    # F200W pixels average 2x2 native pixels, which quarters their shot-noise variance.
    averaged = torch.tensor([4.0, 1.0, 1.0, 1.0], dtype=x.dtype)[None, :, None, None]
    shot = signal.clamp_min(0) / (conv * averaged)
    variance = (noise**2 + shot / config.exposure_s) * (1 / per_image(t) - 1)
    noisier = signal + torch.sqrt(variance) * gaussian()
    signal = torch.where(per_image(chosen(config.p_detector)), noisier, signal)
    return signal + sky


def _view_transform(
    x: torch.Tensor,
    angle: torch.Tensor,
    axis: torch.Tensor,
    squash: torch.Tensor,
    zoom: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Rotate, foreshorten along ``axis`` and shrink by ``zoom``; nearest-pixel sampling keeps
    the noise white and at its level. Also returns the mask of pixels that mapped inside."""

    def rotation(a: torch.Tensor) -> torch.Tensor:
        c, s = torch.cos(a), torch.sin(a)
        return torch.stack([torch.stack([c, -s], -1), torch.stack([s, c], -1)], -2)

    scale = torch.zeros(x.shape[0], 2, 2, dtype=x.dtype)
    scale[:, 0, 0] = 1 / squash  # sampling grid stretched = image compressed along the axis
    scale[:, 1, 1] = 1.0
    matrix = rotation(angle) @ rotation(axis) @ scale @ rotation(-axis) * zoom[:, None, None]
    theta = torch.cat([matrix, torch.zeros(x.shape[0], 2, 1, dtype=x.dtype)], dim=2)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    out = F.grid_sample(x, grid, mode="nearest", padding_mode="zeros", align_corners=False)
    inside = (grid.abs() <= 1).all(dim=-1)[:, None].to(x.dtype)
    return out, inside


_BRIGHT_NOISE = 100.0  # a NaN pixel beside one this many noise sigmas up: a saturated core


def artefacts(x: np.ndarray, config: AugmentConfig, rng: np.random.Generator) -> np.ndarray:
    """Detector artefacts on a share ``config.p_artefacts`` of raw stamps (n, 4, H, W), NaN
    kept: per image one detector axis on the sky; per band a bleed trail out of each
    saturated core along it, one offset per line across it (stripes at right angles to the
    trails), and, for half the images, noise correlated by a Gaussian of 0.3-0.6 px.
    Returns a new array."""
    x = np.array(x, dtype=np.float32)
    for i in np.nonzero(rng.uniform(size=len(x)) < config.p_artefacts)[0]:
        axis = int(rng.integers(0, 2))  # 0: trails along columns, offsets per row
        smooth = rng.uniform(0.3, 0.6) if rng.uniform() < 0.5 else 0.0
        for b in range(x.shape[1]):
            x[i, b] = _band_artefacts(x[i, b], axis, smooth, config, rng)
    return x


def _band_artefacts(
    image: np.ndarray, axis: int, smooth: float, config: AugmentConfig, rng: np.random.Generator
) -> np.ndarray:
    finite = image[np.isfinite(image)]
    if finite.size < image.size // 2:
        return image
    sky = float(np.median(finite))
    noise = max(float(np.median(np.abs(finite - sky))) * 1.4826, 1e-12)
    missing = np.isnan(image)
    filled = np.where(missing, sky, image)
    if missing.any():  # bleed: NaN cores beside bright pixels spill along the axis
        peak = ndimage.maximum_filter(filled, size=3)
        cores, count = ndimage.label(missing & (peak > sky + _BRIGHT_NOISE * noise))
        for box in ndimage.find_objects(cores)[:count]:
            level = float(peak[box].max()) - sky
            length = int(rng.integers(3, config.max_bleed_px + 1))
            decay = np.exp(-np.arange(1, length + 1) / (length / 2.0)) * level
            lo, hi = box[axis].start, box[axis].stop  # the core's extent along the trail
            across = box[1 - axis]
            for step, value in enumerate(decay):
                for at in (lo - 1 - step, hi + step):
                    if 0 <= at < image.shape[axis]:
                        index = (at, across) if axis == 0 else (across, at)
                        filled[index] = np.maximum(filled[index], sky + value)
    h = image.shape[axis]  # one offset per line across the trails (the fast-read direction)
    walk = np.cumsum(rng.normal(size=h)) / np.sqrt(h)
    offsets = rng.uniform(0, config.max_stripe_sigma) * noise * (rng.normal(size=h) + walk)
    filled = filled + (offsets[:, None] if axis == 0 else offsets[None, :])
    if smooth:
        filled = ndimage.gaussian_filter(filled, smooth, mode="nearest")
    return np.where(missing, np.float32(np.nan), filled).astype(np.float32)


def augment(x: torch.Tensor, config: AugmentConfig, gen: torch.Generator) -> torch.Tensor:
    """Flips and quarter turns always; the physics-informed ones when ``config.physics``
    (detector artefacts first, on the raw stamps). Bad pixels are filled before the rest, as
    ``preprocess`` would (blurs and resampling would spread NaNs); edge cuts left over
    become the band's sky."""
    if config.physics and config.p_artefacts > 0:
        seed = int(torch.randint(0, 2**31 - 1, (1,), generator=gen))
        x = artefacts(np.asarray(x), config, np.random.default_rng(seed))
    x = torch.from_numpy(fill_bad_pixels(x))  # numpy (serving's code path) -> tensor
    if torch.isnan(x).any():
        sky = x.flatten(2).nanmedian(dim=2).values[..., None, None]
        x = torch.where(torch.isnan(x), sky.expand_as(x), x)
    x = flips_and_turns(x, gen)
    return physics_augment(x, config, gen) if config.physics else x
