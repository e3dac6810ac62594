"""The precision policy: autocast where the hardware computes bfloat16 natively, and the
same clustering quality as float32."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from deepclust import DeepClusterEstimator
from deepclust.datasets import load_digits_images
from deepclust.metrics import cluster_accuracy
from deepclust.training import Trainer, autocast_dtype, cpu_has_native_bfloat16, use_precision

CPU = torch.device("cpu")


def test_policy_per_device(monkeypatch):
    assert autocast_dtype(CPU, "float32") is None
    assert autocast_dtype(CPU, "mixed") is torch.bfloat16
    expected = torch.bfloat16 if cpu_has_native_bfloat16() else None
    assert autocast_dtype(CPU, "auto") is expected
    with use_precision("float32"):
        assert autocast_dtype(CPU) is None
        assert not Trainer(CPU, 8).use_amp
    with pytest.raises(ValueError, match="precision must be one of"):
        autocast_dtype(CPU, "half")


def test_bad_precision_is_refused_before_training(digits_small):
    X, _ = digits_small
    with pytest.raises(ValueError, match="precision"):
        DeepClusterEstimator(precision="fp8").fit(X)


def test_bfloat16_keeps_the_cluster_quality_on_digits():
    """Mean accuracy over three seeds within 0.08 of float32 (the seeds themselves spread
    by about 0.05 around their mean); 'mixed' uses bfloat16 on every CPU."""
    X, y = load_digits_images()
    means = {}
    for precision in ("float32", "mixed"):
        accuracies = [
            cluster_accuracy(
                y,
                DeepClusterEstimator(
                    n_clusters=10,
                    max_epochs=10,
                    pca_dim=32,
                    augmentation="strong",
                    batch_size=128,
                    device="cpu",
                    random_state=seed,
                    precision=precision,
                )
                .fit(X)
                .labels_,
            )
            for seed in range(3)
        ]
        means[precision] = float(np.mean(accuracies))
    assert abs(means["mixed"] - means["float32"]) <= 0.08, means
