"""The morphology model's spec: its classes and the input contract, defined once.

Training and the NIRCam simulator (``stampflow.training.morphology``) import these; the
bundle manifest carries them (``serving.spec``) and serving refuses a bundle trained for
another contract.
"""

from __future__ import annotations

from dataclasses import dataclass

from stampflow.classifiers.base import ClassifierSpec


@dataclass(frozen=True)
class MorphologySpec(ClassifierSpec):
    cutout: str  # the alert extension holding the multiband stamps
    filters: tuple[str, ...]  # the network's input channels, in order
    grid_scale_arcsec: float  # pixel scale of the network's input grid
    input_size: int  # pixels on a side of that grid
    # Relative mismatch under which a band's pixel scale counts as an integer fraction of
    # the grid's (NIRCam SW 0.031"/px vs half of 0.063 is within it): block averaging.
    scale_tolerance: float


# Its multiband JWST cutouts ride on ZTF-style packets (``cutoutMultiband``), as today.
SPEC = MorphologySpec(
    name="morphology",
    version="2.3.0",
    labels=("spiral", "shell", "bipolar", "irregular", "no_gas"),
    surveys=("ztf",),
    cutout="cutoutMultiband",
    filters=("F200W", "F277W", "F356W", "F444W"),
    grid_scale_arcsec=0.063,
    input_size=64,
    scale_tolerance=0.03,
)
