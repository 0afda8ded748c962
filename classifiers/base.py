"""The one interface every serve-time classifier implements, and the spec every model has."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from stampflow.schemas.annotation import Annotation
from stampflow.schemas.codec import AnyAlert

SURVEYS = ("ztf", "rubin")


@dataclass(frozen=True)
class ClassifierSpec:
    """What a model is and what it takes: defined once per model (``<model>/spec.py``).

    Training imports it and writes it into the bundle manifest (``serving.spec``); serving
    reads it back and refuses a bundle whose input contract differs from the code's, so the
    two sides of the train/serve line cannot drift apart. Models subclass it with their own
    input contract (which cutout, pixel scale, stamp size, filters, ...).

    What it takes: ``surveys`` (``ztf``, ``rubin``: an alert of another survey is never
    shown to the model, whatever fields it has) and ``cutouts`` (the record fields of the
    cutouts it reads; models with a ``cutout`` field name it there). ``applies_to``
    implementations call ``takes_survey`` first: the fields they look at next belong to
    that survey's alerts.
    """

    name: str
    version: str  # of the model as trained by this code; a bundle may carry its own
    labels: tuple[str, ...]
    # Keyword-only, so models' own fields (without defaults) still follow; bundles trained
    # before it existed read back as ZTF's.
    surveys: tuple[str, ...] = field(default=("ztf",), kw_only=True)

    @property
    def cutouts(self) -> tuple[str, ...]:
        """The record fields of the cutouts the model reads (its ``cutout``, if it has one)."""
        cutout = getattr(self, "cutout", None)
        return (cutout,) if isinstance(cutout, str) else ()

    def takes_survey(self, alert: Any) -> bool:
        """Whether ``alert`` (any survey's) comes from a survey this model was trained for."""
        return getattr(alert, "survey", "ztf") in self.surveys

    def __post_init__(self) -> None:
        if not self.name or not self.name.replace("_", "").isalnum() or not self.name.islower():
            raise ValueError(
                f"a classifier name is lower-case letters, digits and _: {self.name!r}"
            )
        if len(self.labels) < 2 or len(set(self.labels)) != len(self.labels):
            raise ValueError(f"labels must be two or more distinct names: {self.labels}")
        if not self.surveys or not set(self.surveys) <= set(SURVEYS):
            raise ValueError(f"surveys must be some of {SURVEYS}, got {self.surveys}")


@runtime_checkable
class Classifier(Protocol):
    """A model the daemon runs on micro-batches.

    Alerts are ZTF ``Alert`` or ``RubinAlert`` objects (``alert.survey``; ``alert.view`` is
    the survey-neutral ``SurveyAlert``); ``applies_to`` checks the survey first (the
    spec's ``takes_survey``), then whatever its model needs.
    ``classify`` receives only the alerts for which ``applies_to`` is true and returns one
    ``Annotation`` per alert, in order. When an alert's input is unusable it raises
    ``stampflow.schemas.errors.PacketError`` naming that alert; the pipeline then retries
    the batch in halves, down to single alerts, and dead-letters only the failing ones.
    """

    name: str
    version: str
    sha256: str  # checksum of the model bundle, exported as model info

    def applies_to(self, alert: AnyAlert) -> bool: ...

    def classify(self, alerts: Sequence[AnyAlert]) -> list[Annotation]: ...
