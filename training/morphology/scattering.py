"""A third, independent morphology generator: dust that scatters and absorbs the central
star's light as well as emitting thermally ("radiative transfer lite").

The analytic generator (``sim.py``) draws 2D projected shapes and the volume generator
(``volume.py``) integrates an optically thin thermal emissivity through 3D densities. Here
the dust also has an optical depth. Each class is a 3D density in the system's own frame
(z' along the orbital or outflow axis), evaluated on a 64 x 64 sky grid (0.063") times 32
samples along the line of sight (+-2", the observer at +z), and every voxel sends out

- scattered starlight (single scattering): ``L_star(lambda) / (4 pi r^2) * exp(-tau_star)
  * rho * kappa_sca(lambda) * HG(cos theta; g(lambda))``, with a Henyey-Greenstein phase
  function at the scattering angle between the star -> voxel direction and the line of
  sight (forward scattering: dust in front of the star is brighter), an albedo and an
  asymmetry ``g`` that fall with wavelength, ``kappa ~ lambda**-beta`` (beta 1.5-2) and the
  primary's blackbody as the illuminating spectrum;
- thermal emission ``rho * kappa_abs(lambda) * B_lambda(T)``, with the grain temperature
  falling as ``r**-q`` (q 0.33-0.5, at most 1.5-1.8x its value at half the scale, and
  below sublimation) and lowered where the heating
  starlight is extinguished (``T ~ exp(-tau_V / 5)``, floored), so shadowed dust is cool;

both attenuated by the optical depth from the voxel to the observer (a cumulative sum along
the sight line). The optical depth from the star to each voxel comes from the density on a
coarse spherical grid (36 radii x 20 x 40 directions), integrated along each radius and
interpolated back (trilinear) to the voxels; the densities are anti-aliased to each grid's
sampling (thin Gaussians widened, their mass kept). ``sc_tau`` is the direction-averaged
F200W optical depth from the star to the edge; ``sc_scatter_weight`` the ratio of the total
scattered F200W flux to the total thermal F444W flux. Dust inside ``sc_inner_radius``
(sublimation) is absent. The band images are upsampled to the 0.0315" rendering grid.

- ``spiral``: a dust plume (a tube, thin or wide, possibly flattened) launched from the
  colliding-wind region along the line of centres and flying out radially at constant speed:
  the dust at radius r left ``r / spacing`` orbits ago, when the orbital phase was given by
  Kepler's equation, so an eccentric orbit compresses and stretches the windings, and dust
  production ``~ ((1 + e cos nu) / (1 + e))**k`` (episodic near periastron for large k)
  with knots along the plume, starting some way out (dust forms after 0.25-0.6 orbits); its
  angular width grows with age.
- ``shell``: thin shells from periodic ejections (intervals jittered) with a sharp outer shock
  front and an inner tail, older ones larger and fainter, a common quadrupole distortion;
  clumpy through discrete Gaussian clumps placed on each shell's surface; sometimes
  incomplete arcs. Limb brightening comes from the geometry, the near/far asymmetry from
  forward scattering and from the shells' optical depth.
- ``bipolar``: bipolar cavities (conical to paraboloidal, full opening 20-110 deg) carved in
  an envelope that is dense outside them, with compressed cavity walls lit directly through
  the cavities (bright in scattered light), lobes of unequal brightness, and in half the
  cases an optically thick flared torus (F200W equatorial optical depth 2-40) that shadows
  the envelope and hides the inner dust at short wavelengths.
- ``irregular``: a hierarchical clump cascade (roots scattered through a thick shell of
  ejecta; each clump spawns 2-4 smaller, displaced children that share its mass, 2-3 levels
  deep, each clump integrated exactly over the voxels) inside a triaxial, lopsided, hollow
  diffuse envelope; dust forms further out (0.12-0.3").

What differs from the other generators: scattering, the phase function's forward/backward
asymmetry, extinction and shadowing (optical depth in both directions), the clump
constructions (discrete clumps on shells, a cascade rather than a Fourier field) and the
geometries (Kepler-timed plumes, cavities in an envelope rather than hourglass walls).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from scipy.ndimage import gaussian_filter1d
from scipy.special import erf

from stampflow.training.morphology import sim
from stampflow.training.morphology.sim import (
    FINE,
    GRID,
    GRID_SCALE,
    STELLAR_TYPES,
    WAVELENGTH_UM,
    BinaryParams,
    _planck_ratio,
)
from stampflow.training.morphology.volume import _upsample2

NZ = 32
_HALF = GRID * GRID_SCALE / 2
_DZ = 2 * _HALF / NZ
_R_MAX = _HALF * math.sqrt(3)
_RES_VOX = 0.06  # arcsec: thinnest structure the 0.126" line-of-sight sampling resolves
_REF_UM = WAVELENGTH_UM[0]  # optical depths and albedos are quoted at F200W
_HEAT_UM = 0.55  # the starlight that heats the grains
_T_SUB_K = 1800.0
_NR, _NT, _NP = 36, 20, 40  # spherical grid of the star -> voxel optical depth
_NTF, _NPF = 36, 72  # angular grid of direction-dependent maps (shell clumps, arcs)
_TEMPERATURE_FLOOR = 0.35  # shadowed dust keeps this much of its unshadowed temperature

Density = Callable[["_Points"], np.ndarray]


# --------------------------------------------------------------------------------------
# Grids (sky frame, built once)


def _bilinear(theta: np.ndarray, phi: np.ndarray, nt: int, nph: int) -> tuple[np.ndarray, ...]:
    """Corner indices and weights of directions on a (theta centres, phi nodes) grid."""
    ft = np.clip(theta / (math.pi / nt) - 0.5, 0, nt - 1)
    j0 = np.minimum(ft.astype(np.int64), nt - 2)
    fj = ft - j0
    fp = np.mod(phi, 2 * math.pi) / (2 * math.pi / nph)
    k0 = np.minimum(fp.astype(np.int64), nph - 1)
    fk = fp - k0
    k1 = (k0 + 1) % nph
    idx = np.stack([j0 * nph + k0, j0 * nph + k1, (j0 + 1) * nph + k0, (j0 + 1) * nph + k1])
    w = np.stack([(1 - fj) * (1 - fk), (1 - fj) * fk, fj * (1 - fk), fj * fk])
    return idx, w


def _lookup(idx: np.ndarray, w: np.ndarray, n_cols: int) -> sp.csr_matrix:
    n, k = idx.shape[1], idx.shape[0]
    return sp.csr_matrix(
        (w.T.ravel().astype(np.float32), idx.T.ravel(), np.arange(0, k * n + 1, k)),
        shape=(n, n_cols),
    )


def _directions(x: np.ndarray, y: np.ndarray, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    r = np.sqrt(x**2 + y**2 + z**2) + 1e-12
    return np.arccos(np.clip(z / r, -1, 1)), np.arctan2(y, x)


_AXIS = (np.arange(GRID) - (GRID - 1) / 2) * GRID_SCALE
_Z = (np.arange(NZ) - (NZ - 1) / 2) * _DZ
_VOX_SKY = np.stack(np.meshgrid(_AXIS, _AXIS, _Z, indexing="xy")).astype(np.float32)
_VOX_R = np.sqrt((_VOX_SKY**2).sum(0))
_VOX_MU = _VOX_SKY[2] / _VOX_R  # cosine of the scattering angle towards the observer (+z)
_VOX_PIXEL = np.repeat(np.arange(GRID * GRID), NZ)  # sky pixel of each voxel (flattened)
_EDGES_XY = np.append(_AXIS - GRID_SCALE / 2, _AXIS[-1] + GRID_SCALE / 2)
_EDGES_Z = np.append(_Z - _DZ / 2, _Z[-1] + _DZ / 2)

_NODE_R = _R_MAX * (np.arange(_NR) / (_NR - 1)) ** 2  # finer towards the star
_NODE_THETA = (np.arange(_NT) + 0.5) * math.pi / _NT
_NODE_PHI = np.arange(_NP) * 2 * math.pi / _NP
_th, _ph = (g.ravel() for g in np.meshgrid(_NODE_THETA, _NODE_PHI, indexing="ij"))
_NODE_DIRS = np.stack([np.sin(_th) * np.cos(_ph), np.sin(_th) * np.sin(_ph), np.cos(_th)])
_NODE_SKY = (_NODE_R[None, :, None] * _NODE_DIRS[:, None, :]).astype(np.float32)  # (3,NR,NA)
_SOLID = np.sin(_th) / np.sin(_th).sum()  # solid-angle weight of each direction
_NODE_DR = np.gradient(_NODE_R)[:, None]
_NODE_RES2 = ((0.5 * _NODE_R * math.pi / _NT) ** 2)[:, None] + (0.5 * _NODE_DR) ** 2


def _voxel_tau_lookup() -> sp.csr_matrix:
    theta, phi = _directions(*_VOX_SKY.reshape(3, -1))
    a_idx, a_w = _bilinear(theta, phi, _NT, _NP)
    fr = (_NR - 1) * np.sqrt(_VOX_R.ravel() / _R_MAX)
    i0 = np.minimum(fr.astype(np.int64), _NR - 2)
    fi = fr - i0
    n_ang = _NT * _NP
    idx = np.concatenate([i0 * n_ang + a_idx, (i0 + 1) * n_ang + a_idx])
    w = np.concatenate([(1 - fi) * a_w, fi * a_w])
    return _lookup(idx, w, _NR * n_ang)


_VOX_TAU = _voxel_tau_lookup()
_VOX_ANG = _lookup(*_bilinear(*_directions(*_VOX_SKY.reshape(3, -1)), _NTF, _NPF), _NTF * _NPF)
_NODE_ANG = _lookup(
    *_bilinear(*_directions(*_NODE_SKY.reshape(3, -1) + 1e-9), _NTF, _NPF), _NTF * _NPF
)
_tf, _pf = (
    g.ravel()
    for g in np.meshgrid(
        (np.arange(_NTF) + 0.5) * math.pi / _NTF,
        np.arange(_NPF) * 2 * math.pi / _NPF,
        indexing="ij",
    )
)
_FINE_DIRS = np.stack([np.sin(_tf) * np.cos(_pf), np.sin(_tf) * np.sin(_pf), np.cos(_tf)]).astype(
    np.float32
)  # (3, NTF * NPF): directions of the angular maps, sky frame
_OUTER = np.hypot(sim._X, sim._Y) > 0.2


@dataclass(frozen=True)
class _Points:
    """Sample points in the body frame with their sampling resolution (arcsec)."""

    x: np.ndarray
    y: np.ndarray
    z: np.ndarray
    r: np.ndarray
    sky: np.ndarray
    res2: np.ndarray | float  # squared resolution: thinner Gaussians are widened to it
    drad: np.ndarray | float  # radial step (0 on the voxel grid)
    ang_lookup: sp.csr_matrix
    on_voxels: bool

    def ang(self, maps: np.ndarray) -> np.ndarray:
        """Angular maps (k, NTF * NPF) in the sky frame, interpolated at these points."""
        return (self.ang_lookup @ maps.T).T.reshape((len(maps),) + self.r.shape)


def _rotation(p: BinaryParams) -> np.ndarray:
    """Body = R @ sky: turned by the position angle, tilted by the inclination."""
    pa, inc = math.radians(p.position_angle_deg), math.radians(p.inclination_deg)
    cp, spa, ci, si = math.cos(pa), math.sin(pa), math.cos(inc), math.sin(inc)
    return np.array([[cp, spa, 0.0], [-spa * ci, cp * ci, si], [spa * si, -cp * si, ci]])


def _points(rm: np.ndarray, on_voxels: bool) -> _Points:
    sky = _VOX_SKY if on_voxels else _NODE_SKY
    (a, b, _), (c, d, f), (g, h, k) = rm.tolist()
    x = a * sky[0] + b * sky[1]
    y = c * sky[0] + d * sky[1] + f * sky[2]
    z = g * sky[0] + h * sky[1] + k * sky[2]
    if on_voxels:
        return _Points(x, y, z, _VOX_R + 1e-3, sky, _RES_VOX**2, 0.0, _VOX_ANG, True)
    r = np.broadcast_to(_NODE_R[:, None], x.shape).astype(np.float32) + 1e-3
    return _Points(x, y, z, r, sky, _NODE_RES2, _NODE_DR, _NODE_ANG, False)


# --------------------------------------------------------------------------------------
# Parameters


def _log_uniform(rng: np.random.Generator, low: float, high: float) -> float:
    return float(np.exp(rng.uniform(math.log(low), math.log(high))))


_TAU_RANGE = {
    "spiral": (0.01, 0.5),
    "shell": (0.02, 1.0),
    "bipolar": (0.1, 3.0),
    "irregular": (0.05, 1.5),
}


_INNER_RANGE = {  # arcsec: sublimation radius, further out for ejecta that form dust late
    "spiral": (0.03, 0.1),
    "shell": (0.03, 0.1),
    "bipolar": (0.03, 0.1),
    "irregular": (0.12, 0.3),
}


def _dust_extras(rng: np.random.Generator, cls: str) -> dict[str, float]:
    return {
        "sc_tau": _log_uniform(rng, *_TAU_RANGE[cls]),
        "sc_beta": float(rng.uniform(1.5, 2.0)),
        "sc_albedo": float(rng.uniform(0.35, 0.7)),
        "sc_albedo_slope": float(rng.uniform(0.3, 1.0)),
        "sc_g": float(rng.uniform(0.3, 0.6)),
        "sc_g_slope": float(rng.uniform(0.2, 0.8)),
        "sc_scatter_weight": _log_uniform(rng, 0.03, 3.0),
        "sc_temp_index": float(rng.uniform(0.33, 0.5)),
        "sc_inner_radius": float(rng.uniform(*_INNER_RANGE[cls])),
    }


def _spiral_extras(rng: np.random.Generator) -> dict[str, float]:
    return {
        "sc_turns": float(rng.uniform(1.5, 4.0)),
        "sc_plume_width_deg": _log_uniform(rng, 3.0, 35.0),
        "sc_plume_flatten": float(rng.uniform(0.4, 1.5)),
        "sc_width_growth": float(rng.uniform(0.0, 1.5)),
        "sc_production_index": float(rng.uniform(1.0, 6.0)),
        "sc_knots": float(rng.uniform(0.0, 0.6)),
        "sc_formation_age": float(rng.uniform(0.25, 0.6)),
        "sc_handedness": float(rng.choice([-1.0, 1.0])),
        "sc_periastron": float(rng.uniform(0, 2 * math.pi)),
        "sc_orbital_phase": float(rng.uniform(0, 2 * math.pi)),
    }


def _shell_extras(rng: np.random.Generator) -> dict[str, float]:
    arc = rng.uniform() < 0.35
    return {
        "sc_n_shells": float(rng.integers(1, 7)),
        "sc_first_shell": float(rng.uniform(0.5, 1.3)),
        "sc_period_jitter": float(rng.uniform(0.0, 0.25)),
        "sc_shell_width": float(rng.uniform(0.03, 0.15)),
        "sc_fade": float(rng.uniform(0.35, 1.0)),
        "sc_distortion": float(rng.uniform(-0.25, 0.25)),
        "sc_n_clumps": float(rng.integers(5, 41)),
        "sc_clump_size_deg": float(rng.uniform(4.0, 20.0)),
        "sc_clump_fraction": float(rng.uniform(0.0, 0.9)),
        "sc_arc_half_angle_deg": float(rng.uniform(60.0, 150.0)) if arc else 180.0,
    }


def _bipolar_extras(rng: np.random.Generator) -> dict[str, float]:
    torus = rng.uniform() < 0.5
    return {
        "sc_opening_deg": float(rng.uniform(20.0, 110.0)),
        "sc_wall_curvature": float(rng.uniform(0.5, 1.0)),
        "sc_wall_width": float(rng.uniform(0.05, 0.25)),
        "sc_wall_strength": _log_uniform(rng, 2.0, 20.0),
        "sc_wall_index": float(rng.uniform(0.0, 1.5)),
        "sc_env_extent": float(rng.uniform(0.4, 0.8)),
        "sc_cavity_density": _log_uniform(rng, 0.01, 0.2),
        "sc_env_index": float(rng.uniform(0.3, 1.2)),
        "sc_equatorial": float(rng.uniform(0.0, 3.0)),
        "sc_lobe_ratio": float(rng.uniform(0.4, 1.0)),
        "sc_torus": float(torus),
        "sc_torus_tau": _log_uniform(rng, 2.0, 40.0) if torus else 0.0,
        "sc_torus_radius": float(rng.uniform(0.05, 0.2)),
        "sc_torus_height": float(rng.uniform(0.08, 0.3)),
    }


def _irregular_extras(rng: np.random.Generator) -> dict[str, float]:
    return {
        "sc_n_roots": float(rng.integers(2, 6)),
        "sc_children": float(rng.integers(2, 5)),
        "sc_levels": float(rng.integers(2, 4)),
        "sc_size_ratio": float(rng.uniform(0.35, 0.6)),
        "sc_spread": float(rng.uniform(0.8, 1.8)),
        "sc_keep": float(rng.uniform(0.1, 0.4)),
        "sc_mass_alpha": float(rng.uniform(0.5, 3.0)),
        "sc_root_size": float(rng.uniform(0.15, 0.35)),
        "sc_env_size": float(rng.uniform(0.35, 0.8)),
        "sc_axis_ratio_1": float(rng.uniform(0.4, 1.0)),
        "sc_axis_ratio_2": float(rng.uniform(0.4, 1.0)),
        "sc_diffuse": float(rng.uniform(0.05, 0.35)),
        "sc_lopsided": float(rng.uniform(0.0, 0.6)),
    }


_EXTRAS = {
    "spiral": _spiral_extras,
    "shell": _shell_extras,
    "bipolar": _bipolar_extras,
    "irregular": _irregular_extras,
}


def draw_extras(rng: np.random.Generator, cls: str) -> dict[str, float]:
    """This generator's own parameters for class ``cls`` (``sc_`` keys; {} for no_gas)."""
    if cls not in _EXTRAS:
        return {}
    return {**_dust_extras(rng, cls), **_EXTRAS[cls](rng)}


