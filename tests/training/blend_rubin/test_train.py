"""Training the Rubin blend model: the configuration derived from ZTF's, a tiny run that
gives a bundle the plugin loads, the out-of-family generator, the study."""

from __future__ import annotations

import json

import numpy as np
import pytest

from stampflow.classifiers.blend.preprocess import PreprocessConfig, prepare
from stampflow.classifiers.blend_rubin.plugin import RubinBlendClassifier
from stampflow.training.blend import sim, sky
from stampflow.training.blend_rubin import config, jobs


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    trained = jobs.train(jobs.TRAIN_PRESETS["tiny"])
    return trained, jobs.save(trained, tmp_path_factory.mktemp("bundle"))


def test_the_crop_covers_as_many_fwhm_as_ztf_s_capped_at_the_cutout():
    ztf = PreprocessConfig()
    assert pytest.approx(ztf.crop * 1.01 / 2.1) == config.N_FWHM
    assert config.derived_crop() == 43  # 10.1 FWHM of 0.85" at 0.2"/px
    assert config.RUBIN_PREP.crop == 31 and config.RUBIN_PREP.recentre_px == 4
    assert jobs.TRAIN_PRESETS["default"].prep == config.RUBIN_PREP


def test_both_generators_draw_rubin_stamps():
    for simulate, generator in (
        (sky.simulate_templates, config.RUBIN_SKY),
        (sim.simulate_templates, config.RUBIN_MOFFAT),
    ):
        stamps, truth = simulate(np.random.default_rng(4), 30, generator)
        assert max(s.shape[0] for s in stamps) == 31 and max(s.shape[1] for s in stamps) == 31
        assert ((truth["fwhm_arcsec"] >= 0.5) & (truth["fwhm_arcsec"] <= 1.2)).all()


def test_tiny_training_gives_a_bundle_the_plugin_loads(tiny):
    trained, path = tiny
    assert trained.test_metrics["roc_auc"] > 0.7
    manifest = json.loads((path / "manifest.json").read_text())
    assert manifest["name"] == "blend_rubin"
    assert manifest["serving"]["spec"]["surveys"] == ["rubin"]
    assert manifest["serving"]["spec"]["pixel_scale_arcsec"] == 0.2
    assert manifest["training"]["sim"]["pixel_scale"] == 0.2
    plugin = RubinBlendClassifier.load(path)
    assert plugin.version == "1.0.0" and plugin.sha256 == manifest["sha256"]
    stamps, _ = sky.simulate_templates(np.random.default_rng(8), 5, config.RUBIN_SKY)
    annotations = plugin.annotate(prepare(stamps, plugin.model.prep, spec=plugin.spec))
    assert [a.classifier for a in annotations] == ["blend_rubin"] * 5


def test_study_writes_both_sets(tiny, tmp_path):
    _, path = tiny
    study = jobs.StudyConfig(n_sky=120, n_moffat=120, bundle=str(path))
    report = jobs.study(study, tmp_path / "study")
    summary = json.loads((tmp_path / "study" / "summary.json").read_text())
    assert set(summary) == {"sky_rubin", "moffat_rubin"}
    assert "out of family" in report.read_text()
