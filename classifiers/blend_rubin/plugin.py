"""The Rubin blend classifier behind the daemon's ``Classifier`` interface.

The ZTF blend plugin (``stampflow.classifiers.blend.plugin``: batch validation, one
vectorised prediction, per-alert errors remembered for the pipeline's retries) with Rubin's
spec and bundle. The template comes from the survey-neutral view (``alert.view``): the FITS
cutout is decoded on first use, and one whose WCS says another pixel scale than the model's
0.2"/px is refused rather than classified at the wrong scale.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from stampflow.classifiers.blend.plugin import BlendClassifier
from stampflow.classifiers.blend_rubin import ENTRY
from stampflow.classifiers.blend_rubin.spec import SPEC
from stampflow.schemas.errors import PacketError

if TYPE_CHECKING:
    from stampflow.schemas.rubin import RubinAlert

# How far a cutout's WCS pixel scale may be from the model's before it is refused.
SCALE_TOLERANCE = 0.1


class RubinBlendClassifier(BlendClassifier):
    """Annotates Rubin alerts with a usable template cutout; ZTF alerts are not its."""

    name = SPEC.name
    labels = SPEC.labels
    spec = SPEC
    default_bundle = ENTRY.bundle

    def template(self, alert: RubinAlert) -> np.ndarray:  # type: ignore[override]
        cutout = alert.view.cutout(self.spec.stamp_kind)
        if cutout is None:
            raise PacketError("bad_stamp", "the template cutout is empty", field=self.spec.cutout)
        data = cutout.data  # decodes the FITS bytes (PacketError when they are not FITS)
        scale = cutout.pixel_scale
        if scale is not None and abs(scale / self.spec.pixel_scale_arcsec - 1) > SCALE_TOLERANCE:
            raise PacketError(
                "bad_stamp",
                f'template cutout at {scale:.3g}"/px, the model takes '
                f'{self.spec.pixel_scale_arcsec}"/px',
                field=self.spec.cutout,
            )
        return data
