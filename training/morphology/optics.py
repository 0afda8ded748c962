"""NIRCam PSFs from JWST's optics: Fourier optics on the telescope's pupil, per band.

The pupil is JWST's primary: 18 flat-topped hexagonal segments (1.32 m flat to flat, 7 mm
gaps) around a missing centre, the secondary mirror's round obscuration (0.74 m) and its
three struts (one vertical, two parallel to segment edges). The PSF is the squared modulus of
the pupil's Fourier transform, computed with a matrix Fourier transform (Soummer et al.
2007: only the pixels we need, at any sampling) at a few wavelengths across each band and
summed: hexagon edges give the six big diffraction spikes, the vertical strut the two
horizontal ones, the obscured aperture its rings. Wavelength sets the scale: the FWHM comes
out close to the measured NIRCam values (FACTS.md: 0.066/0.092/0.116/0.145").

Every PSF is sampled at twice the rendering grid (0.0315"/px) and binned 2x2 onto it, which
integrates over the pixel; it covers 8" (256 x 256 fine pixels) so field stars outside the
stamp throw their spikes in, and is normalised to a sum of 1.

Families (``PSF_FAMILIES``): ``gaussian`` (a Gaussian core with the measured FWHM, the old
simulator's), ``airy`` (a round obscured aperture: rings, no spikes), ``jwst`` (the
segmented pupil, diffraction limited) and ``jwst_wfe`` (the same with a random low-order
wavefront error of 40-120 nm rms and pointing jitter). Each PSF is drawn from a small bank
computed once per process (``psf_bank``), at several telescope roll angles; jitter is
applied per image in Fourier space.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy import ndimage

WAVELENGTH_UM = (1.99, 2.77, 3.56, 4.42)
BAND_EDGES_UM = ((1.755, 2.227), (2.423, 3.132), (3.135, 3.981), (3.881, 4.982))
PSF_FWHM_ARCSEC = (0.066, 0.092, 0.116, 0.145)  # measured NIRCam values (FACTS.md)
FINE_SCALE = 0.063 / 2  # arcsec/px of the rendering grid
PSF_SIZE = 256  # fine pixels on a side of every PSF (8")
OVERSAMPLE = 2
RAD_PER_ARCSEC = math.pi / 180 / 3600

SEGMENT_FLAT_M = 1.32
SEGMENT_GAP_M = 0.007
SECONDARY_DIAMETER_M = 0.74
STRUT_WIDTH_M = 0.10
PUPIL_EXTENT_M = 6.8  # the pupil array's side (the primary is ~6.6 m vertex to vertex)
AIRY_DIAMETER_M = 6.5
PSF_FAMILIES = ("gaussian", "airy", "jwst", "jwst_wfe")


@dataclass(frozen=True)
class OpticsConfig:
    """How finely the optics are sampled, and the bank's variety."""

    pupil_samples: int = 192  # across PUPIL_EXTENT_M: aliases beyond +-5" at 1.75 um
    wavelengths_per_band: int = 5
    rolls: int = 6  # telescope roll angles in the bank (the spikes' orientation)
    wfe_draws: int = 3  # wavefront-error realisations per roll in the jwst_wfe bank
    wfe_rms_nm: tuple[float, float] = (40.0, 120.0)
    jitter_mas: tuple[float, float] = (2.0, 12.0)  # 1-sigma pointing jitter per axis

    def __post_init__(self) -> None:
        if self.pupil_samples < 32 or self.wavelengths_per_band < 1 or self.rolls < 1:
            raise ValueError(f"optics sampling too coarse: {self}")


def jwst_pupil(n: int, roll_deg: float = 0.0) -> np.ndarray:
    """JWST's entrance pupil as an (n, n) transmission array over PUPIL_EXTENT_M."""
    axis = (np.arange(n) - (n - 1) / 2) * (PUPIL_EXTENT_M / n)
    x, y = np.meshgrid(axis, axis)
    roll = math.radians(roll_deg)
    x, y = x * math.cos(roll) + y * math.sin(roll), -x * math.sin(roll) + y * math.cos(roll)
    pitch = SEGMENT_FLAT_M + SEGMENT_GAP_M
    # Flat-topped hexagons: neighbours across a flat sit at 30 + 60k degrees, pitch away.
    centres = []
    for ring_distance, start in ((pitch, 30.0), (2 * pitch, 30.0), (math.sqrt(3) * pitch, 0.0)):
        for k in range(6):
            a = math.radians(start + 60 * k)
            centres.append((ring_distance * math.cos(a), ring_distance * math.sin(a)))
    half_flat = SEGMENT_FLAT_M / 2
    pupil = np.zeros((n, n), dtype=np.float64)
    for cx, cy in centres:
        dx, dy = np.abs(x - cx), np.abs(y - cy)
        inside = (dy <= half_flat) & (dx * math.sqrt(3) + dy <= 2 * half_flat)
        pupil[inside] = 1.0
    pupil[np.hypot(x, y) < SECONDARY_DIAMETER_M / 2] = 0.0
    # One vertical strut up; the two lower ones run parallel to segment edges (240, 300 deg),
    # so their spikes fall on the hexagons' and only the vertical one adds a (horizontal) pair.
    for angle in (90.0, 240.0, 300.0):
        a = math.radians(angle)
        along = x * math.cos(a) + y * math.sin(a)
        across = -x * math.sin(a) + y * math.cos(a)
        pupil[(along > 0) & (np.abs(across) < STRUT_WIDTH_M / 2)] = 0.0
    return pupil


