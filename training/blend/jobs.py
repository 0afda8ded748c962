"""The blend model's jobs for ``stampflow train|study blend`` (see ``training/model_cmd.py``)."""

from __future__ import annotations

from stampflow.training.blend.study import StudyConfig, study
from stampflow.training.blend.train import TrainConfig, save, summary, train

TRAIN_PRESETS = {
    "default": TrainConfig(),
    "small": TrainConfig(n_train=3_000, n_val=1_000, n_test=1_000),
}
STUDY_PRESETS = {
    "default": StudyConfig(),
    "small": StudyConfig(
        n_test=600,
        n_independent=600,
        n_ood=40,
        n_grid_train=800,
        n_grid_val=400,
        n_ceiling=40,
        train=TRAIN_PRESETS["small"],
    ),
}

__all__ = ["STUDY_PRESETS", "TRAIN_PRESETS", "save", "study", "summary", "train"]
