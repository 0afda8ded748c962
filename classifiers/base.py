"""The one interface every serve-time classifier implements."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from stampflow.schemas.alert import Alert
from stampflow.schemas.annotation import Annotation


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
