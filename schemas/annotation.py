"""What a classifier says about one alert."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Annotation:
    """One classifier's verdict on one alert.

    ``probabilities`` maps every class label to its (calibrated) probability;
    ``uncertainty`` is the classifier's own scalar uncertainty (posterior variance for the
    MuyGPs blend model, predictive entropy for the morphology CNN) and ``ambiguous`` says
    whether that uncertainty is too large to trust ``label``.
    """

    classifier: str
    model_version: str
    label: str
    probabilities: dict[str, float] = field(default_factory=dict)
    uncertainty: float = 0.0
    ambiguous: bool = False
