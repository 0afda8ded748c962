"""Training: a tiny run learns, temperature scaling, the ambiguity threshold, augmentation."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from stampflow.classifiers.bundle import sha256_of
from stampflow.classifiers.morphology.net import state_to_arrays
from stampflow.classifiers.morphology.plugin import MorphologyClassifier
from stampflow.classifiers.morphology.spec import SPEC
from stampflow.training.morphology import sim
from stampflow.training.morphology.augment import (
    AugmentConfig,
    artefacts,
    augment,
    flips_and_turns,
    physics_augment,
)
from stampflow.training.morphology.train import (
    TrainConfig,
    choose_ambiguous_threshold,
    fit,
    fit_temperature,
    recalibrate,
    save,
    softmax,
    train,
)


@pytest.fixture(autouse=True)
def one_thread():
    torch.set_num_threads(1)


def test_tiny_training_run_beats_chance_by_a_wide_margin(tmp_path):
    balanced = sim.SimConfig(balance=(1.0,) * 5)
    config = TrainConfig(
        n_train=400, n_val=250, n_ood_fit=400, epochs=6, batch_size=32, threads=1, seed=3
    )
    train_set = sim.simulate(config.n_train, 31, balanced)
    val_set = sim.simulate(config.n_val, 32, balanced)
    result = fit(train_set, val_set, config, progress=False)
    assert result.metrics["val_accuracy"] > 0.5  # chance is 0.2
    assert result.temperature > 0
    # The saved bundle serves the same predictions through the plugin.
    out = save(result, tmp_path / "model")
    plugin = MorphologyClassifier.load(out)
    assert plugin.version == SPEC.version
    assert plugin.sha256 == sha256_of(out / "weights.safetensors")
    served = plugin.probabilities(val_set.images).argmax(1)
    assert np.mean(served == val_set.labels) == pytest.approx(
        result.metrics["val_accuracy"], abs=1e-6
    )
    # The OOD statistics travel in the bundle and serve the same scores.
    assert plugin.ood is not None and plugin.ood.serving == result.ood.serving
    np.testing.assert_array_equal(plugin.ood.precision, result.ood.precision)
    here = result.classifier().predict(val_set.images[:20])
    there = plugin.predict(val_set.images[:20])
    np.testing.assert_allclose(here.ood_score, there.ood_score, rtol=1e-5)


def test_recalibrate_keeps_the_network_and_calibrates_as_training_did(tmp_path):
    config = TrainConfig(
        n_train=120, n_val=40, n_calibration=30, n_ood_fit=60, epochs=1, batch_size=32, seed=11
    )
    config = replace(config, views=1)
    trained = train(config, progress=False)
    out = save(trained, tmp_path / "model")
    # The same config draws the same validation, calibration and OOD-fit images again (the
    # OOD fit renders only the training set's first n_ood_fit): the same calibration.
    again = recalibrate(out, config, progress=False)
    assert again.temperature == pytest.approx(trained.temperature, rel=1e-6)
    assert again.ambiguous_threshold == pytest.approx(trained.ambiguous_threshold, rel=1e-6)
    assert again.ood.serving.threshold == pytest.approx(trained.ood.serving.threshold, rel=1e-6)
    # Another number of views: the network is the bundle's, the calibration is new and serves.
    eight = recalibrate(out, replace(config, views=8), progress=False)
    for name, weights in state_to_arrays(trained.model).items():
        np.testing.assert_array_equal(state_to_arrays(eight.model)[name], weights)
    plugin = MorphologyClassifier.load(save(eight, tmp_path / "eight"))
    assert plugin.serving.views == 8 and plugin.temperature == eight.temperature
    images = sim.simulate(8, 12).images
    np.testing.assert_allclose(
        plugin.probabilities(images), eight.classifier().probabilities(images), atol=1e-5
    )


def test_temperature_scaling_recovers_an_overconfident_temperature():
    rng = np.random.default_rng(0)
    logits = rng.normal(0.0, 2.0, size=(4000, 5))
    labels = np.array([rng.choice(5, p=p) for p in softmax(logits)])
    assert fit_temperature(logits * 3.0, labels) == pytest.approx(3.0, rel=0.1)


def test_ambiguity_threshold_keeps_the_confident_alerts_accurate():
    entropy = np.linspace(0.0, 1.0, 100)
    correct = entropy < 0.7  # the model is right exactly when it is sure
    threshold = choose_ambiguous_threshold(entropy, correct, target=0.99)
    accepted = entropy <= threshold
    assert correct[accepted].mean() >= 0.99
    assert threshold == pytest.approx(entropy[correct][-1], abs=0.011)
    assert choose_ambiguous_threshold(entropy, np.zeros(100, bool), 0.99) == 0.0


def _noise(x: torch.Tensor) -> torch.Tensor:
    flat = x.flatten(2)
    sky = flat.median(dim=2).values[..., None]
    return (flat - sky).abs().median(dim=2).values * 1.4826


def test_physics_augmentation_dims_signal_but_keeps_the_detector_noise():
    stamps = torch.from_numpy(sim.simulate(16, 41, sim.SimConfig(balance=(1, 0, 0, 0, 0))).images)
    only_distance = AugmentConfig(p_distance=1.0, p_optics=0.0, p_detector=0.0, p_view=0.0)
    out = physics_augment(stamps, only_distance, torch.Generator().manual_seed(0))
    ratio = _noise(out) / _noise(stamps)
    assert ratio.mean().item() == pytest.approx(1.0, abs=0.1)
    bright_before = (stamps - stamps.flatten(2).median(2).values[..., None, None]).amax((2, 3))
    bright_after = (out - out.flatten(2).median(2).values[..., None, None]).amax((2, 3))
    assert (bright_after < bright_before).float().mean() > 0.9


def test_detector_noise_injection_raises_the_noise():
    stamps = torch.from_numpy(sim.simulate(8, 42).images)
    only_detector = AugmentConfig(
        p_distance=0.0, p_optics=0.0, p_detector=1.0, p_view=0.0, min_exposure_share=0.25
    )
    out = physics_augment(stamps, only_detector, torch.Generator().manual_seed(1))
    assert (_noise(out) >= _noise(stamps) * 0.99).all()
    assert _noise(out).mean() > 1.2 * _noise(stamps).mean()


def test_artefacts_bleed_out_of_saturated_cores_and_stripe_across_the_trails():
    rng = np.random.default_rng(3)
    sky = rng.normal(10.0, 1.0, (1, 4, 64, 64)).astype(np.float32)
    yy, xx = np.mgrid[:64, :64] - 32
    star = sky + 5e4 * np.exp(-(xx**2 + yy**2) / 8.0).astype(np.float32)
    star[:, :, 30:35, 30:35] = np.nan  # the saturated core, DO_NOT_USE
    config = AugmentConfig(p_artefacts=1.0, max_stripe_sigma=2.0)
    out = artefacts(star, config, np.random.default_rng(4))
    assert np.array_equal(np.isnan(out), np.isnan(star))  # NaN stays for the fill
    for band in out[0]:
        residual = band - star[0, 0]
        # Just beyond the core, above and below it (axis 0) or left and right (axis 1).
        along_columns = np.abs(residual[[27, 37], 30:35]).min()
        along_rows = np.abs(residual[30:35, [27, 37]]).min()
        assert max(along_columns, along_rows) > 100.0  # a bright trail leaves the core
        far = np.concatenate([residual[:10, :10].ravel(), residual[-10:, -10:].ravel()])
        assert 0.05 < np.std(far) < 10.0  # and stripes of a few noise sigmas cross the sky
    untouched = artefacts(star, AugmentConfig(p_artefacts=0.0), np.random.default_rng(4))
    np.testing.assert_array_equal(untouched, star)


def test_flips_and_turns_keep_pixels_and_shape():
    stamps = torch.arange(2 * 4 * 8 * 8, dtype=torch.float32).reshape(2, 4, 8, 8)
    out = flips_and_turns(stamps, torch.Generator().manual_seed(2))
    assert out.shape == stamps.shape
    for i in range(2):
        assert torch.equal(out[i].flatten().sort().values, stamps[i].flatten().sort().values)
    plain = augment(stamps, AugmentConfig(physics=False), torch.Generator().manual_seed(2))
    assert torch.equal(plain, out)


def test_ood_gaussians_and_joint_thresholds():
    from stampflow.training.morphology.ood import choose_thresholds, distances, fit_gaussians

    rng = np.random.default_rng(4)
    labels = rng.integers(0, 3, 3000)
    centres = np.array([[0.0, 0.0], [6.0, 0.0], [0.0, 6.0]])
    features = centres[labels] + rng.normal(size=(3000, 2))
    means, precision = fit_gaussians(features, labels, 3)
    np.testing.assert_allclose(means, centres, atol=0.1)
    np.testing.assert_allclose(precision, np.eye(2), atol=0.1)
    near = distances(centres + 0.5, means, precision)
    far = distances(np.array([[30.0, 30.0]]), means, precision)
    assert near.max() < 1.0 < 5.0 < far.min()
    # Errors live far from the classes: the distance threshold must cut them.
    distance = np.concatenate([rng.uniform(0, 3, 900), rng.uniform(5, 8, 100)])
    correct = np.concatenate([np.ones(900, bool), np.zeros(100, bool)])
    entropy = rng.uniform(0, 1, 1000)
    t_entropy, t_distance, coverage = choose_thresholds(entropy, distance, correct, 0.99)
    kept = (entropy <= t_entropy) & (distance <= t_distance)
    assert correct[kept].mean() >= 0.99 and coverage == pytest.approx(kept.mean())
    assert t_distance < 5.0 and coverage > 0.85
    # All correct, so the search alone would open the distance threshold to the maximum;
    # the cap (an in-family quantile) keeps far inputs flagged.
    everything = np.ones(1000, bool)
    _, open_threshold, _ = choose_thresholds(entropy, distance, everything, 0.99)
    _, capped, coverage = choose_thresholds(entropy, distance, everything, 0.99, 2.5)
    assert open_threshold >= distance.max() and capped <= 2.5
    assert coverage == pytest.approx(np.mean(distance <= capped))


def test_distance_aware_temperature_softens_far_inputs():
    from stampflow.training.morphology.train import fit_distance_temperature

    rng = np.random.default_rng(5)
    logits = rng.normal(0.0, 3.0, size=(6000, 5))
    score = rng.uniform(0.0, 3.0, 6000)
    true_temperature = 0.5 + 1.0 * score  # far inputs deserve much softer probabilities
    labels = np.array([rng.choice(5, p=p) for p in softmax(logits / true_temperature[:, None])])
    t0, t1 = fit_distance_temperature(logits, score, labels)
    assert t0 == pytest.approx(0.5, abs=0.2) and t1 == pytest.approx(1.0, rel=0.25)
