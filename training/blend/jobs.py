"""The blend model's jobs for ``stampflow train|study blend`` (see ``training/model_cmd.py``)."""

from __future__ import annotations

from stampflow.training.blend.study import study
from stampflow.training.blend.train import TrainConfig, save, summary, train

TRAIN_PRESETS = {
    "default": TrainConfig(),
    "small": TrainConfig(n_train=4_000, n_val=1_500, n_test=2_000),
}
STUDY_PRESETS = TRAIN_PRESETS  # the study fits the shipped model's config itself

__all__ = ["STUDY_PRESETS", "TRAIN_PRESETS", "save", "study", "summary", "train"]
