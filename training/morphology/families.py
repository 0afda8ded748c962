"""Simulation families: which PSF, which scene and detector, which morphology generator.

Every image belongs to one family per axis, so that whole families can be held out of
training and used to test what the model does with images made another way:

- ``psf``: ``gaussian`` | ``airy`` | ``jwst`` | ``jwst_wfe`` (``optics.py``);
- ``scene``: ``clean`` | ``crowded`` | ``detector`` | ``crowded_detector``
  (``scene.py``, ``detector.py``);
- ``morph``: ``analytic`` (2D formulae, ``sim.py``) | ``volume`` (3D emissivity integrated
  along the sight line, ``volume.py``) | ``scattering`` (3D dust that scatters, absorbs and
  emits: single scattering with optical depth, ``scattering.py``) | ``particles`` (ballistic
  Monte Carlo, ``particles.py``).

A ``FamilyMix`` lists the allowed families per axis; each image draws one of each. The
renderer puts the dust and every star and galaxy on an 8" canvas, convolves it with the
family's PSF (one FFT per band; the PSF bank is computed once per process), scales the dust
to its drawn S/N after the PSF, and observes the central 4" with the scene family's
detector. Each image keeps every physical, optical and detector parameter in its row.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from scipy import fft
from tqdm import tqdm

from stampflow.training.morphology import detector, particles, scattering, scene, volume
from stampflow.training.morphology.jitter import DustJitter
from stampflow.training.morphology.optics import OpticsConfig, jitter_otf, psf_bank
from stampflow.training.morphology.sim import (
    CLASSES,
    FILTERS,
    GRID,
    WAVELENGTH_UM,
    BinaryParams,
    SimConfig,
    SimulatedSet,
    _bipolar,
    _irregular,
    _planck_ratio,
    _shell,
    _spiral,
    draw_labels,
    draw_params,
    pixel_noise_mjysr,
)

MORPH_FAMILIES = ("analytic", "volume", "scattering", "particles")
PSF_FAMILIES = ("gaussian", "airy", "jwst", "jwst_wfe")
SCENE_FAMILIES = tuple(scene.SCENE_FAMILIES)
DEV_SCENES = ("dev_detector",)  # for choosing recipes: never trained on, never a test
DEV_MORPHS = ("scattering",)  # likewise, for recipes aimed at the generator axis
BALANCED = (1.0,) * len(CLASSES)


@dataclass(frozen=True)
class FamilyMix:
    """The families an image set draws from (uniformly per axis) and its class balance."""

    psf: tuple[str, ...] = ("gaussian", "jwst_wfe")
    scene: tuple[str, ...] = ("clean", "crowded", "detector")
    morph: tuple[str, ...] = ("analytic", "volume")
    balance: tuple[float, ...] = (0.30, 0.25, 0.15, 0.10, 0.20)
    snr_range: tuple[float, float] = (6.0, 80.0)
    exposure_s: tuple[float, float] = (300.0, 3000.0)  # log-uniform per image

    def __post_init__(self) -> None:
        for axis, known in (
            ("psf", PSF_FAMILIES),
            ("scene", SCENE_FAMILIES),
            ("morph", MORPH_FAMILIES),
        ):
            chosen = getattr(self, axis)
            if not chosen or not set(chosen) <= set(known):
                raise ValueError(f"{axis} families must be some of {known}, got {chosen}")
        if len(self.balance) != len(CLASSES) or min(self.balance) < 0 or sum(self.balance) <= 0:
            raise ValueError(f"balance needs {len(CLASSES)} non-negative weights")
        if not 0 < self.snr_range[0] <= self.snr_range[1]:
            raise ValueError(f"snr_range must satisfy 0 < low <= high, got {self.snr_range}")

    def name(self) -> str:
        return " x ".join("+".join(getattr(self, a)) for a in ("psf", "scene", "morph"))


TRAIN_MIX = FamilyMix()
"""What the shipped model trains on: two PSF families, three scene families, two generators."""
CALIBRATION_MIX = replace(TRAIN_MIX, psf=("airy",), balance=BALANCED)
"""Held out of training and used to calibrate the flag (never reported as a test)."""
TEST_MIXES = {
    "psf:jwst": replace(TRAIN_MIX, psf=("jwst",), balance=BALANCED),
    "scene:crowded_detector": replace(TRAIN_MIX, scene=("crowded_detector",), balance=BALANCED),
    "morph:particles": replace(TRAIN_MIX, morph=("particles",), balance=BALANCED),
    "all held out": FamilyMix(
        psf=("jwst",), scene=("crowded_detector",), morph=("particles",), balance=BALANCED
    ),
}
"""Out-of-family test sets: each holds out one axis (the last all three at once)."""
DEV_MIXES = {
    "scene:dev_detector": replace(TRAIN_MIX, scene=DEV_SCENES, balance=BALANCED),
    "morph:scattering": replace(TRAIN_MIX, morph=DEV_MORPHS, balance=BALANCED),
}
"""Development sets, to choose recipes on: a third rendering of the detector defects, and a
third generator (written without reading the held-out particle one)."""
ALL_FAMILIES = FamilyMix(
    psf=PSF_FAMILIES,
    scene=tuple(s for s in SCENE_FAMILIES if s not in DEV_SCENES),
    morph=tuple(m for m in MORPH_FAMILIES if m not in DEV_MORPHS),
    balance=TRAIN_MIX.balance,
)
"""Every family at once: what ``stampflow synth`` draws its JWST cutouts from."""


def _analytic_dust(p: BinaryParams, rng: np.random.Generator) -> np.ndarray:
    density, r = {"spiral": _spiral, "shell": _shell, "bipolar": _bipolar}.get(
        p.cls, lambda q: _irregular(q, rng)
    )(p)
    temperature = (
        p.dust_temperature_k * np.clip(r / (0.5 * p.extras["scale_arcsec"]), 0.5, None) ** -0.4
    )
    return np.stack([density * _planck_ratio(w, temperature) for w in WAVELENGTH_UM])


# The 3D generators: (their shape parameters, their dust per band on the fine grid).
_GENERATORS = {
    "volume": (volume.draw_extras, volume.dust_volume),
    "scattering": (scattering.draw_extras, scattering.dust_scattering),
    "particles": (particles.draw_extras, particles.dust_particles),
}


def _dust(p: BinaryParams, morph: str, rng: np.random.Generator) -> np.ndarray:
    if p.cls == "no_gas":
        return np.zeros((len(FILTERS), scene.STAMP_FINE, scene.STAMP_FINE))
    if morph == "analytic":
        return _analytic_dust(p, rng)
    return _GENERATORS[morph][1](p, rng)


def _params(rng: np.random.Generator, cls: str, morph: str, mix: FamilyMix):
    p = draw_params(rng, cls, SimConfig(snr_range=mix.snr_range))
    if morph != "analytic" and cls != "no_gas":
        extras = _GENERATORS[morph][0](rng, cls)
        # The 3D generators see every inclination (isotropic); bipolar flows from 25 deg.
        low = 25.0 if cls == "bipolar" else 0.0
        inclination = float(np.degrees(np.arccos(rng.uniform(0, math.cos(math.radians(low))))))
        p = replace(p, extras={**p.extras, **extras}, inclination_deg=inclination)
    return p


_OUTER = (
    np.hypot(scene.CX, scene.CY)[
        scene.CANVAS // 2 - 64 : scene.CANVAS // 2 + 64,
        scene.CANVAS // 2 - 64 : scene.CANVAS // 2 + 64,
    ]
    > 0.2
)


def render_one(
    cls: str,
    psf_family: str,
    scene_family: str,
    morph: str,
    rng: np.random.Generator,
    mix: FamilyMix = TRAIN_MIX,
    optics: OpticsConfig = OpticsConfig(),
    *,
    dust_override: np.ndarray | None = None,
    star_brightness: float | None = None,
    star_config: str | None = None,
    jitter: DustJitter | None = None,
    jitter_rng: np.random.Generator | None = None,
) -> tuple[np.ndarray, dict[str, Any]]:
    """One (4, 64, 64) float32 stamp in MJy/sr and its metadata row; ``jitter`` redraws the
    dust's light (``jitter.py``) from its own ``jitter_rng``."""
    family = scene.SCENE_FAMILIES[scene_family]
    p = _params(rng, cls, morph, mix)
    row: dict[str, Any] = p.row()
    exposure = float(np.exp(rng.uniform(*np.log(mix.exposure_s))))
    sigma = pixel_noise_mjysr(3, exposure)  # F444W noise per grid pixel: the S/N unit
    c0, c1 = scene.CANVAS // 2 - 64, scene.CANVAS // 2 + 64
    dust = np.zeros((len(FILTERS), scene.CANVAS, scene.CANVAS))
    fine = _dust(p, morph, rng) if dust_override is None else dust_override
    if jitter is not None and jitter_rng is not None:
        fine = jitter.apply(fine, jitter_rng, row)
    dust[:, c0:c1, c0:c1] = fine
    stars = np.zeros_like(dust)
    dust_snr = p.snr
    if star_brightness is None:
        if cls == "no_gas":  # any star, faint to saturated
            star_brightness = float(np.exp(rng.uniform(np.log(5.0), np.log(3e4))))
        else:
            # Dust-forming systems are dust-dominated at 4 um (WR 104, WR 140 at maximum):
            # the stars' F444W peak is 0.1-3x the dust's, more when less dust is made.
            star_to_dust = 0.5 * (1e-5 / max(p.mass_loss_msun_yr, 1e-7)) ** 0.25
            star_brightness = p.snr * star_to_dust * float(np.exp(rng.uniform(-1.0, 1.0)))
        if rng.uniform() < family.p_saturating_target:
            star_brightness = float(np.exp(rng.uniform(np.log(2e4), np.log(3e5))))
            if cls != "no_gas":
                # A target that saturates is a near or luminous system, observed with the
                # exposure set for its nebula: the dust well above the noise, below the
                # full well, while the stars' core saturates. (A saturated star beside dust
                # at the usual S/N is the study's `faint_dust` stress set.)
                dust_snr = float(np.exp(rng.uniform(np.log(100.0), np.log(3000.0))))
    scene.target_stars(stars, row, rng, star_brightness, cls, star_config)
    scene.field(stars, family, row, rng, 1.0)
    bank = psf_bank(optics)
    member, otf = bank.draw(psf_family, rng)
    jitter_mas = 0.0
    if psf_family == "jwst_wfe":
        jitter_mas = float(rng.uniform(*optics.jitter_mas))
        otf = otf * jitter_otf(jitter_mas / 1e3)[None]
    stars_hat = fft.rfft2(stars.astype(np.float32)) * otf
    if dust.any():
        dust_hat = fft.rfft2(dust.astype(np.float32)) * otf
        f444w = fft.irfft2(dust_hat[-1], s=dust.shape[-2:])[c0:c1, c0:c1]
        peak = float(np.percentile(f444w[_OUTER], 99.0))
        total_hat = stars_hat + dust_hat * (dust_snr / max(peak, 1e-30))
    else:
        total_hat = stars_hat
    image = fft.irfft2(total_hat, s=dust.shape[-2:])[:, c0:c1, c0:c1].astype(np.float64) * sigma
    row.update(
        psf_family=psf_family,
        psf_member=member,
        jitter_mas=jitter_mas,
        scene_family=scene_family,
        morph_family=morph,
        star_peak_snr=star_brightness,
        snr=dust_snr,
    )
    stamp = detector.observe(image, family, rng, exposure, row)
    return stamp, row


