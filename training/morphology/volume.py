"""A second, independent morphology generator: 3D dust emissivity volumes integrated along
the line of sight.

The analytic generator (``sim.py``) draws 2D projected shapes. Here each class is a 3D
density in the system's own frame (z' along the orbital or outflow axis), evaluated on a
64 x 64 sky grid (0.063") times 32 samples along the line of sight (+-2"), after turning the
frame by the position angle and the inclination; each voxel emits ``rho * B_nu(T(r))`` with
the grain temperature falling as ``r**-0.4`` in 3D, and the sum along the sight line is
upsampled to the 0.0315" rendering grid. Limb brightening, foreshortening and the overlap of
near and far sides come from the geometry rather than from a formula.

- ``spiral``: a colliding-wind pinwheel. Dust forms on the shock cone around the companion
  (half-opening angle 10-50 deg) and flows out at the wind speed while the cone's axis turns
  with the orbit: a 3D spiral plume, thin or wide, seen at any inclination; in an eccentric
  orbit dust forms mostly near periastron (~1/separation^2).
- ``shell``: nested ellipsoidal shells from periodic ejections, older ones larger and fainter,
  clumpy (a random field on the sphere), sometimes lopsided.
- ``bipolar``: an hourglass: two closed lobes with limb-brightened walls and any opening
  angle (20-110 deg), lobes of unequal brightness, with or without a dusty torus.
- ``irregular``: a 3D log-normal turbulent medium with a power-law spectrum inside an
  elongated envelope.
"""

from __future__ import annotations

import math

import numpy as np

from stampflow.training.morphology.sim import (
    FINE,
    GRID,
    GRID_SCALE,
    WAVELENGTH_UM,
    BinaryParams,
    _planck_ratio,
)

NZ = 32
_AXIS = (np.arange(GRID) - (GRID - 1) / 2) * GRID_SCALE
_Z = (np.arange(NZ) - (NZ - 1) / 2) * (GRID * GRID_SCALE / NZ)
_SX, _SY, _SZ = (
    g.astype(np.float32) for g in np.meshgrid(_AXIS, _AXIS, _Z, indexing="xy")
)  # (GRID, GRID, NZ), single precision: these volumes dominate the generator's cost


def draw_extras(rng: np.random.Generator, cls: str, wide: bool = False) -> dict[str, float]:
    """This generator's own shape parameters (``wide`` widens every range)."""
    if cls == "spiral":
        return {
            "cone_half_angle_deg": float(rng.uniform(10.0, 50.0 if not wide else 70.0)),
            "cone_width_deg": float(rng.uniform(4.0, 15.0)),
            "turns": float(rng.uniform(1.2, 3.5)),
            "handedness": float(rng.choice([-1.0, 1.0])),
            "periastron": float(rng.uniform(0, 2 * math.pi)),
            "hollow": float(rng.uniform() < 0.7),
        }
    if cls == "shell":
        return {
            "n_shells": float(rng.integers(1, 7)),
            "first_shell": float(rng.uniform(0.5, 1.3)),
            "shell_thickness": float(rng.uniform(0.04, 0.2)),
            "axis_ratio": float(rng.uniform(0.65, 1.0)),
            "clumping": float(rng.uniform(0.0, 1.5)),
            "clump_scale": float(rng.uniform(2.0, 8.0)),
            "lopsided": float(rng.uniform(0.0, 0.7)),
            "fade": float(rng.uniform(0.4, 1.0)),
        }
    if cls == "bipolar":
        return {
            "opening_angle_deg": float(rng.uniform(20.0, 110.0)),
            "lobe_ratio": float(rng.uniform(0.25, 1.0)),
            "torus": float(rng.uniform() < 0.5),
            "torus_strength": float(rng.uniform(0.5, 3.0)),
            "wall_width": float(rng.uniform(0.08, 0.3)),
            "waist_au_fraction": float(rng.uniform(0.05, 0.2)),
        }
    if cls == "irregular":
        return {
            "spectral_index": float(rng.uniform(2.8, 4.2)),
            "clumping": float(rng.uniform(0.8, 1.8)),
            "elongation": float(rng.uniform(1.0, 2.5)),
        }
    return {}


