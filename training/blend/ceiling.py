"""How well could any classifier do? Likelihood-ratio observers on the analytic generator.

The analytic generator (``sim.py``) draws every stamp from a known model: Moffat stars on a
flat sky with Gaussian noise of known variance. On its stamps the best test of "one star or
two" is the generalised likelihood ratio: fit one star and two stars by least squares and
compare the chi-squares, ``delta = chi2(one) - chi2(two)``. Two observers bound what a
stamp-only classifier can reach:

- **known PSF**: the PSF's width, beta and ellipticity are given (what a pipeline that has
  modelled the template's PSF from its other stars knows); only positions and fluxes are
  fitted. No method that sees the stamp alone does better on average.
- **fitted PSF**: the PSF's parameters are fitted too, within the generator's ranges (what
  the stamp itself tells). A close, bright pair and one wider or elongated star can then
  explain the same pixels; the gap between the two observers is what knowing the PSF buys.

Each observer's statistic becomes a decision with a threshold and a margin fitted on a
separate validation draw, the same way the shipped model's flag is fitted on its own
validation set.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import least_squares
from tqdm import tqdm

from stampflow.training.blend import sim

HALF = 8  # the fitted window: 17x17 pixels, companions reach 3 FWHM (<= 9 px)
_PRIOR = sim.SimConfig()  # the generator whose ranges bound the fitted PSF
OBSERVERS = ("known PSF", "fitted PSF")


@dataclass(frozen=True)
class Stamp:
    """One stamp's central window in sky-subtracted DN, its weights, and its true PSF."""

    data: np.ndarray  # (17, 17), NaN replaced by 0
    weight: np.ndarray  # 1 / sigma, 0 where the pixel is NaN
    psf: tuple[float, float, float, float]  # fwhm_px, beta, axis ratio, angle


def windows(
    stamps: list[np.ndarray], truth: dict[str, np.ndarray], config: sim.SimConfig
) -> tuple[list[Stamp], np.ndarray]:
    """The uncut stamps' central windows with their noise model; returns them and their index.

    Stamps cut at the CCD edge (5%) are left out: the observers need the stamp's geometry,
    which a cut changes.
    """
    keep = np.array([s.shape == (sim.STAMP, sim.STAMP) for s in stamps])
    c, centre, out = config, sim.STAMP // 2, []
    for i in np.flatnonzero(keep):
        window = stamps[i][centre - HALF : centre + HALF + 1, centre - HALF : centre + HALF + 1]
        sky = 10.0 ** (-0.4 * (truth["sky_mag"][i] - truth["zero_point"][i])) * c.pixel_scale**2
        expected = np.maximum(np.nan_to_num(window, nan=sky), sky)
        variance = (expected * c.gain + c.read_noise**2) / (truth["n_coadd"][i] * c.gain**2)
        finite = np.isfinite(window)
        psf = (
            float(truth["fwhm_arcsec"][i] / c.pixel_scale),
            float(truth["beta"][i]),
            1.0 - float(truth["ellipticity"][i]),
            float(truth["psf_angle"][i]),
        )
        out.append(Stamp(np.where(finite, window - sky, 0.0), finite / np.sqrt(variance), psf))
    return out, np.flatnonzero(keep)


_SUB = np.arange((2 * HALF + 1) * 3) / 3.0 - 1.0 / 3.0 - HALF  # 3x3 sub-pixel centres


def _stars(stars: np.ndarray, fwhm: float, beta: float, q: float, angle: float) -> np.ndarray:
    """Pixel-integrated Moffat stars (rows of x, y, flux) on the window, as ``sim`` draws."""
    alpha = float(sim.moffat_alpha(np.asarray(fwhm), np.asarray(beta)))
    ax, ay = alpha / np.sqrt(q), alpha * np.sqrt(q)
    cos, sin = np.cos(angle), np.sin(angle)
    dx = _SUB[None, None, :] - stars[:, 0, None, None]
    dy = _SUB[None, :, None] - stars[:, 1, None, None]
    u, v = dx * cos + dy * sin, -dx * sin + dy * cos
    profile = (beta - 1.0) / (np.pi * alpha**2) * (1.0 + (u / ax) ** 2 + (v / ay) ** 2) ** -beta
    image = np.tensordot(stars[:, 2], profile, axes=1)
    n = 2 * HALF + 1
    return image.reshape(n, 3, n, 3).mean(axis=(1, 3))


