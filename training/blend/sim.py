"""A ZTF stamp simulator for the stellar blend classifier.

Each stamp shows one "system" at the centre: a single star, or a blend of two (sometimes
three) stars closer than a few PSF widths. The physics that makes the problem hard is kept:

- PSF: Moffat, FWHM 1.5-3" (ZTF's seeing range), beta 2.5-4.5, a small ellipticity
  (axis ratio down to 1 - ``max_ellipticity``) at a random angle; integrated over pixels by
  sub-pixel sampling; pixels are 1.01".
- Photometry: the system's total magnitude spans ZTF's range up to its ~20.5 limit; each
  image has its own zero point (DN for a 30 s exposure, like ``magzpsci``), sky brightness
  and gain; read noise 10 e-; Poisson noise from sky and source.
- Templates (the default kind) are coadds of ``n_coadd`` exposures normalised to the 30 s
  flux scale, as ZTF reference images are: same sky level, noise lower by sqrt(n_coadd).
- Geometry: sub-pixel centring, companions from 0.1 to ``sep_fwhm_range[1]`` FWHM, placed
  uniformly over the disc (line-of-sight blends: p(separation) rises linearly) at a
  random angle with flux ratios 0.05-1, an occasional resolved neighbour star well away from
  the centre (not a blend), stamps cut at the CCD edge (41-59 px on one side), NaN bad pixels.

Every stamp keeps its parameters (``TRUTH_COLUMNS``) so studies can slice accuracy by
separation, flux ratio, seeing, magnitude and S/N.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from stampflow.classifiers.blend.spec import SPEC

LABELS = SPEC.labels
STAMP = SPEC.stamp_size
TRUTH_COLUMNS = (
    "label",
    "n_stars",
    "separation_arcsec",
    "separation_fwhm",
    "flux_ratio",
    "fwhm_arcsec",
    "beta",
    "ellipticity",
    "psf_angle",
    "mag",
    "snr",
    "zero_point",
    "sky_mag",
    "n_coadd",
    "offset_x",
    "offset_y",
    "neighbour",
    "edge_cut",
    "n_nan",
)


@dataclass(frozen=True)
class SimConfig:
    """The distributions stamps are drawn from; every range is (low, high), drawn uniformly."""

    pixel_scale: float = SPEC.pixel_scale_arcsec
    stamp_size: int = STAMP  # px on a side (the survey's cutout)
    blend_fraction: float = 0.5
    triple_fraction: float = 0.1  # of blends
    fwhm_range: tuple[float, float] = (1.5, 3.0)  # arcsec
    beta_range: tuple[float, float] = (2.5, 4.5)
    max_ellipticity: float = 0.08
    sep_fwhm_range: tuple[float, float] = (0.1, 3.0)  # separation / FWHM, uniform in area
    flux_ratio_range: tuple[float, float] = (0.05, 1.0)
    mag_range: tuple[float, float] = (14.0, 20.5)
    zero_point_range: tuple[float, float] = (25.8, 26.4)  # mag for 1 DN in 30 s
    sky_mag_range: tuple[float, float] = (19.5, 21.0)  # mag / arcsec^2
    gain: float = 6.2  # e- / DN
    read_noise: float = 10.0  # e-
    n_coadd_range: tuple[int, int] = (15, 40)
    neighbour_prob: float = 0.2
    # arcsec from the centre: uniform in (max(5 FWHM, low), high) (the low end capped at
    # high), inside ZTF's stamp
    neighbour_distance: tuple[float, float] = (8.0, 28.0)
    edge_cut_prob: float = 0.05
    nan_prob: float = 0.1
    oversample: int = 3

    def __post_init__(self) -> None:
        for name in ("blend_fraction", "triple_fraction", "neighbour_prob", "edge_cut_prob"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        if not 0.0 <= self.nan_prob <= 1.0:
            raise ValueError(f"nan_prob must be in [0, 1], got {self.nan_prob}")
        for name in (
            "fwhm_range",
            "beta_range",
            "sep_fwhm_range",
            "flux_ratio_range",
            "mag_range",
            "zero_point_range",
            "sky_mag_range",
            "n_coadd_range",
        ):
            low, high = getattr(self, name)
            if not low <= high:
                raise ValueError(f"{name} must be (low, high) with low <= high, got {low, high}")
        if self.beta_range[0] <= 1.0:
            raise ValueError("Moffat beta must exceed 1")
        if not 0.0 <= self.max_ellipticity < 0.5:
            raise ValueError(f"max_ellipticity must be in [0, 0.5), got {self.max_ellipticity}")
        if self.oversample < 1 or self.n_coadd_range[0] < 1:
            raise ValueError("oversample and n_coadd must be >= 1")


def moffat_alpha(fwhm_px: np.ndarray, beta: np.ndarray) -> np.ndarray:
    """Moffat core width alpha for a FWHM: FWHM = 2 alpha sqrt(2^(1/beta) - 1)."""
    return fwhm_px / (2.0 * np.sqrt(2.0 ** (1.0 / beta) - 1.0))


def render_stars(
    x: np.ndarray,
    y: np.ndarray,
    flux: np.ndarray,
    fwhm_px: np.ndarray,
    beta: np.ndarray,
    axis_ratio: np.ndarray,
    angle: np.ndarray,
    *,
    size: int = STAMP,
    oversample: int = 3,
) -> np.ndarray:
    """Pixel-integrated Moffat images of one star per stamp, (m, size, size), total = flux.

    ``x``/``y`` are pixel coordinates of the star (pixel centres at integers). Ellipticity
    keeps the area alpha_x * alpha_y = alpha^2, so the analytic normalisation holds.
    """
    m = len(x)
    sub = (np.arange(size * oversample) + 0.5) / oversample - 0.5  # sub-pixel centres
    alpha = moffat_alpha(fwhm_px, beta)[:, None, None]
    ax = alpha / np.sqrt(axis_ratio)[:, None, None]
    ay = alpha * np.sqrt(axis_ratio)[:, None, None]
    dx = sub[None, None, :] - x[:, None, None]
    dy = sub[None, :, None] - y[:, None, None]
    cos, sin = np.cos(angle)[:, None, None], np.sin(angle)[:, None, None]
    u = dx * cos + dy * sin
    v = -dx * sin + dy * cos
    b = beta[:, None, None]
    profile = (b - 1.0) / (np.pi * alpha**2) * (1.0 + (u / ax) ** 2 + (v / ay) ** 2) ** (-b)
    binned = profile.reshape(m, size, oversample, size, oversample).mean(axis=(2, 4))
    return binned * flux[:, None, None]


@dataclass(frozen=True)
class Scene:
    """Noiseless components of a batch of stamps plus their drawn parameters."""

    system: np.ndarray  # (m, 63, 63) DN, the central single star or blend
    neighbour: np.ndarray  # (m, 63, 63) DN, the off-centre neighbour (zeros if none)
    sky: np.ndarray  # (m,) DN per pixel
    truth: dict[str, np.ndarray]


def draw_scene(rng: np.random.Generator, m: int, config: SimConfig) -> Scene:
    """Draw ``m`` systems (single or blend) with their PSF, photometry and neighbours."""
    c = config
    blend = rng.random(m) < c.blend_fraction
    n_stars = np.where(blend, np.where(rng.random(m) < c.triple_fraction, 3, 2), 1)
    fwhm = rng.uniform(*c.fwhm_range, m)
    fwhm_px = fwhm / c.pixel_scale
    beta = rng.uniform(*c.beta_range, m)
    ellipticity = rng.uniform(0.0, c.max_ellipticity, m)
    q = 1.0 - ellipticity
    angle = rng.uniform(0.0, np.pi, m)
    mag = rng.uniform(*c.mag_range, m)
    zp = rng.uniform(*c.zero_point_range, m)
    total = 10.0 ** (-0.4 * (mag - zp))  # DN in the 30 s flux scale
    sky = 10.0 ** (-0.4 * (rng.uniform(*c.sky_mag_range, m) - zp)) * c.pixel_scale**2
    centre = c.stamp_size // 2
    size = c.stamp_size
    off_x, off_y = rng.uniform(-0.5, 0.5, m), rng.uniform(-0.5, 0.5, m)

    # Companion fluxes relative to the primary; the primary sits at the (jittered) centre.
    ratios = np.zeros((m, 2))
    seps = np.full((m, 2), np.nan)
    for j in range(2):
        has = n_stars > j + 1
        ratios[has, j] = rng.uniform(*c.flux_ratio_range, has.sum())
        # Chance alignments fill the sky uniformly: p(separation) grows linearly with it.
        lo, hi = c.sep_fwhm_range
        seps[has, j] = np.sqrt(rng.uniform(lo**2, hi**2, has.sum()))
    primary = total / (1.0 + ratios.sum(axis=1))
    system = render_stars(
        centre + off_x,
        centre + off_y,
        primary,
        fwhm_px,
        beta,
        q,
        angle,
        oversample=c.oversample,
        size=size,
    )
    for j in range(2):
        has = n_stars > j + 1
        if not has.any():
            continue
        theta = rng.uniform(0.0, 2 * np.pi, has.sum())
        r = seps[has, j] * fwhm_px[has]
        system[has] += render_stars(
            centre + off_x[has] + r * np.cos(theta),
            centre + off_y[has] + r * np.sin(theta),
            primary[has] * ratios[has, j],
            fwhm_px[has],
            beta[has],
            q[has],
            angle[has],
            oversample=c.oversample,
            size=size,
        )

    neighbour = np.zeros_like(system)
    has_nb = rng.random(m) < c.neighbour_prob
    if has_nb.any():
        k = int(has_nb.sum())
        # Resolved and away from the centre: at least 5 FWHM and 8", inside the stamp.
        near, far = c.neighbour_distance
        low = np.minimum(np.maximum(5.0 * fwhm[has_nb], near), far)
        dist = rng.uniform(low, far) / c.pixel_scale
        theta = rng.uniform(0.0, 2 * np.pi, k)
        nb_flux = 10.0 ** (-0.4 * (rng.uniform(14.0, 21.0, k) - zp[has_nb]))
        neighbour[has_nb] = render_stars(
            centre + dist * np.cos(theta),
            centre + dist * np.sin(theta),
            nb_flux,
            fwhm_px[has_nb],
            beta[has_nb],
            q[has_nb],
            angle[has_nb],
            oversample=c.oversample,
            size=size,
        )

    # Closest companion and its flux ratio describe the blend (a triple's tightest pair).
    nearest = np.argmin(np.where(np.isnan(seps), np.inf, seps), axis=1)
    rows = np.arange(m)
    sep_fwhm = np.where(blend, seps[rows, nearest], 0.0)
    truth = {
        "label": blend.astype(np.int64),
        "n_stars": n_stars,
        "separation_arcsec": sep_fwhm * fwhm,
        "separation_fwhm": sep_fwhm,
        "flux_ratio": np.where(blend, ratios[rows, nearest], 0.0),
        "fwhm_arcsec": fwhm,
        "beta": beta,
        "ellipticity": ellipticity,
        "psf_angle": angle,
        "mag": mag,
        "zero_point": zp,
        "sky_mag": zp - 2.5 * np.log10(sky / c.pixel_scale**2),
        "offset_x": off_x,
        "offset_y": off_y,
        "neighbour": has_nb,
    }
    return Scene(system=system, neighbour=neighbour, sky=sky, truth=truth)


def observe(
    rng: np.random.Generator, expected: np.ndarray, n_coadd: np.ndarray, config: SimConfig
) -> np.ndarray:
    """Add noise to expected DN images (sky included): Poisson + read noise, coadded.

    A single exposure (n_coadd = 1) draws exact Poisson counts; a coadd of n exposures,
    averaged, has variance (counts + read^2) / n per exposure-equivalent, drawn Gaussian.
    """
    electrons = expected * config.gain
    single = n_coadd == 1
    out = np.empty_like(electrons)
    if single.any():
        out[single] = rng.poisson(electrons[single]) + rng.normal(
            0.0, config.read_noise, electrons[single].shape
        )
    if (~single).any():
        e = electrons[~single]
        sd = np.sqrt((e + config.read_noise**2) / n_coadd[~single][:, None, None])
        out[~single] = e + sd * rng.standard_normal(e.shape)
    return out / config.gain


def signal_to_noise(
    system: np.ndarray, sky: np.ndarray, n_coadd: np.ndarray, config: SimConfig
) -> np.ndarray:
    """Optimal (PSF-weighted) S/N of the central system: sqrt(sum model^2 / variance)."""
    model_e = system * config.gain
    var = (model_e + (sky * config.gain)[:, None, None] + config.read_noise**2) / n_coadd[
        :, None, None
    ]
    return np.sqrt(np.sum(model_e**2 / var, axis=(1, 2)))


def damage(
    rng: np.random.Generator, images: list[np.ndarray], edge_cut_prob: float, nan_prob: float
) -> tuple[list[np.ndarray], np.ndarray, np.ndarray, np.ndarray]:
    """Edge cuts and NaN bad pixels, the same for every image kind of one stamp.

    ``images`` holds arrays (m, 63, 63) (e.g. science, template, difference); returns, per
    image kind, a list of m float32 stamps (cut ones smaller), plus the edge-cut flags, the
    NaN counts and which stamps received bad pixels.
    """
    m, full = images[0].shape[0], images[0].shape[1]
    # An edge-cut stamp keeps 41-59 of ZTF's 63 rows or columns: the same shares of another.
    keep_range = (round(full * 41 / STAMP), round(full * 60 / STAMP))
    cut = rng.random(m) < edge_cut_prob
    bad = rng.random(m) < nan_prob
    out: list[list[np.ndarray]] = [[] for _ in images]
    n_nan = np.zeros(m, dtype=np.int64)
    for i in range(m):
        mask = np.zeros((full, full), dtype=bool)
        if bad[i]:
            mask.flat[rng.choice(full * full, size=rng.integers(1, 30), replace=False)] = True
            if rng.random() < 0.3:  # a bad column
                mask[:, rng.integers(0, full)] = True
        rows, cols = slice(None), slice(None)
        if cut[i]:
            keep = int(rng.integers(*keep_range))
            side = slice(0, keep) if rng.random() < 0.5 else slice(full - keep, full)
            rows, cols = (side, slice(None)) if rng.random() < 0.5 else (slice(None), side)
        n_nan[i] = int(mask[rows, cols].sum())
        for kind, image in enumerate(images):
            stamp = np.where(mask, np.nan, image[i]).astype(np.float32)
            out[kind].append(np.ascontiguousarray(stamp[rows, cols]))
    return out, cut, n_nan, bad


def simulate_templates(
    rng: np.random.Generator, n: int, config: SimConfig = SimConfig()
) -> tuple[list[np.ndarray], dict[str, np.ndarray]]:
    """``n`` template stamps (float32 DN, real shapes, NaN kept) and their truth columns."""
    scene = draw_scene(rng, n, config)
    n_coadd = rng.integers(config.n_coadd_range[0], config.n_coadd_range[1] + 1, n)
    expected = scene.system + scene.neighbour + scene.sky[:, None, None]
    template = observe(rng, expected, n_coadd, config)
    (stamps,), cut, n_nan, _ = damage(rng, [template], config.edge_cut_prob, config.nan_prob)
    truth = dict(scene.truth)
    truth["n_coadd"] = n_coadd
    truth["snr"] = signal_to_noise(scene.system, scene.sky, n_coadd, config)
    truth["edge_cut"] = cut
    truth["n_nan"] = n_nan
    return stamps, {k: truth[k] for k in TRUTH_COLUMNS}


def ztf_cutouts(
    rng: np.random.Generator, n: int, config: SimConfig = SimConfig()
) -> tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray], list[dict[str, Any]]]:
    """Science, template and difference stamps of ``n`` alerts, with one truth dict each.

    The static scene (single star or blend, plus neighbour) is in both the 30 s science
    exposure and the deep template; the science exposure also holds a transient: the
    primary star brightened by a magnitude drawn in 17-20. The difference is science minus
    template, so it shows the transient alone (with both images' noise).
    """
    scene = draw_scene(rng, n, config)
    n_coadd = rng.integers(config.n_coadd_range[0], config.n_coadd_range[1] + 1, n)
    static = scene.system + scene.neighbour + scene.sky[:, None, None]
    template = observe(rng, static, n_coadd, config)
    t = scene.truth
    fwhm_px = t["fwhm_arcsec"] / config.pixel_scale
    transient_mag = rng.uniform(17.0, 20.0, n)
    transient = render_stars(
        STAMP // 2 + t["offset_x"],
        STAMP // 2 + t["offset_y"],
        10.0 ** (-0.4 * (transient_mag - t["zero_point"])),
        fwhm_px,
        t["beta"],
        1.0 - t["ellipticity"],
        t["psf_angle"],
        oversample=config.oversample,
    )
    science = observe(rng, static + transient, np.ones(n, dtype=np.int64), config)
    difference = science - template
    (sci, tmpl, diff), cut, n_nan, _ = damage(
        rng, [science, template, difference], config.edge_cut_prob, config.nan_prob
    )
    snr = signal_to_noise(scene.system, scene.sky, n_coadd, config)
    rows = []
    for i in range(n):
        row: dict[str, Any] = {k: _plain(v[i]) for k, v in t.items()}
        row.update(
            label=LABELS[int(t["label"][i])],
            n_coadd=int(n_coadd[i]),
            snr=float(snr[i]),
            edge_cut=bool(cut[i]),
            n_nan=int(n_nan[i]),
            transient_mag=float(transient_mag[i]),
        )
        rows.append(row)
    return sci, tmpl, diff, rows


def _plain(value: Any) -> Any:
    """numpy scalar -> Python scalar, so truth rows serialise to JSON."""
    return value.item() if hasattr(value, "item") else value
