"""Scene and detector elements, the two extra morphology generators, family rendering."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest

from stampflow.training.morphology import detector, families, particles, scene, sim, volume


def _canvas() -> np.ndarray:
    return np.zeros((4, scene.CANVAS, scene.CANVAS))


def test_point_sources_keep_flux_and_subpixel_position():
    canvas = _canvas()
    scene.add_point(canvas, 0.1, -0.05, np.ones(4))
    assert canvas.sum(axis=(1, 2)) == pytest.approx(np.ones(4))
    x = (canvas[3] * scene.CX).sum()
    y = (canvas[3] * scene.CY).sum()
    assert (x, y) == pytest.approx((0.1, -0.05), abs=1e-9)


def test_wide_binaries_are_resolved_and_singles_are_one_star():
    rng = np.random.default_rng(0)
    row = sim.draw_params(rng, "no_gas", sim.SimConfig()).row()
    row["distance_kpc"] = 1.0
    canvas = _canvas()
    scene.target_stars(canvas, row, rng, 100.0, "no_gas", "wide_binary")
    assert row["binary_resolved"] == 1.0 and row["binary_sep_arcsec"] > 0.03
    assert np.count_nonzero(canvas[3] > 1e-3 * canvas[3].max()) > 4
    single = _canvas()
    scene.target_stars(single, dict(row), rng, 100.0, "no_gas", "single")
    assert np.count_nonzero(single[3]) <= 4


def test_crowded_family_adds_field_stars_and_galaxies_clean_none():
    rng = np.random.default_rng(1)
    crowded, clean = _canvas(), _canvas()
    row: dict = {}
    scene.field(crowded, scene.SCENE_FAMILIES["crowded_detector"], row, rng, 1.0)
    assert row["n_field_stars"] + row["n_galaxies"] > 0 and crowded.sum() > 0
    scene.field(clean, scene.SCENE_FAMILIES["clean"], {}, rng, 1.0)
    assert clean.sum() == 0


def _observe(family: str, image: np.ndarray, seed: int = 2) -> tuple[np.ndarray, dict]:
    row: dict = {}
    out = detector.observe(
        image, scene.SCENE_FAMILIES[family], np.random.default_rng(seed), 1200.0, row
    )
    return out, row


def _bright_star() -> np.ndarray:
    image = np.zeros((4, 128, 128))
    image[:, 62:66, 62:66] = 2e3  # MJy/sr: saturates in any group
    return image


def test_saturated_cores_become_nan_or_bleed_along_columns():
    nan_core, row = _observe("clean", _bright_star())
    assert row["n_saturated_px"] > 0 and np.isnan(nan_core[:, 31:33, 31:33]).all()
    bled, _ = _observe("crowded_detector", _bright_star())
    assert not np.isnan(bled[:, 31:33, 31:33]).any()
    column, row_cut = bled[3, :, 32], bled[3, 32, :]
    assert (column > 10 * np.nanmedian(bled[3])).sum() > (
        row_cut > 10 * np.nanmedian(bled[3])
    ).sum()


def test_detector_family_adds_hits_and_bad_pixels():
    empty = np.zeros((4, 128, 128))
    clean, _ = _observe("clean", empty)
    defects, _ = _observe("detector", empty, seed=3)
    assert not np.isnan(clean).any()
    assert np.isnan(defects).any()
    noise = np.nanstd(clean, axis=(1, 2))
    outliers = np.nanmax(defects, axis=(1, 2)) - np.nanmedian(defects, axis=(1, 2))
    assert (outliers > 8 * noise).any()


def _neighbour_correlation(image: np.ndarray) -> float:
    a = image - np.nanmedian(image)
    return float(np.nanmean(a[:, 1:] * a[:, :-1]) / np.nanmean(a * a))


def test_drizzle_correlates_noise_and_striping_adds_row_structure():
    empty = np.zeros((4, 128, 128))
    clean, _ = _observe("clean", empty)
    drizzled, row = _observe("crowded_detector", empty, seed=4)
    clean_corr = _neighbour_correlation(clean[3])
    assert abs(clean_corr) < 0.1
    assert _neighbour_correlation(np.nan_to_num(drizzled[3], nan=np.nanmedian(drizzled[3]))) > 0.2
    assert row["one_over_f_sigma"] > 0


def test_dev_family_renders_defects_its_own_way():
    # Saturation: a flat-topped finite core (not NaN, not a column trail) with a halo.
    bloomed, row = _observe("dev_detector", _bright_star())
    assert row["n_saturated_px"] > 0 and not np.isnan(bloomed[:, 31:33, 31:33]).any()
    sky = np.nanmedian(bloomed[3])
    assert np.nanmax(bloomed[3]) > 100 * np.nanstd(bloomed[3][:10, :10])
    assert (bloomed[3] > sky + 10 * np.nanstd(bloomed[3][:10, :10])).sum() > 4
    electrons = np.zeros((80, 80))
    electrons[40, 40] = 5.0
    halo = detector._bloom(electrons, 1.0, np.random.default_rng(0))
    assert halo[40, 40] == 1.0 and halo.sum() == pytest.approx(5.0, rel=1e-6)  # charge kept
    # Offsets: a step between two amplifiers plus a row drift.
    offsets = detector._amplifier_offsets(64, np.random.default_rng(1))
    assert np.ptp(offsets[0]) > 0.3 and np.ptp(offsets[:, 0]) > 0.1
    # Resampling correlates the noise (bilinear weights), keeps NaN pixels NaN.
    noise = np.random.default_rng(2).normal(size=(64, 64))
    noise[10, 10] = np.nan
    shifted = detector._resample(noise, np.random.default_rng(3))
    assert np.isnan(shifted).sum() >= 1 and _neighbour_correlation(np.nan_to_num(shifted)) > 0.1
    # Never a training or test family, nor in the synthetic nights' mix.
    for axis, dev in (("scene", set(families.DEV_SCENES)), ("morph", set(families.DEV_MORPHS))):
        assert not dev & set(getattr(families.TRAIN_MIX, axis))
        assert not dev & set(getattr(families.ALL_FAMILIES, axis))
        assert all(not dev & set(getattr(mix, axis)) for mix in families.TEST_MIXES.values())


@pytest.mark.parametrize("module", [volume, particles])
@pytest.mark.parametrize("cls", sim.CLASSES)
def test_other_generators_draw_every_class(module, cls):
    rng = np.random.default_rng(5)
    p = sim.draw_params(rng, cls, sim.SimConfig())
    p = sim.BinaryParams(**{**p.__dict__, "extras": {**p.extras, **module.draw_extras(rng, cls)}})
    dust = (volume.dust_volume if module is volume else particles.dust_particles)(p, rng)
    assert dust.shape == (4, sim.FINE, sim.FINE) and np.isfinite(dust).all()
    if cls == "no_gas":
        assert not dust.any()
    else:
        r = np.hypot(sim._X, sim._Y)
        assert dust[3][r > 0.3].sum() > 0.2 * dust[3].sum()  # extended, not a point


def test_family_rendering_keeps_its_parameters_and_is_reproducible():
    mix = families.FamilyMix(
        psf=("jwst",), scene=("crowded_detector",), morph=("particles",), balance=(1.0,) * 5
    )
    first = families.simulate_mix(6, 7, mix)
    second = families.simulate_mix(6, 7, mix)
    np.testing.assert_array_equal(first.images, second.images)
    assert first.images.shape == (6, 4, 64, 64) and first.images.dtype == np.float32
    for row, label in zip(first.rows, first.labels, strict=True):
        assert row["cls"] == sim.CLASSES[label]
        assert (row["psf_family"], row["scene_family"], row["morph_family"]) == (
            "jwst",
            "crowded_detector",
            "particles",
        )
        for key in ("exposure_s", "star_config", "n_field_stars", "distance_kpc", "snr"):
            assert key in row
    with pytest.raises(ValueError, match="psf"):
        families.FamilyMix(psf=("hubble",))


def test_test_families_are_held_out_of_training():
    train = families.TRAIN_MIX
    for name, mix in families.TEST_MIXES.items():
        held = [
            axis
            for axis in ("psf", "scene", "morph")
            if not set(getattr(mix, axis)) & set(getattr(train, axis))
        ]
        assert held, name
    assert not set(families.CALIBRATION_MIX.psf) & set(train.psf)
    for mix in families.TEST_MIXES.values():  # calibration family never reported as a test
        assert families.CALIBRATION_MIX.psf[0] not in mix.psf


def test_sanity_sets_are_no_gas_with_their_kind():
    for kind in families.SANITY_KINDS:
        data = families.sanity_set(kind, 4, 8)
        assert (data.labels == sim.CLASSES.index("no_gas")).all()
        assert all(row["sanity"] == kind for row in data.rows)
    noise = families.sanity_set("pure_noise", 2, 9).images
    assert math.isfinite(float(np.nanmax(noise)))


def test_a_saturating_target_is_observed_with_its_dust_well_exposed(monkeypatch):
    """A target bright enough to saturate comes with its dust at S/N 100-3000 (the exposure
    set for the nebula) while the stars' core saturates."""
    always = {k: replace(f, p_saturating_target=1.0) for k, f in scene.SCENE_FAMILIES.items()}
    monkeypatch.setattr(scene, "SCENE_FAMILIES", always)
    for seed, cls in enumerate(("spiral", "shell", "bipolar", "irregular")):
        _, row = families.render_one(cls, "jwst", "clean", "volume", np.random.default_rng(seed))
        assert row["star_peak_snr"] >= 2e4 and row["n_saturated_px"] > 0
        assert 100 <= row["snr"] <= 3000


def test_faint_dust_stress_set_buries_dusty_targets_beside_saturated_stars():
    data = families.faint_dust_set(8, 3)
    assert sim.CLASSES.index("no_gas") not in data.labels
    assert len(set(data.labels.tolist())) == 4
    for row in data.rows:
        assert row["star_peak_snr"] >= 2e4
        assert families.TRAIN_MIX.snr_range[0] <= row["snr"] <= families.TRAIN_MIX.snr_range[1]
