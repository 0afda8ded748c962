"""A ZTF template simulator closer to the sky, rendered with GalSim: the blend model's
training generator.

The analytic simulator (``sim.py``: one Moffat profile, white noise, a rare neighbour) stays
as an independent second generator for out-of-family tests. This one adds what real
templates show (``real.measure`` compares the two with the real packets):

- **PSF from atmosphere and optics**: a template is a coadd of 15-40 exposures, so its PSF
  is a weighted sum of two Kolmogorov profiles whose FWHMs spread around the coadd's
  seeing (PSF variation across the coadd), convolved with the diffraction of the 1.22 m
  aperture and its central obscuration (for a share of stamps the full pattern with four
  struts and defocus, astigmatism and coma, from a bank drawn once per process), a Gaussian
  blur for the camera's aberrations, focus and tracking, and a small shear (wind); and the
  faint horizontal streak ZTF's bright stars trail along the rows; and a broad halo (5-30% of
  the light, 2-4x the FWHM) for the wings real coadds show 3-5" out. The seeing range is set
  a little wider than the real templates' FWHM distribution (the study's realism table).
- **Scene**: the central single star or blend (2-3 stars closer than 3 FWHM, as before);
  field stars with counts rising to faint magnitudes (dN/dm ~ 10^(0.3 m)) and background
  galaxies, all resolved from the centre (farther than 3 FWHM); in a share of stamps a
  fainter galaxy under the central star (the star is still one star; a galaxy with no star
  on it is not something this model labels, and the study checks that it is flagged); a
  sky gradient.
- **Detector and coadd**: Poisson and read noise scaled by the coadd depth, then correlated
  as resampling correlates it (sums of bilinear kernels at random sub-pixel shifts);
  saturated cores clipped with charge bleeding along columns, or masked; masked blocks, bad
  pixels and CCD-edge cuts.

``simulate_templates`` has the signature of ``sim.simulate_templates``: both generators plug
into the same training and study code, and their truth tables share ``sim.TRUTH_COLUMNS``.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import galsim
import numpy as np
from scipy import ndimage

from stampflow.classifiers.blend.spec import SPEC
from stampflow.training.blend.sim import TRUTH_COLUMNS, damage

STAMP = SPEC.stamp_size
_GSPARAMS = galsim.GSParams(folding_threshold=1e-2, maxk_threshold=2e-3)
_OPTICS_BANK_SEED = 7
_SNR_BOX = 21
_LAM_OVER_DIAM = 620e-9 / 1.22 * 206265  # arcsec: P48's 1.22 m aperture in r
SKY_COLUMNS = (
    *TRUTH_COLUMNS,
    "n_field",
    "nearest_field_fwhm",
    "n_galaxies",
    "host",
    "saturated",
    "correlated_noise",
)


@dataclass(frozen=True)
class SkyConfig:
    """Ranges the stamps are drawn from (uniform unless said otherwise)."""

    pixel_scale: float = SPEC.pixel_scale_arcsec
    stamp_size: int = STAMP  # px on a side (the survey's cutout)
    aperture_m: float = 1.22  # the telescope's (P48) diameter, for its diffraction
    obscuration_range: tuple[float, float] = (0.3, 0.45)  # central obscuration, of the diameter
    blend_fraction: float = 0.5
    triple_fraction: float = 0.1
    seeing_range: tuple[float, float] = (1.6, 2.6)  # coadd FWHM, arcsec
    coadd_fwhm_spread: float = 0.15  # relative spread of the exposures' FWHM in one coadd
    optics_blur_sigma: tuple[float, float] = (0.15, 0.4)  # arcsec: aberrations, focus, tracking
    strut_prob: float = 0.1  # share of stamps with the full strut diffraction pattern
    streak_share: tuple[float, float] = (0.0005, 0.006)  # of a star's light, along the rows
    streak_length: tuple[float, float] = (10.0, 30.0)  # arcsec
    max_shear: float = 0.06
    # Real ZTF coadd PSFs hold about twice the light 4 px out that a Kolmogorov core of
    # their FWHM does (the realism table's wing_ratio, measured on the real stars that carry
    # no weak label): scattered light and the coadd's worst-seeing exposures. A broad
    # Kolmogorov halo takes a share of the light, its FWHM a multiple of the coadd's.
    halo_share: tuple[float, float] = (0.05, 0.3)
    halo_scale: tuple[float, float] = (2.0, 4.0)
    sep_fwhm_range: tuple[float, float] = (0.1, 3.0)
    flux_ratio_range: tuple[float, float] = (0.05, 1.0)
    mag_range: tuple[float, float] = (13.5, 20.5)
    zero_point_range: tuple[float, float] = (25.8, 26.4)
    sky_mag_range: tuple[float, float] = (19.8, 21.8)  # mag/arcsec^2
    gain: float = 6.2
    read_noise: float = 10.0
    n_coadd_range: tuple[int, int] = (15, 40)
    field_star_mean: tuple[float, float] = (0.3, 6.0)  # per stamp, Poisson mean range
    field_mag_range: tuple[float, float] = (13.0, 21.5)
    galaxy_mean: tuple[float, float] = (0.0, 2.0)
    galaxy_mag_range: tuple[float, float] = (17.5, 22.0)
    host_prob: float = 0.25
    host_mag_offset: tuple[float, float] = (1.5, 5.0)  # host mag - central star mag
    correlated_noise_prob: float = 0.9
    resample_shift: tuple[float, float] = (0.05, 0.3)  # pixels; 0.5 is the most correlated
    gradient_max: float = 0.004  # sky change across the stamp, relative
    saturation_dn: tuple[float, float] = (2.0e4, 6.0e4)
    mask_saturated_prob: float = 0.5
    masked_block_prob: float = 0.15
    masked_block_px: tuple[int, int] = (6, 40)  # side range of a masked block
    edge_cut_prob: float = 0.05
    nan_prob: float = 0.1

    def __post_init__(self) -> None:
        for name in ("blend_fraction", "triple_fraction", "host_prob", "strut_prob"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        if not 0.0 <= self.halo_share[0] <= self.halo_share[1] < 1.0:
            raise ValueError(f"halo_share must be (low, high) in [0, 1), got {self.halo_share}")
        for name in ("seeing_range", "sep_fwhm_range", "mag_range", "n_coadd_range", "halo_scale"):
            low, high = getattr(self, name)
            if not 0 < low <= high:
                raise ValueError(f"{name} must be (low, high) with 0 < low <= high")


@functools.cache
def _strut_bank(
    size: int = 8, diam: float = 1.22, obscuration: tuple[float, float] = (0.3, 0.45)
) -> tuple[galsim.GSObject, ...]:
    """Diffraction PSFs of the 1.22 m Schmidt aperture with its obscuration and four struts
    (defocus, astigmatism, coma in waves), built once per process: costly to evaluate, so
    only ``strut_prob`` of the stamps use one; at 1"/px their spikes show on bright stars."""
    rng = np.random.default_rng(_OPTICS_BANK_SEED)
    return tuple(
        galsim.OpticalPSF(
            lam=620.0,
            diam=diam,
            obscuration=float(rng.uniform(*obscuration)),
            nstruts=4,
            strut_angle=float(rng.uniform(0, 90)) * galsim.degrees,
            defocus=float(rng.normal(0, 0.25)),
            astig1=float(rng.normal(0, 0.15)),
            astig2=float(rng.normal(0, 0.15)),
            coma1=float(rng.normal(0, 0.12)),
            coma2=float(rng.normal(0, 0.12)),
            gsparams=_GSPARAMS,
        )
        for _ in range(size)
    )


