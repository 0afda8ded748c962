"""The blend classifier behind the daemon's ``Classifier`` interface.

Which cutout: the **template**. ZTF's template (reference) stamp is a deep coadd of the
static sky resampled to the science frame, so it shows the source as it is without the
transient, with sqrt(n_coadd) less noise than one 30 s exposure. Blending is a property of
the static source: the science stamp can be dominated by the transient (a brightening star
swamps its faint companion), and the difference stamp subtracts the static scene, blend
included. The simulator (``stampflow.training.blend.sim``) draws templates the same way.

Pipeline (the same code at training and serving, see ``preprocess``): locate the source,
crop, fill NaN with the sky, orient, normalise, PCA-embed; then MuyGPs on +1/-1 labels gives
a posterior mean and variance per stamp, calibrated and flagged by ``model.BlendModel``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from stampflow.classifiers.blend import ENTRY
from stampflow.classifiers.blend.model import BlendModel, BlendServing
from stampflow.classifiers.blend.preprocess import Prepared, prepare
from stampflow.classifiers.blend.spec import SPEC
from stampflow.classifiers.bundle import load_bundle
from stampflow.schemas.annotation import Annotation
from stampflow.schemas.errors import PacketError

if TYPE_CHECKING:  # only duck-typed here: has_stamp, stamp, object_id, candid
    from stampflow.schemas.alert import Alert


class BlendClassifier:
    """The daemon plugin: annotates alerts with a usable template stamp, a batch at once."""

    name = SPEC.name
    labels = SPEC.labels

    def __init__(self, model: BlendModel, version: str, sha256: str) -> None:
        self.model = model
        self.version = version
        self.sha256 = sha256

    @classmethod
    def load(cls, model_dir: Path | None = None) -> BlendClassifier:
        bundle = load_bundle(model_dir or ENTRY.bundle, BlendServing, SPEC)
        return cls(BlendModel.from_bundle(bundle), bundle.version, bundle.sha256)

    def applies_to(self, alert: Alert) -> bool:
        # A template field that is there but empty is a broken stamp, not a missing one.
        return alert.record.get(SPEC.cutout) is not None

    def classify(self, alerts: Sequence[Alert]) -> list[Annotation]:
        """One annotation per alert, in order, from one vectorised prediction.

        Every stamp is decoded and checked before any model work; a broken one raises the
        ``PacketError`` naming that alert, so the pipeline's retry (in halves, down to
        single alerts) costs little and dead-letters only the broken alert.
        """
        if not alerts:
            return []
        return self.annotate(Prepared.concat([self._prepare(alert) for alert in alerts]))

    def annotate(self, prepared: Prepared) -> list[Annotation]:
        """Annotations for prepared stamps: what ``classify`` returns, for studies too."""
        pred = self.model.predict(prepared)
        return [
            Annotation(
                classifier=self.name,
                model_version=self.version,
                label=self.labels[int(pred.is_blend[i])],
                probabilities={
                    "single": float(1.0 - pred.p_blend[i]),
                    "blend": float(pred.p_blend[i]),
                },
                uncertainty=float(pred.variance[i]),
                ambiguous=bool(pred.ambiguous[i]),
            )
            for i in range(len(pred.mean))
        ]

    def _prepare(self, alert: Alert) -> Prepared:
        """The alert's prepared template, or a ``PacketError`` naming the alert."""
        try:
            if not alert.has_stamp(SPEC.stamp_kind):
                raise PacketError("bad_stamp", "stampData is empty", field=SPEC.cutout)
            return prepare([alert.stamp(SPEC.stamp_kind)], self.model.prep, field=SPEC.cutout)
        except PacketError as exc:
            who = f"alert {alert.object_id} candid {alert.candid}: "
            raise PacketError(exc.reason, who + exc.detail, field=SPEC.cutout) from exc
