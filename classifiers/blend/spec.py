"""The blend model's spec: its labels and the input contract, defined once.

Training (``stampflow.training.blend``) and its simulator import these; the bundle manifest
carries them (``serving.spec``) and serving refuses a bundle trained for another contract.
"""

from __future__ import annotations

from dataclasses import dataclass

from stampflow.classifiers.base import ClassifierSpec


@dataclass(frozen=True)
class BlendSpec(ClassifierSpec):
    cutout: str  # the alert field whose stamp is classified
    stamp_kind: str  # ``Alert.stamp`` name of that cutout
    pixel_scale_arcsec: float  # ZTF's pixels
    stamp_size: int  # ZTF's cutout side; edge-cut stamps are smaller on one axis
    # Real ZTF stamps mark some masked pixels with -FLT_MAX (-3.4e38) instead of NaN:
    # any |value| at or above this is a masked pixel.
    fill_sentinel: float
    min_finite_fraction: float  # a stamp with fewer finite pixels is a ``bad_stamp``
    min_side: int  # a stamp smaller than this on either side is a ``bad_stamp``
    # Below these the stamp shows no source to judge: always ``ambiguous``, never a label.
    min_peak_snr: float  # central peak over the stamp's noise
    min_coverage: float  # share of the crop on unmasked stamp pixels


# ZTF's template stamps only (1.01"/px, 63 px): a Rubin alert is never shown to it. The
# Rubin blend model (0.2"/px) is a spec of its own, with its own bundle.
SPEC = BlendSpec(
    name="blend",
    version="2.3.0",
    labels=("single", "blend"),
    surveys=("ztf",),
    cutout="cutoutTemplate",
    stamp_kind="template",
    pixel_scale_arcsec=1.01,
    stamp_size=63,
    fill_sentinel=1e30,
    min_finite_fraction=0.25,
    min_side=5,
    min_peak_snr=5.0,
    min_coverage=0.6,
)