# --------------------------------------------------------------------------------------
# Densities (body frame, arbitrary units; each builder draws its random parts once)


@dataclass(frozen=True)
class _Model:
    main: Density
    torus: Density | None = None


def _table(values: np.ndarray, a: np.ndarray, a_max: float) -> list[np.ndarray]:
    """Tables sampled finely and uniformly on [0, a_max], looked up (nearest) at ``a``."""
    n = values.shape[-1]
    i = np.minimum(a * ((n - 1) / a_max) + 0.5, n - 1).astype(np.int32)
    return [row[i] for row in values]


def _kepler_true_anomaly(mean_anomaly: np.ndarray, ecc: float) -> np.ndarray:
    """True anomaly (continuous) at each mean anomaly: Kepler's equation solved over one
    orbit by Newton's method, then extended by periodicity."""
    m_orbit = np.linspace(0, 2 * math.pi, 513)
    big_e = m_orbit + ecc * np.sin(m_orbit)
    for _ in range(20):
        big_e -= (big_e - ecc * np.sin(big_e) - m_orbit) / (1 - ecc * np.cos(big_e))
    nu = 2 * np.arctan2(
        math.sqrt(1 + ecc) * np.sin(big_e / 2), math.sqrt(1 - ecc) * np.cos(big_e / 2)
    )
    nu = np.unwrap(nu)
    turns = np.floor(mean_anomaly / (2 * math.pi))
    return np.interp(mean_anomaly - 2 * math.pi * turns, m_orbit, nu) + 2 * math.pi * turns


