"""Training: a tiny run learns, temperature scaling, the ambiguity threshold, augmentation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from stampflow.classifiers.bundle import sha256_of
from stampflow.classifiers.morphology.plugin import MorphologyClassifier
from stampflow.classifiers.morphology.spec import SPEC
from stampflow.training.morphology import sim
from stampflow.training.morphology.augment import (
    AugmentConfig,
    augment,
    flips_and_turns,
    physics_augment,
)
from stampflow.training.morphology.train import (
    TrainConfig,
    choose_ambiguous_threshold,
    fit,
    fit_temperature,
    save,
    softmax,
)


@pytest.fixture(autouse=True)
def one_thread():
    torch.set_num_threads(1)


def test_tiny_training_run_beats_chance_by_a_wide_margin(tmp_path):
    balanced = sim.SimConfig(balance=(1.0,) * 5)
    config = TrainConfig(
        n_train=400, n_val=250, epochs=6, batch_size=32, threads=1, seed=3, sim=balanced
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


def test_flips_and_turns_keep_pixels_and_shape():
    stamps = torch.arange(2 * 4 * 8 * 8, dtype=torch.float32).reshape(2, 4, 8, 8)
    out = flips_and_turns(stamps, torch.Generator().manual_seed(2))
    assert out.shape == stamps.shape
    for i in range(2):
        assert torch.equal(out[i].flatten().sort().values, stamps[i].flatten().sort().values)
    plain = augment(stamps, AugmentConfig(physics=False), torch.Generator().manual_seed(2))
    assert torch.equal(plain, out)
