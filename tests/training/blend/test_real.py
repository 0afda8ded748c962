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


@pytest.mark.skipif(not REAL_ALERTS.is_dir(), reason=f"real packets not found at {REAL_ALERTS}")
def test_every_real_alert_gets_a_weak_label():
    real = load_real()
    counts = Counter(r.weak_label for r in real)
    assert len(real) >= 100  # one per candid
    assert counts["isolated_star"] >= 30 and counts["ps1_pair"] >= 3
    assert all(r.template.ndim == 2 for r in real)
