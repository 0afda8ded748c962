"""The scattering generator: shapes, metadata, reproducibility and the radiative transfer
(scattered versus thermal light, forward scattering, extinction by a torus)."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest

from stampflow.training.morphology import scattering, sim

R = np.hypot(sim._X, sim._Y)


def _params(cls: str, seed: int, **extras: float) -> sim.BinaryParams:
    """Drawn as the families do: sim's parameters, this generator's extras, any inclination
    (bipolar from 25 deg); ``extras`` override drawn values."""
    rng = np.random.default_rng(seed)
    p = sim.draw_params(rng, cls, sim.SimConfig())
    p = sim.BinaryParams(
        **{**p.__dict__, "extras": {**p.extras, **scattering.draw_extras(rng, cls)}}
    )
    low = 25.0 if cls == "bipolar" else 0.0
    inclination = float(np.degrees(np.arccos(rng.uniform(0, math.cos(math.radians(low))))))
    return replace(p, inclination_deg=inclination, extras={**p.extras, **extras})


def _render(p: sim.BinaryParams, seed: int = 0) -> np.ndarray:
    return scattering.dust_scattering(p, np.random.default_rng(seed))


@pytest.mark.parametrize("cls", ["spiral", "shell", "bipolar", "irregular"])
def test_every_class_renders_extended_dust(cls):
    fractions = []
    for seed in range(4):
        dust = _render(_params(cls, seed))
        assert dust.shape == (4, sim.FINE, sim.FINE)
        assert np.isfinite(dust).all() and dust.min() >= 0 and dust.any()
        assert np.percentile(dust[3][R > 0.2], 99.5) == pytest.approx(1.0, rel=1e-4)
        fractions.append(dust[3][R > 0.3].sum() / dust[3].sum())
    assert np.median(fractions) > 0.2  # extended structure, not a point


def test_no_gas_is_empty():
    assert scattering.draw_extras(np.random.default_rng(0), "no_gas") == {}
    dust = _render(_params("no_gas", 0))
    assert dust.shape == (4, sim.FINE, sim.FINE) and not dust.any()


@pytest.mark.parametrize("cls", ["spiral", "shell", "bipolar", "irregular"])
def test_extras_are_prefixed_floats_in_the_row(cls):
    extras = scattering.draw_extras(np.random.default_rng(1), cls)
    assert extras and all(k.startswith("sc_") for k in extras)
    assert all(type(v) is float and math.isfinite(v) for v in extras.values())
    row = _params(cls, 1).row()
    assert set(extras) <= set(row)


def test_reproducible_for_a_seed():
    p = _params("irregular", 3)
    assert np.array_equal(_render(p, 5), _render(p, 5))
    assert not np.array_equal(_render(p, 5), _render(p, 6))  # the clump cascade is drawn
    again = _params("irregular", 3)
    assert again == p


def test_optical_depth_is_normalised_to_the_drawn_value():
    p = _params("shell", 2, sc_tau=0.7)
    _, column = scattering._densities(p, np.random.default_rng(0))
    assert float(column[-1] @ scattering._SOLID) == pytest.approx(0.7, rel=1e-3)


def _colour(dust: np.ndarray) -> float:
    return float(dust[0].sum() / dust[3].sum())


def test_scattered_light_makes_the_short_band_brighter():
    cool = {"sc_tau": 0.1}
    p = replace(_params("shell", 4, **cool), dust_temperature_k=500.0)
    scattered = _render(replace(p, extras={**p.extras, "sc_scatter_weight": 3.0}))
    thermal = _render(replace(p, extras={**p.extras, "sc_scatter_weight": 0.03}))
    assert _colour(scattered) > 10 * _colour(thermal)
    # Starlight scattered by grains whose cross-section falls with wavelength is blue.
    only_scattered = _render(replace(p, extras={**p.extras, "sc_scatter_weight": 1e4}))
    fluxes = only_scattered.sum(axis=(1, 2))
    assert np.all(np.diff(fluxes) < 0)
    # Cool dust alone glows at long wavelengths.
    assert np.all(np.diff(thermal.sum(axis=(1, 2))) > 0)


def _lobe_contrast(g: float) -> float:
    """Near over far lobe flux in F200W for a tilted, symmetric, scattering-lit bipolar."""
    extras = {
        "sc_g": g,
        "sc_g_slope": 0.0,
        "sc_lobe_ratio": 1.0,
        "sc_torus": 0.0,
        "sc_torus_tau": 0.0,
        "sc_tau": 0.3,
        "sc_scatter_weight": 100.0,
        "sc_opening_deg": 40.0,  # narrow lobes, separate on the sky
        "sc_wall_curvature": 1.0,
    }
    p = replace(_params("bipolar", 6, **extras), inclination_deg=55.0)
    dust = _render(p)
    pa = math.radians(p.position_angle_deg)
    along = sim._X * math.sin(pa) - sim._Y * math.cos(pa)  # +z' (towards us) on the sky
    # The lobes, beyond the envelope (whose forward scattering is symmetric on the sky).
    return float(dust[0][along > 0.4].sum() / dust[0][along < -0.4].sum())


def test_forward_scattering_brightens_the_near_lobe():
    forward, isotropic = _lobe_contrast(0.6), _lobe_contrast(0.0)
    assert forward > 1.5
    assert forward > 1.3 * isotropic


def test_thick_torus_dims_the_centre_more_at_short_wavelengths():
    def centre_colour(torus_tau: float) -> float:
        extras = {"sc_torus": 1.0, "sc_torus_tau": torus_tau, "sc_scatter_weight": 1.0}
        p = replace(_params("bipolar", 8, **extras), inclination_deg=85.0)
        dust = _render(p)
        centre = R < 0.25
        return float(dust[0][centre].sum() / dust[3][centre].sum())

    assert centre_colour(40.0) < 0.5 * centre_colour(0.01)


def test_a_thin_shell_is_limb_brightened_in_thermal_light():
    extras = {
        "sc_n_shells": 1.0,
        "sc_first_shell": 1.0,
        "sc_shell_width": 0.04,
        "sc_clump_fraction": 0.0,
        "sc_arc_half_angle_deg": 180.0,
        "sc_distortion": 0.0,
        "sc_scatter_weight": 0.03,
        "sc_tau": 0.05,
    }
    p = replace(_params("shell", 9, **extras), inclination_deg=0.0)
    radius = p.extras["scale_arcsec"]
    dust, r = _render(p)[3], R
    edges = np.linspace(0, 1.2 * radius, 13)
    profile = np.array(
        [dust[(r >= a) & (r < b)].mean() for a, b in zip(edges[:-1], edges[1:], strict=True)]
    )
    peak = int(np.argmax(profile))
    assert 0.6 * radius < edges[peak] < radius  # the limb, just inside the outer shock
    assert profile[peak] > 1.8 * profile[:4].mean()  # brighter than the face
    assert profile[peak] > 20 * dust[(r > 1.3 * radius) & (r < 1.9)].mean()  # sharp edge