def draw_families(mix: FamilyMix, rng: np.random.Generator) -> tuple[str, str, str]:
    """One (psf, scene, morph) family triple, uniformly per axis among ``mix``'s."""
    return (
        mix.psf[rng.integers(len(mix.psf))],
        mix.scene[rng.integers(len(mix.scene))],
        mix.morph[rng.integers(len(mix.morph))],
    )


def simulate_mix(
    n: int,
    seed: int,
    mix: FamilyMix = TRAIN_MIX,
    *,
    progress: bool = False,
    desc: str = "simulating",
    first: int | None = None,
    jitter: DustJitter = DustJitter(),
) -> SimulatedSet:
    """``n`` labelled images from ``mix``, reproducibly from ``seed``; with ``first``, only
    the first ``first`` of them (the same images the whole set starts with). ``jitter``
    (training sets) redraws the dust's light, from a generator of its own per image; the
    labels are those drawn without it (the noise draws depend on the pixels, so what is
    drawn after a redrawn image differs too)."""
    rng = np.random.default_rng(seed)
    labels = draw_labels(rng, n, mix.balance)[: n if first is None else min(first, n)]
    images = np.empty((len(labels), len(FILTERS), GRID, GRID), dtype=np.float32)
    rows: list[dict[str, Any]] = []
    for i in tqdm(range(len(labels)), desc=desc, unit="img", disable=not progress):
        jitter_rng = np.random.default_rng([seed, i]) if jitter.p or jitter.geometry_p else None
        images[i], row = render_one(
            CLASSES[labels[i]],
            *draw_families(mix, rng),
            rng,
            mix,
            jitter=jitter,
            jitter_rng=jitter_rng,
        )
        rows.append(row)
    return SimulatedSet(images=images, labels=labels.astype(np.int64), rows=rows)


