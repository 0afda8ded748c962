"""Stamp preprocessing shared by blend training and serving."""

from __future__ import annotations

import numpy as np
import pytest

from stampflow.classifiers.blend.preprocess import (
    NORMALISATIONS,
    PreprocessConfig,
    crop_moments,
    normalise,
    orient,
    prepare_stamps,
)
from stampflow.schemas.errors import PacketError


def _star(shape=(63, 63), row=31.0, col=31.0, flux=5e4, sky=100.0, sigma=1.0):
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    psf = np.exp(-((yy - row) ** 2 + (xx - col) ** 2) / (2 * sigma**2)) / (2 * np.pi * sigma**2)
    return (sky + flux * psf).astype(np.float32)


@pytest.mark.parametrize("cut", ["left", "right", "top", "bottom"])
def test_edge_cut_stamp_is_cropped_around_the_source(cut):
    full = _star()
    kept = 47
    cut_stamp = {
        "left": full[:, 63 - kept :],
        "right": full[:, :kept],
        "top": full[:kept, :],
        "bottom": full[63 - kept :, :],
    }[cut]
    config = PreprocessConfig(crop=21, orient=False)
    crop = prepare_stamps([cut_stamp], config)[0]
    reference = prepare_stamps([full], config)[0]
    np.testing.assert_allclose(crop, reference)
    assert np.unravel_index(np.argmax(crop), crop.shape) == (10, 10)


def test_nan_pixels_become_sky_and_off_stamp_pixels_too():
    stamp = _star(shape=(63, 45), col=13.0)  # cut on the left; source 13 px from the edge
    stamp[30, 5] = np.nan
    stamp[:, 40] = np.nan
    crop = prepare_stamps([stamp], PreprocessConfig(crop=31, orient=False))[0]
    assert np.isfinite(crop).all()
    assert crop[15, 0] == pytest.approx(np.nanmedian(stamp))  # off the stamp: the sky level


def test_masked_sentinel_pixels_are_treated_as_bad_pixels():
    stamp = _star()
    clean = prepare_stamps([stamp], PreprocessConfig())[0]
    stamp[29, 33] = -3.4028235e38  # how real ZTF stamps mark some masked pixels
    stamp[0, :] = np.inf
    masked = prepare_stamps([stamp], PreprocessConfig())[0]
    assert np.isfinite(masked).all() and masked.min() >= 0.9 * clean.min()
    np.testing.assert_allclose(normalise(masked[None], PreprocessConfig()).max(), 1.0)


def test_unusable_stamp_raises_packet_error_naming_it():
    with pytest.raises(PacketError, match="stamp 1") as info:
        prepare_stamps([_star(), np.full((63, 63), np.nan)], PreprocessConfig(), field="cutoutX")
    assert info.value.reason == "bad_stamp" and info.value.field == "cutoutX"
    with pytest.raises(PacketError):
        prepare_stamps([np.zeros(10)], PreprocessConfig())


def test_orientation_puts_a_companion_on_the_right():
    yy, xx = np.mgrid[:21, :21] - 10
    for degrees in (0, 37, 90, 200, 300):
        a = np.radians(degrees)
        image = np.exp(-(xx**2 + yy**2) / 3.0) + 0.4 * np.exp(
            -((xx - 5 * np.cos(a)) ** 2 + (yy - 5 * np.sin(a)) ** 2) / 3.0
        )
        turned = orient(image.astype(np.float32), 0.0)
        outer = np.where(xx**2 + yy**2 > 9, turned, 0.0)
        row, col = np.unravel_index(np.argmax(outer), outer.shape)
        assert abs(row - 10) <= 1 and col >= 14


def test_moments_see_a_companion_a_single_star_does_not_show():
    rng = np.random.default_rng(3)
    single = _star(shape=(21, 21), row=10, col=10, sigma=1.5)
    pair = single + _star(shape=(21, 21), row=10, col=13, flux=2e4, sky=0.0, sigma=1.5)
    crops = np.stack([single, pair]) + rng.normal(0, 2, (2, 21, 21)).astype(np.float32)
    config = PreprocessConfig(crop=21)
    turned = np.stack([orient(c, 100.0) for c in crops])
    log_x, log_y, ellipticity, skew, _, inner, peak, offset = crop_moments(
        normalise(turned, config)
    ).T
    assert abs(ellipticity[0]) < 0.05 and abs(skew[0]) < 0.1 and abs(offset[0]) < 0.1
    assert ellipticity[1] > 0.2 and log_x[1] > log_x[0] + 0.3
    assert skew[1] > 0.1 and offset[1] > 0.5  # the companion sits on the right
    assert inner[1] < inner[0] and peak[1] < peak[0]
    # Scale-free, like the normalisation they follow.
    np.testing.assert_allclose(
        crop_moments(normalise(turned * 5 + 7, config)),
        crop_moments(normalise(turned, config)),
        atol=1e-5,
    )


@pytest.mark.parametrize("method", NORMALISATIONS)
def test_normalisations_are_scale_free_except_none(method):
    rng = np.random.default_rng(0)
    crops = np.stack([_star(shape=(21, 21), row=10, col=10)[None]] * 1).reshape(1, 21, 21)
    crops = crops + rng.normal(0, 1, crops.shape).astype(np.float32)
    config = PreprocessConfig(crop=21, normalisation=method)
    a = normalise(crops, config)
    b = normalise(crops * 7.0 + 3.0, config)
    assert a.shape == (1, 441) and np.isfinite(a).all()
    if method == "none":
        assert not np.allclose(a, b)
    elif method == "l2":
        assert np.linalg.norm(a) == pytest.approx(1.0, rel=1e-5)
        np.testing.assert_allclose(a, b, atol=1e-5)
    else:
        assert a.min() == pytest.approx(0.0, abs=1e-6) and a.max() == pytest.approx(1.0)
        np.testing.assert_allclose(a, b, atol=1e-5)


def test_config_validates():
    with pytest.raises(ValueError, match="crop"):
        PreprocessConfig(crop=20)
    with pytest.raises(ValueError, match="normalisation"):
        PreprocessConfig(normalisation="zscore")
