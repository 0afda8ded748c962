"""A toy stampflow classifier plugin: is the alert brighter than a magnitude threshold?

It shows the whole contract a broker's own model meets: a frozen spec, a class with
``load``/``applies_to``/``classify``, and a ``ClassifierEntry`` that the
``stampflow.classifiers`` entry point names (see ``pyproject.toml``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from stampflow.classifiers.base import ClassifierSpec
from stampflow.classifiers.registry import ClassifierEntry
from stampflow.schemas.alert import Alert
from stampflow.schemas.annotation import Annotation


@dataclass(frozen=True)
class BrightnessSpec(ClassifierSpec):
    threshold_mag: float  # brighter (smaller magnitude) than this is "bright"


SPEC = BrightnessSpec(
    name="brightness", version="0.1.0", labels=("bright", "faint"), threshold_mag=18.0
)


class BrightnessClassifier:
    name = SPEC.name
    version = SPEC.version
    sha256 = "0" * 64  # no bundle: nothing was trained

    @classmethod
    def load(cls, model_dir: Path | None = None) -> BrightnessClassifier:
        return cls()

    def applies_to(self, alert: Alert) -> bool:
        return alert.candidate.get("magpsf") is not None

    def classify(self, alerts: Sequence[Alert]) -> list[Annotation]:
        out = []
        for alert in alerts:
            bright = alert.magpsf < SPEC.threshold_mag
            out.append(
                Annotation(
                    classifier=SPEC.name,
                    model_version=SPEC.version,
                    label="bright" if bright else "faint",
                    probabilities={"bright": float(bright), "faint": float(not bright)},
                )
            )
        return out


ENTRY = ClassifierEntry(spec=SPEC, plugin="stampflow_brightness:BrightnessClassifier")
