"""The survey-neutral view of an alert: what a classifier needs, the same for ZTF and Rubin.

``Alert.view`` (ZTF) and ``RubinAlert.view`` build a ``SurveyAlert``; its cutouts decode on
first use and are cached, and ``record`` is the survey's record exactly as decoded, for
everything the view does not name.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from stampflow.schemas.stamps import FitsImage, decode_fits_image, pixel_scale_arcsec

if TYPE_CHECKING:  # astropy.wcs is imported only when a WCS is asked for
    from astropy.wcs import WCS

CUTOUT_KINDS = ("science", "template", "difference")
# Nominal plate scales [arcsec/px], for cutouts whose header carries no celestial WCS.
PIXEL_SCALE = {"ztf": 1.01, "rubin": 0.2}
# AB magnitude of a flux of 1 nJy: m = 31.4 - 2.5 log10(f / nJy).
AB_ZERO_POINT_NJY = 31.4


class Cutout:
    """One image cutout (science, template or difference), decoded on first use.

    ``data`` is float32 (its real shape, NaN kept) and read-only, like ``Alert.stamp``;
    ``wcs`` is astropy's WCS of the cutout's header (None without one), ``pixel_scale`` the
    WCS's scale in arcsec/px, else the survey's nominal one.
    """

    __slots__ = ("kind", "field", "blob", "_default_scale", "_pixels", "_fits", "_wcs", "_wcs_read")

    def __init__(
        self,
        kind: str,
        field: str,
        blob: bytes,
        *,
        default_pixel_scale: float | None = None,
        pixels: Callable[[], np.ndarray] | None = None,
    ) -> None:
        self.kind = kind
        self.field = field  # the record's field, e.g. cutoutScience
        self.blob = blob  # the FITS bytes as sent (gzip for ZTF, plain for Rubin)
        self._default_scale = default_pixel_scale
        self._pixels = pixels  # ZTF: the alert's own cached stamp decoder
        self._fits: FitsImage | None = None
        self._wcs: WCS | None = None
        self._wcs_read = False

    def _image(self) -> FitsImage:
        if self._fits is None:
            image = decode_fits_image(self.blob, self.field)
            image.pixels.flags.writeable = False
            self._fits = image
        return self._fits

    @property
    def data(self) -> np.ndarray:
        return self._pixels() if self._pixels is not None else self._image().pixels

    @property
    def header(self) -> dict[str, str]:
        """The image header's ``KEY = value`` cards, values as written (strings quoted)."""
        return self._image().cards

    @property
    def pixel_scale(self) -> float | None:
        """arcsec/px: from the header's WCS when it has one, else the survey's nominal scale."""
        from_wcs = pixel_scale_arcsec(self._image().cards)
        return from_wcs if from_wcs is not None else self._default_scale

    @property
    def wcs(self) -> WCS | None:
        """astropy's WCS of the cutout (celestial axes), or None when the header has none."""
        if not self._wcs_read:
            cards = self._image().cards
            if "CTYPE1" in cards and "CTYPE2" in cards:
                from astropy.io import fits
                from astropy.wcs import WCS

                header = fits.Header.fromstring(self._image().header)
                self._wcs = WCS(header, naxis=2)
            self._wcs_read = True
        return self._wcs

    def __repr__(self) -> str:
        return f"Cutout({self.kind!r}, field={self.field!r}, {len(self.blob)} bytes)"


@dataclass(frozen=True, slots=True)
class SurveyAlert:
    """The fields a classifier needs, named the same for every survey.

    ``alert_id`` is unique per alert (ZTF ``candid``; Rubin ``alertId`` in 7.x, the
    top-level ``diaSourceId`` from 8.0); ``object_id`` the object it belongs to (ZTF
    ``objectId``; Rubin ``diaObjectId``, else ``ssObjectId``, as a string; None when the
    record has neither). ``mjd`` is the exposure's time (ZTF: ``jd`` - 2400000.5, the start of
    the exposure; Rubin: ``midpointMjdTai``). ``magnitude`` is ZTF's ``magpsf``, or the AB
    magnitude of Rubin's ``psfFlux`` when that is positive; ``flux`` is Rubin's ``psfFlux``
    [nJy] (None for ZTF, which sends magnitudes). ``cutouts`` holds those the packet carries,
    by kind (science, template, difference).
    """

    survey: str  # "ztf" or "rubin"
    schema_version: str | None
    alert_id: int
    object_id: str | None
    ra: float  # deg
    dec: float  # deg
    mjd: float
    band: str | None  # ZTF g, r, i (from fid 1, 2, 3); Rubin u, g, r, i, z, y
    magnitude: float | None
    magnitude_err: float | None
    flux: float | None  # nJy
    flux_err: float | None  # nJy
    cutouts: Mapping[str, Cutout]
    record: dict[str, Any]  # the survey's record, untouched

    def cutout(self, kind: str) -> Cutout | None:
        """The ``kind`` cutout, or None when the packet does not carry it."""
        if kind not in CUTOUT_KINDS:
            raise ValueError(f"cutout kind must be one of {CUTOUT_KINDS}, got {kind!r}")
        return self.cutouts.get(kind)


def ab_magnitude(flux_njy: float | None) -> float | None:
    """AB magnitude of a flux in nJy; None for a missing, zero, negative or non-finite flux."""
    if flux_njy is None or not math.isfinite(flux_njy) or flux_njy <= 0:
        return None
    return AB_ZERO_POINT_NJY - 2.5 * math.log10(flux_njy)


def ab_magnitude_err(flux_njy: float | None, flux_err_njy: float | None) -> float | None:
    """1-sigma magnitude error of ``ab_magnitude`` (2.5 / ln 10 * err / flux)."""
    if ab_magnitude(flux_njy) is None or flux_err_njy is None or not math.isfinite(flux_err_njy):
        return None
    return 2.5 / math.log(10) * abs(flux_err_njy) / flux_njy