def _spiral(p: BinaryParams, rm: np.ndarray, rng: np.random.Generator) -> _Model:
    e, ecc = p.extras, min(p.eccentricity, 0.95)
    spacing, turns = e["scale_arcsec"], e["sc_turns"]
    a_max = _R_MAX / spacing + 1
    age = np.linspace(0, a_max, 4096)  # orbits since launch
    nu = _kepler_true_anomaly(e["sc_orbital_phase"] - 2 * math.pi * age, ecc)
    azimuth = e["sc_handedness"] * nu + e["sc_periastron"]
    noise = sum(
        np.cos(2 * math.pi * rng.uniform(0.5, 2.5) * age + rng.uniform(0, 2 * math.pi))
        for _ in range(4)
    ) / math.sqrt(2)
    weight = ((1 + ecc * np.cos(nu)) / (1 + ecc)) ** e["sc_production_index"] * np.exp(
        e["sc_knots"] * noise
    )
    # A periastron burst is thin in radius: smooth it to the voxels' resolution.
    weight = gaussian_filter1d(weight, _RES_VOX / spacing / (age[1] - age[0]), mode="nearest")
    tables = np.stack([np.cos(azimuth), np.sin(azimuth), weight]).astype(np.float32)
    sig0 = math.radians(e["sc_plume_width_deg"])
    flat = e["sc_plume_flatten"]

    def density(pts: _Points) -> np.ndarray:
        a = pts.r / spacing
        c, s, w = _table(tables, a, a_max)
        rho_cyl = np.sqrt(pts.x**2 + pts.y**2) + 1e-4
        cos_dphi = (pts.x * c + pts.y * s) / rho_cyl
        sin_lat = pts.z / pts.r
        alias = pts.res2 / pts.r**2 + (math.pi * pts.drad / spacing) ** 2
        grow = sig0**2 * (1 + e["sc_width_growth"] * a)
        sig_phi2, sig_lat2 = grow + alias, flat**2 * grow + alias
        tube = np.exp((cos_dphi - 1) / sig_phi2 - 0.5 * sin_lat**2 / sig_lat2)
        extent = np.exp(-((a / turns) ** 4)) * (1 - np.exp(-((a / e["sc_formation_age"]) ** 2)))
        return w * tube * extent * (flat * sig0**2) / np.sqrt(sig_phi2 * sig_lat2) / pts.r**2

    return _Model(density)


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=0, keepdims=True)