SIMULATOR_VERSION = "2.1"  # bump when a change alters what any family draws (caches key on it)
SANITY_KINDS = ("bare_psf", "star_pair", "star_field", "pure_noise")


def sanity_set(kind: str, n: int, seed: int, *, progress: bool = False) -> SimulatedSet:
    """Images with a known answer, ``no_gas``: a bright bare star under every PSF family
    (bands show their own PSF), pairs of stars at 0.05-1.5", star fields without a target
    (crowded and detector defects), and pure sky noise."""
    if kind not in SANITY_KINDS:
        raise ValueError(f"sanity kind must be one of {SANITY_KINDS}, got {kind!r}")
    rng = np.random.default_rng(seed)
    images = np.empty((n, len(FILTERS), GRID, GRID), dtype=np.float32)
    rows = []
    no_gas = CLASSES.index("no_gas")
    for i in tqdm(range(n), desc=f"sanity {kind}", unit="img", disable=not progress):
        psf_family = PSF_FAMILIES[i % len(PSF_FAMILIES)]
        scene_family, config = "clean", "single"
        brightness: float | None = float(np.exp(rng.uniform(np.log(50.0), np.log(5e4))))
        if kind == "star_pair":
            config = ("binary", "wide_binary")[i % 2]
        elif kind == "star_field":
            scene_family = ("crowded", "crowded_detector")[i % 2]
            brightness = float(np.exp(rng.uniform(np.log(3.0), np.log(300.0))))
        elif kind == "pure_noise":
            brightness = 0.0
            scene_family = ("clean", "detector")[i % 2]
        images[i], row = render_one(
            "no_gas",
            psf_family,
            scene_family,
            "analytic",
            rng,
            star_brightness=brightness,
            star_config=config,
        )
        row["sanity"] = kind
        rows.append(row)
    return SimulatedSet(images=images, labels=np.full(n, no_gas, dtype=np.int64), rows=rows)


def faint_dust_set(n: int, seed: int, *, progress: bool = False) -> SimulatedSet:
    """The stress set: dusty targets (classes balanced, training families) whose stars
    saturate (F444W peak S/N 2e4-3e5) beside dust at its usual S/N (``snr_range``): a
    contrast of 250-50,000, the dust buried under the PSF's wings and spikes. Version 2.0
    drew every saturated target so; the right answer here is the class or ambiguous."""
    rng = np.random.default_rng(seed)
    dusty = [c for c in CLASSES if c != "no_gas"]
    labels = np.array([CLASSES.index(dusty[i % len(dusty)]) for i in range(n)], dtype=np.int64)
    images = np.empty((n, len(FILTERS), GRID, GRID), dtype=np.float32)
    rows = []
    for i in tqdm(range(n), desc="stress faint_dust", unit="img", disable=not progress):
        choice = draw_families(TRAIN_MIX, rng)
        brightness = float(np.exp(rng.uniform(np.log(2e4), np.log(3e5))))
        images[i], row = render_one(CLASSES[labels[i]], *choice, rng, star_brightness=brightness)
        rows.append(row)
    return SimulatedSet(images=images, labels=labels, rows=rows)