def round_pupil(n: int) -> np.ndarray:
    """A round aperture with JWST's diameter and the secondary's obscuration (airy family)."""
    axis = (np.arange(n) - (n - 1) / 2) * (PUPIL_EXTENT_M / n)
    r = np.hypot(*np.meshgrid(axis, axis))
    return ((r <= AIRY_DIAMETER_M / 2) & (r >= SECONDARY_DIAMETER_M / 2)).astype(np.float64)


def _zernike_phase(n: int, rng: np.random.Generator, rms_nm: float) -> np.ndarray:
    """Random low-order wavefront (defocus, astigmatism, coma, trefoil, spherical) in nm,
    scaled to ``rms_nm`` over the pupil's disk; segment piston adds the high orders."""
    axis = (np.arange(n) - (n - 1) / 2) * (PUPIL_EXTENT_M / n) / (PUPIL_EXTENT_M / 2)
    x, y = np.meshgrid(axis, axis)
    r, t = np.hypot(x, y), np.arctan2(y, x)
    modes = [
        2 * r**2 - 1,
        r**2 * np.cos(2 * t),
        r**2 * np.sin(2 * t),
        (3 * r**3 - 2 * r) * np.cos(t),
        (3 * r**3 - 2 * r) * np.sin(t),
        r**3 * np.cos(3 * t),
        r**3 * np.sin(3 * t),
        6 * r**4 - 6 * r**2 + 1,
    ]
    wavefront = sum(rng.normal() * m for m in modes)
    # Segment-level piston and tip/tilt: what the wavefront sensing keeps small but not zero.
    pitch = (SEGMENT_FLAT_M + SEGMENT_GAP_M) / (PUPIL_EXTENT_M / 2)
    cell = np.floor(x / pitch * 1.2) * 31 + np.floor(y / pitch * 1.2)
    pistons = rng.normal(size=int(cell.max() - cell.min() + 1))
    wavefront = wavefront + 0.5 * pistons[(cell - cell.min()).astype(int)]
    inside = r <= 1
    wavefront = wavefront - wavefront[inside].mean()
    return wavefront * rms_nm / max(float(wavefront[inside].std()), 1e-9)


def _mft_intensity(field: np.ndarray, wavelength_um: float, n_out: int, step_arcsec: float):
    """|FT|^2 of a pupil field on an (n_out, n_out) grid of ``step_arcsec`` pixels."""
    n = field.shape[0]
    x = (np.arange(n) - (n - 1) / 2) * (PUPIL_EXTENT_M / n)
    theta = (np.arange(n_out) - n_out / 2) * step_arcsec * RAD_PER_ARCSEC
    a = np.exp(-2j * np.pi * np.outer(theta, x) / (wavelength_um * 1e-6)).astype(np.complex64)
    e = a @ field.astype(np.complex64) @ a.T
    return (e.real**2 + e.imag**2).astype(np.float64)


def optical_psf(
    pupil: np.ndarray, band: int, config: OpticsConfig, wfe_nm: np.ndarray | None = None
) -> np.ndarray:
    """Band-integrated PSF (PSF_SIZE, PSF_SIZE) on the fine grid, sum 1, centred on pixel
    (PSF_SIZE // 2, PSF_SIZE // 2)."""
    low, high = BAND_EDGES_UM[band]
    waves = np.linspace(low, high, config.wavelengths_per_band + 2)[1:-1]
    n_out = PSF_SIZE * OVERSAMPLE
    total = np.zeros((n_out, n_out))
    for wave in waves:
        field = pupil.astype(np.complex128)
        if wfe_nm is not None:
            field = field * np.exp(2j * np.pi * wfe_nm / (wave * 1e3))
        intensity = _mft_intensity(field, wave, n_out, FINE_SCALE / OVERSAMPLE)
        total += intensity / intensity.sum()  # flat photon spectrum across the band
    # The MFT grid's centre is pixel n_out/2; binning 2x2 puts the source at the corner of
    # fine pixels: shift by half an oversampled pixel first so the star sits mid-pixel.
    total = ndimage.shift(total, (0.5, 0.5), order=1, mode="constant")
    fine = total.reshape(PSF_SIZE, OVERSAMPLE, PSF_SIZE, OVERSAMPLE).sum(axis=(1, 3))
    return fine / fine.sum()


