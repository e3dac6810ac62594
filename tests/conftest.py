"""Shared fixtures: small image sets made by the tests themselves."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from sklearn.cluster import KMeans
from sklearn.datasets import load_digits

# Test batches are tiny: one thread is as fast and avoids threads spinning against each
# other when the machine is busy.
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def digits_small():
    """60 digit images (0..2), uint8 (60, 8, 8), and their labels."""
    digits = load_digits(n_class=3)
    X = (digits.images[:60] * (255.0 / 16.0)).round().astype(np.uint8)
    return X, digits.target[:60].astype(np.int64)


@pytest.fixture(scope="session")
def digits_kmeans_accuracy():
    """Mean cluster accuracy of k-means on the raw digits pixels over 5 seeds: the
    baseline the methods' short digits fits must beat."""
    from deepclust.datasets import load_digits_images
    from deepclust.metrics import cluster_accuracy

    X, y = load_digits_images()
    pixels = X.reshape(len(X), -1)
    return float(
        np.mean(
            [
                cluster_accuracy(y, KMeans(10, random_state=seed).fit(pixels).labels_)
                for seed in range(5)
            ]
        )
    )


@pytest.fixture(scope="session")
def image_folder(tmp_path_factory, digits_small):
    """The 60 digits as PNG files in nested sub-folders (RGB and grayscale mixed)."""
    X, _ = digits_small
    root = tmp_path_factory.mktemp("images")
    for i, image in enumerate(X):
        sub = root / f"part{i % 3}" / ("deep" if i % 2 else "")
        sub.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(sub / f"img_{i:03d}.png")
    return root


def pytest_collection_modifyitems(config, items):
    if not torch.cuda.is_available():
        skip = pytest.mark.skip(reason="needs a CUDA device")
        for item in items:
            if "gpu" in item.keywords:
                item.add_marker(skip)