def _body_frame(p: BinaryParams) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    pa, inc = math.radians(p.position_angle_deg), math.radians(p.inclination_deg)
    u = _SX * math.cos(pa) + _SY * math.sin(pa)
    v = -_SX * math.sin(pa) + _SY * math.cos(pa)
    return u, v * math.cos(inc) + _SZ * math.sin(inc), -v * math.sin(inc) + _SZ * math.cos(inc)


def _spiral(
    p: BinaryParams,
    x: np.ndarray,
    y: np.ndarray,
    z: np.ndarray,
    r: np.ndarray,
    rng: np.random.Generator,
) -> np.ndarray:
    e = p.extras
    spacing = e["scale_arcsec"]
    axis_angle = e["periastron"] - e["handedness"] * 2 * np.pi * r / spacing
    cos_alpha = (x * np.cos(axis_angle) + y * np.sin(axis_angle)) / r
    alpha = np.arccos(np.clip(cos_alpha, -1, 1))
    half, width = math.radians(e["cone_half_angle_deg"]), math.radians(e["cone_width_deg"])
    if e["hollow"]:
        on_cone = np.exp(-0.5 * ((alpha - half) / width) ** 2)
    else:
        on_cone = np.exp(-0.5 * (np.clip(alpha - half, 0, None) / width) ** 2)
    nu = axis_angle - e["periastron"]
    production = (1 + p.eccentricity * np.cos(nu)) ** 2
    extent = np.exp(-((r / (e["turns"] * spacing)) ** 4)) * (
        1 - np.exp(-((r / (0.3 * spacing)) ** 2))
    )
    return on_cone * production * extent / r**2


def _clump_field(n_hat: tuple, rng: np.random.Generator, scale: float) -> np.ndarray:
    """A smooth random field on the unit sphere: a sum of random plane waves in direction."""
    field = 0.0
    for _ in range(6):
        k = rng.normal(size=3)
        k *= scale / np.linalg.norm(k)
        field = field + np.cos(
            k[0] * n_hat[0] + k[1] * n_hat[1] + k[2] * n_hat[2] + rng.uniform(0, 6.3)
        )
    return field / math.sqrt(3)


def _shell(
    p: BinaryParams,
    x: np.ndarray,
    y: np.ndarray,
    z: np.ndarray,
    r: np.ndarray,
    rng: np.random.Generator,
) -> np.ndarray:
    e = p.extras
    spacing = e["scale_arcsec"]
    r_ell = np.sqrt(x**2 + y**2 + (z / e["axis_ratio"]) ** 2)
    n_hat = (x / r, y / r, z / r)
    clumps = np.exp(e["clumping"] * _clump_field(n_hat, rng, e["clump_scale"]))
    side = rng.normal(size=3)
    side /= np.linalg.norm(side)
    lopsided = 1 + e["lopsided"] * (side[0] * n_hat[0] + side[1] * n_hat[1] + side[2] * n_hat[2])
    density = np.zeros_like(r)
    for k in range(int(e["n_shells"])):
        radius = spacing * (e["first_shell"] + k)
        width = e["shell_thickness"] * radius / 2.355 + 0.02
        density += e["fade"] ** k * np.exp(-0.5 * ((r_ell - radius) / width) ** 2) / radius**2
    return density * clumps * lopsided