def gaussian_psf(band: int) -> np.ndarray:
    sigma = PSF_FWHM_ARCSEC[band] / FINE_SCALE / (2 * math.sqrt(2 * math.log(2)))
    axis = np.arange(PSF_SIZE) - PSF_SIZE // 2
    g = np.exp(-0.5 * (axis / sigma) ** 2)
    psf = np.outer(g, g)
    return psf / psf.sum()


def _rotate(psf: np.ndarray, angle_deg: float) -> np.ndarray:
    out = ndimage.rotate(psf, angle_deg, reshape=False, order=1, mode="constant")
    out = np.clip(out, 0, None)
    return out / out.sum()


@dataclass(frozen=True)
class PsfBank:
    """Per family, a list of (4, PSF_SIZE, PSF_SIZE) PSF stacks and their Fourier
    transforms (rfft2, origin at the centre pixel) ready for convolution."""

    psfs: dict[str, tuple[np.ndarray, ...]]
    otfs: dict[str, tuple[np.ndarray, ...]]

    def draw(self, family: str, rng: np.random.Generator) -> tuple[int, np.ndarray]:
        members = self.otfs[family]
        k = int(rng.integers(0, len(members)))
        return k, members[k]


def _otf(stack: np.ndarray) -> np.ndarray:
    return np.fft.rfft2(np.fft.ifftshift(stack, axes=(-2, -1))).astype(np.complex64)


def psf_bank(config: OpticsConfig | None = None) -> PsfBank:
    """Every family's PSFs, computed once per process (seconds) from a fixed seed."""
    return _bank(config or OpticsConfig())


@lru_cache(maxsize=4)
def _bank(config: OpticsConfig) -> PsfBank:
    rng = np.random.default_rng(20260)
    bands = range(len(WAVELENGTH_UM))
    n = config.pupil_samples
    psfs: dict[str, list[np.ndarray]] = {"gaussian": [np.stack([gaussian_psf(b) for b in bands])]}
    psfs["airy"] = [np.stack([optical_psf(round_pupil(n), b, config) for b in bands])]
    perfect = np.stack([optical_psf(jwst_pupil(n), b, config) for b in bands])
    rolls = np.linspace(0.0, 60.0, config.rolls, endpoint=False)  # hexagonal: 60 deg period
    psfs["jwst"] = [np.stack([_rotate(p, r) for p in perfect]) for r in rolls]
    psfs["jwst_wfe"] = []
    for _ in range(config.wfe_draws):
        wfe = _zernike_phase(n, rng, float(rng.uniform(*config.wfe_rms_nm)))
        aberrated = np.stack([optical_psf(jwst_pupil(n), b, config, wfe) for b in bands])
        # Not the same roll angles as the jwst family: the held-out one sees new orientations.
        for r in rolls + 30.0 / config.rolls:
            psfs["jwst_wfe"].append(np.stack([_rotate(p, r) for p in aberrated]))
    frozen = {k: tuple(v) for k, v in psfs.items()}
    return PsfBank(frozen, {k: tuple(_otf(s) for s in v) for k, v in frozen.items()})


def jitter_otf(sigma_arcsec: float) -> np.ndarray:
    """Fourier transform of a round Gaussian pointing jitter on the (PSF_SIZE,) fine grid."""
    sigma_px = sigma_arcsec / FINE_SCALE
    ky = np.fft.fftfreq(PSF_SIZE)[:, None]
    kx = np.fft.rfftfreq(PSF_SIZE)[None, :]
    return np.exp(-2 * (np.pi * sigma_px) ** 2 * (kx**2 + ky**2)).astype(np.float32)


def fwhm_arcsec(psf: np.ndarray, scale: float = FINE_SCALE, zoom: int = 8) -> float:
    """FWHM of a PSF: the diameter of the disk with the area above half the peak, measured
    on a cubic-spline upsampling of the central 33 x 33 pixels (the core spans 2-5 px)."""
    cy, cx = np.unravel_index(np.argmax(psf), psf.shape)
    core = psf[cy - 16 : cy + 17, cx - 16 : cx + 17]
    fine = ndimage.zoom(core, zoom, order=3)
    area = np.count_nonzero(fine >= fine.max() / 2) * (scale / zoom) ** 2
    return float(2 * math.sqrt(area / math.pi))
