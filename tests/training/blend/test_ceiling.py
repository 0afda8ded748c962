"""The likelihood-ratio observers that bound what a stamp classifier can reach."""

import numpy as np

from stampflow.training.blend import ceiling, sim


def _stamps(n_stars: int, n: int = 6):
    """Bright, uncut, undamaged analytic stamps: all singles or all blends at >= 1 FWHM."""
    config = sim.SimConfig(
        blend_fraction=float(n_stars > 1),
        triple_fraction=0.0,
        sep_fwhm_range=(1.0, 2.0),
        flux_ratio_range=(0.5, 1.0),
        mag_range=(16.0, 17.0),
        edge_cut_prob=0.0,
        nan_prob=0.0,
        neighbour_prob=0.0,
    )
    stamps, truth = sim.simulate_templates(np.random.default_rng(3 + n_stars), n, config)
    windows, index = ceiling.windows(stamps, truth, config)
    assert len(index) == n
    return windows


def test_a_second_star_explains_blends_and_not_singles():
    for fit_psf in (False, True):
        singles = ceiling.statistics(_stamps(1), fit_psf, desc="singles")
        blends = ceiling.statistics(_stamps(2), fit_psf, desc="blends")
        # One star fits a single to its noise: a second one buys about the chi-square of its
        # few extra parameters; on a bright, resolved pair it buys thousands.
        assert singles.max() < 30, singles
        assert blends.min() > 300, blends


def test_the_window_carries_the_noise_model():
    (window,) = _stamps(1, n=1)
    pulls = window.data * window.weight
    edge = np.concatenate([pulls[0], pulls[-1], pulls[:, 0], pulls[:, -1]])
    assert 0.5 < edge.std() < 1.6  # sky pixels, sky subtracted: unit pulls
    assert 1.4 < window.psf[0] < 3.0  # the true FWHM in pixels (1.5-3" at 1.01"/px)


def test_the_decision_is_fitted_on_its_own_draw():
    delta = np.array([1.0, 2.0, 3.0, 1e3, 2e3, 5e3])
    labels = np.array([0, 0, 0, 1, 1, 1])
    decision = ceiling.Decision.fit(delta, labels, flag_share=0.2)
    assert ((decision.score(delta) > 0) == labels).all()
    assert decision.margin > 0
