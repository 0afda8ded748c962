"""What else is in a NIRCam stamp: the binary's stars (resolved or not), companions, field
stars and background galaxies, drawn on the 8" rendering canvas before the PSF.

Everything here is a flux map per band on the canvas (CANVAS x CANVAS fine pixels of
0.0315", the stamp is its central 128 x 128), in units where the dust's F444W peak is 1 (the
renderer scales it to the drawn S/N). Point sources are deltas split bilinearly over four
pixels (sub-pixel positions), so the PSF convolution gives them the real core, rings and
spikes. Stars outside the stamp but on the canvas still throw their spikes and halos in.

Densities (per arcsec^2, the scene family's range): a Galactic-plane field at NIRCam depth
has of order 0.01-0.2 stars and 0.005-0.05 resolved galaxies per arcsec^2 (hundreds per
arcmin^2); a 4" stamp then holds up to a few of each.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from stampflow.training.morphology.optics import FINE_SCALE, WAVELENGTH_UM
from stampflow.training.morphology.sim import STELLAR_TYPES, _planck_ratio

CANVAS = 256  # fine pixels on a side of the rendering canvas (8")
STAMP_FINE = 128  # the stamp: its central 128 x 128 fine pixels (4")
CANVAS_ARCSEC = CANVAS * FINE_SCALE
# Total flux of a Gaussian-PSF star whose F444W peak (fine grid) is 1: the old simulator's
# normalisation, so a star's drawn brightness means the same under every PSF family.
GAUSS_F444W_TOTAL_PER_PEAK = 1 / 0.0417
_AXIS = (np.arange(CANVAS) - CANVAS / 2) * FINE_SCALE  # centre of pixel CANVAS/2 at 0
CX, CY = np.meshgrid(_AXIS, _AXIS)


@dataclass(frozen=True)
class SceneFamily:
    """Which astrophysical extras a scene family draws (ranges are uniform or log-uniform)."""

    name: str
    field_star_density: tuple[float, float] = (0.0, 0.0)  # per arcsec^2
    galaxy_density: tuple[float, float] = (0.0, 0.0)
    p_companion: float = 0.0  # a visual companion 0.15-1.6" from the target
    gradient_sigma: tuple[float, float] = (0.0, 0.0)  # sky gradient across the stamp, in noise
    p_saturating_target: float = 0.03  # the target bright enough to saturate its core
    cosmic_rays: tuple[int, int] = (0, 0)  # residual hits per band after jump detection
    p_snowball: float = 0.0
    hot_fraction: tuple[float, float] = (0.0, 0.0)
    nan_fraction: tuple[float, float] = (0.0, 0.0)  # DO_NOT_USE pixels set to NaN
    one_over_f_sigma: tuple[float, float] = (0.0, 0.0)  # row striping amplitude, in noise
    drizzle: bool = False  # resample with a drizzle kernel: correlated noise
    bleed: bool = False  # saturated charge spills along columns (else NaN cores)
    # A third rendering of the defects (``detector.py``: flat-topped cores that bloom,
    # amplifier steps and drift, bilinear resampling), for choosing recipes only.
    dev_defects: bool = False

    def __post_init__(self) -> None:
        if not 0 <= self.p_companion <= 1 or not 0 <= self.p_saturating_target <= 1:
            raise ValueError(f"probabilities must lie in [0, 1]: {self}")


_CROWDED = SceneFamily(
    "crowded",
    field_star_density=(0.01, 0.12),
    galaxy_density=(0.005, 0.04),
    p_companion=0.35,
    gradient_sigma=(0.0, 4.0),
    p_saturating_target=0.12,
)
_DETECTOR = SceneFamily(
    "detector",
    cosmic_rays=(0, 6),
    p_snowball=0.2,
    hot_fraction=(0.0005, 0.004),
    nan_fraction=(0.0005, 0.006),
    p_saturating_target=0.08,
)
SCENE_FAMILIES = {
    f.name: f
    for f in (
        SceneFamily("clean"),
        _CROWDED,
        _DETECTOR,
        # Held out: denser fields with every defect at once, plus two the others never
        # show (1/f striping and drizzle-correlated noise) and charge bleeding.
        SceneFamily(
            "crowded_detector",
            field_star_density=(0.03, 0.2),
            galaxy_density=(0.01, 0.06),
            p_companion=0.5,
            gradient_sigma=(0.0, 6.0),
            p_saturating_target=0.15,
            cosmic_rays=(1, 8),
            p_snowball=0.3,
            hot_fraction=(0.001, 0.005),
            nan_fraction=(0.001, 0.008),
            one_over_f_sigma=(0.2, 1.0),
            drizzle=True,
            bleed=True,
        ),
        # A development family, neither trained on nor reported as a test: the crowded
        # scenes with the detector family's hits and bad pixels, and defects made by a
        # third piece of code and other physics than the held-out family's or the training
        # augmentation's. Recipes that aim at detector defects are chosen on it
        # (``families.DEV_MIXES``).
        replace(
            _CROWDED,
            name="dev_detector",
            p_saturating_target=0.15,
            cosmic_rays=_DETECTOR.cosmic_rays,
            p_snowball=_DETECTOR.p_snowball,
            hot_fraction=_DETECTOR.hot_fraction,
            nan_fraction=_DETECTOR.nan_fraction,
            dev_defects=True,
        ),
    )
}


def band_fluxes(temperature_k: float) -> np.ndarray:
    """Relative flux of a blackbody in the four bands, normalised to F444W = 1."""
    ratios = np.array([float(_planck_ratio(w, np.asarray(temperature_k))) for w in WAVELENGTH_UM])
    return ratios / ratios[-1]


def add_point(canvas: np.ndarray, x: float, y: float, fluxes: np.ndarray) -> None:
    """Add a point source at (x, y) arcsec from the canvas centre, bilinear over 4 pixels."""
    fx, fy = x / FINE_SCALE + CANVAS / 2, y / FINE_SCALE + CANVAS / 2
    ix, iy = int(math.floor(fx)), int(math.floor(fy))
    if not (0 <= ix < CANVAS - 1 and 0 <= iy < CANVAS - 1):
        return
    dx, dy = fx - ix, fy - iy
    for ox, oy, w in ((0, 0, (1 - dx) * (1 - dy)), (1, 0, dx * (1 - dy)), (0, 1, (1 - dx) * dy)):
        canvas[:, iy + oy, ix + ox] += w * fluxes
    canvas[:, iy + 1, ix + 1] += dx * dy * fluxes


def target_stars(
    canvas: np.ndarray,
    row: dict,
    rng: np.random.Generator,
    brightness: float,
    cls: str,
    config: str | None = None,
) -> None:
    """The target's own stars. A binary is resolved when its projected separation exceeds
    ~0.03" (half the F200W core): wide, near systems; ``no_gas`` targets span singles,
    close and wide binaries and triples, since any star field without gas is ``no_gas``."""
    types = {t[0]: t for t in STELLAR_TYPES}
    primary, secondary = types[row["primary_type"]], types[row["secondary_type"]]
    lum_ratio = secondary[2] / primary[2]
    separation_au = row["separation_au"]
    if config is None:
        options = ["single", "binary", "wide_binary", "triple"] if cls == "no_gas" else ["binary"]
        config = str(rng.choice(options))
    if config != "binary":
        if config in ("wide_binary", "triple"):
            separation_au = float(np.exp(rng.uniform(np.log(100.0), np.log(3000.0))))
        single = config == "single"
        lum_ratio = 0.0 if single else float(np.exp(rng.uniform(np.log(0.02), 0.0)))
    projection = math.sqrt(max(1 - rng.uniform(0, 1) ** 2, 0.05))  # random orbital phase
    sep_arcsec = separation_au / (row["distance_kpc"] * 1e3) * projection
    angle = rng.uniform(0, 2 * math.pi)
    f1 = band_fluxes(primary[1])
    f2 = band_fluxes(secondary[1])
    total = brightness * GAUSS_F444W_TOTAL_PER_PEAK
    share = 1 / (1 + lum_ratio)
    add_point(canvas, 0.0, 0.0, total * share * f1)
    if lum_ratio > 0:
        add_point(
            canvas,
            sep_arcsec * math.cos(angle),
            sep_arcsec * math.sin(angle),
            total * (1 - share) * f2,
        )
    if config == "triple":
        a2 = rng.uniform(0, 2 * math.pi)
        r2 = sep_arcsec * rng.uniform(0.3, 2.0)
        add_point(
            canvas, r2 * math.cos(a2), r2 * math.sin(a2), total * share * 0.3 * band_fluxes(5000.0)
        )
    row["star_config"] = config
    row["binary_sep_arcsec"] = sep_arcsec
    row["binary_resolved"] = float(sep_arcsec > 0.03 and lum_ratio > 0)


def _log_uniform(rng: np.random.Generator, low: float, high: float) -> float:
    if low <= 0 or high <= low:
        return float(low)
    return float(np.exp(rng.uniform(math.log(low), math.log(high))))


def field(
    canvas: np.ndarray, family: SceneFamily, row: dict, rng: np.random.Generator, noise_unit: float
) -> None:
    """Companions, field stars and galaxies over the whole canvas. ``noise_unit`` is the
    flux of a source whose F444W peak sits at the noise level."""
    area = CANVAS_ARCSEC**2
    n_stars = rng.poisson(_log_uniform(rng, *family.field_star_density) * area)
    n_gal = rng.poisson(_log_uniform(rng, *family.galaxy_density) * area)
    companion = rng.uniform() < family.p_companion
    unit = noise_unit * GAUSS_F444W_TOTAL_PER_PEAK
    for k in range(n_stars + int(companion)):
        if k == n_stars:  # the companion sits near the target
            r, a = rng.uniform(0.15, 1.6), rng.uniform(0, 2 * math.pi)
            x, y = r * math.cos(a), r * math.sin(a)
        else:
            x, y = rng.uniform(-CANVAS_ARCSEC / 2, CANVAS_ARCSEC / 2, size=2)
        # Number counts rise to the faint end: S/N ~ log-uniform with a tail to saturation.
        snr = 3.0 * (1 - rng.uniform()) ** -1.6
        add_point(canvas, x, y, min(snr, 2e5) * unit * band_fluxes(rng.uniform(2500, 12000)))
    for _ in range(n_gal):
        _galaxy(canvas, rng, unit)
    row["n_field_stars"] = int(n_stars)
    row["companion"] = float(companion)
    row["n_galaxies"] = int(n_gal)


def _galaxy(canvas: np.ndarray, rng: np.random.Generator, unit: float) -> None:
    """A Sersic galaxy (n 0.5-4, r_e 0.05-0.4", any ellipticity) with a red or blue SED."""
    x0, y0 = rng.uniform(-CANVAS_ARCSEC / 2, CANVAS_ARCSEC / 2, size=2)
    n = rng.uniform(0.5, 4.0)
    r_e = _log_uniform(rng, 0.05, 0.4)
    q, pa = rng.uniform(0.3, 1.0), rng.uniform(0, math.pi)
    half = int(min(8 * r_e / FINE_SCALE, 60))
    ix, iy = int(x0 / FINE_SCALE + CANVAS / 2), int(y0 / FINE_SCALE + CANVAS / 2)
    y_lo, y_hi = max(iy - half, 0), min(iy + half + 1, CANVAS)
    x_lo, x_hi = max(ix - half, 0), min(ix + half + 1, CANVAS)
    if y_lo >= y_hi or x_lo >= x_hi:
        return
    dx, dy = CX[y_lo:y_hi, x_lo:x_hi] - x0, CY[y_lo:y_hi, x_lo:x_hi] - y0
    u = dx * math.cos(pa) + dy * math.sin(pa)
    v = (-dx * math.sin(pa) + dy * math.cos(pa)) / q
    b_n = 2 * n - 1 / 3
    profile = np.exp(-b_n * ((np.hypot(u, v) / r_e) ** (1 / n) - 1))
    profile /= max(profile.sum(), 1e-12)
    snr = 2.0 * (1 - rng.uniform()) ** -1.0
    colour = np.asarray(WAVELENGTH_UM) / WAVELENGTH_UM[-1]
    sed = colour ** rng.uniform(-1.0, 2.0)  # blue star-forming to dusty red
    flux = min(snr, 300.0) * unit * (r_e / 0.05)  # extended: same peak S/N needs more flux
    canvas[:, y_lo:y_hi, x_lo:x_hi] += (flux * sed)[:, None, None] * profile[None]