def _bipolar(
    p: BinaryParams,
    x: np.ndarray,
    y: np.ndarray,
    z: np.ndarray,
    r: np.ndarray,
    rng: np.random.Generator,
) -> np.ndarray:
    e = p.extras
    length = e["scale_arcsec"]
    rho, h = np.hypot(x, y), np.abs(z)
    half_open = math.radians(e["opening_angle_deg"]) / 2
    wall = (0.04 + h * math.tan(half_open)) * np.sqrt(np.clip(1 - (h / length) ** 2, 0, None))
    width = e["wall_width"] * wall + 0.03
    inside = h < length
    lobes = (np.exp(-0.5 * ((rho - wall) / width) ** 2) + 0.15 * (rho < wall)) * inside
    lobes = lobes * np.where(z < 0, e["lobe_ratio"], 1.0) / (0.3 + h / length)
    density = lobes
    if e["torus"]:
        radius = max(e["waist_au_fraction"] * length * 2, 0.08)
        torus = np.exp(
            -0.5 * ((rho - radius) / (0.4 * radius)) ** 2 - 0.5 * (z / (0.3 * radius)) ** 2
        )
        density = density + e["torus_strength"] * torus
    return density


def _irregular(
    p: BinaryParams,
    x: np.ndarray,
    y: np.ndarray,
    z: np.ndarray,
    r: np.ndarray,
    rng: np.random.Generator,
) -> np.ndarray:
    e = p.extras
    shape = x.shape
    k = np.sqrt(
        sum(
            g**2
            for g in np.meshgrid(*(np.fft.fftfreq(n) for n in shape), indexing="ij", sparse=True)
        )
    )
    k[0, 0, 0] = np.inf
    amplitude = k ** (-e["spectral_index"] / 2)
    noise = rng.standard_normal(shape, np.float32) + 1j * rng.standard_normal(shape, np.float32)
    field = np.real(np.fft.ifftn(amplitude * noise))
    field /= field.std()
    envelope = np.exp(
        -np.sqrt(x**2 + (y / e["elongation"]) ** 2 + z**2) / p.extras["scale_arcsec"] * 2.0
    )
    return np.exp(e["clumping"] * field) * envelope


def _upsample2(a: np.ndarray, axis: int) -> np.ndarray:
    """Bilinear 2x upsampling along ``axis`` (new pixel centres a quarter pixel off)."""
    before = np.concatenate(
        [np.take(a, [0], axis), np.take(a, range(a.shape[axis] - 1), axis)], axis
    )
    after = np.concatenate(
        [np.take(a, range(1, a.shape[axis]), axis), np.take(a, [-1], axis)], axis
    )
    out = np.stack([0.75 * a + 0.25 * before, 0.75 * a + 0.25 * after], axis + 1)
    shape = list(a.shape)
    shape[axis] *= 2
    return out.reshape(shape)


_MODELS = {"spiral": _spiral, "shell": _shell, "bipolar": _bipolar, "irregular": _irregular}


def dust_volume(p: BinaryParams, rng: np.random.Generator) -> np.ndarray:
    """Dust surface brightness per band on the fine grid (4, FINE, FINE), before the PSF,
    normalised to a 99.5th-percentile F444W of 1 away from the centre; zeros for no_gas."""
    if p.cls not in _MODELS:
        return np.zeros((len(WAVELENGTH_UM), FINE, FINE))
    x, y, z = _body_frame(p)
    r = np.sqrt(x**2 + y**2 + z**2) + 1e-3
    density = _MODELS[p.cls](p, x, y, z, r, rng)
    r0 = 0.5 * p.extras["scale_arcsec"]
    temperature = p.dust_temperature_k * np.clip(r / r0, 0.3, None) ** -0.4
    bands = np.stack([(density * _planck_ratio(w, temperature)).sum(axis=2) for w in WAVELENGTH_UM])
    fine = _upsample2(_upsample2(bands, 1), 2)
    outer = (
        np.hypot(*np.meshgrid(*(2 * [(np.arange(FINE) - (FINE - 1) / 2) * GRID_SCALE / 2]))) > 0.2
    )
    peak = np.percentile(fine[-1][outer], 99.5)
    return fine / peak if peak > 0 else fine
