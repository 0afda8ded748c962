"""The bound-binary / chance-alignment simulator: its physics and what tells the pairs apart."""

import numpy as np
import pytest

from stampflow.training.blend import binaries as B


def test_main_sequence_colours_are_the_suns_at_one_solar_mass_and_redden_below():
    mass = np.array([1.0, 0.7, 0.4, 0.2, 0.1])
    mags = B.absolute_mags(mass)
    assert mags["g"][0] == pytest.approx(B.SUN_ABS_MAG["g"], abs=1e-9)
    assert mags["r"][0] == pytest.approx(B.SUN_ABS_MAG["r"], abs=1e-9)
    colour = mags["g"] - mags["r"]
    assert np.all(np.diff(colour) > 0), colour  # lighter stars are redder
    assert np.all(np.diff(mags["r"]) > 0)  # and fainter


def test_dust_dims_and_reddens_with_distance():
    near, far = (B.apparent_mags(np.array([0.8]), np.array([d])) for d in (0.5, 2.0))
    modulus = 5 * np.log10(4.0)
    assert far["r"][0] - near["r"][0] == pytest.approx(modulus + 1.5 * B.EXTINCTION_R_PER_KPC)
    reddening = (far["g"] - far["r"]) - (near["g"] - near["r"])
    assert reddening[0] == pytest.approx(1.5 * B.EXTINCTION_R_PER_KPC * (B.A_G_OVER_A_R - 1))


@pytest.fixture(scope="module")
def pairs() -> B.Pairs:
    return B.simulate_pairs(np.random.default_rng(3), 1500)


def test_pairs_are_in_the_blend_range_with_the_companion_fainter(pairs):
    c, config = pairs.columns, B.BinaryConfig()
    assert np.all((c["sep"] >= config.sep_arcsec[0]) & (c["sep"] <= config.sep_arcsec[1]))
    assert np.all(c["true_dmag_r"] >= 0)
    assert np.all(c["true_dmag_r"] <= config.companion_max_mag_r - config.primary_mag_r[0])
    assert np.mean(pairs.bound) == 0.5


def test_a_bound_pair_shares_one_distance_a_chance_pair_does_not(pairs):
    ratio = pairs.columns["distance_ratio"]
    bound = pairs.bound == 1
    np.testing.assert_allclose(ratio[bound], 1.0)
    assert np.mean(np.abs(np.log(ratio[~bound])) > 0.2) > 0.5


def test_chance_separations_are_uniform_in_area_bound_ones_crowd_inwards(pairs):
    low, high = B.BinaryConfig().sep_arcsec
    sep, bound = pairs.columns["sep"], pairs.bound == 1
    # Uniform in area: s^2 is uniform on [low^2, high^2], so its mean is the midpoint.
    assert np.mean(sep[~bound] ** 2) == pytest.approx((low**2 + high**2) / 2, rel=0.05)
    assert np.median(sep[bound]) < 0.6 * np.median(sep[~bound])


def test_psf_photometry_recovers_both_fluxes(pairs):
    c = pairs.columns
    # The primary (r 14-19.5) is far above the 21.7 depth: measured within a few per cent.
    assert np.median(np.abs(c["mag_r"] - c["true_mag_r"])) < 0.02
    # The companion's flux ratio: unbiased, and well measured for wide, bright companions.
    truth = 10 ** (-0.4 * c["true_dmag_r"])
    wide = (c["sep"] > 4) & (c["true_dmag_r"] < 2)
    assert np.median(c["ratio_r"] / truth) == pytest.approx(1.0, abs=0.02)
    assert np.median(np.abs(c["ratio_r"][wide] / truth[wide] - 1)) < 0.03


def test_exact_colours_tell_the_classes_apart_where_one_template_cannot(pairs):
    train = B.simulate_pairs(np.random.default_rng(4), 1500)
    scores = {s.features: s.roc_auc for s in B.score(train, pairs)}
    one_band = scores["r template without the separation"]
    colours = scores["exact colours and flux ratio, no separation (noise-free photometry)"]
    assert colours > one_band + 0.15, scores
    assert scores["r template: separation, flux ratio, brightness"] > one_band + 0.1, scores
