"""The GalSim template simulator: physics a real ZTF template shows, kept in the truth table."""

from __future__ import annotations

import numpy as np
import pytest

from stampflow.training.blend.real import measure
from stampflow.training.blend.sim import TRUTH_COLUMNS
from stampflow.training.blend.sky import SKY_COLUMNS, SkyConfig, simulate_templates

QUIET = dict(
    field_star_mean=(0.0, 0.0),
    galaxy_mean=(0.0, 0.0),
    host_prob=0.0,
    masked_block_prob=0.0,
    edge_cut_prob=0.0,
    nan_prob=0.0,
)


@pytest.fixture(scope="module")
def default_set():
    return simulate_templates(np.random.default_rng(3), 120, SkyConfig())


def test_truth_has_every_column_and_matches_the_labels(default_set):
    stamps, truth = default_set
    assert set(TRUTH_COLUMNS) <= set(truth) and set(SKY_COLUMNS) == set(truth)
    assert len(stamps) == 120 and all(len(v) == 120 for v in truth.values())
    blend = truth["label"] == 1
    assert 0.3 < blend.mean() < 0.7
    assert np.all(truth["n_stars"][blend] >= 2) and np.all(truth["n_stars"][~blend] == 1)
    assert np.all(truth["separation_fwhm"][blend] <= 3.0)


def test_the_psf_has_the_seeing_it_was_drawn_with():
    config = SkyConfig(seeing_range=(2.0, 2.0), blend_fraction=0.0, mag_range=(15, 15), **QUIET)
    stamps, _ = simulate_templates(np.random.default_rng(1), 20, config)
    fwhm = np.median([measure(s)["fwhm_arcsec"] for s in stamps])
    assert fwhm == pytest.approx(2.0, rel=0.2)


def test_the_halo_takes_its_share_of_the_light_into_the_wings():
    def wing(share: float) -> float:
        config = SkyConfig(
            seeing_range=(2.2, 2.2), halo_share=(share, share), blend_fraction=0.0,
            mag_range=(15, 15), **QUIET,
        )  # fmt: skip
        stamps, _ = simulate_templates(np.random.default_rng(1), 20, config)
        return float(np.median([measure(s)["wing_ratio"] for s in stamps]))

    assert wing(0.25) > 1.5 * wing(0.0)
    with pytest.raises(ValueError, match="halo_share"):
        SkyConfig(halo_share=(0.2, 0.1))


def test_coadd_noise_is_correlated_as_resampling_makes_it():
    base = dict(blend_fraction=0.0, mag_range=(20.5, 20.5), **QUIET)
    white, _ = simulate_templates(
        np.random.default_rng(2), 20, SkyConfig(correlated_noise_prob=0.0, **base)
    )
    resampled, _ = simulate_templates(
        np.random.default_rng(2), 20, SkyConfig(correlated_noise_prob=1.0, **base)
    )
    lag_white = np.median([measure(s)["noise_lag1"] for s in white])
    lag_resampled = np.median([measure(s)["noise_lag1"] for s in resampled])
    assert abs(lag_white) < 0.05 and lag_resampled > 0.08


def test_field_stars_hosts_and_masks_appear_at_their_rates(default_set):
    stamps, truth = default_set
    assert truth["n_field"].mean() > 1.0 and truth["host"].mean() > 0.1
    neighbours = np.median([measure(s)["neighbours"] for s in stamps])
    assert neighbours >= 1  # real templates show a median of 4 (the study's realism table)
    assert any(np.isnan(s).any() for s in stamps)


def test_saturated_stars_are_clipped_or_masked():
    config = SkyConfig(mag_range=(11.0, 11.5), saturation_dn=(2e4, 2e4), **QUIET)
    stamps, truth = simulate_templates(np.random.default_rng(5), 10, config)
    assert truth["saturated"].all()
    for stamp in stamps:
        core = stamp[29:34, 29:34]
        assert np.isnan(core).any() or np.nanmax(stamp) <= 2e4 * 1.2
