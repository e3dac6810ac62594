"""Offline data set loaders (Fashion-MNIST, scikit-learn digits) and an IDX reader."""

from __future__ import annotations

from ._idx import read_idx
from ._loaders import FASHION_MNIST_ENV_VAR, load_digits_images, load_fashion_mnist

__all__ = ["read_idx", "load_fashion_mnist", "load_digits_images", "FASHION_MNIST_ENV_VAR"]
