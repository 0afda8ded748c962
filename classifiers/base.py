"""The one interface every serve-time classifier implements, and the spec every model has."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from stampflow.schemas.alert import Alert
from stampflow.schemas.annotation import Annotation


@dataclass(frozen=True)
class ClassifierSpec:
    """What a model is and what it takes: defined once per model (``<model>/spec.py``).

    Training imports it and writes it into the bundle manifest (``serving.spec``); serving
    reads it back and refuses a bundle whose input contract differs from the code's, so the
    two sides of the train/serve line cannot drift apart. Models subclass it with their own
    input contract (which cutout, pixel scale, stamp size, filters, ...).
    """

    name: str
    version: str  # of the model as trained by this code; a bundle may carry its own
    labels: tuple[str, ...]

    def __post_init__(self) -> None:
        if not self.name or not self.name.replace("_", "").isalnum() or not self.name.islower():
            raise ValueError(
                f"a classifier name is lower-case letters, digits and _: {self.name!r}"
            )
        if len(self.labels) < 2 or len(set(self.labels)) != len(self.labels):
            raise ValueError(f"labels must be two or more distinct names: {self.labels}")


@runtime_checkable
class Classifier(Protocol):
    """A model the daemon runs on micro-batches.

    ``classify`` receives only the alerts for which ``applies_to`` is true and returns one
    ``Annotation`` per alert, in order. When an alert's input is unusable it raises
    ``stampflow.schemas.errors.PacketError`` naming that alert; the pipeline then retries
    the batch in halves, down to single alerts, and dead-letters only the failing ones.
    """

    name: str
    version: str
    sha256: str  # checksum of the model bundle, exported as model info

    def applies_to(self, alert: Alert) -> bool: ...

    def classify(self, alerts: Sequence[Alert]) -> list[Annotation]: ...
