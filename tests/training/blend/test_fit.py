"""Fitting the blend model's embedding."""

from __future__ import annotations

import numpy as np

from stampflow.classifiers.blend.preprocess import N_MOMENTS
from stampflow.training.blend.fit import fit_embedding


def test_pca_embedding_keeps_the_leading_variance_and_none_is_identity():
    rng = np.random.default_rng(1)
    basis = rng.normal(size=(3, 50))
    data = rng.normal(size=(400, 3)) @ basis + 0.01 * rng.normal(size=(400, 50))
    pca = fit_embedding(data, 3)
    projected = pca.transform(data)
    assert projected.shape == (400, 3)
    reconstructed = projected @ pca.components + pca.mean
    assert np.abs(reconstructed - data).max() < 0.1
    whitened = fit_embedding(data, 3, whiten=True).transform(data)
    np.testing.assert_allclose(whitened.std(axis=0), 1.0, rtol=0.02)
    identity = fit_embedding(data, 0)
    np.testing.assert_allclose(identity.transform(data), data.astype(np.float32))


def test_moments_follow_the_pca_standardised_on_the_training_set():
    rng = np.random.default_rng(2)
    yy, xx = np.mgrid[:21, :21] - 10
    widths = rng.uniform(0.8, 2.0, 300)  # ZTF seeing: FWHM 1.9-4.7 px
    crops = np.exp(-(xx**2 + yy**2)[None] / (2 * widths[:, None, None] ** 2))
    data = (crops + rng.normal(0, 0.01, crops.shape)).reshape(300, -1)
    embedding = fit_embedding(data, 4, whiten=True, moments=True)
    out = embedding.transform(data)
    assert out.shape == (300, 4 + N_MOMENTS)
    np.testing.assert_allclose(out[:, :4], fit_embedding(data, 4, whiten=True).transform(data))
    np.testing.assert_allclose(np.median(out[:, 4:], axis=0), 0.0, atol=1e-5)
    assert np.abs(out[:, 4:]).max() <= 6.0  # clipped: no outlier dominates the distances
    # The size moment orders the stars by their width.
    ranks = np.argsort(np.argsort(out[:, 4])), np.argsort(np.argsort(widths))
    assert np.corrcoef(*ranks)[0, 1] > 0.95
