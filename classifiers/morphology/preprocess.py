"""Multiband stamps to network input, the one code path for training and serving.

``to_grid`` brings each band to the network's grid (the spec's 0.063"/px, 64x64):
block-averaged when its pixels are an integer fraction of that scale, as F200W at 0.031"/px
is, bilinearly resampled otherwise, then centre-cropped or NaN-padded. ``preprocess`` turns
the (n, 4, 64, 64) surface brightness into what the CNN sees.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from stampflow.classifiers.morphology.spec import SPEC


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
        tensor = torch.from_numpy(np.ascontiguousarray(image))[None, None]
        image = F.interpolate(tensor, size=(out_h, out_w), mode="bilinear", align_corners=False)
        image = image[0, 0].numpy()
    return _centre(image, size)


def _centre(image: np.ndarray, size: int) -> np.ndarray:
    out = np.full((size, size), np.nan, dtype=np.float32)
    h, w = image.shape
    src_y, src_x = max((h - size) // 2, 0), max((w - size) // 2, 0)
    dst_y, dst_x = max((size - h) // 2, 0), max((size - w) // 2, 0)
    ch, cw = min(h, size), min(w, size)
    out[dst_y : dst_y + ch, dst_x : dst_x + cw] = image[src_y : src_y + ch, src_x : src_x + cw]
    return out


def fill_bad_pixels(stamps: np.ndarray | torch.Tensor, passes: int = 3) -> torch.Tensor:
    """NaN pixels (DO_NOT_USE: saturated cores, bad pixels) filled from their valid
    neighbours by normalised convolution (a masked 3x3 mean, repeated so larger holes fill
    from their rims). A saturated star's core then stays a bright plateau instead of turning
    into a dark hole that looks like a ring; what is still NaN after ``passes`` (edge cuts)
    is left for ``preprocess`` to set to sky."""
    x = torch.as_tensor(stamps, dtype=torch.float32).clone()
    missing = torch.isnan(x)
    if not missing.any():
        return x
    n, c, h, w = x.shape
    kernel = torch.ones(c, 1, 3, 3, dtype=x.dtype)
    for _ in range(passes):
        valid = (~missing).to(x.dtype)
        total = F.conv2d(torch.nan_to_num(x, nan=0.0) * valid, kernel, padding=1, groups=c)
        count = F.conv2d(valid, kernel, padding=1, groups=c)
        fill = missing & (count > 0)
        x = torch.where(fill, total / count.clamp_min(1.0), x)
        missing = missing & ~fill
        if not missing.any():
            break
    return x


def preprocess(stamps: np.ndarray | torch.Tensor) -> torch.Tensor:
    """(n, 4, H, W) surface brightness -> network input: bad pixels filled
    (``fill_bad_pixels``), then per band, subtract the sky (median) and express pixels in
    units of the noise (MAD), then an asinh stretch.

    In noise units the input no longer depends on flux calibration, exposure or distance
    dimming, only on what the detector could see; asinh keeps faint arms and bright stars on
    one scale. NaN pixels left (edge cuts) become sky (0).
    """
    x = fill_bad_pixels(stamps)
    flat = x.flatten(2)
    sky = flat.nanmedian(dim=2).values[..., None, None]
    mad = (x - sky).abs().flatten(2).nanmedian(dim=2).values[..., None, None] * 1.4826
    out = torch.asinh((x - sky) / (3.0 * mad.clamp_min(1e-12))) / 3.0
    return torch.nan_to_num(out, nan=0.0, posinf=0.0, neginf=0.0)
