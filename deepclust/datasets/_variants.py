"""Variants of grey image sets with a known nuisance: recoloured and rotated copies."""

from __future__ import annotations

import math

import numpy as np
import torch
from sklearn.utils import check_random_state

from deepclust.augment._geometric import rotation_matrices, warp_affine

__all__ = [
    "FASHION_MNIST_SUPERCLASSES",
    "fashion_mnist_superclasses",
    "recolour_images",
    "rotate_images",
]

#: Fashion-MNIST's ten classes grouped into five superclasses: superclass name to the
#: class ids (0 T-shirt/top, 1 trouser, 2 pullover, 3 dress, 4 coat, 5 sandal, 6 shirt,
#: 7 sneaker, 8 bag, 9 ankle boot) it holds.
FASHION_MNIST_SUPERCLASSES: dict[str, tuple[int, ...]] = {
    "tops": (0, 2, 4, 6),
    "bottoms": (1,),
    "dresses": (3,),
    "footwear": (5, 7, 9),
    "bags": (8,),
}


def _grey_unit(X) -> np.ndarray:
    """``(N, H, W)`` float32 intensities in [0, 1] from grey uint8 or float images."""
    X = np.asarray(X)
    if X.ndim == 4 and X.shape[-1] == 1:
        X = X[..., 0]
    if X.ndim != 3:
        raise ValueError(f"Expected grey images of shape (N, H, W) or (N, H, W, 1); got {X.shape}.")
    scale = 255.0 if X.dtype == np.uint8 else 1.0
    return X.astype(np.float32) / scale


def fashion_mnist_superclasses(y) -> np.ndarray:
    """Group Fashion-MNIST's class labels into its five superclasses.

    The superclasses (``FASHION_MNIST_SUPERCLASSES``, in this order) are tops (T-shirt,
    pullover, coat, shirt), bottoms (trouser), dresses (dress), footwear (sandal,
    sneaker, ankle boot) and bags (bag): a data set with a known number of clusters (5)
    whose clusters are unequal in size and in how alike their members look.

    Parameters
    ----------
    y : array-like of shape (n_samples,)
        Fashion-MNIST class ids in ``0..9``.

    Returns
    -------
    ndarray of shape (n_samples,), dtype int64
        The superclass of each sample, in ``0..4``.
    """
    y = np.asarray(y)
    if y.ndim != 1 or (y.size and (y.min() < 0 or y.max() > 9)):
        raise ValueError("Expected Fashion-MNIST class ids in 0..9, one per sample.")
    table = np.empty(10, dtype=np.int64)
    for superclass, members in enumerate(FASHION_MNIST_SUPERCLASSES.values()):
        table[list(members)] = superclass
    return table[y.astype(np.int64)]


def recolour_images(X, random_state=None) -> np.ndarray:
    """Colour copies of grey images: a random object colour on a random colour gradient.

    Each image's intensity ``a`` (the object, bright on dark) blends a foreground colour
    into a background that runs linearly between two random colours along a random
    direction: ``background * (1 - a) + foreground * a``. The foreground is drawn at
    least 0.35 away (RGB distance) from the background's mean, so the object stays
    visible. Colour and background are then nuisances: they carry nothing of the class.

    Parameters
    ----------
    X : array-like of shape (n_samples, height, width) or (..., 1)
        Grey images, uint8 or floats in [0, 1], object bright on a dark background.
    random_state : int, RandomState instance or None, default=None
        Seed of the colours and directions.

    Returns
    -------
    ndarray of shape (n_samples, height, width, 3), dtype uint8
        The colour images.
    """
    grey = _grey_unit(X)
    rng = check_random_state(random_state)
    n, height, width = grey.shape
    start, end = rng.uniform(0, 1, (n, 3)), rng.uniform(0, 1, (n, 3))
    foreground = rng.uniform(0, 1, (n, 3))
    mean_background = (start + end) / 2
    for _ in range(20):  # redraw the foregrounds too close to their background
        close = np.linalg.norm(foreground - mean_background, axis=1) < 0.35
        if not close.any():
            break
        foreground[close] = rng.uniform(0, 1, (int(close.sum()), 3))
    close = np.linalg.norm(foreground - mean_background, axis=1) < 0.35
    foreground[close] = np.round(1.0 - mean_background[close])
    angle = rng.uniform(0, 2 * math.pi, n)
    ys, xs = np.meshgrid(np.linspace(-1, 1, height), np.linspace(-1, 1, width), indexing="ij")
    ramp = (np.cos(angle)[:, None, None] * xs + np.sin(angle)[:, None, None] * ys) / 2**0.5
    ramp = ((ramp + 1) / 2).astype(np.float32)[..., None]  # (N, H, W, 1) in [0, 1]
    background = start[:, None, None] * (1 - ramp) + end[:, None, None] * ramp
    alpha = grey[..., None]
    out = background * (1 - alpha) + foreground[:, None, None] * alpha
    return np.clip(np.round(out * 255), 0, 255).astype(np.uint8)


def rotate_images(X, random_state=None) -> np.ndarray:
    """Copies of images each rotated by a uniformly random angle (0-360 degrees).

    Parameters
    ----------
    X : array-like of shape (n_samples, height, width) or (n_samples, height, width, C)
        Images, uint8 or floats in [0, 1], on a dark background (uncovered corners are
        filled with zeros).
    random_state : int, RandomState instance or None, default=None
        Seed of the angles.

    Returns
    -------
    ndarray
        The rotated images, with the shape and dtype of ``X``.
    """
    X = np.asarray(X)
    if X.ndim not in (3, 4):
        raise ValueError(f"Expected images (N, H, W) or (N, H, W, C); got shape {X.shape}.")
    rng = check_random_state(random_state)
    images = torch.from_numpy(X.astype(np.float32))
    images = images[:, None] if X.ndim == 3 else images.permute(0, 3, 1, 2)
    angles = torch.from_numpy(rng.uniform(0, 2 * math.pi, len(X)).astype(np.float32))
    height, width = images.shape[-2:]
    rotated = warp_affine(images, rotation_matrices(angles, height, width))
    rotated = rotated[:, 0] if X.ndim == 3 else rotated.permute(0, 2, 3, 1)
    out = rotated.numpy()
    if X.dtype == np.uint8:
        return np.clip(np.round(out), 0, 255).astype(np.uint8)
    return out.astype(X.dtype)
