"""Feature matrices over 2**28 values are kept in float16 on the host (DeepCluster's and
ClusterFit's k-means steps, frozen features) with the results of float32 storage."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.datasets import make_blobs
from sklearn.metrics import adjusted_rand_score

import deepclust.training._inference as inference
from deepclust import ClusterFitTransformer, DeepClusterEstimator
from deepclust.cluster import PCAWhitening
from deepclust.data import as_source
from deepclust.methods._stages import normalize_rows_

FAST = dict(device="cpu", random_state=0, batch_size=64)


def test_large_outputs_are_stored_in_the_large_dtype(monkeypatch):
    source = as_source(np.random.default_rng(0).random((50, 6), dtype=np.float32))
    layer = torch.nn.Linear(6, 4)
    full = inference.run_inference(layer, source, device=torch.device("cpu"), batch_size=16)
    kept = inference.run_inference(
        layer, source, device=torch.device("cpu"), batch_size=16, large_dtype=torch.float16
    )
    assert full.dtype == kept.dtype == torch.float32  # 200 values: not large
    monkeypatch.setattr(inference, "LARGE_OUTPUT_VALUES", 100)
    half = inference.run_inference(
        layer, source, device=torch.device("cpu"), batch_size=16, large_dtype=torch.float16
    )
    assert half.dtype == torch.float16
    torch.testing.assert_close(half, full.half())


def test_whitening_reads_half_input_like_its_float32_values():
    X = torch.from_numpy(np.random.default_rng(1).normal(size=(3000, 12))).half()
    from_half = PCAWhitening(5).fit_transform(X)
    from_float = PCAWhitening(5).fit_transform(X.float())
    assert from_half.dtype == torch.float32
    torch.testing.assert_close(from_half, from_float, atol=1e-5, rtol=1e-5)


def test_rows_are_normalised_in_place_in_their_dtype():
    X = torch.from_numpy(np.random.default_rng(2).normal(size=(70, 5))).half()
    expected = torch.nn.functional.normalize(X.float(), dim=1).half()
    out = normalize_rows_(X, chunk_rows=16)
    assert out is X and X.dtype == torch.float16
    torch.testing.assert_close(X, expected)


@pytest.mark.parametrize(
    "make",
    [
        lambda: DeepClusterEstimator(4, max_epochs=2, pca_dim=4, **FAST),
        lambda: ClusterFitTransformer(4, pretext_epochs=2, max_epochs=1, **FAST),
    ],
    ids=["deepcluster", "clusterfit"],
)
def test_half_feature_storage_gives_the_float32_clusters(monkeypatch, make):
    X, _ = make_blobs(400, n_features=8, centers=4, cluster_std=0.5, random_state=0)
    X = X.astype(np.float32)
    stored, original = [], inference._allocate

    def recording_allocate(*args, **kwargs):
        tensor = original(*args, **kwargs)
        stored.append(tensor.dtype)
        return tensor

    monkeypatch.setattr(inference, "_allocate", recording_allocate)
    full = make().fit(X).labels_
    assert torch.float16 not in stored
    monkeypatch.setattr(inference, "LARGE_OUTPUT_VALUES", 0)
    half = make().fit(X).labels_
    assert torch.float16 in stored
    assert adjusted_rand_score(full, half) >= 0.99
