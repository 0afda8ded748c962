"""The Rubin blend model's spec: the ZTF blend model's contract with Rubin's cutouts.

Rubin alerts carry their template as ``cutoutTemplate`` (a FITS file: image in nJy, TAN WCS
at 0.2"/px, variance), about 30 x 30 px; ``stampflow synth --survey rubin`` writes 31 x 31
(``training.synth.RUBIN_STAMP``), the side this model is trained on. Units do not matter to
the model: every crop is min-max normalised and the no-source test is a peak over the
stamp's own MAD noise.
"""

from __future__ import annotations

from stampflow.classifiers.blend.spec import BlendSpec

SPEC = BlendSpec(
    name="blend_rubin",
    version="1.0.0",
    labels=("single", "blend"),
    surveys=("rubin",),
    cutout="cutoutTemplate",
    stamp_kind="template",
    pixel_scale_arcsec=0.2,
    stamp_size=31,
    fill_sentinel=1e30,
    min_finite_fraction=0.25,
    min_side=5,
    min_peak_snr=5.0,
    min_coverage=0.6,
)
