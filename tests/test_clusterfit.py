"""ClusterFitTransformer: fresh network, feature sources, and the linear-probe pipeline."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from torch import nn

from deepclust import ClusterFitTransformer, SelfLabelClusterer
from deepclust._testing import fast_instance
from deepclust.cluster import kmeans, merged_kmeans
from deepclust.datasets import load_digits_images
from deepclust.networks import SmallConvNet


def _shares_storage(a: nn.Module, b: nn.Module) -> bool:
    pointers = {p.data_ptr() for p in a.parameters()}
    return any(p.data_ptr() in pointers for p in b.parameters())


def _pixel_features(batch: torch.Tensor) -> np.ndarray:
    return batch.flatten(1).numpy()


def test_fresh_network_shares_no_weights_with_the_pretext_network(digits_small):
    X, _ = digits_small
    est = fast_instance(ClusterFitTransformer).fit(X)
    pre, fresh = est.pretext_network_.backbone, est.network_.backbone
    assert not _shares_storage(pre, fresh)
    # Trained separately from separate initialisations: no layer holds the same values.
    for p, q in zip(pre.parameters(), fresh.parameters(), strict=True):
        if p.ndim > 1:
            assert not torch.allclose(p, q)


def test_fresh_network_is_reinitialised_from_a_given_module(digits_small):
    X, _ = digits_small
    pretrained = SmallConvNet(1, width=4)
    before = [p.detach().clone() for p in pretrained.parameters()]
    est = fast_instance(ClusterFitTransformer, pretrained=pretrained, backbone=pretrained)
    est.fit(X)
    assert not _shares_storage(pretrained, est.network_)
    for old, p, q in zip(
        before, pretrained.parameters(), est.network_.backbone.parameters(), strict=True
    ):
        torch.testing.assert_close(old, p)  # N_pre is never trained or modified
        if p.ndim > 1:
            assert not torch.allclose(p, q)  # the fresh network starts from new weights


@pytest.mark.parametrize("kind", ["none", "module", "callable", "estimator"])
def test_every_kind_of_feature_source(kind, digits_small):
    X, _ = digits_small
    sources = {
        "none": lambda: None,
        "module": lambda: nn.Flatten(),
        "callable": lambda: _pixel_features,
        "estimator": lambda: fast_instance(SelfLabelClusterer, max_epochs=2).fit(X),
    }
    est = fast_instance(ClusterFitTransformer, pretrained=sources[kind]()).fit(X)
    assert est.pseudo_labels_.shape == (60,) and len(np.unique(est.pseudo_labels_)) == 3
    np.testing.assert_array_equal(est.labels_, est.predict(X))
    assert est.transform(X).shape == (60, est.network_.n_features)
    pre = est.pretrained_transform(X)
    assert pre.dtype == np.float32 and len(pre) == 60
    if kind in ("module", "callable"):
        # The pseudo-labels are k-means of exactly these features (L2-normalised).
        pixels = torch.from_numpy(X.reshape(60, -1).astype(np.float32) / 255)
        np.testing.assert_allclose(pre, pixels.numpy(), atol=1e-6)
        expected = kmeans(
            nn.functional.normalize(pixels, dim=1), 3, random_state=0, device="cpu"
        ).labels
        np.testing.assert_array_equal(est.pseudo_labels_, np.asarray(expected))
    if kind == "estimator":
        np.testing.assert_allclose(pre, est.pretrained.transform(X), atol=1e-5)


@pytest.mark.slow  # a quality fit on all 1,797 digits
def test_pipeline_with_logistic_regression_on_digits():
    X, y = load_digits_images()
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.3, random_state=0)
    pipeline = make_pipeline(
        fast_instance(
            ClusterFitTransformer, n_clusters=20, pretext_epochs=5, max_epochs=5, batch_size=64
        ),
        LogisticRegression(max_iter=2000),
    )
    pipeline.fit(X_train, y_train)
    accuracy = pipeline.score(X_test, y_test)
    assert accuracy > 0.7, accuracy  # chance is 0.1


def test_n_subclusters_merges_kmeans_subclusters_into_the_pseudo_labels(digits_small):
    X, _ = digits_small
    est = fast_instance(ClusterFitTransformer, pretrained=_pixel_features, n_subclusters=12)
    est.fit(X)
    pixels = torch.from_numpy(X.reshape(60, -1).astype(np.float32) / 255)
    expected = merged_kmeans(
        nn.functional.normalize(pixels, dim=1), 3, n_subclusters=12, random_state=0, device="cpu"
    ).labels
    np.testing.assert_array_equal(est.pseudo_labels_, np.asarray(expected))


@pytest.mark.parametrize("n_subclusters", [2, 61])
def test_n_subclusters_outside_its_range_fails_before_training(n_subclusters, digits_small):
    X, _ = digits_small
    est = fast_instance(ClusterFitTransformer, n_subclusters=n_subclusters)
    with pytest.raises(ValueError, match="n_subclusters"):
        est.fit(X)
    assert not hasattr(est, "network_")


def test_labels_are_the_trained_networks_clusters_and_the_pseudo_labels_are_kept(digits_small):
    X, _ = digits_small
    est = fast_instance(ClusterFitTransformer, pretrained=_pixel_features, max_epochs=20).fit(X)
    np.testing.assert_array_equal(est.labels_, est.predict(X))
    assert not np.array_equal(est.labels_, est.pseudo_labels_)
    assert set(est.stage_labels_) == {"kmeans", "clusterfit"}
    np.testing.assert_array_equal(est.stage_labels_["kmeans"], est.pseudo_labels_)
    untrained = fast_instance(ClusterFitTransformer, pretrained=_pixel_features, max_epochs=0)
    untrained.fit(X)
    np.testing.assert_array_equal(untrained.labels_, untrained.pseudo_labels_)
