"""Small, fast estimator settings for tests, kept in one place.

Used by ``tests/test_common.py`` (scikit-learn's common checks) and the other tests, like
imbalanced-learn's ``instance_generator``: every estimator with parameters that fit a few
dozen samples in well under a second on a CPU.
"""

from __future__ import annotations

from sklearn.base import clone

from deepclust import (
    ClusterFitTransformer,
    DeepClusterEstimator,
    SCANClusterer,
    SelfLabelClusterer,
)

ESTIMATORS = (SelfLabelClusterer, DeepClusterEstimator, SCANClusterer, ClusterFitTransformer)

FAST_PARAMS: dict[type, dict] = {
    SelfLabelClusterer: dict(
        n_clusters=3, max_epochs=30, n_label_updates=10, batch_size=32, lr=0.05, device="cpu"
    ),
    DeepClusterEstimator: dict(
        n_clusters=3, max_epochs=4, batch_size=32, pca_dim=8, kmeans_iter=10, device="cpu"
    ),
    SCANClusterer: dict(
        n_clusters=3, pretext_epochs=3, max_epochs=15, selflabel_epochs=2, n_neighbors=5,
        n_heads=2, batch_size=32, lr=1e-3, device="cpu",
    ),
    ClusterFitTransformer: dict(
        n_clusters=3, pretext_epochs=3, max_epochs=5, batch_size=32, device="cpu"
    ),
}
"""Per estimator class: parameters for a fit on about 50 samples in well under a second."""


def fast_instance(cls, **overrides):
    """An instance of ``cls`` with :data:`FAST_PARAMS`, seeded, plus ``overrides``."""
    params = {**FAST_PARAMS[cls], "random_state": 0, **overrides}
    return cls(**params)


def fast_instances(**overrides) -> list:
    """One fast instance of every estimator."""
    return [fast_instance(cls, **overrides) for cls in ESTIMATORS]


def cloned(estimator):
    """A fresh clone (keeps tests from sharing fitted state)."""
    return clone(estimator)
