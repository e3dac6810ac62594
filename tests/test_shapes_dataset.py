"""Tests for deepclust.datasets.make_shapes: classes are shapes, colours are nuisances."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.cluster import KMeans
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from deepclust.datasets import SHAPE_NAMES, make_shapes
from deepclust.metrics import cluster_accuracy


def foreground_masks(X: np.ndarray, threshold: float = 60.0) -> np.ndarray:
    """Pixels farther (Euclidean RGB) than ``threshold`` from the median of the image's
    border pixels, which are background."""
    Xf = X.astype(np.float32)
    border = np.concatenate([Xf[:, 0], Xf[:, -1], Xf[:, :, 0], Xf[:, :, -1]], axis=1)
    background = np.median(border, axis=1)
    return np.linalg.norm(Xf - background[:, None, None, :], axis=-1) > threshold


def polar_features(mask: np.ndarray, n_radii: int = 10, n_angles: int = 32) -> np.ndarray:
    """Translation, scale and rotation invariant description of each mask: the mask is
    sampled on circles around its centroid (radii proportional to its spread), and the
    magnitudes of the low angular Fourier harmonics on each circle are kept."""
    n, size, _ = mask.shape
    rows, cols = np.mgrid[:size, :size]
    area = mask.sum(axis=(1, 2))
    cy = (mask * rows).sum(axis=(1, 2)) / area
    cx = (mask * cols).sum(axis=(1, 2)) / area
    squared = (rows - cy[:, None, None]) ** 2 + (cols - cx[:, None, None]) ** 2
    spread = np.sqrt((mask * squared).sum(axis=(1, 2)) / area)
    radii = spread[:, None, None] * np.linspace(0.2, 2.0, n_radii)[None, :, None]
    angles = np.linspace(0, 2 * np.pi, n_angles, endpoint=False)
    py = np.rint(cy[:, None, None] + radii * np.sin(angles)).astype(int)
    px = np.rint(cx[:, None, None] + radii * np.cos(angles)).astype(int)
    inside = (py >= 0) & (py < size) & (px >= 0) & (px < size)
    picked = mask[np.arange(n)[:, None, None], py.clip(0, size - 1), px.clip(0, size - 1)]
    samples = np.where(inside, picked, False).astype(np.float64)
    spectrum = np.abs(np.fft.rfft(samples, axis=2))[:, :, :6] / n_angles
    return spectrum.reshape(n, -1)


@pytest.fixture(scope="module")
def shapes_2000():
    return make_shapes(2000, random_state=0)


def test_shapes_dtypes_and_balance():
    X, y = make_shapes(1003, image_size=24, random_state=0)
    assert X.shape == (1003, 24, 24, 3)
    assert X.dtype == np.uint8
    assert y.shape == (1003,)
    assert y.dtype == np.int64
    assert len(SHAPE_NAMES) == 8
    # 1003 = 8 * 125 + 3: the first three classes get one image more.
    np.testing.assert_array_equal(np.bincount(y, minlength=8), [126] * 3 + [125] * 5)
    # Shuffled, not in class order.
    assert not np.array_equal(y, np.sort(y))


def test_defaults_and_empty():
    X, y = make_shapes(16, random_state=0)
    assert X.shape == (16, 32, 32, 3)
    np.testing.assert_array_equal(np.bincount(y), [2] * 8)
    X, y = make_shapes(0, random_state=0)
    assert X.shape == (0, 32, 32, 3) and y.shape == (0,)


def test_invalid_arguments():
    with pytest.raises(ValueError, match="n_samples"):
        make_shapes(-1)
    with pytest.raises(ValueError, match="image_size"):
        make_shapes(10, image_size=2)


def test_determined_by_random_state():
    X1, y1 = make_shapes(200, random_state=3)
    X2, y2 = make_shapes(200, random_state=3)
    np.testing.assert_array_equal(X1, X2)
    np.testing.assert_array_equal(y1, y2)
    X3, _ = make_shapes(200, random_state=np.random.RandomState(3))
    np.testing.assert_array_equal(X1, X3)
    X4, y4 = make_shapes(200, random_state=4)
    assert not np.array_equal(X1, X4)
    assert not np.array_equal(y1, y4)


def test_shape_inside_image_and_foreground_contrasts(shapes_2000):
    X, _ = shapes_2000
    mask = foreground_masks(X)
    border = np.concatenate([mask[:, 0], mask[:, -1], mask[:, :, 0], mask[:, :, -1]], axis=1)
    assert border.mean() < 0.01
    area = mask.mean(axis=(1, 2))
    # Every image shows its shape; none fills the image.
    assert area.min() > 0.02
    assert area.max() < 0.7


def test_kmeans_on_pixels_is_near_chance(shapes_2000):
    X, y = shapes_2000
    pixels = X.reshape(len(X), -1).astype(np.float32) / 255
    labels = KMeans(8, n_init=3, random_state=0).fit_predict(pixels)
    # Colour, not shape, dominates the pixels: chance is 1/8.
    assert cluster_accuracy(y, labels) < 0.35


def test_shapes_are_distinguishable(shapes_2000):
    X, y = shapes_2000
    features = polar_features(foreground_masks(X))
    probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    probe.fit(features[:1500], y[:1500])
    assert probe.score(features[1500:], y[1500:]) > 0.9
