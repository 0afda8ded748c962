"""The optics PSFs: FWHM per band against the measured NIRCam values, spikes, normalisation."""

from __future__ import annotations

import numpy as np
import pytest

from stampflow.training.morphology import optics

# Measured NIRCam FWHM (FACTS.md); the computed PSFs include pixel integration, which adds
# a few per cent, and band integration.
TOLERANCE = 0.10


@pytest.fixture(scope="module")
def bank() -> optics.PsfBank:
    return optics.psf_bank()


@pytest.mark.parametrize("family", optics.PSF_FAMILIES)
def test_fwhm_per_band_matches_nircam(bank, family):
    stack = bank.psfs[family][0]
    for band, expected in enumerate(optics.PSF_FWHM_ARCSEC):
        assert optics.fwhm_arcsec(stack[band]) == pytest.approx(expected, rel=TOLERANCE), band


def test_every_psf_is_normalised_and_centred(bank):
    centre = optics.PSF_SIZE // 2
    for family, members in bank.psfs.items():
        for stack in members:
            assert stack.shape == (4, optics.PSF_SIZE, optics.PSF_SIZE)
            np.testing.assert_allclose(stack.sum(axis=(1, 2)), 1.0, rtol=1e-6)
            assert (stack >= 0).all()
            for band in stack:
                peak = np.unravel_index(np.argmax(band), band.shape)
                assert abs(peak[0] - centre) <= 1 and abs(peak[1] - centre) <= 1, family


def _spoke_contrast(psf: np.ndarray, angle_deg: float) -> float:
    """Mean along a spoke at 0.6-2" over the median of the same annulus."""
    y, x = np.indices(psf.shape) - optics.PSF_SIZE // 2
    r = np.hypot(x, y) * optics.FINE_SCALE
    theta = np.degrees(np.arctan2(y, x)) % 360
    annulus = (r > 0.6) & (r < 2.0)
    off = np.abs((theta - angle_deg + 180) % 360 - 180)
    return float(psf[annulus & (off < 2)].mean() / np.median(psf[annulus]))


def test_jwst_psf_has_six_plus_two_spikes_and_airy_none(bank):
    jwst = bank.psfs["jwst"][0][1]  # F277W, roll 0
    # Segment edges at 0/60/120 deg give spikes at 30/90/150 (and opposite); the vertical
    # strut the horizontal pair.
    between = _spoke_contrast(jwst, 45)
    assert between < 1.6
    for angle in (30, 90, 150, 210, 270, 330):
        assert _spoke_contrast(jwst, angle) > 2.5 * between, angle
    for angle in (0, 180):
        assert _spoke_contrast(jwst, angle) > 2.5 * between, angle
    airy = [_spoke_contrast(bank.psfs["airy"][0][1], a) for a in range(0, 180, 15)]
    assert max(airy) < 1.5 * min(airy)  # round: the same in every direction


def test_pupil_area_and_rings():
    n = 192
    area = optics.jwst_pupil(n).sum() * (optics.PUPIL_EXTENT_M / n) ** 2
    assert area == pytest.approx(25.4, rel=0.06)  # JWST's collecting area, m^2
    airy = optics.psf_bank().psfs["airy"][0][3]
    profile = airy[optics.PSF_SIZE // 2, optics.PSF_SIZE // 2 :]
    # A ring: the profile rises again after its first minimum.
    first_min = np.argmax(np.diff(profile) > 0)
    assert 2 <= first_min <= 8 and profile[first_min + 1 : first_min + 5].max() > profile[first_min]


def test_jitter_otf_blurs():
    otf = optics.jitter_otf(0.01)
    assert otf[0, 0] == pytest.approx(1.0) and otf.min() < 1.0
