"""DeepClusterEstimator: stability over epochs, the cluster-uniform sampler, Sobel input."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from deepclust import DeepClusterEstimator
from deepclust._testing import fast_instance
from deepclust.datasets import load_digits_images
from deepclust.methods import _stages
from deepclust.networks import SobelFilter


def test_consecutive_assignment_nmi_rises_on_digits():
    X, _ = load_digits_images()
    est = fast_instance(
        DeepClusterEstimator, n_clusters=10, max_epochs=8, batch_size=64, pca_dim=16
    ).fit(X)
    nmi = [r["nmi_previous"] for r in est.history_ if "nmi_previous" in r]
    assert len(nmi) == 7
    # The paper's stability curve: assignments settle as the features are learned.
    assert np.mean(nmi[-3:]) > nmi[0] + 0.05, nmi


def test_sampler_draws_every_non_empty_cluster_equally_and_never_an_empty_one():
    labels = np.array([0] * 50 + [2] * 5 + [4] * 25)  # clusters 1 and 3 are empty
    sample = _stages.balanced_sampler(lambda: labels, len(labels))
    drawn = sample(0, np.random.default_rng(0))
    assert len(drawn) == len(labels)
    counts = np.bincount(labels[drawn], minlength=5)
    assert counts[1] == counts[3] == 0
    assert counts[[0, 2, 4]].max() - counts[[0, 2, 4]].min() <= 1
    # Large clusters are drawn without replacement; the small one is repeated.
    assert len(np.unique(drawn[labels[drawn] == 0])) == counts[0]


def test_no_empty_cluster_reaches_the_sampler_during_fit(digits_small, monkeypatch):
    seen = []
    original = _stages.balanced_sampler

    def recording_sampler(labels_fn, n_samples):
        inner = original(labels_fn, n_samples)

        def sample(epoch, rng):
            drawn = inner(epoch, rng)
            current = np.asarray(labels_fn())
            seen.append((np.unique(current), np.unique(current[drawn])))
            return drawn

        return sample

    monkeypatch.setattr("deepclust.methods.deepcluster.balanced_sampler", recording_sampler)
    X, _ = digits_small
    # 20 clusters for 60 images: k-means re-seeds the clusters it empties.
    fast_instance(DeepClusterEstimator, n_clusters=20, max_epochs=3).fit(X)
    assert len(seen) == 3
    for present, drawn in seen:
        np.testing.assert_array_equal(present, drawn)  # every drawn cluster is non-empty


@pytest.mark.parametrize("shape", [(60, 8, 8), (60, 8, 8, 3)], ids=["gray", "rgb"])
def test_sobel_mode_runs_on_one_and_three_channels(shape, digits_small):
    X, _ = digits_small
    images = X if len(shape) == 3 else np.repeat(X[..., None], 3, axis=-1)
    est = fast_instance(DeepClusterEstimator, sobel=True, max_epochs=2).fit(images)
    assert isinstance(est.network_.input_filter, SobelFilter)
    assert est.labels_.shape == (60,)
    np.testing.assert_array_equal(est.predict(images), est.labels_)


def test_sobel_filter_responds_to_edges_only():
    image = torch.zeros(1, 3, 6, 6)
    image[..., 3:] = 1.0  # a vertical edge, the same in every colour channel
    out = SobelFilter()(image)
    assert out.shape == (1, 2, 6, 6)
    # Away from the zero-padded border: only the two columns beside the edge respond.
    horizontal, vertical = out[0, 0, 1:-1, 1:-1], out[0, 1, 1:-1, 1:-1]
    assert torch.all(horizontal[:, 1:3] != 0)
    assert torch.all(horizontal[:, [0, 3]] == 0) and torch.all(vertical == 0)