def _psf(rng: np.random.Generator, fwhm: float, c: SkyConfig) -> galsim.GSObject:
    """The PSF of a coadd of seeing ``fwhm`` arcsec: atmosphere, optics, tracking."""
    parts = []
    weights = rng.dirichlet(np.ones(2))
    blur = float(rng.uniform(*c.optics_blur_sigma))
    for w, scale in zip(weights, 1.0 + c.coadd_fwhm_spread * rng.uniform(-1, 1, 2), strict=True):
        # The optics' blur adds in quadrature (sigma -> FWHM 2.355 sigma).
        atm_fwhm = float(np.sqrt(max((fwhm * scale) ** 2 - (2.355 * blur) ** 2, 0.5)))
        parts.append(galsim.Kolmogorov(fwhm=atm_fwhm, gsparams=_GSPARAMS).withFlux(float(w)))
    if rng.random() < c.strut_prob:
        bank = (
            _strut_bank()
            if (c.aperture_m, c.obscuration_range) == (1.22, (0.3, 0.45))
            else _strut_bank(8, c.aperture_m, tuple(c.obscuration_range))
        )
        diffraction = bank[int(rng.integers(len(bank)))]
    else:
        diffraction = galsim.Airy(
            lam_over_diam=(
                _LAM_OVER_DIAM if c.aperture_m == 1.22 else 620e-9 / c.aperture_m * 206265
            ),
            obscuration=float(rng.uniform(*c.obscuration_range)),
            gsparams=_GSPARAMS,
        )
    optics = galsim.Convolve(diffraction, galsim.Gaussian(sigma=blur, gsparams=_GSPARAMS))
    g1, g2 = rng.uniform(-1, 1, 2) * c.max_shear
    # No draw where the halo is off, so a survey without one (Rubin) keeps its random stream.
    halo = float(rng.uniform(*c.halo_share)) if c.halo_share[1] > 0 else 0.0
    if halo > 0:
        parts = [p.withScaledFlux(1.0 - halo) for p in parts]
        halo_fwhm = fwhm * float(rng.uniform(*c.halo_scale))
        parts.append(galsim.Kolmogorov(fwhm=halo_fwhm, gsparams=_GSPARAMS).withFlux(halo))
    core = galsim.Convolve(galsim.Add(parts), optics, gsparams=_GSPARAMS).shear(
        g1=float(g1), g2=float(g2)
    )
    # ZTF's bright stars trail faint horizontal streaks along the rows (the camera's
    # vanes and the CCD's readout direction): a long thin line of a small share of the light.
    share = float(rng.uniform(*c.streak_share))
    streak = galsim.Convolve(
        galsim.Gaussian(sigma=fwhm / 2.355, gsparams=_GSPARAMS),
        galsim.Box(width=float(rng.uniform(*c.streak_length)), height=0.05, gsparams=_GSPARAMS),
        gsparams=_GSPARAMS,
    )
    return galsim.Add([core.withFlux(1.0 - share), streak.withFlux(share)])


