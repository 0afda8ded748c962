"""The blend simulator's physics: flux, PSF width, noise, and the truth it keeps."""

from __future__ import annotations

import numpy as np
import pytest

from stampflow.training.blend.sim import (
    STAMP,
    TRUTH_COLUMNS,
    SimConfig,
    draw_scene,
    moffat_alpha,
    observe,
    render_stars,
    simulate_templates,
    ztf_cutouts,
)


def _one_star(flux: float, fwhm_px: float, beta: float = 3.0, q: float = 1.0, x: float = 31.0):
    return render_stars(
        np.array([x]),
        np.array([31.0]),
        np.array([flux]),
        np.array([fwhm_px]),
        np.array([beta]),
        np.array([q]),
        np.array([0.4]),
        oversample=5,
    )[0]


@pytest.mark.parametrize("beta", [2.5, 3.5, 4.5])
@pytest.mark.parametrize("q", [1.0, 0.92])
def test_rendered_star_conserves_flux(beta, q):
    image = _one_star(12_345.0, 2.5, beta, q, x=31.3)
    # Moffat wings beyond a 31-pixel radius hold < 0.1% of the light for beta >= 2.5.
    assert image.sum() == pytest.approx(12_345.0, rel=2e-3)


def test_blend_scene_conserves_total_flux():
    config = SimConfig(blend_fraction=1.0, neighbour_prob=0.0, sep_fwhm_range=(0.1, 1.0))
    scene = draw_scene(np.random.default_rng(3), 50, config)
    total = 10 ** (-0.4 * (scene.truth["mag"] - scene.truth["zero_point"]))
    np.testing.assert_allclose(scene.system.sum(axis=(1, 2)), total, rtol=5e-3)
    assert np.all(scene.truth["n_stars"] >= 2)


@pytest.mark.parametrize("fwhm_arcsec", [1.5, 2.0, 3.0])
def test_measured_fwhm_matches_requested(fwhm_arcsec):
    """The half-maximum radius of a finely sampled profile is the requested FWHM / 2."""
    fwhm_px = fwhm_arcsec / 1.01
    beta = 3.2
    alpha = moffat_alpha(np.array(fwhm_px), np.array(beta))
    r = np.linspace(0.0, 5.0 * fwhm_px, 20_001)
    profile = (1.0 + (r / alpha) ** 2) ** (-beta)
    half_width = r[np.argmin(np.abs(profile - 0.5))]
    assert 2 * half_width == pytest.approx(fwhm_px, rel=1e-3)
    # And on a rendered image sampled 10x finer than ZTF pixels, elliptical included: the
    # area above half the peak is pi (FWHM/2)^2 (ellipticity keeps the area).
    for q in (1.0, 0.92):
        image = render_stars(
            np.array([100.0]),
            np.array([100.0]),
            np.array([1e6]),
            np.array([10 * fwhm_px]),
            np.array([beta]),
            np.array([q]),
            np.array([0.7]),
            size=201,
            oversample=1,
        )[0]
        area = np.count_nonzero(image >= 0.5 * image.max())
        assert 2.0 * np.sqrt(area / np.pi) == pytest.approx(10 * fwhm_px, rel=0.02)


@pytest.mark.parametrize("n_coadd", [1, 25])
def test_noise_level_matches_sky_and_read_noise(n_coadd):
    config = SimConfig()
    sky_dn = 150.0
    expected = np.full((4, STAMP, STAMP), sky_dn)
    noisy = observe(np.random.default_rng(5), expected, np.full(4, n_coadd), config)
    predicted = np.sqrt((sky_dn * config.gain + config.read_noise**2) / n_coadd) / config.gain
    assert noisy.std() == pytest.approx(predicted, rel=0.03)
    assert noisy.mean() == pytest.approx(sky_dn, abs=3 * predicted / STAMP)


def test_templates_keep_truth_and_real_stamp_damage():
    config = SimConfig(edge_cut_prob=0.3, nan_prob=0.3)
    stamps, truth = simulate_templates(np.random.default_rng(7), 200, config)
    assert set(truth) == set(TRUTH_COLUMNS)
    assert all(len(v) == 200 for v in truth.values())
    labels = truth["label"]
    assert 0.3 < labels.mean() < 0.7
    assert np.all(truth["separation_arcsec"][labels == 0] == 0)
    blends = labels == 1
    assert np.all(truth["flux_ratio"][blends] >= 0.05)
    assert np.all(truth["flux_ratio"][blends] <= 1.0)
    assert np.all(truth["snr"] > 0)
    cut = [s.shape for s, c in zip(stamps, truth["edge_cut"], strict=True) if c]
    assert cut and all(min(shape) >= 41 and min(shape) <= 59 for shape in cut)
    assert all(
        s.shape == (STAMP, STAMP) for s, c in zip(stamps, truth["edge_cut"], strict=True) if not c
    )
    nan_counts = [int(np.isnan(s).sum()) for s in stamps]
    assert nan_counts == list(truth["n_nan"]) and max(nan_counts) > 0
    # A brighter star has the higher S/N, other things equal on average.
    bright = truth["mag"] < 16
    faint = truth["mag"] > 19.5
    assert np.median(truth["snr"][bright]) > 5 * np.median(truth["snr"][faint])


def test_ztf_cutouts_difference_is_science_minus_template():
    science, template, difference, rows = ztf_cutouts(np.random.default_rng(9), 20)
    assert len(science) == len(template) == len(difference) == len(rows) == 20
    for sci, ref, diff, row in zip(science, template, difference, rows, strict=True):
        assert sci.shape == ref.shape == diff.shape
        np.testing.assert_allclose(diff, sci - ref, atol=1e-2, equal_nan=True)
        assert row["label"] in ("single", "blend")
        assert row["fwhm_arcsec"] >= 1.5 and "separation_arcsec" in row
    # The transient makes the science stamp brighter than the template at the centre.
    centre = [
        np.nansum(s[28:35, 28:35] - r[28:35, 28:35]) for s, r in zip(science, template, strict=True)
    ]
    assert np.median(centre) > 0


def test_config_rejects_bad_ranges():
    with pytest.raises(ValueError, match="fwhm_range"):
        SimConfig(fwhm_range=(3.0, 1.5))
    with pytest.raises(ValueError, match="blend_fraction"):
        SimConfig(blend_fraction=1.5)
