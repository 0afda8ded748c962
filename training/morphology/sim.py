"""A JWST NIRCam simulator for the gas and dust around interacting binary stars: the
``analytic`` morphology generator and the shared physics (stellar types, dust emission,
detector constants). ``families.py`` renders the same targets under other PSFs, scenes,
detectors and two more generators; ``simulate`` here is the 1.0 simulator (Gaussian PSF,
clean field), kept as one family and for quick tests.

Each image shows one of five morphologies in four NIRCam bands (F200W, F277W, F356W, F444W):

- ``spiral``: a dusty pinwheel. Dust forms where the two winds collide and streams out at the
  wind speed while the orbit turns, so the arm is an Archimedean spiral with spacing
  ``v_wind * P_orb`` (WR 104, WR 140). In an eccentric orbit dust forms mostly near
  periastron, so the arm breaks into segments.
- ``shell``: episodic ejections; each one leaves a thin, limb-brightened spherical shell that
  expands at the wind speed, older shells larger, cooler and fainter.
- ``bipolar``: a collimated (common-envelope or disk-driven) outflow: two edge-brightened
  lobes along an axis with an opening angle, foreshortened by the inclination, and a dusty
  equatorial waist.
- ``irregular``: a clumpy turbulent medium (a log-normal field with a power-law spectrum).
- ``no_gas``: the binary alone.

Geometry (in au) becomes angles through the distance. Dust emission in each band is a
modified blackbody ``nu**beta * B_nu(T)`` with ``T`` falling with radius as ``r**-0.4`` (an
optically thin grain in equilibrium with the stars), which sets the colours across bands.

Rendering: the scene is drawn on a fine grid of 0.0315"/px (half a long-wavelength pixel,
within 2% of the F200W native 0.031"/px so binning stays exact), convolved with each band's
PSF (a Gaussian core with the band's FWHM: 0.066/0.092/0.116/0.145"). F200W is observed at
that native scale (Poisson noise of sky, source and dark current, read noise, gain) and
then binned 2x2; the long-wavelength bands are binned 2x2 to 0.063"/px first and observed
there. Every stamp lands on the same 64x64 grid at 0.063"/px (4" on a side) in MJy/sr, and
carries its physical parameters as a metadata row.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from tqdm import tqdm

from stampflow.classifiers.morphology.spec import SPEC
from stampflow.schemas.stamps import encode_stamp

CLASSES = SPEC.labels
FILTERS = SPEC.filters
WAVELENGTH_UM = (1.99, 2.77, 3.56, 4.42)
PSF_FWHM_ARCSEC = (0.066, 0.092, 0.116, 0.145)
NATIVE_SCALE = (0.031, 0.063, 0.063, 0.063)  # arcsec/px of each NIRCam channel
GRID_SCALE = SPEC.grid_scale_arcsec  # arcsec/px of the common grid the CNN sees
FINE_SCALE = GRID_SCALE / 2  # rendering grid; also the F200W observing grid
GRID = SPEC.input_size  # pixels on a side of the common grid
FINE = 2 * GRID
# Detector (FACTS.md): short-wavelength channel for F200W, long-wavelength for the rest.
READ_NOISE_E = (15.8, 13.3, 13.3, 13.3)
DARK_E_PER_S = (1.9e-3, 34.2e-3, 34.2e-3, 34.2e-3)
GAIN_E_PER_ADU = (2.05, 1.82, 1.82, 1.82)
# Zodiacal + thermal sky seen by NIRCam rises to the red (MJy/sr, order of magnitude).
SKY_MJY_SR = (0.12, 0.15, 0.25, 0.55)
# Photometric conversion: electrons per second per (MJy/sr) in one native pixel.
E_PER_S_PER_MJYSR = (1.5, 6.0, 5.5, 4.0)
DEFAULT_BALANCE = (0.30, 0.25, 0.15, 0.10, 0.20)  # imbalanced, as in a real survey
# Angular scale (arcsec) of each class's structure: arm spacing, shell spacing, flow extent.
ANGULAR_SCALE_ARCSEC = {
    "spiral": (0.35, 0.9),
    "shell": (0.4, 0.8),
    "bipolar": (0.9, 1.6),
    "irregular": (0.9, 1.6),
    "no_gas": (0.9, 1.6),
}

AU_PER_YR_IN_KM_S = 4.740  # 1 au/yr in km/s
ARCSEC_PER_AU_AT_1KPC = 1e-3

# Stellar types of the components: (type, effective temperature K, luminosity Lsun, mass Msun).
STELLAR_TYPES: tuple[tuple[str, float, float, float], ...] = (
    ("WC8", 60000.0, 2.0e5, 15.0),
    ("WC9", 45000.0, 1.5e5, 12.0),
    ("WN7", 50000.0, 4.0e5, 20.0),
    ("O5V", 41000.0, 3.0e5, 35.0),
    ("O8III", 33000.0, 1.5e5, 25.0),
    ("B0I", 28000.0, 2.5e5, 30.0),
    ("B5V", 15000.0, 1.0e3, 6.0),
    ("M2I", 3600.0, 1.0e5, 15.0),
)


@dataclass(frozen=True)
class SimConfig:
    """What to draw. ``snr_range`` is the peak dust S/N in F444W before noise; ``distance``
    multiplies every distance drawn (a value above 1 makes targets further, smaller in flux)."""

    balance: tuple[float, ...] = DEFAULT_BALANCE
    snr_range: tuple[float, float] = (8.0, 80.0)
    distance_factor: float = 1.0
    exposure_s: float = 1200.0

    def __post_init__(self) -> None:
        if len(self.balance) != len(CLASSES) or min(self.balance) < 0 or sum(self.balance) <= 0:
            raise ValueError(
                f"balance needs {len(CLASSES)} non-negative weights, got {self.balance}"
            )
        low, high = self.snr_range
        if not 0 < low <= high:
            raise ValueError(f"snr_range must satisfy 0 < low <= high, got {self.snr_range}")
        if self.distance_factor <= 0 or self.exposure_s <= 0:
            raise ValueError("distance_factor and exposure_s must be positive")


HARD_CONFIG = SimConfig(balance=(0.2,) * 5, snr_range=(3.0, 15.0), distance_factor=1.6)
"""The shifted conditions of the harder held-out set: targets further away, worse S/N."""


@dataclass(frozen=True)
class BinaryParams:
    """Physical parameters of one simulated target (kept as the image's metadata)."""

    cls: str
    separation_au: float
    eccentricity: float
    inclination_deg: float
    position_angle_deg: float
    mass_loss_msun_yr: float
    wind_speed_km_s: float
    distance_kpc: float
    primary_type: str
    secondary_type: str
    dust_temperature_k: float
    snr: float
    period_yr: float
    extras: dict[str, float] = field(default_factory=dict)

    def row(self) -> dict[str, Any]:
        row = asdict(self)
        row.update(row.pop("extras"))
        return row


def _kepler_period_yr(separation_au: float, total_mass: float) -> float:
    return math.sqrt(separation_au**3 / total_mass)


def draw_params(rng: np.random.Generator, cls: str, config: SimConfig) -> BinaryParams:
    """Draw the physical parameters of one target of class ``cls``."""
    primary = STELLAR_TYPES[rng.integers(0, 6)]  # an evolved massive star drives the wind
    secondary = STELLAR_TYPES[rng.integers(3, len(STELLAR_TYPES))]
    total_mass = primary[3] + secondary[3]
    eccentricity = float(rng.uniform(0.0, 0.8)) if cls == "spiral" else float(rng.beta(1.2, 3.0))
    # Hot-star winds for pinwheels and shells; slower common-envelope / disk outflows and
    # turbulent ejecta otherwise.
    wind_range = {"bipolar": (100.0, 1000.0), "irregular": (20.0, 200.0)}.get(cls, (600.0, 3000.0))
    wind = float(rng.uniform(*wind_range))
    # Targets are catalogued where the structure is resolved over the 4" stamp: draw the
    # distance (Galactic, 1-8 kpc) and the structure's angular scale; its physical scale in
    # au follows, and from it the time scale (orbital period for a pinwheel, whose arm
    # spacing is v_wind * P_orb; ejection interval for shells; flow age otherwise).
    distance = float(np.exp(rng.uniform(np.log(1.0), np.log(8.0))))
    angle = float(rng.uniform(*ANGULAR_SCALE_ARCSEC[cls]))
    scale_au = angle * distance / ARCSEC_PER_AU_AT_1KPC
    timescale_yr = scale_au / (wind / AU_PER_YR_IN_KM_S)
    if cls == "spiral":
        period = timescale_yr
        separation = (period**2 * total_mass) ** (1 / 3)
    else:
        separation = float(np.exp(rng.uniform(np.log(3.0), np.log(60.0))))
        period = _kepler_period_yr(separation, total_mass)
    # Shifted conditions: the same systems further away look smaller.
    distance *= config.distance_factor
    extras: dict[str, float] = {
        "scale_arcsec": angle / config.distance_factor,
        "scale_au": scale_au,
        "timescale_yr": timescale_yr,
    }
    if cls == "shell":
        extras["n_shells"] = float(rng.integers(1, 5))
        extras["shell_thickness"] = float(rng.uniform(0.05, 0.15))
        extras["first_shell"] = float(rng.uniform(0.6, 1.3))
    elif cls == "bipolar":
        extras["opening_angle_deg"] = float(rng.uniform(20.0, 60.0))
    elif cls == "irregular":
        extras["spectral_index"] = float(rng.uniform(2.6, 3.6))
        extras["clumping"] = float(rng.uniform(0.8, 1.6))
    elif cls == "spiral":
        extras["arm_width"] = float(rng.uniform(0.08, 0.18))
        extras["turns"] = float(rng.uniform(1.5, 3.5))
        extras["handedness"] = float(rng.choice([-1.0, 1.0]))
        extras["periastron"] = float(rng.uniform(0.0, 2 * np.pi))
    # Inclination: spirals and shells at any viewing angle (isotropic: cos i uniform);
    # bipolar flows seen pole-on look like rings and are not catalogued as bipolar.
    if cls == "bipolar":
        inclination = float(rng.uniform(35.0, 90.0))
    else:
        inclination = float(np.degrees(np.arccos(rng.uniform(0.25, 1.0))))
    return BinaryParams(
        cls=cls,
        separation_au=separation,
        eccentricity=eccentricity,
        inclination_deg=inclination,
        position_angle_deg=float(rng.uniform(0.0, 180.0)),
        mass_loss_msun_yr=float(10 ** rng.uniform(-6.5, -4.5)) if cls != "no_gas" else 0.0,
        wind_speed_km_s=wind,
        distance_kpc=float(distance),
        primary_type=primary[0],
        secondary_type=secondary[0],
        dust_temperature_k=float(rng.uniform(400.0, 1400.0)),
        snr=float(np.exp(rng.uniform(*np.log(config.snr_range)))),
        period_yr=float(period),
        extras=extras,
    )


def _fine_coordinates() -> tuple[np.ndarray, np.ndarray]:
    axis = (np.arange(FINE) - (FINE - 1) / 2) * FINE_SCALE
    return np.meshgrid(axis, axis)  # x (east-west), y (north-south) in arcsec


_X, _Y = _fine_coordinates()


def _disk_frame(p: BinaryParams) -> tuple[np.ndarray, np.ndarray]:
    """Sky coordinates turned into the orbital plane (rotated by PA, stretched by 1/cos i)."""
    pa = np.radians(p.position_angle_deg)
    u = _X * np.cos(pa) + _Y * np.sin(pa)
    v = -_X * np.sin(pa) + _Y * np.cos(pa)
    return u, v / max(np.cos(np.radians(p.inclination_deg)), 0.15)


def _spiral(p: BinaryParams) -> tuple[np.ndarray, np.ndarray]:
    u, v = _disk_frame(p)
    r = np.hypot(u, v) + 1e-6
    theta = np.arctan2(v, u) * p.extras["handedness"]
    spacing = p.extras["scale_arcsec"]
    age_turns = r / spacing  # orbits since this dust was launched
    phase = age_turns - theta / (2 * np.pi)
    offset = (phase - np.round(phase)) * spacing  # distance to the nearest arm winding
    width = p.extras["arm_width"] * spacing
    arm = np.exp(-0.5 * (offset / width) ** 2)
    # Dust production follows the stellar separation (colliding winds): dust leaving in
    # direction theta left when the orbit's true anomaly was theta - periastron, and the
    # separation there is a(1 - e^2) / (1 + e cos nu), so production ~ (1 + e cos nu)^2.
    nu = theta - p.extras["periastron"]
    production = (1.0 + p.eccentricity * np.cos(nu)) ** 2
    extent = np.clip(1.0 - age_turns / p.extras["turns"], 0.0, 1.0)  # dust disperses
    density = arm * production * extent * np.minimum(1.0, r / (0.6 * spacing)) / r
    return density, r


def _shell(p: BinaryParams) -> tuple[np.ndarray, np.ndarray]:
    # Ejecta are mildly oblate (flattening 0.25, denser toward the orbital plane): seen at
    # inclination i the shell's outline has axis ratio sqrt(cos^2 i + (1 - f)^2 sin^2 i).
    pa = np.radians(p.position_angle_deg)
    u = _X * np.cos(pa) + _Y * np.sin(pa)
    v = -_X * np.sin(pa) + _Y * np.cos(pa)
    incl = np.radians(p.inclination_deg)
    axis_ratio = math.sqrt(math.cos(incl) ** 2 + (0.75 * math.sin(incl)) ** 2)
    rho = np.hypot(u, v / axis_ratio)
    density = np.zeros_like(rho)
    spacing = p.extras["scale_arcsec"]
    thickness = p.extras["shell_thickness"]
    for k in range(int(p.extras["n_shells"])):
        radius = spacing * (p.extras["first_shell"] + k)
        inner = radius * (1 - thickness)
        # Column through a uniform spherical shell: the chord length at projected radius rho.
        chord = np.sqrt(np.clip(radius**2 - rho**2, 0, None)) - np.sqrt(
            np.clip(inner**2 - rho**2, 0, None)
        )
        density += chord / (radius**2 * thickness)  # same mass per shell, spread wider
    return density, rho + 1e-6


def _bipolar(p: BinaryParams) -> tuple[np.ndarray, np.ndarray]:
    pa = np.radians(p.position_angle_deg)
    s = _X * np.cos(pa) + _Y * np.sin(pa)  # along the projected axis
    t = -_X * np.sin(pa) + _Y * np.cos(pa)
    sin_i = np.sin(np.radians(p.inclination_deg))  # i: axis to line of sight
    length = p.extras["scale_arcsec"] * sin_i
    half_open = np.radians(p.extras["opening_angle_deg"]) / 2
    along = np.abs(s)
    wall = (
        0.05
        + along
        * np.tan(half_open)
        / max(sin_i, 0.3)
        * np.clip(1.0 - (along / length) ** 2, 0.0, None) ** 0.5
    )
    wall_width = 0.04 + 0.15 * wall
    lobes = np.exp(-0.5 * ((np.abs(t) - wall) / wall_width) ** 2) * (along < length)
    lobes += 0.3 * (np.abs(t) < wall) * (along < length)  # the lobes' filled interior
    r = np.hypot(s, t) + 1e-6
    waist = np.exp(-0.5 * (s / 0.06) ** 2 - 0.5 * (t / (0.25 * length + 0.1)) ** 2)
    density = lobes / (0.5 + along / length) + 0.7 * waist
    return density, r


def _irregular(p: BinaryParams, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    k = np.hypot(*np.meshgrid(np.fft.fftfreq(FINE), np.fft.fftfreq(FINE)))
    k[0, 0] = np.inf
    amplitude = k ** (-p.extras["spectral_index"] / 2)
    noise = rng.normal(size=(FINE, FINE)) + 1j * rng.normal(size=(FINE, FINE))
    field_ = np.real(np.fft.ifft2(amplitude * noise))
    field_ /= field_.std()
    u, v = _disk_frame(p)
    r = np.hypot(u, v) + 1e-6
    envelope = np.exp(-r / p.extras["scale_arcsec"] * 2.0)
    density = np.exp(p.extras["clumping"] * field_) * envelope
    return density, r


def _planck_ratio(wavelength_um: float, temperature: np.ndarray) -> np.ndarray:
    """``nu * B_nu(T)`` up to a constant, times ``nu**1`` (grain emissivity index 1)."""
    x = 14387.77 / (wavelength_um * temperature)  # h c / (lambda k T) with lambda in um
    return wavelength_um**-5 / np.expm1(np.minimum(x, 600.0))


def _stellar_band_flux(temperature: float, luminosity: float) -> np.ndarray:
    ratios = np.array([_planck_ratio(w, np.asarray(temperature)) for w in WAVELENGTH_UM])
    # Normalise per unit bolometric luminosity (Stefan-Boltzmann ~ T^4).
    return luminosity * ratios.ravel() * 1e12 / temperature**4


def _gaussian_psf_fft(fwhm_arcsec: float) -> np.ndarray:
    sigma_px = fwhm_arcsec / FINE_SCALE / (2 * math.sqrt(2 * math.log(2)))
    k = np.fft.fftfreq(FINE)
    kx, ky = np.meshgrid(k, k)
    return np.exp(-2 * (np.pi * sigma_px) ** 2 * (kx**2 + ky**2))


_PSF_FFT = tuple(_gaussian_psf_fft(f) for f in PSF_FWHM_ARCSEC)


def _bin2(image: np.ndarray) -> np.ndarray:
    return image.reshape(GRID, 2, GRID, 2).mean(axis=(1, 3))


def dust_model(p: BinaryParams, rng: np.random.Generator) -> np.ndarray:
    """Noiseless dust surface brightness per band on the fine grid, shape (4, FINE, FINE),
    normalised so F444W peaks at 1 after the PSF; all zeros for ``no_gas``."""
    if p.cls == "no_gas":
        return np.zeros((len(FILTERS), FINE, FINE))
    density, r = {
        "spiral": _spiral,
        "shell": _shell,
        "bipolar": _bipolar,
        "irregular": lambda q: _irregular(q, rng),
    }[p.cls](p)
    # Grain temperature falls as r^-0.4; ``dust_temperature_k`` is its value at half the
    # structure's scale (nearer in, grains sublimate above ~1.3x that temperature).
    r0 = 0.5 * p.extras["scale_arcsec"]
    temperature = p.dust_temperature_k * np.clip(r / r0, 0.5, None) ** -0.4
    bands = np.stack([density * _planck_ratio(w, temperature) for w in WAVELENGTH_UM])
    bands = np.real(np.fft.ifft2(np.fft.fft2(bands) * np.stack(_PSF_FFT)))
    # Normalise on the extended structure (away from the unresolved centre) so that the
    # drawn S/N describes the structure the classifier has to see.
    outer = np.hypot(_X, _Y) > 0.2
    peak = np.percentile(bands[-1][outer], 99.0)
    return bands / peak if peak > 0 else bands


def star_model(p: BinaryParams) -> np.ndarray:
    """The two stars as PSFs per band on the fine grid, F444W peaking at 1."""
    types = {t[0]: t for t in STELLAR_TYPES}
    primary, secondary = types[p.primary_type], types[p.secondary_type]
    flux = _stellar_band_flux(primary[1], primary[2]) + _stellar_band_flux(
        secondary[1], secondary[2]
    )
    delta = np.zeros((FINE, FINE))
    delta[FINE // 2, FINE // 2] = 1.0  # binary unresolved at these separations and distances
    stars = np.stack(
        [
            f * np.real(np.fft.ifft2(np.fft.fft2(delta) * psf))
            for f, psf in zip(flux, _PSF_FFT, strict=True)
        ]
    )
    return stars / stars[-1].max()


def _observe(
    scene_mjysr: np.ndarray, config: SimConfig, rng: np.random.Generator, noise: bool
) -> np.ndarray:
    """Add sky and detector noise at each band's native scale; return (4, GRID, GRID) MJy/sr."""
    out = np.empty((len(FILTERS), GRID, GRID), dtype=np.float32)
    for b in range(len(FILTERS)):
        image = scene_mjysr[b] if NATIVE_SCALE[b] < GRID_SCALE else _bin2(scene_mjysr[b])
        if noise:
            rate = (image + SKY_MJY_SR[b]) * E_PER_S_PER_MJYSR[b]
            electrons = rng.poisson(np.clip(rate, 0, None) * config.exposure_s)
            electrons = electrons + rng.poisson(DARK_E_PER_S[b] * config.exposure_s, image.shape)
            electrons = electrons + rng.normal(0.0, READ_NOISE_E[b], image.shape)
            adu = np.round(electrons / GAIN_E_PER_ADU[b])  # digitised
            image = adu * GAIN_E_PER_ADU[b] / config.exposure_s / E_PER_S_PER_MJYSR[b]
            image = image - DARK_E_PER_S[b] / E_PER_S_PER_MJYSR[b]  # dark subtracted
        out[b] = image if image.shape[0] == GRID else _bin2(image)
    return out


def pixel_noise_mjysr(band: int, exposure_s: float, signal_mjysr: float = 0.0) -> float:
    """Expected noise (MJy/sr) of one native pixel of ``band`` over sky plus ``signal``."""
    conv = E_PER_S_PER_MJYSR[band]
    variance_e = (
        (signal_mjysr + SKY_MJY_SR[band]) * conv * exposure_s
        + DARK_E_PER_S[band] * exposure_s
        + READ_NOISE_E[band] ** 2
        + GAIN_E_PER_ADU[band] ** 2 / 12  # quantisation
    )
    return math.sqrt(variance_e) / conv / exposure_s


def render(
    p: BinaryParams, rng: np.random.Generator, config: SimConfig, *, noise: bool = True
) -> np.ndarray:
    """The four-band stamp (4, 64, 64) float32 in MJy/sr for parameters ``p``."""
    dust = dust_model(p, rng)
    # Dust peak S/N in F444W at the common grid sets the dust amplitude (mass-loss rate and
    # distance would set it physically; the S/N is what the detector sees, so draw that).
    sigma = pixel_noise_mjysr(3, config.exposure_s)
    dust_amplitude = p.snr * sigma
    # The stars outshine the dust more when the mass-loss rate (hence the dust mass) is low.
    star_to_dust = 2.0 * (1e-5 / max(p.mass_loss_msun_yr, 1e-7)) ** 0.25
    stars = star_model(p) * dust_amplitude * star_to_dust
    scene = dust * dust_amplitude + stars
    return _observe(scene, config, rng, noise)


@dataclass(frozen=True)
class SimulatedSet:
    """Images (n, 4, 64, 64) float32 in MJy/sr, integer labels and one metadata row each."""

    images: np.ndarray
    labels: np.ndarray
    rows: list[dict[str, Any]]


def draw_labels(rng: np.random.Generator, n: int, balance: tuple[float, ...]) -> np.ndarray:
    """``n`` class indices drawn with probabilities proportional to ``balance``."""
    weights = np.asarray(balance, dtype=float)
    return rng.choice(len(CLASSES), size=n, p=weights / weights.sum())


def simulate(
    n: int, seed: int, config: SimConfig = SimConfig(), *, progress: bool = False
) -> SimulatedSet:
    """Draw ``n`` labelled four-band images reproducibly from ``seed``."""
    rng = np.random.default_rng(seed)
    labels = draw_labels(rng, n, config.balance)
    images = np.empty((n, len(FILTERS), GRID, GRID), dtype=np.float32)
    rows: list[dict[str, Any]] = []
    for i in tqdm(range(n), desc="simulating", unit="img", disable=not progress):
        params = draw_params(rng, CLASSES[labels[i]], config)
        images[i] = render(params, rng, config)
        rows.append(params.row())
    return SimulatedSet(images=images, labels=labels.astype(np.int64), rows=rows)


def multiband_cutouts(
    rng: np.random.Generator, n: int, config: SimConfig | None = None
) -> tuple[np.ndarray, tuple[str, ...], tuple[float, ...], list[dict[str, Any]]]:
    """Stamps for ``stampflow synth``: (n, 4, 64, 64) float32 MJy/sr, the filter names, the
    pixel scale of each stamp (all on the common 0.063"/px grid) and truth rows (plain
    JSON values). Without ``config``, drawn from every simulation family (optics PSFs,
    crowded fields, detector defects, all three morphology generators); with one, from this
    module's analytic generator alone."""
    seed = int(rng.integers(0, 2**63 - 1))
    if config is None:
        from stampflow.training.morphology.families import ALL_FAMILIES, simulate_mix

        sim = simulate_mix(n, seed, ALL_FAMILIES)
    else:
        sim = simulate(n, seed, config)
    rows = [
        {k: v.item() if isinstance(v, np.generic) else v for k, v in r.items()} for r in sim.rows
    ]
    return sim.images, FILTERS, (GRID_SCALE,) * len(FILTERS), rows


def multiband_record(
    stamps: np.ndarray,
    filters: tuple[str, ...] = FILTERS,
    pixel_scale: tuple[float, ...] = (GRID_SCALE,) * len(FILTERS),
) -> dict[str, Any]:
    """The ``cutoutMultiband`` value of an input packet for one (4, H, W) stamp stack."""
    return {
        "filters": list(filters),
        "pixelScale": list(pixel_scale),
        "stampData": [encode_stamp(np.asarray(plane, dtype=np.float32)) for plane in stamps],
    }


def class_counts(labels: np.ndarray) -> Mapping[str, int]:
    return {name: int(np.sum(labels == k)) for k, name in enumerate(CLASSES)}