def _field_mags(rng: np.random.Generator, n: int, c: SkyConfig) -> np.ndarray:
    """Magnitudes with dN/dm ~ 10^(0.3 m) between the field's limits."""
    lo, hi = c.field_mag_range
    u = rng.uniform(10 ** (0.3 * lo), 10 ** (0.3 * hi), n)
    return np.log10(u) / 0.3


def _away(rng: np.random.Generator, n: int, min_r: float, half: float) -> np.ndarray:
    """``n`` positions (arcsec from the centre) inside the stamp and farther than ``min_r``."""
    out = np.empty((0, 2))
    while len(out) < n:
        xy = rng.uniform(-half, half, (2 * n + 4, 2))
        out = np.vstack([out, xy[np.hypot(xy[:, 0], xy[:, 1]) > min_r]])
    return out[:n]


def _correlate(rng: np.random.Generator, noise: np.ndarray, c: SkyConfig) -> np.ndarray:
    """Resampling correlates coadd noise: a bilinear kernel at a sub-pixel shift (a shift a
    gives neighbouring pixels a correlation a(1-a)/(a^2+(1-a)^2)), normalised to keep the
    per-pixel variance."""
    dx, dy = rng.uniform(*c.resample_shift, 2)
    kernel = np.outer([1 - dy, dy], [1 - dx, dx])
    kernel /= np.sqrt((kernel**2).sum())
    return ndimage.convolve(noise, kernel, mode="wrap")


