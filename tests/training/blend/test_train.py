"""Training the blend model end to end on a tiny simulated set, and its bundle."""

from __future__ import annotations

import json
import pickle
import shutil

import numpy as np
import pytest

from stampflow.classifiers.blend.model import AmbiguityRule
from stampflow.classifiers.blend.plugin import BlendClassifier
from stampflow.classifiers.blend.preprocess import prepare
from stampflow.classifiers.bundle import MANIFEST, WEIGHTS, BundleError
from stampflow.training.blend.train import (
    TrainConfig,
    choose_rule,
    fit,
    fit_calibration,
    save,
    simulate_splits,
)

TINY = TrainConfig(seed=5, n_train=900, n_val=400, n_test=400, opt_batch=300, nn_count=30)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    splits = simulate_splits(TINY)
    trained = fit(TINY, splits)
    out = save(trained, tmp_path_factory.mktemp("bundle") / "blend")
    return splits, trained, out


def test_tiny_model_beats_chance_by_a_wide_margin(tiny):
    splits, trained, _ = tiny
    majority = max(splits.test.labels.mean(), 1 - splits.test.labels.mean())
    assert trained.test_metrics["accuracy"] > majority + 0.25
    assert trained.test_metrics["roc_auc"] > 0.85
    # The flag removes the least certain stamps: the rest are more often right.
    assert trained.test_metrics["non_ambiguous_accuracy"] > trained.test_metrics["accuracy"]


def test_splits_are_independent_and_reproducible():
    small = TrainConfig(seed=5, n_train=100, n_val=100, n_test=100)
    first, again = simulate_splits(small), simulate_splits(small)
    np.testing.assert_array_equal(first.train.crops, again.train.crops)
    np.testing.assert_array_equal(first.test.truth["snr"], again.test.truth["snr"])
    assert not np.allclose(first.train.crops, first.val.crops)


def test_bundle_loads_without_pickle_and_predicts_the_same(tiny, monkeypatch):
    splits, trained, out = tiny

    def refuse(*args, **kwargs):
        raise AssertionError("a model bundle must not be unpickled")

    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "loads", refuse)
    loaded = BlendClassifier.load(out)
    assert loaded.name == "blend" and loaded.labels == ("single", "blend")
    assert len(loaded.sha256) == 64
    few = splits.test.prepared.subset(slice(0, 200))
    again = loaded.model.predict(few)
    first = trained.model.predict(few)
    np.testing.assert_allclose(again.mean, first.mean, atol=1e-4)
    np.testing.assert_array_equal(again.is_blend, first.is_blend)
    np.testing.assert_array_equal(again.reason, first.reason)


def test_manifest_traces_the_model_to_its_config_and_metrics(tiny):
    _, _, out = tiny
    manifest = json.loads((out / MANIFEST).read_text())
    assert manifest["name"] == "blend" and manifest["version"]
    assert {"spec", "preprocess", "gp", "calibration", "ambiguity"} <= set(manifest["serving"])
    assert manifest["serving"]["spec"]["cutout"] == "cutoutTemplate"
    assert manifest["training"]["seed"] == TINY.seed
    assert {"validation", "test"} <= set(manifest["metrics"])
    assert 0.0 <= manifest["metrics"]["test"]["ece"] <= 1.0


def test_tampered_weights_are_refused(tiny, tmp_path):
    _, _, out = tiny
    copy = tmp_path / "blend"
    shutil.copytree(out, copy)
    data = bytearray((copy / WEIGHTS).read_bytes())
    data[-10] ^= 0xFF
    (copy / WEIGHTS).write_bytes(bytes(data))
    with pytest.raises(BundleError, match="sha256"):
        BlendClassifier.load(copy)


def test_rule_flags_the_uncertain_and_meets_the_target():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 4000)
    signed = np.where(labels == 1, 1.0, -1.0)
    margin = rng.uniform(0.0, 1.0, 4000)
    # Small margins are coin flips, large ones are right.
    wrong = rng.random(4000) < np.where(margin < 0.2, 0.5, 0.0)
    mean = np.where(wrong, -signed, signed) * margin
    rule = choose_rule(mean, np.full(4000, 0.01), labels, target=0.99, max_flagged=0.25)
    flagged = rule.score(mean, np.full(4000, 0.01)) < rule.tau
    kept_correct = ((mean > 0) == (labels == 1))[~flagged]
    assert kept_correct.mean() >= 0.99
    assert 0.15 < flagged.mean() < 0.25
    assert isinstance(rule, AmbiguityRule)


def test_calibration_follows_frequencies_that_are_not_a_logistic_curve():
    # The true P(blend | mean) rises steeply near 0 and saturates: no one-slope sigmoid fits.
    rng = np.random.default_rng(3)
    mean = rng.uniform(-1.2, 1.2, 20_000)
    truth = 0.5 + 0.5 * np.sign(mean) * np.minimum(np.abs(mean) * 3.0, 0.9) ** 0.5
    labels = (rng.random(len(mean)) < truth).astype(int)
    calibration = fit_calibration(mean, labels)
    assert calibration(np.array([0.0]))[0] == 0.5  # the label is the sign of the mean
    grid = np.linspace(-1.1, 1.1, 45)
    p = calibration(grid)
    assert np.all(np.diff(p) >= 0)
    # No ties: a label never comes with P(blend) = 0.5.
    assert np.all(p[grid > 0] > 0.5) and np.all(p[grid < 0] < 0.5)
    expected = 0.5 + 0.5 * np.sign(grid) * np.minimum(np.abs(grid) * 3.0, 0.9) ** 0.5
    assert np.abs(p - expected).max() < 0.08


def test_shapes_unlike_any_training_star_are_flagged_unlike_training(tiny):
    splits, trained, _ = tiny
    rule = trained.model.rule
    assert rule.max_moment_z is not None  # the moments' limit, at the validation quantile
    rng = np.random.default_rng(8)
    spikes = rng.normal(100.0, 3.0, (20, 63, 63)).astype(np.float32)
    spikes[:, 31, 31] += 3000.0  # a cosmic ray: one hot pixel, far sharper than any PSF
    prepared = prepare(list(spikes), trained.model.prep)
    post = trained.model.posterior(prepared.crops)
    assert (post.moment_outlier > rule.max_moment_z).mean() >= 0.9
    assert (trained.model.decide(post, prepared).reason == "unlike_training").mean() >= 0.9
    test = splits.test.prepared
    reason = trained.model.predict(test).reason
    shown = reason != "no_source"  # stamps without a source have noise for moments
    outlier = trained.model.posterior(test.crops).moment_outlier[shown] > rule.max_moment_z
    # Simulated stars and pairs pass: a few more than 0.5%, as the limit is the 99.5%
    # quantile of only 400 validation stamps, which rests on their two largest values.
    assert outlier.mean() < 0.05
