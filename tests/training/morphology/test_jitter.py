"""The dust-light jitter of training images: off by default, recorded, physical."""

from __future__ import annotations

import numpy as np
import pytest

from stampflow.training.morphology import families, sim
from stampflow.training.morphology.jitter import DustJitter


def _dust() -> np.ndarray:
    r = np.hypot(sim._X, sim._Y)
    ring = np.exp(-0.5 * ((r - 0.8) / 0.1) ** 2)
    return np.stack([ring * (k + 1.0) for k in range(4)])


def test_off_by_default_and_for_starless_stamps():
    dust, row = _dust(), {}
    assert DustJitter().apply(dust, np.random.default_rng(0), row) is dust
    assert row == {"jitter": 0.0, "jitter_geometry": 0.0}
    empty = np.zeros_like(dust)
    assert not DustJitter(p=1.0).apply(empty, np.random.default_rng(0), {}).any()
    with pytest.raises(ValueError, match="probabilities"):
        DustJitter(p=1.5)


def test_colour_tilt_scales_the_band_ratio_as_recorded():
    jitter = DustJitter(p=1.0, max_radial_index=0.0, max_clump_sigma=0.0)
    dust, row = _dust(), {}
    out = jitter.apply(dust, np.random.default_rng(3), row)
    assert row["jitter"] == 1.0 and row["jitter_radial_index"] == 0.0
    ratio = (out[3].sum() / out[0].sum()) / (dust[3].sum() / dust[0].sum())
    tilt = np.exp(row["jitter_colour_tau"] * (sim.WAVELENGTH_UM[3] - sim.WAVELENGTH_UM[0]) / 1.2)
    assert ratio == pytest.approx(tilt, rel=1e-9)


def test_redrawn_light_keeps_the_geometry():
    dust, row = _dust(), {}
    out = DustJitter(p=1.0).apply(dust, np.random.default_rng(5), row)
    assert np.isfinite(out).all() and out.min() >= 0
    # Light is reweighted where there is dust, never created where there is none.
    assert not out[:, dust[0] == 0].any()
    assert {"jitter_clump_sigma", "jitter_clump_scale_arcsec", "jitter_colour_tau"} <= set(row)


def test_jittered_sets_keep_their_labels():
    plain = families.simulate_mix(8, 11)
    jittered = families.simulate_mix(8, 11, jitter=DustJitter(p=1.0))
    np.testing.assert_array_equal(plain.labels, jittered.labels)
    gas = [r["cls"] != "no_gas" for r in jittered.rows]
    assert [r["jitter"] for r in jittered.rows] == [float(g) for g in gas]


def test_geometry_resampling_keeps_a_ring_a_ring_about_the_star():
    dust, row = _dust(), {}
    jitter = DustJitter(geometry_p=1.0, max_displacement_arcsec=0.0, min_axis_ratio=1.0)
    out = jitter.apply(dust, np.random.default_rng(2), row)
    assert row["jitter_geometry"] == 1.0 and row["jitter"] == 0.0
    # A pure radial remap moves the ring to 0.5 (0.8 / 0.5)**power arcsec, round and centred.
    r = np.hypot(sim._X, sim._Y)
    expected = 0.5 * (0.8 / 0.5) ** row["jitter_radial_power"]
    peak = r[out[0] > 0.9 * out[0].max()]
    assert abs(float(np.median(peak)) - expected) < 0.03
    assert np.ptp(peak) < 0.1  # still a thin ring, not smeared
    ratio = out[3].sum() / out[0].sum()
    assert ratio == pytest.approx(dust[3].sum() / dust[0].sum(), rel=1e-6)  # bands alike


def test_geometry_squeeze_flattens_along_its_axis():
    dust, row = _dust(), {}
    jitter = DustJitter(geometry_p=1.0, max_radial_power=1.0, max_displacement_arcsec=0.0)
    out = jitter.apply(dust, np.random.default_rng(4), row)
    angle = np.radians(row["jitter_axis_angle_deg"])
    v = -sim._X * np.sin(angle) + sim._Y * np.cos(angle)
    u = sim._X * np.cos(angle) + sim._Y * np.sin(angle)
    bright = out[0] > 0.5 * out[0].max()
    extent_v, extent_u = np.abs(v[bright]).max(), np.abs(u[bright]).max()
    assert extent_v / extent_u == pytest.approx(row["jitter_axis_ratio"], abs=0.06)