def _clump_map(rng: np.random.Generator, n: int, size_rad: float, fraction: float) -> np.ndarray:
    """Discrete Gaussian (von Mises) clumps at random places on the sphere, mean ~1."""
    centres = _unit(rng.normal(size=(3, n))).astype(np.float32)
    amps = rng.lognormal(0.0, 0.5, n).astype(np.float32)
    kernels = np.exp((_FINE_DIRS.T @ centres - 1) / size_rad**2) @ amps
    kernels /= kernels.mean() + 1e-12
    return (1 - fraction) + fraction * kernels


def _shell(p: BinaryParams, rm: np.ndarray, rng: np.random.Generator) -> _Model:
    e = p.extras
    n = int(e["sc_n_shells"])
    steps = 1 + e["sc_period_jitter"] * rng.uniform(-1, 1, n)
    radii = e["scale_arcsec"] * (e["sc_first_shell"] + np.cumsum(steps) - steps[0])
    axis = rm[2].astype(np.float32)  # the body z axis in sky coordinates
    mu = axis @ _FINE_DIRS
    stretch = 1 + e["sc_distortion"] * 0.5 * (3 * mu**2 - 1)  # radius of each direction
    arc_axis = _unit(rng.normal(size=3)).astype(np.float32)
    cos_arc = math.cos(math.radians(e["sc_arc_half_angle_deg"]))
    maps = [stretch]
    for _ in range(n):
        tilt = _unit(arc_axis + 0.25 * rng.normal(size=3).astype(np.float32))
        mask = 0.5 * (1 + np.tanh((tilt @ _FINE_DIRS - cos_arc) / 0.15))
        if e["sc_arc_half_angle_deg"] >= 180:
            mask = np.ones_like(mask)
        clumps = _clump_map(
            rng,
            int(e["sc_n_clumps"]),
            math.radians(e["sc_clump_size_deg"]),
            e["sc_clump_fraction"],
        )
        maps.append(mask * clumps)
    maps = np.stack(maps).astype(np.float32)

    def density(pts: _Points) -> np.ndarray:
        looked = pts.ang(maps)
        s_over_r = looked[0] / pts.r
        log_s_over_r = np.log(s_over_r)
        out = np.zeros_like(pts.r)
        for k, radius in enumerate(radii):
            # profile exp(m (ln u - u + 1)) in u = R / r, with m = 1 / width^2
            w2 = e["sc_shell_width"] ** 2 + pts.res2 / radius**2
            exponent = (log_s_over_r - radius * s_over_r + (math.log(radius) + 1)) * (1 / w2)
            out += np.exp(exponent) * looked[k + 1] * (e["sc_fade"] ** k / radius**3 / np.sqrt(w2))
        return out

    return _Model(density)