def _chi2(stamp: Stamp, n_stars: int, fit_psf: bool, starts: list[np.ndarray]) -> float:
    """The least chi-square of ``n_stars`` stars over ``starts`` (each a flat parameter row)."""
    c = _PRIOR
    fwhm_lo, fwhm_hi = (f / c.pixel_scale for f in c.fwhm_range)
    low = [-HALF, -HALF, 0.0] * n_stars
    high = [HALF, HALF, np.inf] * n_stars
    if fit_psf:
        low += [fwhm_lo, c.beta_range[0], 1.0 - c.max_ellipticity, -np.pi]
        high += [fwhm_hi, c.beta_range[1], 1.0, 2 * np.pi]

    def residual(p: np.ndarray) -> np.ndarray:
        psf = p[3 * n_stars :] if fit_psf else stamp.psf
        model = _stars(p[: 3 * n_stars].reshape(n_stars, 3), *psf)
        return ((model - stamp.data) * stamp.weight).ravel()

    best = np.inf
    for start in starts:
        p0 = np.clip(start, np.array(low) + 1e-6, np.array(high) - 1e-6)
        best = min(best, 2.0 * least_squares(residual, p0, bounds=(low, high)).cost)
    return best


def statistic(stamp: Stamp, fit_psf: bool) -> float:
    """``chi2(one star) - chi2(two stars)``: large when a second star explains the pixels."""
    flux = max(float(stamp.data.sum()), 1.0)
    psf0 = list(stamp.psf)
    single = np.array([0.0, 0.0, flux] + (psf0 if fit_psf else []))
    chi_one = _chi2(stamp, 1, fit_psf, [single])
    # Companions start where one star leaves the most light, and on a ring around it.
    fwhm = stamp.psf[0]
    resid = (stamp.data - _stars(single[None, :3], *stamp.psf)) * stamp.weight
    y, x = np.unravel_index(int(np.argmax(resid)), resid.shape)
    places = [(x - HALF, y - HALF)] + [
        (0.8 * fwhm * np.cos(a), 0.8 * fwhm * np.sin(a)) for a in (0.0, np.pi / 2)
    ]
    psf_start = ([0.8 * fwhm] + psf0[1:]) if fit_psf else []
    starts = [np.array([0.0, 0.0, 0.8 * flux, px, py, 0.2 * flux] + psf_start) for px, py in places]
    return chi_one - _chi2(stamp, 2, fit_psf, starts)


def statistics(stamps: list[Stamp], fit_psf: bool, desc: str) -> np.ndarray:
    """``statistic`` for every stamp, with a progress bar."""
    return np.array([statistic(s, fit_psf) for s in tqdm(stamps, desc=desc, leave=False)])


@dataclass(frozen=True)
class Decision:
    """Blend when ``log10(delta)`` exceeds ``threshold``; flagged within ``margin`` of it."""

    threshold: float
    margin: float

    def score(self, delta: np.ndarray) -> np.ndarray:
        return np.log10(np.maximum(delta, 1e-3)) - self.threshold

    @classmethod
    def fit(cls, delta: np.ndarray, labels: np.ndarray, flag_share: float) -> Decision:
        """The most accurate threshold on validation, and the margin flagging ``flag_share``."""
        s = np.log10(np.maximum(delta, 1e-3))
        grid = np.quantile(s, np.linspace(0.02, 0.98, 97))
        accuracy = [((s > t) == labels).mean() for t in grid]
        threshold = float(grid[int(np.argmax(accuracy))])
        return cls(threshold, float(np.quantile(np.abs(s - threshold), flag_share)))
