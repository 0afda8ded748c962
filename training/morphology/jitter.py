"""Domain randomisation of the dust's light, for training images only.

Each generator lays the light over its geometry its own way: the volume generator's grains
glow by their temperature (``r**-0.4``), a scattering nebula is lit by the star's ``1/r**2``,
clumps come from a Fourier field, from discrete blobs or from particles, and the bands'
ratios follow each generator's emission law. The class is the geometry (an arm, a shell, two
lobes, a turbulent cloud), not those choices. ``DustJitter`` redraws them on a share of the
training targets, on the dust alone before the PSF, so the network cannot lean on one
generator's lighting:

- a radial reweighting ``(r / r0)**gamma`` (r0 = 0.5", r floored at 0.05"): light
  concentrated on the star or spread outwards;
- clumps or holes: a smooth log-normal field ``exp(sigma G - sigma**2 / 2)``, G a unit
  Gaussian random field smoothed at 0.05-0.3";
- colour: the bands scaled by ``exp(tau (lambda - 3.2 um) / 1.2 um)``, a hotter or cooler,
  more or less scattering dust.

The geometry itself varies between generators too: how tightly an arm winds, how thick and
how far apart shells lie, how round a lobe is, how smooth an edge. With ``geometry_p`` a
share of the targets' dust is also resampled, all bands alike, before the light is redrawn:

- a radial remap ``r -> r0 (r / r0)**a`` about the star (``a`` in 0.75-1.33): arms wound
  tighter or looser, shells thinner and closer or thicker and further apart;
- a projection: one random axis squeezed by ``q`` (0.65-1): a rounder or flatter nebula;
- a smooth random displacement field (up to 0.08" rms, smoothed at 0.15-0.5"): wavy arms,
  dented shells, ragged lobes.

None of these turns one class into another: an arm stays an arm, a shell a closed or broken
ring about the star, two lobes two lobes.

The renderer scales the dust to its drawn S/N after the PSF, so the brightness is redrawn
only relative to itself. Every drawn value goes into the image's row (``jitter_*``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import ndimage

from stampflow.training.morphology.sim import _X, _Y, FINE_SCALE, WAVELENGTH_UM

R0_ARCSEC = 0.5  # the radius both radial changes leave in place


@dataclass(frozen=True)
class DustJitter:
    """``p``: the share of targets with dust whose light is redrawn, ``geometry_p`` whose
    geometry is resampled (both 0: off, 2.3.0's training)."""

    p: float = 0.0
    geometry_p: float = 0.0
    max_radial_power: float = 1.33
    min_axis_ratio: float = 0.65
    max_displacement_arcsec: float = 0.08
    displacement_scale_arcsec: tuple[float, float] = (0.15, 0.5)
    max_radial_index: float = 0.8
    max_clump_sigma: float = 0.8
    clump_scale_arcsec: tuple[float, float] = (0.05, 0.3)
    colour_sigma: float = 0.4

    def __post_init__(self) -> None:
        if not (0.0 <= self.p <= 1.0 and 0.0 <= self.geometry_p <= 1.0):
            raise ValueError(f"p and geometry_p must be probabilities, got {self}")
        low, high = self.clump_scale_arcsec
        d_low, d_high = self.displacement_scale_arcsec
        ranges = (self.max_radial_index, self.max_clump_sigma, self.colour_sigma)
        if (
            min(*ranges, self.max_displacement_arcsec) < 0
            or not (0 < low <= high and 0 < d_low <= d_high)
            or self.max_radial_power < 1
            or not 0 < self.min_axis_ratio <= 1
        ):
            raise ValueError(f"jitter ranges must be non-negative and ordered: {self}")

    def apply(self, dust: np.ndarray, rng: np.random.Generator, row: dict[str, Any]) -> np.ndarray:
        """``dust`` (4, FINE, FINE) resampled with probability ``geometry_p``, then its light
        redrawn with probability ``p``; the draws go into ``row``."""
        row["jitter_geometry"] = 0.0
        if self.geometry_p > 0 and dust.any() and rng.uniform() < self.geometry_p:
            dust = self._resample(dust, rng, row)
        if self.p == 0.0 or not dust.any() or rng.uniform() >= self.p:
            row["jitter"] = 0.0
            return dust
        gamma = float(rng.uniform(-self.max_radial_index, self.max_radial_index))
        sigma = float(rng.uniform(0.0, self.max_clump_sigma))
        scale = float(rng.uniform(*self.clump_scale_arcsec))
        tau = float(rng.normal(0.0, self.colour_sigma))
        radial = np.maximum(np.hypot(_X, _Y), 0.05) / R0_ARCSEC
        field = ndimage.gaussian_filter(rng.standard_normal(_X.shape), scale / FINE_SCALE)
        field /= max(float(field.std()), 1e-12)
        weight = radial**gamma * np.exp(sigma * field - 0.5 * sigma**2)
        colour = np.exp(tau * (np.asarray(WAVELENGTH_UM) - 3.2) / 1.2)
        row.update(
            jitter=1.0,
            jitter_radial_index=gamma,
            jitter_clump_sigma=sigma,
            jitter_clump_scale_arcsec=scale,
            jitter_colour_tau=tau,
        )
        return dust * weight[None] * colour[:, None, None]

    def _resample(
        self, dust: np.ndarray, rng: np.random.Generator, row: dict[str, Any]
    ) -> np.ndarray:
        """The dust seen through one smooth, centred change of coordinates (``geometry_p``)."""
        power = float(np.exp(rng.uniform(-1, 1) * np.log(self.max_radial_power)))
        ratio = float(rng.uniform(self.min_axis_ratio, 1.0))
        angle = float(rng.uniform(0.0, np.pi))
        amplitude = float(rng.uniform(0.0, self.max_displacement_arcsec))
        scale = float(rng.uniform(*self.displacement_scale_arcsec))
        # Where each output pixel looks in the input: undo the squeeze along the unit vector
        # (-sin, cos), then the remap ...
        v = (1.0 / ratio - 1.0) * (-_X * np.sin(angle) + _Y * np.cos(angle))
        x, y = _X - v * np.sin(angle), _Y + v * np.cos(angle)
        r = np.maximum(np.hypot(x, y), 1e-6)
        stretch = R0_ARCSEC * (r / R0_ARCSEC) ** (1.0 / power) / r
        x, y = x * stretch, y * stretch
        # ... then wobble it by a smooth random field of the drawn rms.
        for axis in (x, y):
            field = ndimage.gaussian_filter(rng.standard_normal(_X.shape), scale / FINE_SCALE)
            axis += amplitude * field / max(float(field.std()), 1e-12)
        rows = y / FINE_SCALE + (_X.shape[0] - 1) / 2
        cols = x / FINE_SCALE + (_X.shape[1] - 1) / 2
        out = np.stack(
            [ndimage.map_coordinates(band, [rows, cols], order=1, cval=0.0) for band in dust]
        )
        row.update(
            jitter_geometry=1.0,
            jitter_radial_power=power,
            jitter_axis_ratio=ratio,
            jitter_axis_angle_deg=float(np.degrees(angle)),
            jitter_displacement_arcsec=amplitude,
            jitter_displacement_scale_arcsec=scale,
        )
        return np.maximum(out, 0.0)