def _torus(e: dict[str, float]) -> Density:
    radius = e["sc_torus_radius"] * e["scale_arcsec"] + 0.04
    height = e["sc_torus_height"]

    def density(pts: _Points) -> np.ndarray:
        rho = np.sqrt(pts.x**2 + pts.y**2) + 1e-4
        thick2 = (height * rho) ** 2 + pts.res2
        rim = 1 - np.exp(-((rho / radius) ** 8))
        vertical = np.exp(-0.5 * pts.z**2 / thick2) * (height * rho / np.sqrt(thick2))
        return rim * vertical * (radius / rho) ** 2 * np.exp(-((rho / (4 * radius)) ** 2))

    return density


def _bipolar(p: BinaryParams, rm: np.ndarray, rng: np.random.Generator) -> _Model:
    e = p.extras
    length = e["scale_arcsec"]
    slope = length * math.tan(math.radians(e["sc_opening_deg"]) / 2)

    def density(pts: _Points) -> np.ndarray:
        rho = np.sqrt(pts.x**2 + pts.y**2)
        h = np.abs(pts.z)
        wall_r = 0.03 + slope * (h / length) ** e["sc_wall_curvature"]
        width = e["sc_wall_width"] * wall_r + 0.015
        sig2 = width**2 + pts.res2
        offset = rho - wall_r
        wall = np.exp(-0.5 * offset**2 / sig2) * (width / np.sqrt(sig2))
        inside = 1 / (1 + np.exp(np.clip(offset / (0.5 * np.sqrt(sig2)), -30, 30)))
        side = np.where(pts.z < 0, e["sc_lobe_ratio"], 1.0).astype(np.float32)
        rn = pts.r / length
        swept = rn ** e["sc_wall_index"] * np.exp(-((rn / 1.1) ** 4))
        walls = e["sc_wall_strength"] * wall * side * swept
        envelope = (
            rn ** -e["sc_env_index"]
            * (1 + e["sc_equatorial"] * (rho / pts.r) ** 2)
            * np.exp(-((rn / e["sc_env_extent"]) ** 3))
            * (1 - inside * (1 - e["sc_cavity_density"]))
        )
        return walls + envelope

    return _Model(density, _torus(e) if e["sc_torus"] else None)


