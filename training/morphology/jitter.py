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

The renderer scales the dust to its drawn S/N after the PSF, so the brightness is redrawn
only relative to itself. Every drawn value goes into the image's row (``jitter_*``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import ndimage

from stampflow.training.morphology.sim import _X, _Y, FINE_SCALE, WAVELENGTH_UM


@dataclass(frozen=True)
class DustJitter:
    """``p``: the share of targets with dust that are redrawn (0: off, 2.3.0's training)."""

    p: float = 0.0
    max_radial_index: float = 0.8
    max_clump_sigma: float = 0.8
    clump_scale_arcsec: tuple[float, float] = (0.05, 0.3)
    colour_sigma: float = 0.4

    def __post_init__(self) -> None:
        if not 0.0 <= self.p <= 1.0:
            raise ValueError(f"p must be a probability, got {self.p}")
        low, high = self.clump_scale_arcsec
        if min(self.max_radial_index, self.max_clump_sigma, self.colour_sigma) < 0 or not (
            0 < low <= high
        ):
            raise ValueError(f"jitter ranges must be non-negative and ordered: {self}")

    def apply(self, dust: np.ndarray, rng: np.random.Generator, row: dict[str, Any]) -> np.ndarray:
        """``dust`` (4, FINE, FINE) redrawn with probability ``p``; the draws go into ``row``."""
        if self.p == 0.0 or not dust.any() or rng.uniform() >= self.p:
            row["jitter"] = 0.0
            return dust
        gamma = float(rng.uniform(-self.max_radial_index, self.max_radial_index))
        sigma = float(rng.uniform(0.0, self.max_clump_sigma))
        scale = float(rng.uniform(*self.clump_scale_arcsec))
        tau = float(rng.normal(0.0, self.colour_sigma))
        radial = np.maximum(np.hypot(_X, _Y), 0.05) / 0.5
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