def _saturate(
    rng: np.random.Generator, image: np.ndarray, level: float, mask: bool
) -> tuple[np.ndarray, bool]:
    over = image > level
    if not over.any():
        return image, False
    if mask:
        return np.where(ndimage.binary_dilation(over), np.nan, image), True
    out = image.copy()
    for col in np.nonzero(over.any(axis=0))[0]:
        excess = float(np.sum(np.clip(out[:, col] - level, 0, None)))
        rows = np.nonzero(over[:, col])[0]
        out[over[:, col], col] = level
        side = image.shape[0]
        bleed = int(min(excess / level, side))  # the charge runs along the column
        lo, hi = max(rows.min() - bleed // 2, 0), min(rows.max() + bleed // 2 + 1, side)
        out[lo:hi, col] = level
    return out, True


def simulate_templates(
    rng: np.random.Generator, n: int, config: SkyConfig = SkyConfig()
) -> tuple[list[np.ndarray], dict[str, np.ndarray]]:
    """``n`` template stamps (float32 DN, real shapes, NaN kept) and their truth columns."""
    c = config
    STAMP = c.stamp_size  # noqa: N806 - the module's constant, for this survey
    half = STAMP * c.pixel_scale / 2
    truth: dict[str, list] = {k: [] for k in SKY_COLUMNS}
    images = np.empty((n, STAMP, STAMP))
    for i in range(n):
        blend = rng.random() < c.blend_fraction
        n_stars = (3 if rng.random() < c.triple_fraction else 2) if blend else 1
        fwhm = float(rng.uniform(*c.seeing_range))
        psf = _psf(rng, fwhm, c)
        zp = float(rng.uniform(*c.zero_point_range))
        mag = float(rng.uniform(*c.mag_range))
        total = 10 ** (-0.4 * (mag - zp))
        ratios = rng.uniform(*c.flux_ratio_range, n_stars - 1)
        seps = np.sqrt(rng.uniform(c.sep_fwhm_range[0] ** 2, c.sep_fwhm_range[1] ** 2, n_stars - 1))
        primary = total / (1 + ratios.sum())
        off = rng.uniform(-0.5, 0.5, 2) * c.pixel_scale
        sources = [galsim.DeltaFunction(flux=primary).shift(*off)]
        for ratio, sep in zip(ratios, seps, strict=True):
            theta = rng.uniform(0, 2 * np.pi)
            dx, dy = sep * fwhm * np.cos(theta), sep * fwhm * np.sin(theta)
            sources.append(
                galsim.DeltaFunction(flux=primary * ratio).shift(off[0] + dx, off[1] + dy)
            )
        n_field = int(rng.poisson(rng.uniform(*c.field_star_mean)))
        field_xy = _away(rng, n_field, 3 * fwhm, half)
        for (x, y), m in zip(field_xy, _field_mags(rng, n_field, c), strict=True):
            sources.append(galsim.DeltaFunction(flux=10 ** (-0.4 * (m - zp))).shift(x, y))
        galaxies = []
        n_gal = int(rng.poisson(rng.uniform(*c.galaxy_mean)))
        for x, y in _away(rng, n_gal, 3 * fwhm, half):
            galaxies.append(
                galsim.Exponential(
                    half_light_radius=float(rng.uniform(0.5, 2.5)), gsparams=_GSPARAMS
                )
                .withFlux(10 ** (-0.4 * (rng.uniform(*c.galaxy_mag_range) - zp)))
                .shear(
                    q=float(rng.uniform(0.3, 1.0)),
                    beta=float(rng.uniform(0, np.pi)) * galsim.radians,
                )
                .shift(x, y)
            )
        host = rng.random() < c.host_prob
        if host:
            profile = (
                galsim.Exponential(
                    half_light_radius=float(rng.uniform(1.5, 6.0)), gsparams=_GSPARAMS
                )
                if rng.random() < 0.6
                else galsim.DeVaucouleurs(
                    half_light_radius=float(rng.uniform(1.5, 5.0)), gsparams=_GSPARAMS
                )
            )
            host_mag = mag + float(rng.uniform(*c.host_mag_offset))
            galaxies.append(
                profile.withFlux(10 ** (-0.4 * (host_mag - zp)))
                .shear(
                    q=float(rng.uniform(0.3, 1.0)),
                    beta=float(rng.uniform(0, np.pi)) * galsim.radians,
                )
                .shift(*rng.uniform(-3.0, 3.0, 2))
            )
        scene = galsim.Convolve(galsim.Add(sources + galaxies), psf, gsparams=_GSPARAMS)
        expected = scene.drawImage(nx=STAMP, ny=STAMP, scale=c.pixel_scale).array.astype(np.float64)
        sky = 10 ** (-0.4 * (rng.uniform(*c.sky_mag_range) - zp)) * c.pixel_scale**2
        yy, xx = (np.mgrid[:STAMP, :STAMP] - STAMP // 2) / STAMP
        gradient = rng.uniform(-1, 1, 2) * c.gradient_max
        background = sky * (1 + gradient[0] * xx + gradient[1] * yy)
        n_coadd = int(rng.integers(c.n_coadd_range[0], c.n_coadd_range[1] + 1))
        electrons = np.clip(expected + background, 0, None) * c.gain
        sd = np.sqrt((electrons + c.read_noise**2) / n_coadd) / c.gain
        white = rng.standard_normal((STAMP, STAMP))
        correlated = rng.random() < c.correlated_noise_prob
        noise = _correlate(rng, white, c) if correlated else white
        image = expected + background + sd * noise
        image, saturated = _saturate(
            rng, image, float(rng.uniform(*c.saturation_dn)), rng.random() < c.mask_saturated_prob
        )
        if rng.random() < c.masked_block_prob:
            h, w = rng.integers(*c.masked_block_px, 2)
            y0, x0 = rng.integers(0, STAMP - h), rng.integers(0, STAMP - w)
            image[y0 : y0 + h, x0 : x0 + w] = np.nan
        images[i] = image
        # S/N of the central system (optimal weighting; its light taken as one PSF).
        kernel = psf.drawImage(nx=_SNR_BOX, ny=_SNR_BOX, scale=c.pixel_scale).array
        box = slice(STAMP // 2 - _SNR_BOX // 2, STAMP // 2 + _SNR_BOX // 2 + 1)
        snr = float(total * np.sqrt(np.sum(kernel**2 / sd[box, box] ** 2)))
        nearest = int(np.argmin(seps)) if blend else 0
        row = {
            "label": int(blend),
            "n_stars": n_stars,
            "separation_arcsec": float(seps[nearest] * fwhm) if blend else 0.0,
            "separation_fwhm": float(seps[nearest]) if blend else 0.0,
            "flux_ratio": float(ratios[nearest]) if blend else 0.0,
            "fwhm_arcsec": fwhm,
            "beta": float("nan"),  # no Moffat here
            "ellipticity": 0.0,
            "psf_angle": 0.0,
            "mag": mag,
            "snr": snr,
            "zero_point": zp,
            "sky_mag": float(zp - 2.5 * np.log10(sky / c.pixel_scale**2)),
            "n_coadd": n_coadd,
            "offset_x": float(off[0] / c.pixel_scale),
            "offset_y": float(off[1] / c.pixel_scale),
            "neighbour": n_field > 0,
            "n_field": n_field,
            "nearest_field_fwhm": float(np.hypot(*field_xy.T).min() / fwhm) if n_field else np.inf,
            "n_galaxies": n_gal,
            "host": host,
            "saturated": saturated,
            "correlated_noise": correlated,
        }
        for key, value in row.items():
            truth[key].append(value)
    stamps, cut, n_nan, _ = damage(rng, [images], c.edge_cut_prob, c.nan_prob)
    truth["edge_cut"] = list(cut)
    truth["n_nan"] = list(n_nan)
    return stamps[0], {k: np.asarray(v) for k, v in truth.items()}
