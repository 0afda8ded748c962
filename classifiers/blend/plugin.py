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

import numpy as np

from stampflow.classifiers.blend import ENTRY
from stampflow.classifiers.blend.model import BlendModel, BlendServing
from stampflow.classifiers.blend.preprocess import Prepared, prepare_each
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
    # The model's input contract and shipped bundle: a survey's blend model (e.g.
    # ``blend_rubin``) subclasses this with its own, and its own ``template``.
    spec = SPEC
    default_bundle = ENTRY.bundle

    def __init__(self, model: BlendModel, version: str, sha256: str) -> None:
        self.model = model
        self.version = version
        self.sha256 = sha256
        self._last: dict[int, tuple[Alert, Annotation | PacketError]] | None = None

    @classmethod
    def load(cls, model_dir: Path | None = None) -> BlendClassifier:
        bundle = load_bundle(model_dir or cls.default_bundle, BlendServing, cls.spec)
        return cls(BlendModel.from_bundle(bundle), bundle.version, bundle.sha256)

    def applies_to(self, alert: Alert) -> bool:
        # The survey first: a Rubin alert has a cutoutTemplate too, at 0.2"/px.
        if not self.spec.takes_survey(alert):
            return False
        # A template field that is there but empty is a broken stamp, not a missing one.
        return alert.record.get(self.spec.cutout) is not None

    def template(self, alert: Alert) -> np.ndarray:
        """The alert's template stamp (float32, NaN kept); ``PacketError`` when unusable."""
        if not alert.has_stamp(self.spec.stamp_kind):
            raise PacketError("bad_stamp", "stampData is empty", field=self.spec.cutout)
        return alert.stamp(self.spec.stamp_kind)

    def classify(self, alerts: Sequence[Alert]) -> list[Annotation]:
        """One annotation per alert, in order, from one vectorised prediction.

        Every template is decoded and validated per alert before any model work; the usable
        ones are prepared and predicted in one pass. A broken one (empty, undecodable, wrong
        shape, too few finite pixels) raises the ``PacketError`` naming that alert, field and
        why. The pipeline then retries in halves, down to single alerts: those calls are
        answered from what this pass computed for the same alert objects (annotations and
        errors alike), so nothing is decoded, prepared or predicted twice and only the
        broken alerts are dead-lettered.
        """
        if not alerts:
            return []
        outcomes = self._remembered(alerts)
        if outcomes is None:
            outcomes = self.outcomes(alerts)
            broken = any(isinstance(o, PacketError) for o in outcomes)
            # Kept only for the retries of a batch that raises; the alerts stay referenced
            # so their ids cannot be reused while remembered.
            self._last = (
                {id(a): (a, o) for a, o in zip(alerts, outcomes, strict=True)} if broken else None
            )
        for outcome in outcomes:
            if isinstance(outcome, PacketError):
                raise outcome
        return outcomes  # type: ignore[return-value]

    def outcomes(self, alerts: Sequence[Alert]) -> list[Annotation | PacketError]:
        """Per alert, its annotation or the ``PacketError`` saying why its template is
        unusable: validated per alert, the usable ones prepared and predicted in one pass."""
        results: list[Annotation | PacketError | None] = [None] * len(alerts)
        stamps, names, where = [], [], []
        for i, alert in enumerate(alerts):
            who = f"alert {alert.object_id} candid {alert.candid}"
            try:
                stamps.append(self.template(alert))
            except PacketError as exc:
                field = self.spec.cutout
                results[i] = PacketError(exc.reason, f"{who}: {exc.detail}", field=field)
                continue
            names.append(f"{who}: template stamp")
            where.append(i)
        batch = prepare_each(
            stamps, self.model.prep, field=self.spec.cutout, names=names, spec=self.spec
        )
        for k, error in batch.errors.items():
            results[where[k]] = error
        annotations = self.annotate(batch.prepared) if len(batch.kept) else []
        for k, annotation in zip(batch.kept, annotations, strict=True):
            results[where[k]] = annotation
        return results  # type: ignore[return-value]

    def _remembered(self, alerts: Sequence[Alert]) -> list[Annotation | PacketError] | None:
        last = self._last
        if last is None:
            return None
        found = [last.get(id(a)) for a in alerts]
        if any(f is None or f[0] is not a for f, a in zip(found, alerts, strict=True)):
            return None
        return [f[1] for f in found]  # type: ignore[index]

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