@dataclass(frozen=True)
class _Blobs:
    centres: np.ndarray  # (n, 3) sky frame
    sigma: np.ndarray
    mass: np.ndarray


_MAX_CLUMPS = 100


def _cascade(
    p: BinaryParams, rm: np.ndarray, rng: np.random.Generator
) -> tuple[list[_Blobs], _Blobs]:
    """The clump cascade level by level, and a coarse version for the optical depth (the
    roots and their children carrying their whole subtree's mass, widened)."""
    e = p.extras
    length = e["scale_arcsec"]
    axes = length * np.array([1.0, e["sc_axis_ratio_1"], e["sc_axis_ratio_2"]])
    n_roots, children = int(e["sc_n_roots"]), int(e["sc_children"])
    depth = int(math.log(_MAX_CLUMPS / n_roots) / math.log(children))
    levels = max(min(int(e["sc_levels"]), depth), 1)
    # Roots scattered through a thick shell of ejecta around the binary.
    radius = e["sc_env_size"] * rng.uniform(0.5, 1.3, n_roots)
    c = _unit(rng.normal(size=(3, n_roots))).T * radius[:, None] * axes
    s = e["sc_root_size"] * length
    m = rng.lognormal(0.0, 0.5, n_roots)
    fine, coarse = [], []
    for level in range(levels + 1):
        keep = 1.0 if level == levels else e["sc_keep"]
        fine.append(_Blobs(c @ rm, np.full(len(m), s), m * keep))  # body -> sky is R^T
        if level <= 1:
            widen, mass = (1.6, m) if level == 1 else (1.0, m * keep)
            coarse.append(_Blobs(c @ rm, np.full(len(m), s * widen), mass))
        if level == levels:
            break
        split = rng.dirichlet(np.full(children, e["sc_mass_alpha"]), size=len(m))
        c = (c[:, None, :] + rng.normal(size=(len(m), children, 3)) * s * e["sc_spread"]).reshape(
            -1, 3
        )
        m = ((m * (1 - keep))[:, None] * split).ravel()
        s = max(s * e["sc_size_ratio"], 0.03)
    merged = _Blobs(
        *(np.concatenate([getattr(b, k) for b in coarse]) for k in _Blobs.__annotations__)
    )
    return fine, merged


