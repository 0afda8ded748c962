"""Real ZTF alerts for the blend study: their templates, weak labels from PS1, realism measures.

Every ZTF candidate carries its three nearest Pan-STARRS1 sources (``distpsnr1..3``: distance
in arcsec, ``sgscore1..3``: star/galaxy score, 1 = star, ``srmag1..3``: r magnitude; -999
where there is none). They give **weak labels** for the static source in the template:

- ``isolated_star``: a PS1 star (sgscore >= 0.8) within 1" of the candidate and nothing else
  within 15": the template should show one star (expected ``single``);
- ``ps1_pair``: two PS1 stars (sgscore > 0.5; exactly 0.5 is "not classified") within 1.5"
  and 3" of the candidate, the second at most 2.5 mag fainter and the two distances summing to
  at least 1" (closer entries are one bright star listed twice): inside one ZTF PSF
  (expected ``blend``);
- ``galaxy_host``: the nearest PS1 source within 3" is a galaxy (sgscore < 0.3): no point
  source to judge (expected ``ambiguous``);
- ``no_counterpart``: no PS1 source within 3": nothing static at the centre (expected
  ``ambiguous``);
- ``unlabelled``: anything else.

Caveats: PS1 resolves ~1" (a closer pair is one PS1 source, so ``isolated_star`` includes
unresolved binaries); sgscore is itself a classifier; PS1 is deeper than a ZTF template
(a PS1 neighbour may be invisible to ZTF), and ``distpsnr`` is measured from the transient,
not from the template's source.

``measure`` computes the same realism statistics on any stamp, real or simulated.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import galsim
import numpy as np
from scipy import ndimage

from stampflow.classifiers.blend.spec import SPEC
from stampflow.schemas.codec import decode_packet
from stampflow.schemas.errors import PacketError

REAL_ALERTS = Path(__file__).resolve().parents[2].parent / "shared" / "alerts" / "ztf"
WEAK_LABELS = ("isolated_star", "ps1_pair", "galaxy_host", "no_counterpart", "unlabelled")
EXPECTED = {"isolated_star": "single", "ps1_pair": "blend"}  # the rest: ambiguous expected
_NONE = -900.0  # PS1 columns hold -999 where there is no source


@dataclass(frozen=True)
class RealAlert:
    object_id: str
    candid: int
    template: np.ndarray
    weak_label: str
    candidate: dict


def weak_label(candidate: dict) -> str:
    """The PS1 weak label of one candidate (see the module docstring)."""

    def col(name: str) -> float:
        value = candidate.get(name)
        return float(value) if value is not None else -999.0

    d1, d2, d3 = col("distpsnr1"), col("distpsnr2"), col("distpsnr3")
    s1, s2 = col("sgscore1"), col("sgscore2")
    r1, r2 = col("srmag1"), col("srmag2")
    if not 0 <= d1 <= 3.0:
        return "no_counterpart"
    if 0 <= s1 < 0.3:
        return "galaxy_host"
    if d1 > 1.5:
        return "unlabelled"  # a star beside the candidate, not under it
    if 0 <= d2 <= 3.0:
        bright_enough = r1 > _NONE and r2 > _NONE and r2 - r1 <= 2.5
        # sgscore 0.5 exactly is "not classified", and two entries whose distances sum to
        # under 1" are closer than PS1 resolves: both are how one bright star shows up twice.
        stars = s1 > 0.5 and s2 > 0.5
        apart = d1 + d2 >= 1.0
        return "ps1_pair" if stars and apart and bright_enough else "unlabelled"
    nothing_else = not 0 <= d2 <= 15.0 and not 0 <= d3 <= 15.0
    if d1 <= 1.0 and s1 >= 0.8 and nothing_else:
        return "isolated_star"
    return "unlabelled"


def load_real(directory: Path = REAL_ALERTS) -> list[RealAlert]:
    """Every decodable alert with a template in ``directory``, one per candid."""
    out: dict[int, RealAlert] = {}
    for path in sorted(Path(directory).glob("*.avro")):
        try:
            alerts = decode_packet(path.read_bytes()).alerts
        except PacketError:
            continue
        for alert in alerts:
            if alert.candid in out or not alert.has_stamp(SPEC.stamp_kind):
                continue
            try:
                template = alert.stamp(SPEC.stamp_kind)
            except PacketError:
                continue
            out[alert.candid] = RealAlert(
                alert.object_id,
                alert.candid,
                np.asarray(template, np.float32),
                weak_label(alert.candidate),
                dict(alert.candidate),
            )
    return list(out.values())


def measure(stamp: np.ndarray, pixel_scale: float = SPEC.pixel_scale_arcsec) -> dict[str, float]:
    """Realism statistics of one template stamp (NaN and masked pixels ignored).

    sky (median), noise (MAD of the sky pixels), noise_lag1 (correlation of neighbouring
    sky pixels: resampled coadds are correlated, white noise is not), background_excess (rms
    of 7x7-block means over what white noise of that noise would give: gradients, galaxies,
    wings), fwhm_arcsec (adaptive moments of the central source), peak_snr (central
    peak over noise), neighbours (other sources above 5 sigma, farther than 5" out),
    wing_ratio (bright sources only: the mean light on the ring 4 px from the brightest
    pixel over that pixel's; a PSF's wings), saturated (a flat-topped or masked core),
    row_streak (bright sources only: the light along the rows beside the source minus along
    its columns, in noise units), nan_fraction.
    """
    image = np.where(np.abs(stamp) < SPEC.fill_sentinel, stamp, np.nan).astype(np.float64)
    finite = np.isfinite(image)
    sky = float(np.nanmedian(image))
    resid = image - sky
    noise = float(1.4826 * np.nanmedian(np.abs(resid)))
    noise = max(noise, 1e-9)
    quiet = finite & (np.abs(resid) < 3 * noise)
    pairs = quiet[:, 1:] & quiet[:, :-1]
    a, b = resid[:, 1:][pairs], resid[:, :-1][pairs]
    lag1 = float(np.corrcoef(a, b)[0, 1]) if len(a) > 10 else float("nan")
    filled = np.where(quiet, resid, 0.0)
    h, w = (image.shape[0] // 7) * 7, (image.shape[1] // 7) * 7
    blocks = filled[:h, :w].reshape(h // 7, 7, w // 7, 7).mean(axis=(1, 3))
    excess = float(blocks.std() / (noise / 7.0))
    cy, cx = image.shape[0] // 2, image.shape[1] // 2
    core = np.nan_to_num(resid[cy - 4 : cy + 5, cx - 4 : cx + 5], nan=0.0)
    peak = float(core.max())
    fwhm = float("nan")
    if peak > 5 * noise:
        box = np.nan_to_num(resid[max(cy - 10, 0) : cy + 11, max(cx - 10, 0) : cx + 11], nan=0.0)
        try:  # adaptive (elliptical Gaussian) moments, as GalSim's HSM measures PSFs
            sigma = galsim.Image(box.astype(np.float64)).FindAdaptiveMom().moments_sigma
            fwhm = float(2.3548 * sigma * pixel_scale)
        except galsim.GalSimError:
            pass
    wing = float("nan")
    if peak > 300 * noise:
        py, px = np.unravel_index(int(np.argmax(core)), core.shape)
        py, px = py + cy - 4, px + cx - 4
        yy, xx = np.indices(image.shape)
        ring = np.abs(np.hypot(yy - py, xx - px) - 4.0) < 0.5
        wing = float(np.nanmean(resid[ring]) / resid[py, px])
    smooth = ndimage.uniform_filter(np.nan_to_num(resid, nan=0.0), 3)
    peaks = (smooth == ndimage.maximum_filter(smooth, 5)) & (smooth > 5 * noise / 3)
    yy, xx = np.nonzero(peaks)
    far = np.hypot(yy - cy, xx - cx) * pixel_scale > 5.0
    raw_core = image[cy - 2 : cy + 3, cx - 2 : cx + 3]
    saturated = bool(np.isnan(raw_core).sum() >= 3) or bool(
        peak > 1000 * noise and np.sum(raw_core >= 0.98 * np.nanmax(raw_core)) >= 4
    )
    # Light along the rows beside a bright source minus along its columns: ZTF's streaks.
    rows = np.r_[
        resid[cy - 1 : cy + 2, cx + 5 : cx + 13].ravel(),
        resid[cy - 1 : cy + 2, cx - 12 : cx - 4].ravel(),
    ]
    cols = np.r_[
        resid[cy + 5 : cy + 13, cx - 1 : cx + 2].ravel(),
        resid[cy - 12 : cy - 4, cx - 1 : cx + 2].ravel(),
    ]
    streak = (
        float((np.nanmean(rows) - np.nanmean(cols)) / noise) if peak > 300 * noise else float("nan")
    )
    return {
        "sky": sky,
        "noise": noise,
        "noise_lag1": lag1,
        "background_excess": excess,
        "fwhm_arcsec": fwhm,
        "peak_snr": peak / noise,
        "neighbours": float(far.sum()),
        "wing_ratio": wing,
        "saturated": float(saturated),
        "row_streak": streak,
        "nan_fraction": float((~finite).mean()),
    }
