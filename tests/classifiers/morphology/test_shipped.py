"""The shipped morphology model on images it has a known answer for, and on images made
another way than its training data: its ambiguous flag must rise there."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from stampflow.classifiers.morphology.plugin import MorphologyClassifier
from stampflow.classifiers.morphology.spec import SPEC
from stampflow.training.morphology.families import (
    BALANCED,
    SANITY_KINDS,
    TEST_MIXES,
    TRAIN_MIX,
    sanity_set,
    simulate_mix,
)


@pytest.fixture(scope="module")
def shipped() -> MorphologyClassifier:
    torch.set_num_threads(1)
    return MorphologyClassifier.load()


def test_shipped_bundle_carries_its_ood_statistics(shipped):
    assert shipped.version == SPEC.version
    assert shipped.ood is not None
    assert shipped.ood.class_means.shape == (len(SPEC.labels), shipped.ood.serving.feature_dim)


@pytest.mark.parametrize("kind", SANITY_KINDS)
def test_sanity_images_come_out_no_gas_or_ambiguous(shipped, kind):
    data = sanity_set(kind, 8, 77)
    for annotation in shipped.annotate(data.images):
        assert annotation.label == "no_gas" or annotation.ambiguous, (kind, annotation)


def test_ambiguous_flag_rises_on_an_out_of_family_batch(shipped):
    # 150 each: with 60, the flagged shares of one draw swing by ~10 points (the study's
    # 1,500 / 800 images: 11% own, 37% all held out).
    own = simulate_mix(150, 91, replace(TRAIN_MIX, balance=BALANCED))
    far = simulate_mix(150, 92, TEST_MIXES["all held out"])
    near_prediction, far_prediction = shipped.predict(own.images), shipped.predict(far.images)
    assert np.median(far_prediction.ood_score) > np.median(near_prediction.ood_score)
    assert shipped.flags(far_prediction).mean() > shipped.flags(near_prediction).mean() + 0.1