def _windows(edges: np.ndarray, centres: np.ndarray, sigma: float) -> tuple[np.ndarray, ...]:
    """Per clump: first cell and the Gaussian's mean density in each cell of its window."""
    step = float(edges[1] - edges[0])
    width = min(2 * (int(math.ceil(4 * sigma / step)) + 1), len(edges) - 1)
    first = np.floor((centres - edges[0]) / step).astype(np.int64) - width // 2 + 1
    first = np.clip(first, 0, len(edges) - 1 - width)
    cell_edges = edges[0] + step * (first[:, None] + np.arange(width + 1))
    cdf = erf((cell_edges - centres[:, None]) / (math.sqrt(2) * sigma))
    return first, (0.5 / step * np.diff(cdf, axis=1)).astype(np.float32)


def _splat(levels: list[_Blobs]) -> np.ndarray:
    """Gaussian clumps integrated over each voxel (mass-conserving at any size)."""
    cube = np.zeros(_VOX_R.shape, np.float32)
    for blobs in levels:
        sigma = float(blobs.sigma[0])
        (x0, gx), (y0, gy), (z0, gz) = (
            _windows(edges, blobs.centres[:, i], sigma)
            for i, edges in enumerate((_EDGES_XY, _EDGES_XY, _EDGES_Z))
        )
        nx, nz = gx.shape[1], gz.shape[1]
        for i, mass in enumerate(blobs.mass.astype(np.float32)):
            block = (mass * gy[i])[:, None, None] * gx[i][None, :, None] * gz[i]
            cube[y0[i] : y0[i] + nx, x0[i] : x0[i] + nx, z0[i] : z0[i] + nz] += block
    return cube


def _gaussians_at(blobs: _Blobs, sky: np.ndarray) -> np.ndarray:
    pts = sky.reshape(3, -1).T
    out = np.zeros(len(pts), np.float32)
    for c, sig, mass in zip(blobs.centres, blobs.sigma, blobs.mass, strict=True):
        d2 = ((pts - c.astype(np.float32)) ** 2).sum(1)
        out += mass / ((2 * math.pi) ** 1.5 * sig**3) * np.exp(-0.5 * d2 / sig**2)
    return out.reshape(sky.shape[1:])


def _irregular(p: BinaryParams, rm: np.ndarray, rng: np.random.Generator) -> _Model:
    e = p.extras
    fine, coarse = _cascade(p, rm, rng)
    q1, q2 = e["sc_axis_ratio_1"], e["sc_axis_ratio_2"]
    scale = e["sc_env_size"] * e["scale_arcsec"]
    diffuse_mass = sum(b.mass.sum() for b in fine) * e["sc_diffuse"] / (1 - e["sc_diffuse"])
    amplitude = diffuse_mass / (8 * math.pi * scale**3 * q1 * q2)
    side = _unit(rng.normal(size=3))

    def density(pts: _Points) -> np.ndarray:
        r_ell = np.sqrt(pts.x**2 + (pts.y / q1) ** 2 + (pts.z / q2) ** 2)
        tilt = 1 + e["sc_lopsided"] * (side[0] * pts.x + side[1] * pts.y + side[2] * pts.z) / pts.r
        hollow = 1 - np.exp(-((pts.r / (0.5 * scale)) ** 2))
        envelope = amplitude * np.exp(-r_ell / scale) * tilt * hollow
        clumps = _splat(fine) if pts.on_voxels else _gaussians_at(coarse, pts.sky)
        return clumps + envelope

    return _Model(density)


_BUILDERS: dict[str, Callable[[BinaryParams, np.ndarray, np.random.Generator], _Model]] = {
    "spiral": _spiral,
    "shell": _shell,
    "bipolar": _bipolar,
    "irregular": _irregular,
}


# --------------------------------------------------------------------------------------
# Radiative transfer


def _radial_column(density: np.ndarray) -> np.ndarray:
    """Column from the star outwards along each radius of the spherical grid (NR, NA)."""
    col = np.zeros_like(density)
    col[1:] = np.cumsum(0.5 * (density[1:] + density[:-1]) * np.diff(_NODE_R)[:, None], axis=0)
    return col


def _column_to_observer(density: np.ndarray) -> np.ndarray:
    inclusive = np.cumsum(density[..., ::-1], axis=2)[..., ::-1]
    return (inclusive - 0.5 * density) * _DZ


