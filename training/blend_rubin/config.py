"""The blend simulators and preprocessing configured for Rubin, derived from ZTF's.

Every Rubin number is either Rubin's (pixel scale, aperture, seeing, detector, depth) or
the ZTF configuration carried over in units of the seeing FWHM, so that the Rubin model sees
the same problem ZTF's solves:

- **crop**: ZTF's 21 px crop at 1.01"/px is 21.2", i.e. ``N_FWHM`` = 21.2" / 2.1" = 10.1
  FWHM of the ZTF training seeing's midpoint (``SkyConfig().seeing_range`` 1.6-2.6"). At
  Rubin's seeing midpoint (0.85" of 0.5-1.2") that is 10.1 x 0.85" / 0.2" = 42.9 px, more
  than a Rubin cutout holds (31 px = 6.2"), so the crop is the whole cutout: 31 px, 7.3
  FWHM at the median seeing (5.2 at the worst, 12.4 at the best); a companion at the
  largest separation simulated (3 FWHM) still lies inside it at 1.03" seeing or better.
- **recentring**: ZTF refines the centre within 2 px (0.96 FWHM); the same in FWHM is 4 px.
- **detector**: gain 1.6 e-/ADU, read noise 6 e-, zero point 31.2-31.9 mag for 1 ADU in
  a 30 s visit (28.4 mag for 1 e-/s in r), sky 19.5-22.3 mag/arcsec^2 (u to y); templates
  are coadds of 20-100 visits (ZTF's: 15-40), so they go to 25 mag and deeper.
- **optics**: the 8.36 m aperture with its 61% central obscuration, small residual blur
  (the system's ~0.4" FWHM budget); no ZTF row streaks.
- **scene**: field stars and galaxies as densities on the sky: a Rubin cutout is 100 times
  smaller in area than ZTF's and 4.5 mag deeper, so 0.1-1.5 field stars (ZTF: 0.3-6) and
  0-1.5 galaxies of 21-26 mag (ZTF: 0-2 of 17.5-22); masked blocks scaled to the stamp.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from stampflow.classifiers.blend.preprocess import PreprocessConfig
from stampflow.classifiers.blend.spec import SPEC as ZTF_SPEC
from stampflow.classifiers.blend_rubin.spec import SPEC
from stampflow.training.blend.sim import SimConfig
from stampflow.training.blend.sky import SkyConfig

RUBIN_SEEING = (0.5, 1.2)  # arcsec FWHM of the templates


def _midpoint(span: tuple[float, float]) -> float:
    return (span[0] + span[1]) / 2


# How many seeing FWHM ZTF's crop covers, at the midpoint of ZTF's training seeing.
N_FWHM = PreprocessConfig().crop * ZTF_SPEC.pixel_scale_arcsec / _midpoint(SkyConfig().seeing_range)
RECENTRE_FWHM = (
    PreprocessConfig().recentre_px
    * ZTF_SPEC.pixel_scale_arcsec
    / _midpoint(SkyConfig().seeing_range)
)


def _odd(x: float) -> int:
    """The odd integer nearest ``x``."""
    return int(2 * np.floor(x / 2) + 1)


def derived_crop() -> int:
    """The crop covering ``N_FWHM`` Rubin FWHM at Rubin's seeing midpoint, in px (43)."""
    return _odd(N_FWHM * _midpoint(RUBIN_SEEING) / SPEC.pixel_scale_arcsec)


def rubin_crop() -> int:
    """``derived_crop`` capped at the cutout: the largest odd side it holds (31)."""
    return min(
        derived_crop(), _odd(SPEC.stamp_size - 1) if SPEC.stamp_size % 2 == 0 else SPEC.stamp_size
    )


def rubin_recentre() -> int:
    """ZTF's recentring radius in FWHM, in Rubin px at the seeing midpoint (4)."""
    return int(round(RECENTRE_FWHM * _midpoint(RUBIN_SEEING) / SPEC.pixel_scale_arcsec))


RUBIN_PREP = dataclasses.replace(
    PreprocessConfig(), crop=rubin_crop(), recentre_px=rubin_recentre()
)

RUBIN_SKY = SkyConfig(
    pixel_scale=SPEC.pixel_scale_arcsec,
    stamp_size=SPEC.stamp_size,
    aperture_m=8.36,
    obscuration_range=(0.58, 0.64),
    seeing_range=RUBIN_SEEING,
    optics_blur_sigma=(0.05, 0.17),
    strut_prob=0.05,
    streak_share=(0.0, 0.0),
    halo_share=(0.0, 0.0),  # ZTF's halo is measured on real ZTF stars; Rubin's is not known
    mag_range=(16.5, 25.0),
    zero_point_range=(31.2, 31.9),
    sky_mag_range=(19.5, 22.3),
    gain=1.6,
    read_noise=6.0,
    n_coadd_range=(20, 100),
    field_star_mean=(0.1, 1.5),
    field_mag_range=(16.0, 26.0),
    galaxy_mean=(0.0, 1.5),
    galaxy_mag_range=(21.0, 26.0),
    saturation_dn=(4.0e4, 6.5e4),
    masked_block_px=(3, 20),
)

# The analytic Moffat generator (white noise) for Rubin: the out-of-family set.
RUBIN_MOFFAT = SimConfig(
    pixel_scale=SPEC.pixel_scale_arcsec,
    stamp_size=SPEC.stamp_size,
    fwhm_range=RUBIN_SEEING,
    mag_range=(17.0, 25.0),
    zero_point_range=(31.2, 31.9),
    sky_mag_range=(19.5, 22.3),
    gain=1.6,
    read_noise=6.0,
    n_coadd_range=(20, 100),
    neighbour_distance=(2.5, 4.0),
)
