"""Scores of a morphology classifier on one labelled set, through the plugin's own path.

Accuracy and macro-F1; the ambiguous flag (share flagged, accuracy of what is not flagged,
AUROC of the flag's score for detecting errors); calibration (ECE before and after
temperature scaling); the risk-coverage curve. The flag's score for ranking is the larger
of the two normalised parts the plugin thresholds (entropy / its threshold, OOD distance /
its threshold): above 1 is flagged.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from sklearn.metrics import f1_score, roc_auc_score

from stampflow.classifiers.morphology.plugin import MorphologyClassifier, Prediction
from stampflow.training.calibration import expected_calibration_error
from stampflow.training.morphology.sim import CLASSES, SimulatedSet

NO_GAS = CLASSES.index("no_gas")


@dataclass(frozen=True)
class Scores:
    n: int
    accuracy: float
    macro_f1: float
    flagged: float
    accuracy_unflagged: float
    error_auroc: float
    ece_raw: float
    ece: float
    no_gas_or_flagged: float  # what the sanity sets must reach

    def row(self) -> list[float | int]:
        return [
            self.n,
            self.accuracy,
            self.macro_f1,
            self.flagged,
            self.accuracy_unflagged,
            self.error_auroc,
            self.ece_raw,
            self.ece,
        ]


SCORE_HEADER = [
    "images",
    "accuracy",
    "macro-F1",
    "flagged",
    "acc. unflagged",
    "error AUROC",
    "ECE raw",
    "ECE calibrated",
]


def uncalibrated(classifier: MorphologyClassifier) -> MorphologyClassifier:
    """The same network and flag with temperature 1: the "before calibration" numbers."""
    serving = replace(classifier.serving, temperature=1.0, temperature_slope=0.0)
    return MorphologyClassifier(
        classifier.model, serving, version=classifier.version, sha256="", ood=classifier.ood
    )


def flag_score(classifier: MorphologyClassifier, prediction: Prediction) -> np.ndarray:
    entropy_part = prediction.entropy / max(classifier.ambiguous_threshold, 1e-9)
    score = np.maximum(entropy_part, prediction.ood_score)
    # Flagged whatever the scores, so ranked above any of them (finite, for the AUROC).
    return np.where(classifier.unreadable(prediction), score.max(initial=1.0) + 1.0, score)


@dataclass(frozen=True)
class Evaluation:
    scores: Scores
    prediction: Prediction
    flagged: np.ndarray
    score: np.ndarray  # flag score, for ranking

    @property
    def predicted(self) -> np.ndarray:
        return self.prediction.probabilities.argmax(1)


def evaluate(
    classifier: MorphologyClassifier, data: SimulatedSet, raw: MorphologyClassifier | None = None
) -> Evaluation:
    prediction = classifier.predict(data.images)
    p = prediction.probabilities
    predicted = p.argmax(1)
    correct = predicted == data.labels
    flagged = classifier.flags(prediction)
    score = flag_score(classifier, prediction)
    raw_p = (raw or uncalibrated(classifier)).probabilities(data.images)
    errors = ~correct
    auroc = float(roc_auc_score(errors, score)) if 0 < errors.sum() < len(errors) else float("nan")
    labels = list(range(len(CLASSES)))
    scores = Scores(
        n=len(data.labels),
        accuracy=float(correct.mean()),
        macro_f1=float(f1_score(data.labels, predicted, average="macro", labels=labels)),
        flagged=float(flagged.mean()),
        accuracy_unflagged=float(correct[~flagged].mean()) if (~flagged).any() else float("nan"),
        error_auroc=auroc,
        ece_raw=expected_calibration_error(raw_p.max(1), raw_p.argmax(1) == data.labels),
        ece=expected_calibration_error(p.max(1), correct),
        no_gas_or_flagged=float(np.mean((predicted == NO_GAS) | flagged)),
    )
    return Evaluation(scores, prediction, flagged, score)


def risk_coverage(score: np.ndarray, correct: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Coverage (share kept, least suspicious first) and the accuracy of what is kept."""
    order = np.argsort(score, kind="stable")
    kept = np.arange(1, len(order) + 1)
    return kept / len(order), np.cumsum(correct[order]) / kept