def _densities(p: BinaryParams, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Voxel density scaled to the drawn optical depths, and the column from the star on
    the spherical grid (in F200W optical depths)."""
    e = p.extras
    rm = _rotation(p)
    model = _BUILDERS[p.cls](p, rm, rng)
    vox, nodes = _points(rm, True), _points(rm, False)
    r_in = e["sc_inner_radius"]
    hole_v, hole_n = (1 - np.exp(-(((q.r * q.r) * (1 / r_in**2)) ** 3)) for q in (vox, nodes))
    column = _radial_column(model.main(nodes) * hole_n)
    scale = e["sc_tau"] / max(float(column[-1] @ _SOLID), 1e-30)
    rho, column = model.main(vox) * hole_v * scale, column * scale
    if model.torus is not None:
        ray = np.linspace(0, _R_MAX, 2000, dtype=np.float32)
        zero = np.zeros_like(ray)
        eq = model.torus(_Points(ray, zero, zero, ray, zero, 0.0, 0.0, _NODE_ANG, False))
        eq = eq * (1 - np.exp(-((ray / r_in) ** 6)))
        t_scale = e["sc_torus_tau"] / max(float(np.trapezoid(eq, ray)), 1e-30)
        rho = rho + model.torus(vox) * hole_v * t_scale
        column = column + _radial_column(model.torus(nodes) * hole_n) * t_scale
    return rho.astype(np.float32, copy=False), column.astype(np.float32, copy=False)


def _kappa(e: dict[str, float], wavelength_um: float) -> float:
    return (wavelength_um / _REF_UM) ** -e["sc_beta"]


def _light(p: BinaryParams, rho: np.ndarray, column: np.ndarray) -> np.ndarray:
    """Scattered plus thermal light per band, summed along the sight line (4, GRID, GRID)."""
    e = p.extras
    n_obs = _column_to_observer(rho).ravel()
    keep = np.flatnonzero(rho.ravel() > 1e-5 * float(rho.max()))  # skip empty voxels
    rho_all_size = rho.size
    rho, n_obs = rho.ravel()[keep], n_obs[keep]
    pixel = _VOX_PIXEL[keep]  # sorted: the voxels of one sight line are contiguous
    starts = np.flatnonzero(np.diff(pixel, prepend=-1))
    if len(keep) > 0.5 * rho_all_size:
        n_star = (_VOX_TAU @ column.ravel())[keep]
    else:
        n_star = _VOX_TAU[keep] @ column.ravel()
    n_total = n_star + n_obs
    r, mu = np.maximum(_VOX_R.ravel()[keep], e["sc_inner_radius"]), _VOX_MU.ravel()[keep]
    illuminated = rho / (r * r)
    r_scaled = np.maximum(r / (0.5 * e["scale_arcsec"]), 0.3)
    t_free = np.minimum(p.dust_temperature_k * r_scaled ** -e["sc_temp_index"], _T_SUB_K)
    shadow = np.exp(-np.minimum(n_star * (_kappa(e, _HEAT_UM) / 5), -math.log(_TEMPERATURE_FLOOR)))
    # 1/T, capped so that exp(h c / lambda k T) stays finite in single precision
    inv_t = np.minimum(1 / (t_free * shadow), 80.0 * min(WAVELENGTH_UM) / 14387.77)
    star_t = {t[0]: t[1] for t in STELLAR_TYPES}[p.primary_type]
    per_voxel, factors = [], []
    for lam in WAVELENGTH_UM:
        kappa = _kappa(e, lam)
        g = e["sc_g"] * (lam / _REF_UM) ** -e["sc_g_slope"]
        base = 1 + g**2 - (2 * g) * mu
        per_voxel.append(illuminated * np.exp(-kappa * n_total) / (base * np.sqrt(base)))
        per_voxel.append(rho * np.exp(-kappa * n_obs) / np.expm1((14387.77 / lam) * inv_t))
        albedo = min(max(e["sc_albedo"] * (lam / _REF_UM) ** -e["sc_albedo_slope"], 0.02), 0.95)
        star = float(_planck_ratio(lam, np.asarray(star_t)))
        factors += [kappa * albedo * star * (1 - g**2), kappa * (1 - albedo) * lam**-5]
    images = np.zeros((2 * len(WAVELENGTH_UM), GRID * GRID), np.float32)
    images[:, pixel[starts]] = np.add.reduceat(np.stack(per_voxel), starts, axis=1)
    images *= np.asarray(factors, np.float32)[:, None]
    scattered, thermal = images[0::2].reshape(-1, GRID, GRID), images[1::2].reshape(-1, GRID, GRID)
    s_total, t_total = float(scattered[0].sum()), float(thermal[-1].sum())
    if s_total > 0 and t_total > 0:
        return thermal + scattered * (e["sc_scatter_weight"] * t_total / s_total)
    return thermal + scattered


def dust_scattering(p: BinaryParams, rng: np.random.Generator) -> np.ndarray:
    """Dust surface brightness per band on the fine grid (4, FINE, FINE), scattered plus
    thermal, before the PSF, normalised to a 99.5th-percentile F444W of 1 away from the
    centre; zeros for no_gas."""
    if p.cls not in _BUILDERS:
        return np.zeros((len(WAVELENGTH_UM), FINE, FINE))
    rho, column = _densities(p, rng)
    bands = np.nan_to_num(_light(p, rho, column), nan=0.0, posinf=0.0)
    fine = np.clip(_upsample2(_upsample2(bands, 1), 2), 0, None)
    peak = float(np.percentile(fine[-1][_OUTER], 99.5))
    return fine / peak if peak > 0 else fine
