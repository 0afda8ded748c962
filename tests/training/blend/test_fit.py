"""Fitting the blend model's embedding."""

from __future__ import annotations

import numpy as np

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
