"""Offline data set loaders (Fashion-MNIST, scikit-learn digits), an IDX reader,
``make_shapes`` (generated colour images whose classes are shapes and whose colours are
nuisances), and variants of grey sets with a known nuisance (``recolour_images``,
``rotate_images``) and Fashion-MNIST's classes grouped into five superclasses
(``fashion_mnist_superclasses``)."""

from __future__ import annotations

from ._idx import read_idx
from ._loaders import FASHION_MNIST_ENV_VAR, load_digits_images, load_fashion_mnist
from ._shapes import SHAPE_NAMES, make_shapes
from ._variants import (
    FASHION_MNIST_SUPERCLASSES,
    fashion_mnist_superclasses,
    recolour_images,
    rotate_images,
)

__all__ = [
    "read_idx",
    "load_fashion_mnist",
    "load_digits_images",
    "make_shapes",
    "SHAPE_NAMES",
    "FASHION_MNIST_ENV_VAR",
    "recolour_images",
    "rotate_images",
    "fashion_mnist_superclasses",
    "FASHION_MNIST_SUPERCLASSES",
]
