"""The NIRCam simulator: PSF widths, noise levels, class structure, metadata, balance."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import numpy as np
import pytest

from stampflow.training.morphology import sim

FWHM_PER_SIGMA = 2 * math.sqrt(2 * math.log(2))


def _params(cls: str, seed: int = 0, **changes: float) -> sim.BinaryParams:
    params = sim.draw_params(np.random.default_rng(seed), cls, sim.SimConfig())
    return replace(params, **changes)


def _fwhm_arcsec(image: np.ndarray, scale: float) -> float:
    """FWHM from the second moments of a centred, background-free image."""
    y, x = np.indices(image.shape)
    total = image.sum()
    cx, cy = (x * image).sum() / total, (y * image).sum() / total
    variance = (((x - cx) ** 2 + (y - cy) ** 2) * image).sum() / total / 2
    return math.sqrt(variance) * FWHM_PER_SIGMA * scale


def test_point_source_psf_width_matches_each_band():
    stars = sim.star_model(_params("no_gas"))
    for band, expected in enumerate(sim.PSF_FWHM_ARCSEC):
        measured = _fwhm_arcsec(stars[band], sim.FINE_SCALE)
        assert measured == pytest.approx(expected, rel=0.05), sim.FILTERS[band]


def test_psf_widens_with_wavelength_on_the_common_grid():
    params = _params("no_gas")
    stamp = sim.render(params, np.random.default_rng(1), sim.SimConfig(), noise=False)
    widths = [_fwhm_arcsec(stamp[b], sim.GRID_SCALE) for b in range(len(sim.FILTERS))]
    assert widths == sorted(widths)
    assert stamp.shape == (4, sim.GRID, sim.GRID) and stamp.dtype == np.float32


def test_sky_noise_matches_the_detector_model():
    config = sim.SimConfig()
    stamp = sim.render(_params("no_gas"), np.random.default_rng(2), config)
    corner = stamp[:, :20, :20]  # far from the star: sky, dark and read noise only
    for band in range(len(sim.FILTERS)):
        expected = sim.pixel_noise_mjysr(band, config.exposure_s)
        if sim.NATIVE_SCALE[band] < sim.GRID_SCALE:
            expected /= 2  # F200W: four native pixels averaged into one grid pixel
        assert corner[band].std() == pytest.approx(expected, rel=0.15), sim.FILTERS[band]
        assert np.median(corner[band]) == pytest.approx(sim.SKY_MJY_SR[band], abs=3 * expected)


def _azimuthal_contrast(image: np.ndarray) -> float:
    """Mean over annuli of the spread of 12 sector means over their mean: ~0 for rings,
    large for arms."""
    r = np.hypot(sim._X, sim._Y)
    sector = ((np.arctan2(sim._Y, sim._X) + np.pi) / (2 * np.pi) * 12).astype(int) % 12
    peak = image[r > 0.3].max()
    contrasts = []
    for inner in np.arange(0.3, 1.5, 0.1):
        ring = (r >= inner) & (r < inner + 0.1)
        if image[ring].mean() > 0.05 * peak:
            means = np.array([image[ring & (sector == k)].mean() for k in range(12)])
            contrasts.append(means.std() / means.mean())
    return float(np.mean(contrasts))


def test_spiral_arms_vary_around_the_star_and_face_on_shells_do_not():
    rng = np.random.default_rng(3)
    spiral = sim.dust_model(_params("spiral", 3, inclination_deg=0.0, eccentricity=0.0), rng)
    shell = sim.dust_model(_params("shell", 4, inclination_deg=0.0), rng)
    assert _azimuthal_contrast(spiral[-1]) > 0.3
    assert _azimuthal_contrast(shell[-1]) < 0.05


def test_bipolar_flux_lies_along_its_axis():
    params = _params("bipolar", 5, inclination_deg=90.0, position_angle_deg=0.0)
    dust = sim.dust_model(params, np.random.default_rng(5))[-1]
    along = np.abs(sim._X) > 2 * np.abs(sim._Y)  # the PA=0 axis runs along x
    across = np.abs(sim._Y) > 2 * np.abs(sim._X)
    outer = np.hypot(sim._X, sim._Y) > 0.4
    assert dust[along & outer].sum() > 3 * dust[across & outer].sum()


@pytest.mark.parametrize("cls", sim.CLASSES)
def test_only_no_gas_lacks_extended_flux(cls: str):
    stamp = sim.render(_params(cls, 6), np.random.default_rng(6), sim.SimConfig(), noise=False)
    f444w = stamp[-1]
    r = np.hypot(*np.meshgrid(*(2 * [(np.arange(sim.GRID) - (sim.GRID - 1) / 2)])))
    outer_share = f444w[r * sim.GRID_SCALE > 0.5].sum() / f444w.sum()
    if cls == "no_gas":
        assert outer_share < 0.005
    else:
        assert outer_share > 0.05


def test_dust_temperature_sets_the_colours():
    rng = np.random.default_rng(7)
    hot = sim.dust_model(_params("shell", 7, dust_temperature_k=1400.0), rng)
    cool = sim.dust_model(_params("shell", 7, dust_temperature_k=400.0), rng)
    # Both are normalised on F444W; the cooler dust is fainter in F200W relative to F444W.
    assert cool[0].sum() / cool[-1].sum() < 0.5 * hot[0].sum() / hot[-1].sum()


def test_simulate_is_reproducible_imbalanced_and_keeps_metadata():
    first = sim.simulate(60, seed=11)
    second = sim.simulate(60, seed=11)
    np.testing.assert_array_equal(first.images, second.images)
    assert len(first.rows) == 60
    for row, label in zip(first.rows, first.labels, strict=True):
        assert row["cls"] == sim.CLASSES[label]
        for key in (
            "separation_au",
            "eccentricity",
            "inclination_deg",
            "position_angle_deg",
            "mass_loss_msun_yr",
            "wind_speed_km_s",
            "distance_kpc",
            "primary_type",
            "secondary_type",
            "dust_temperature_k",
            "snr",
        ):
            assert key in row
    labels = sim.draw_labels(np.random.default_rng(12), 20000, (5.0, 1.0, 1.0, 1.0, 1.0))
    assert np.mean(labels == 0) == pytest.approx(5 / 9, abs=0.02)
    default = np.bincount(sim.draw_labels(np.random.default_rng(12), 20000, sim.DEFAULT_BALANCE))
    assert default.max() > 2 * default.min()  # imbalanced by default, as in a survey


def test_invalid_config_is_refused():
    with pytest.raises(ValueError, match="balance"):
        sim.SimConfig(balance=(1.0, 1.0))
    with pytest.raises(ValueError, match="snr_range"):
        sim.SimConfig(snr_range=(5.0, 1.0))


def test_multiband_cutouts_contract():
    stamps, filters, scales, rows = sim.multiband_cutouts(np.random.default_rng(13), 5)
    assert stamps.shape == (5, 4, sim.GRID, sim.GRID) and stamps.dtype == np.float32
    assert filters == ("F200W", "F277W", "F356W", "F444W")
    assert scales == (sim.GRID_SCALE,) * 4
    assert len(rows) == 5 and {row["cls"] for row in rows} <= set(sim.CLASSES)
    json.dumps(rows)  # truth rows go to truth.jsonl as they are
    assert {row["psf_family"] for row in rows} <= {"gaussian", "airy", "jwst", "jwst_wfe"}


def test_multiband_record_round_trips_through_a_packet():
    from stampflow.schemas.codec import decode_alert
    from stampflow.schemas.packets import minimal_candidate, write_alert_packet

    stamps, *_ = sim.multiband_cutouts(np.random.default_rng(14), 1)
    record = {
        "objectId": "JWST00001",
        "candid": 1,
        "candidate": minimal_candidate(candid=1),
        "cutoutMultiband": sim.multiband_record(stamps[0]),
    }
    multiband = decode_alert(write_alert_packet(record)).multiband
    assert multiband.filters == sim.FILTERS
    assert multiband.pixel_scale == pytest.approx((sim.GRID_SCALE,) * 4)
    np.testing.assert_array_equal(multiband.stamps(), stamps[0])
