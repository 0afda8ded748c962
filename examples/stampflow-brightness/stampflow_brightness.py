"""A toy stampflow classifier plugin: is the alert brighter than a magnitude threshold?

It shows the whole contract a broker's own model meets: a frozen spec (naming the surveys
it takes), a class with ``load``/``applies_to``/``classify``, and a ``ClassifierEntry`` that
the ``stampflow.classifiers`` entry point names (see ``pyproject.toml``). It reads the
survey-neutral ``alert.view``, so it serves ZTF and Rubin alerts alike (Rubin's magnitude is
the AB magnitude of ``psfFlux``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from stampflow.classifiers.base import ClassifierSpec
from stampflow.classifiers.registry import ClassifierEntry
from stampflow.schemas.annotation import Annotation
from stampflow.schemas.codec import AnyAlert


@dataclass(frozen=True)
class BrightnessSpec(ClassifierSpec):
    threshold_mag: float  # brighter (smaller magnitude) than this is "bright"


SPEC = BrightnessSpec(
    name="brightness",
    version="0.1.0",
    labels=("bright", "faint"),
    threshold_mag=18.0,
    surveys=("ztf", "rubin"),
)


class BrightnessClassifier:
    name = SPEC.name
    version = SPEC.version
    sha256 = "0" * 64  # no bundle: nothing was trained

    @classmethod
    def load(cls, model_dir: Path | None = None) -> BrightnessClassifier:
        return cls()

    def applies_to(self, alert: AnyAlert) -> bool:
        return SPEC.takes_survey(alert) and alert.view.magnitude is not None

    def classify(self, alerts: Sequence[AnyAlert]) -> list[Annotation]:
        out = []
        for alert in alerts:
            bright = alert.view.magnitude < SPEC.threshold_mag
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
