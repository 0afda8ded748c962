"""Bound binaries against chance alignments: what ZTF's g and r templates can tell apart.

A bound pair's two stars share distance, age and dust: the companion sits on the primary's
main sequence, so its colour follows from its brightness (fainter = redder, by a predictable
amount). A chance alignment's second star is another field star at its own distance behind
its own dust: at the same flux ratio it is usually off that track (an intrinsically brighter,
bluer star further away, or a more reddened one). The separations differ as well: bound pairs
follow the log-normal period distribution of solar-type binaries (Raghavan et al. 2010: log P
in days ~ N(5.03, 2.28), flat mass ratio) projected at the primary's distance; chance pairs
grow in number with the area, p(s) ~ s.

The population is main-sequence stars (Kroupa IMF, 0.1-1.4 Msun) along a mid-latitude line
of sight, p(d) ~ d^2 exp(-d / 1.5 kpc), behind 0.6 mag/kpc of dust in r (A_g / A_r = 1.45,
Schlafly & Finkbeiner 2011). Stars are blackbodies of their radius and temperature
(L ~ M^4 above 0.43 Msun, 0.23 M^2.3 below; R ~ M^0.8), seen through ZTF g (477 nm) and r
(642 nm), normalised to the Sun's AB magnitudes (Willmer 2018: M_g 5.11, M_r 4.65). These
colours are coarse next to real stellar atmospheres, but keep the physics that separates
the two classes: one isochrone and one distance for a bound pair, two for a chance pair.

Each pair is rendered in a g and an r template (Moffat PSFs of each band's seeing, coadd
noise at a 5-sigma depth of 22.0 / 21.7) and measured as a broker could: both stars' fluxes
by linear PSF photometry at their positions in each band. What one alert carries is one
template, so the classifier is scored on one band's observables (separation, flux ratio,
brightness) and on both bands' (plus each star's colour).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial

import numpy as np
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import roc_auc_score

from stampflow.training.blend.sim import render_stars

BANDS = ("g", "r")
WAVELENGTH_NM = {"g": 477.0, "r": 642.0}
SUN_ABS_MAG = {"g": 5.11, "r": 4.65}  # AB, Willmer (2018)
T_SUN = 5772.0
DEPTH_5SIGMA = {"g": 22.0, "r": 21.7}  # template coadds
EXTINCTION_R_PER_KPC = 0.6
A_G_OVER_A_R = 1.45
ZERO_POINT = 26.0  # flux = 10 ** (-0.4 (m - ZERO_POINT)) counts
STAMP = 31
PIXEL_ARCSEC = 1.01
# What each classifier sees (FEATURES[name]: columns of ``Pairs.features``).
FEATURES = {
    "r template: separation, flux ratio, brightness": ("sep", "ratio_r", "mag_r"),
    "r template without the separation": ("ratio_r", "mag_r"),
    "g and r templates: + flux ratio in g, primary colour": (
        "sep",
        "ratio_r",
        "mag_r",
        "ratio_g",
        "colour",
    ),
    "g and r templates without the separation": ("ratio_r", "mag_r", "ratio_g", "colour"),
    "exact colours and flux ratio, no separation (noise-free photometry)": (
        "true_dmag_r",
        "true_dcolour",
        "mag_r",
        "colour",
    ),
}


@dataclass(frozen=True)
class BinaryConfig:
    mass_range: tuple[float, float] = (0.1, 1.4)  # Msun, main sequence
    disc_scale_kpc: float = 1.5
    max_distance_kpc: float = 8.0
    primary_mag_r: tuple[float, float] = (14.0, 19.5)
    companion_max_mag_r: float = 21.0
    sep_arcsec: tuple[float, float] = (0.5, 6.0)  # the blend range: 0.25-3 FWHM
    seeing_arcsec: dict[str, tuple[float, float]] = field(
        default_factory=lambda: {"g": (1.9, 2.6), "r": (1.7, 2.4)}  # FWHM, worse in g
    )
    moffat_beta: tuple[float, float] = (2.5, 4.0)


def _planck_nu(wavelength_nm: float, temperature: np.ndarray) -> np.ndarray:
    """B_nu up to a constant: nu^3 / (exp(h nu / k T) - 1)."""
    x = 1.4388e7 / (wavelength_nm * temperature)  # h c / (lambda k T), lambda in nm
    return 1.0 / (wavelength_nm**3 * np.expm1(x))


def absolute_mags(mass: np.ndarray) -> dict[str, np.ndarray]:
    """Main-sequence AB absolute magnitudes in ZTF g and r for masses in Msun."""
    lum = np.where(mass > 0.43, mass**4.0, 0.23 * mass**2.3)
    radius = mass**0.8
    temperature = T_SUN * (lum / radius**2) ** 0.25
    return {
        b: SUN_ABS_MAG[b]
        - 2.5
        * np.log10(
            radius**2
            * _planck_nu(WAVELENGTH_NM[b], temperature)
            / _planck_nu(WAVELENGTH_NM[b], np.array(T_SUN))
        )
        for b in BANDS
    }


def _masses(rng: np.random.Generator, n: int, c: BinaryConfig) -> np.ndarray:
    """Kroupa IMF (slope 1.3 below 0.5 Msun, 2.3 above) by inverse sampling on a grid."""
    grid = np.geomspace(*c.mass_range, 2000)
    pdf = np.where(grid < 0.5, grid**-1.3, 0.5 * grid**-2.3)
    cdf = np.cumsum(pdf * np.gradient(grid))
    return np.interp(rng.random(n) * cdf[-1], cdf, grid)


def _distances(rng: np.random.Generator, n: int, c: BinaryConfig) -> np.ndarray:
    grid = np.linspace(0.01, c.max_distance_kpc, 4000)
    cdf = np.cumsum(grid**2 * np.exp(-grid / c.disc_scale_kpc))
    return np.interp(rng.random(n) * cdf[-1], cdf, grid)


def apparent_mags(mass: np.ndarray, distance_kpc: np.ndarray) -> dict[str, np.ndarray]:
    modulus = 5.0 * np.log10(distance_kpc * 100.0)  # 10 pc -> 0
    a_r = EXTINCTION_R_PER_KPC * distance_kpc
    extinction = {"g": A_G_OVER_A_R * a_r, "r": a_r}
    return {b: m + modulus + extinction[b] for b, m in absolute_mags(mass).items()}


def bound_separation(
    rng: np.random.Generator, total_mass: np.ndarray, distance_kpc: np.ndarray
) -> np.ndarray:
    """Projected separation in arcsec: log-normal periods, Kepler, a random orientation."""
    period_yr = 10.0 ** rng.normal(5.03, 2.28, len(total_mass)) / 365.25
    a_au = (total_mass * period_yr**2) ** (1.0 / 3.0)
    projection = np.sqrt(1.0 - rng.uniform(-1.0, 1.0, len(total_mass)) ** 2)
    return a_au * projection / (distance_kpc * 1000.0)


@dataclass(frozen=True)
class Pairs:
    """One row per pair; ``bound`` is the label (1: bound binary, 0: chance alignment)."""

    bound: np.ndarray
    columns: dict[str, np.ndarray]

    def features(self, names: tuple[str, ...]) -> np.ndarray:
        return np.column_stack([self.columns[n] for n in names])


Rows = dict[str, np.ndarray]  # equal-length columns, one row per star or pair


def _collect(n: int, draw: Callable[[], Rows]) -> Rows:
    """Rejection sampling: call ``draw`` (it returns the rows it accepted) until ``n`` rows
    are in, and keep the first ``n``."""
    parts: list[Rows] = []
    while sum(len(next(iter(p.values()))) for p in parts) < n:
        parts.append(draw())
    return {k: np.concatenate([p[k] for p in parts])[:n] for k in parts[0]}


def _primaries(rng: np.random.Generator, n: int, c: BinaryConfig) -> Rows:
    """Primaries (``m1``, ``d1``) in the template magnitude range, from the field population."""

    def draw() -> Rows:
        m, d = _masses(rng, 4 * n, c), _distances(rng, 4 * n, c)
        r = apparent_mags(m, d)["r"]
        keep = (r >= c.primary_mag_r[0]) & (r <= c.primary_mag_r[1])
        return {"m1": m[keep], "d1": d[keep]}

    return _collect(n, draw)


def _bound(rng: np.random.Generator, n: int, c: BinaryConfig) -> Rows:
    """Bound pairs whose projected separation falls in the blend range."""

    def draw() -> Rows:
        p = _primaries(rng, 8 * n, c)
        m2 = np.maximum(p["m1"] * rng.uniform(0.1, 1.0, 8 * n), c.mass_range[0])
        sep = bound_separation(rng, p["m1"] + m2, p["d1"])
        keep = (sep >= c.sep_arcsec[0]) & (sep <= c.sep_arcsec[1])
        rows = {**p, "m2": m2, "d2": p["d1"], "sep": sep}
        return {k: v[keep] for k, v in rows.items()}

    return _collect(n, draw)


def _chance(rng: np.random.Generator, n: int, c: BinaryConfig) -> Rows:
    """A primary and an unrelated field star, uniform in area within the blend range."""
    p = _primaries(rng, n, c)
    m2, d2 = _masses(rng, n, c), _distances(rng, n, c)
    low, high = c.sep_arcsec
    sep = np.sqrt(rng.uniform(low**2, high**2, n))
    return {**p, "m2": m2, "d2": d2, "sep": sep}


Fluxes = dict[str, tuple[np.ndarray, np.ndarray]]  # band -> (primary, companion)


def photometry(rng: np.random.Generator, pairs: Rows, c: BinaryConfig) -> tuple[Fluxes, Fluxes]:
    """Render each pair in g and r and measure both fluxes by linear PSF photometry.

    Returns the measured fluxes and the true magnitudes, each {band: (primary, companion)}.
    """
    n = len(pairs["sep"])
    theta = rng.uniform(0.0, np.pi, n)
    half = (STAMP - 1) / 2
    x1 = half + rng.uniform(-0.5, 0.5, n)
    y1 = half + rng.uniform(-0.5, 0.5, n)
    x2 = x1 + pairs["sep"] / PIXEL_ARCSEC * np.cos(theta)
    y2 = y1 + pairs["sep"] / PIXEL_ARCSEC * np.sin(theta)
    primary = apparent_mags(pairs["m1"], pairs["d1"])
    companion = apparent_mags(pairs["m2"], pairs["d2"])
    measured, true = {}, {}
    for band in BANDS:
        mag1, mag2 = primary[band], companion[band]
        fwhm = rng.uniform(*c.seeing_arcsec[band], n) / PIXEL_ARCSEC
        beta = rng.uniform(*c.moffat_beta, n)
        ones = np.ones(n)
        psf1 = render_stars(x1, y1, ones, fwhm, beta, ones, 0 * ones, size=STAMP, oversample=2)
        psf2 = render_stars(x2, y2, ones, fwhm, beta, ones, 0 * ones, size=STAMP, oversample=2)
        f1, f2 = (10.0 ** (-0.4 * (m - ZERO_POINT)) for m in (mag1, mag2))
        # Sky-limited coadd: a point source at the 5-sigma depth has PSF-weighted S/N 5.
        n_eff = 1.0 / np.sum(psf1**2, axis=(1, 2))
        sigma = 10.0 ** (-0.4 * (DEPTH_5SIGMA[band] - ZERO_POINT)) / (5.0 * np.sqrt(n_eff))
        image = f1[:, None, None] * psf1 + f2[:, None, None] * psf2
        image = image + sigma[:, None, None] * rng.standard_normal(image.shape)
        design = np.stack([psf1, psf2, np.ones_like(psf1)], axis=-1).reshape(n, -1, 3)
        normal = np.einsum("npi,npj->nij", design, design)
        rhs = np.einsum("npi,np->ni", design, image.reshape(n, -1))
        fluxes = np.linalg.solve(normal, rhs[..., None])[..., 0]
        measured[band] = (fluxes[:, 0], fluxes[:, 1])
        true[band] = (mag1, mag2)
    return measured, true


def _visible(
    draw: Callable[[np.random.Generator, int, BinaryConfig], Rows],
    rng: np.random.Generator,
    n: int,
    c: BinaryConfig,
) -> Rows:
    """``draw``'s pairs whose companion is fainter in r than the primary and brighter than
    ``c.companion_max_mag_r``."""
    p = draw(rng, n, c)
    r1 = apparent_mags(p["m1"], p["d1"])["r"]
    r2 = apparent_mags(p["m2"], p["d2"])["r"]
    ok = (r2 >= r1) & (r2 <= c.companion_max_mag_r)
    return {k: v[ok] for k, v in p.items()}


def simulate_pairs(rng: np.random.Generator, n: int, c: BinaryConfig = BinaryConfig()) -> Pairs:
    """``n`` bound and ``n`` chance pairs (``_visible`` ones), rendered and measured in both
    bands."""
    parts = []
    for label, draw in ((1, _bound), (0, _chance)):
        pairs = _collect(n, partial(_visible, draw, rng, n, c))
        measured, true = photometry(rng, pairs, c)
        (g1, g2), (r1, r2) = measured["g"], measured["r"]
        (tg1, tg2), (tr1, tr2) = true["g"], true["r"]
        columns = {
            "sep": pairs["sep"],
            "ratio_r": r2 / r1,
            "ratio_g": g2 / g1,
            "mag_r": ZERO_POINT - 2.5 * np.log10(np.maximum(r1, 1e-3)),
            "colour": -2.5 * np.log10(np.maximum(g1, 1e-3) / np.maximum(r1, 1e-3)),
            "true_mag_r": tr1,
            "true_dmag_r": tr2 - tr1,
            "true_dcolour": (tg2 - tr2) - (tg1 - tr1),
            "distance_ratio": pairs["d2"] / pairs["d1"],
        }
        parts.append((np.full(n, label), columns))
    bound = np.concatenate([p[0] for p in parts])
    columns = {k: np.concatenate([p[1][k] for p in parts]) for k in parts[0][1]}
    return Pairs(bound, columns)


@dataclass(frozen=True)
class BinaryScore:
    features: str
    accuracy: float
    roc_auc: float


def score(train: Pairs, test: Pairs, seed: int = 0) -> list[BinaryScore]:
    """Gradient boosting on each feature set of ``FEATURES``: trained on ``train``, scored on
    ``test`` (balanced classes, so chance is 0.5)."""
    rows = []
    for name, columns in FEATURES.items():
        model = HistGradientBoostingClassifier(max_iter=200, random_state=seed)
        model.fit(train.features(columns), train.bound)
        p = model.predict_proba(test.features(columns))[:, 1]
        accuracy = float(np.mean((p > 0.5) == (test.bound == 1)))
        rows.append(BinaryScore(name, accuracy, float(roc_auc_score(test.bound, p))))
    return rows
