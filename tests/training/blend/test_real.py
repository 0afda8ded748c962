"""Weak labels from the PS1 columns of real ZTF candidates, and the realism measures."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from stampflow.training.blend.real import REAL_ALERTS, load_real, measure, weak_label


def _candidate(**ps1) -> dict:
    row = {f"{k}{i}": -999.0 for k in ("distpsnr", "sgscore", "srmag") for i in (1, 2, 3)}
    row.update(ps1)
    return row


@pytest.mark.parametrize(
    "ps1, expected",
    [
        (dict(distpsnr1=0.3, sgscore1=0.99, srmag1=16.0, distpsnr2=20.0), "isolated_star"),
        (dict(distpsnr1=0.3, sgscore1=0.99, srmag1=16.0, distpsnr2=9.0), "unlabelled"),
        (
            dict(distpsnr1=0.4, sgscore1=0.9, srmag1=16, distpsnr2=1.8, sgscore2=0.8, srmag2=17),
            "ps1_pair",
        ),
        (  # the second star too faint to matter
            dict(distpsnr1=0.4, sgscore1=0.9, srmag1=16, distpsnr2=1.8, sgscore2=0.8, srmag2=20),
            "unlabelled",
        ),
        (  # one bright star listed twice: unclassified and closer than PS1 resolves
            dict(distpsnr1=0.3, sgscore1=1.0, srmag1=13, distpsnr2=0.5, sgscore2=0.5, srmag2=13),
            "unlabelled",
        ),
        (
            dict(distpsnr1=0.1, sgscore1=0.9, srmag1=16, distpsnr2=0.2, sgscore2=0.9, srmag2=16),
            "unlabelled",
        ),
        (dict(distpsnr1=0.8, sgscore1=0.05, srmag1=19.0), "galaxy_host"),
        (dict(distpsnr1=12.0, sgscore1=0.99, srmag1=15.0), "no_counterpart"),
        ({}, "no_counterpart"),
    ],
)
def test_weak_labels_follow_the_ps1_neighbours(ps1, expected):
    assert weak_label(_candidate(**ps1)) == expected


def test_measure_sees_noise_correlation_and_the_source():
    rng = np.random.default_rng(0)
    white = 100 + rng.normal(0, 2, (63, 63))
    yy, xx = np.mgrid[:63, :63] - 31
    star = 2000 * np.exp(-(xx**2 + yy**2) / (2 * 0.9**2))
    stats = measure(white + star)
    assert stats["noise"] == pytest.approx(2.0, rel=0.1)
    assert abs(stats["noise_lag1"]) < 0.05
    assert stats["fwhm_arcsec"] == pytest.approx(2.3548 * 0.9 * 1.01, rel=0.15)
    assert stats["peak_snr"] > 500 and stats["neighbours"] == 0
    smooth = white + np.roll(white, 1, axis=1)
    assert measure(smooth)["noise_lag1"] > 0.4
    # A Gaussian's ring 4 px out holds exp(-8 / sigma^2) of its peak; faint sources get none.
    assert stats["wing_ratio"] == pytest.approx(np.exp(-8 / 0.9**2), rel=0.5, abs=2e-4)
    assert np.isnan(measure(white + star / 500)["wing_ratio"])


@pytest.mark.skipif(not REAL_ALERTS.is_dir(), reason=f"real packets not found at {REAL_ALERTS}")
def test_every_real_alert_gets_a_weak_label():
    real = load_real()
    counts = Counter(r.weak_label for r in real)
    assert len(real) >= 100  # one per candid
    assert counts["isolated_star"] >= 30 and counts["ps1_pair"] >= 1
    assert all(r.template.ndim == 2 for r in real)


@pytest.mark.skipif(not REAL_ALERTS.is_dir(), reason=f"real packets not found at {REAL_ALERTS}")
def test_the_training_psf_has_the_wings_of_real_ztf_stars():
    """The halo was set on real stars without a weak label; the wings must match theirs
    (at the real FWHMs) where a bare Kolmogorov core has about half that light."""
    from stampflow.training.blend.sky import SkyConfig, simulate_templates

    def wings(stats: list[dict]) -> np.ndarray:
        w = [m["wing_ratio"] for m in stats if 2.15 < m["fwhm_arcsec"] < 2.6]
        return np.array([x for x in w if np.isfinite(x)])

    real = wings([measure(r.template) for r in load_real() if r.weak_label == "unlabelled"])
    assert len(real) >= 20
    sim = {}
    for name, config in (("halo", SkyConfig()), ("bare", SkyConfig(halo_share=(0.0, 0.0)))):
        stamps, truth = simulate_templates(np.random.default_rng(3), 300, config)
        sim[name] = wings(
            [measure(s) for s, b in zip(stamps, truth["label"], strict=True) if b == 0]
        )
    assert np.median(sim["halo"]) == pytest.approx(np.median(real), rel=0.2)
    assert np.median(sim["bare"]) < 0.7 * np.median(real)
