"""The morphology model's jobs for ``stampflow train|study morphology`` (see
``training/model_cmd.py``)."""

from __future__ import annotations

from stampflow.training.morphology.study import StudyConfig, study
from stampflow.training.morphology.train import TrainConfig, recalibrate, save, summary, train

TRAIN_PRESETS = {
    "default": TrainConfig(),
    "small": TrainConfig(n_train=1_500, n_val=300, n_calibration=100, n_ood_fit=1_000, epochs=3),
}
STUDY_PRESETS = {
    "default": StudyConfig(),
    "small": StudyConfig(
        n_test=300, n_out=200, n_sanity=50, n_tsne=300, budget=TRAIN_PRESETS["small"]
    ),
}

__all__ = ["STUDY_PRESETS", "TRAIN_PRESETS", "recalibrate", "save", "study", "summary", "train"]
