"""Loaders for small image data sets available offline."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ._idx import read_idx

__all__ = ["load_fashion_mnist", "load_digits_images", "FASHION_MNIST_ENV_VAR"]

#: Environment variable naming an extra folder searched for the Fashion-MNIST files.
FASHION_MNIST_ENV_VAR = "DEEPCLUST_FASHION_MNIST"

# Folder installed by the Debian/Ubuntu package ``dataset-fashion-mnist``.
_DEBIAN_FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")

_FASHION_MNIST_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def _candidate_dirs(path: str | os.PathLike[str] | None) -> list[Path]:
    if path is not None:
        return [Path(path)]
    dirs = []
    env_dir = os.environ.get(FASHION_MNIST_ENV_VAR)
    if env_dir:
        dirs.append(Path(env_dir))
    dirs.append(_DEBIAN_FASHION_MNIST_DIR)
    return dirs


def _find_file(directory: Path, stem: str) -> Path | None:
    for suffix in (".gz", ""):
        candidate = directory / f"{stem}{suffix}"
        if candidate.is_file():
            return candidate
    return None


def _find_fashion_mnist_dir(path: str | os.PathLike[str] | None, splits: list[str]) -> Path:
    stems = [stem for split in splits for stem in _FASHION_MNIST_FILES[split]]
    searched = _candidate_dirs(path)
    for directory in searched:
        if all(_find_file(directory, stem) is not None for stem in stems):
            return directory
    where = ", ".join(repr(str(d)) for d in searched)
    raise FileNotFoundError(
        f"Fashion-MNIST files {stems} (optionally '.gz') not found in {where}. "
        "Install them with `apt-get install dataset-fashion-mnist` (Debian/Ubuntu), "
        f"or pass path=<folder holding the IDX files>, or set {FASHION_MNIST_ENV_VAR}."
    )


def load_fashion_mnist(
    path: str | os.PathLike[str] | None = None,
    *,
    subset: str = "all",
) -> tuple[np.ndarray, np.ndarray]:
    """Load Fashion-MNIST (Xiao et al., 2017) from local IDX files.

    Nothing is downloaded. When ``path`` is None the folder named by the
    environment variable ``DEEPCLUST_FASHION_MNIST`` is searched first, then
    ``/usr/share/datasets/fashion-mnist`` (installed by the Debian package
    ``dataset-fashion-mnist``). Plain and gzip-compressed files are accepted.

    Parameters
    ----------
    path : str or path-like, optional
        Folder holding ``train-images-idx3-ubyte[.gz]``,
        ``train-labels-idx1-ubyte[.gz]``, ``t10k-images-idx3-ubyte[.gz]`` and
        ``t10k-labels-idx1-ubyte[.gz]``.
    subset : {'all', 'train', 'test'}, default='all'
        ``'train'``: 60,000 images; ``'test'``: 10,000 images; ``'all'``: the
        training images followed by the test images (70,000).

    Returns
    -------
    X : numpy.ndarray of shape (n_samples, 28, 28), dtype uint8
        Grey-level images.
    y : numpy.ndarray of shape (n_samples,), dtype int64
        Class labels in ``0..9``.

    Raises
    ------
    FileNotFoundError
        If the files cannot be found.
    ValueError
        If ``subset`` is invalid or a file is corrupt.
    """
    if subset not in ("all", "train", "test"):
        raise ValueError(f"subset must be 'all', 'train' or 'test', got {subset!r}.")
    splits = ["train", "test"] if subset == "all" else [subset]
    directory = _find_fashion_mnist_dir(path, splits)
    images, labels = [], []
    for split in splits:
        image_stem, label_stem = _FASHION_MNIST_FILES[split]
        X = read_idx(_find_file(directory, image_stem))
        y = read_idx(_find_file(directory, label_stem))
        if X.ndim != 3 or y.ndim != 1 or X.shape[0] != y.shape[0]:
            raise ValueError(
                f"Fashion-MNIST {split} files in {str(directory)!r} have inconsistent "
                f"shapes: images {X.shape}, labels {y.shape}."
            )
        images.append(X.astype(np.uint8, copy=False))
        labels.append(y.astype(np.int64))
    return np.concatenate(images), np.concatenate(labels)


def load_digits_images() -> tuple[np.ndarray, np.ndarray]:
    """Load scikit-learn's 8x8 handwritten digits as uint8 images.

    Returns
    -------
    X : numpy.ndarray of shape (1797, 8, 8), dtype uint8
        Images with grey levels rescaled from ``0..16`` to ``0..255``.
    y : numpy.ndarray of shape (1797,), dtype int64
        Digit labels in ``0..9``.
    """
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = np.rint(digits.images * (255.0 / 16.0)).clip(0, 255).astype(np.uint8)
    return images, digits.target.astype(np.int64)
