"""Read what the command line is asked to cluster: an image folder, an array file, a data set."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from PIL import Image

from deepclust.data import FileSource, read_image, scan_image_folder
from deepclust.data._files import IMAGE_EXTENSIONS, describe_left_out
from deepclust.data._sources import default_file_size
from deepclust.recipes import LARGEST_TRAINING_SIDE

__all__ = ["BUILTIN_DATASETS", "LoadedInput", "load_input", "auto_image_size"]

#: Data set names accepted as SOURCE (when no file or folder of that name exists).
BUILTIN_DATASETS = ("digits", "fashion-mnist", "fashion-mnist-train", "fashion-mnist-test")

#: Array keys tried, in order, for the images of a ``.npz`` file (else its only array).
NPZ_IMAGE_KEYS = ("X", "x", "images", "data")
#: Array keys tried, in order, for the true labels of a ``.npz`` file.
NPZ_LABEL_KEYS = ("y", "labels", "target", "targets")


@dataclass
class LoadedInput:
    """What the command clusters, ready to pass to ``fit``/``predict``.

    Attributes
    ----------
    data : torch.Tensor, numpy.ndarray or list of str
        Decoded uint8 images ``(N, C, H, W)`` (a tensor), an array, or image paths (for
        collections too large to keep decoded in memory).
    names : list of str
        The ``source`` column of ``labels.csv``: path relative to the folder, or row index.
    y : ndarray or None
        True labels when known.
    kind : {'folder', 'array', 'dataset'}
    description : str
    image_size : tuple of int or None
        ``image_size`` for the estimator (``None``: the data's own size).
    paths : list of str or None
        Full paths of the files (folders only), for thumbnails.
    extra : dict
        Folders only: ``'size'`` (the ``(H, W)`` files are resized to), ``'channels'``
        and ``'skipped'`` (counts of files left out, by reason).
    summary : str
        Folders only: one line on what was read and left out, e.g. ``'1,200 images; left
        out: 3 hidden, 2 AppleDouble, 1 unreadable'``; empty for arrays and data sets.
    class_names : list of str or None
        Names of the classes ``y`` indexes, when known (``--labels-from-folders``: the
        sub-folders), for the confusion matrix and the montage's legend.
    """

    data: object
    names: list[str]
    y: np.ndarray | None
    kind: str
    description: str
    image_size: tuple[int, int] | None = None
    paths: list[str] | None = None
    extra: dict = field(default_factory=dict)
    summary: str = ""
    class_names: list[str] | None = None

    def __len__(self) -> int:
        return len(self.names)

    @property
    def is_images(self) -> bool:
        """False for 2-D feature matrices."""
        if isinstance(self.data, list):
            return True
        return np.ndim(self.data) >= 3

    def thumbnails(self, indices: np.ndarray) -> list[Image.Image]:
        """The images at ``indices`` as PIL images.

        Files are shown at their own size, upright (EXIF orientation applied) and with
        16-bit, 32-bit and float pixels scaled to 8 bits as for training.

        Parameters
        ----------
        indices : numpy.ndarray of int
            Positions of the samples in this input; an unreadable file gives a grey tile.
        """
        if self.paths is not None:
            out = []
            for i in indices:
                try:
                    img, _ = read_image(self.paths[int(i)])
                    out.append(img.convert("RGB") if img.mode not in ("L", "RGB") else img)
                except Exception:  # noqa: BLE001 - an unreadable file shows as a grey tile
                    out.append(Image.new("L", (8, 8), 128))
            return out
        from deepclust.data import as_source

        batch = as_source(_index(self.data, indices)).load()  # (B, C, H, W) float in [0, 1]
        arrays = (batch.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
        images = []
        for array in arrays:
            if array.shape[2] == 1:
                images.append(Image.fromarray(array[:, :, 0], mode="L"))
            else:
                images.append(Image.fromarray(array[:, :, :3], mode="RGB"))
        return images


def _index(data, indices):
    indices = np.asarray(indices, dtype=np.int64)
    if isinstance(data, torch.Tensor):
        return data[torch.from_numpy(indices)]
    return np.asarray(data)[indices]


def auto_image_size(paths: list[str], device: torch.device) -> tuple[int, int]:
    """``(H, W)`` to decode a folder at when no ``--image-size`` is given: the files'
    median size, aspect kept, scaled down to the largest side the recipes train at on
    ``device`` (32 px on a CPU, 64 px on CUDA), so that the files are decoded once.

    Parameters
    ----------
    paths : list of str
        The image files of the folder, at least one; unreadable ones are skipped.
    device : torch.device
        The training device, which decides the cap.

    Returns
    -------
    tuple of int
    """
    return default_file_size(
        paths, LARGEST_TRAINING_SIDE["cuda" if device.type == "cuda" else "cpu"]
    )


class _ProgressFileSource(FileSource):
    """A :class:`FileSource` whose first decoding pass advances a progress bar."""

    progress = None

    def _decode_many(self, paths, channels=None):
        out = super()._decode_many(paths, channels)
        if self.progress is not None:
            self.progress.update(len(paths))
        return out


def _load_folder(
    folder: str,
    image_size: int | tuple[int, int] | None,
    n_channels: int | None,
    device: torch.device,
    on_bad_image: str,
    progress: Callable | None,
    cache_dir: str | None = None,
) -> LoadedInput:
    files, skipped = scan_image_folder(folder)
    if not files:
        left_out = describe_left_out(skipped)
        raise ValueError(
            f"The folder {folder!r} contains no image files (searched recursively for "
            f"{', '.join(IMAGE_EXTENSIONS)}{'; left out: ' + left_out if left_out else ''}"
            "). Point SOURCE at a folder of images."
        )
    if image_size is None:
        image_size = auto_image_size(files, device)
    height, width = (image_size, image_size) if np.ndim(image_size) == 0 else image_size
    source = _ProgressFileSource(
        files, (height, width), n_channels, root=folder, skipped=skipped, cache_dir=cache_dir
    )
    if progress is not None:
        source.progress = progress(total=len(files), desc="reading images", unit="img")
    try:
        source.scan(on_bad_image)
    finally:
        if source.progress is not None:
            source.progress.close()
            source.progress = None
    cached = getattr(source, "_cache", None)
    names = [name.replace(os.sep, "/") for name in source.relative_names()]
    if cached is not None:  # in memory, or memory-mapped from --cache-dir
        data, estimator_size = cached, None
    else:  # too large to keep decoded: the estimator reads the files batch by batch
        data, estimator_size = list(source.paths), (height, width)
    return LoadedInput(
        data=data,
        names=names,
        y=None,
        kind="folder",
        description=f"{len(names)} images from {folder} at {width}x{height} px",
        image_size=estimator_size,
        paths=list(source.paths),
        extra={
            "size": (height, width),
            "channels": int(source.shape[0]),
            "skipped": dict(source.skipped),
        },
        summary=source.summary(),
    )


def _load_array_file(path: str) -> tuple[np.ndarray, np.ndarray | None]:
    try:
        loaded = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise ValueError(f"Cannot read {path!r} as a NumPy file: {exc}") from exc
    if isinstance(loaded, np.ndarray):
        return loaded, None
    with loaded:
        keys = list(loaded.files)
        image_key = next((k for k in NPZ_IMAGE_KEYS if k in keys), None)
        label_key = next((k for k in NPZ_LABEL_KEYS if k in keys), None)
        if image_key is None:
            others = [k for k in keys if k != label_key]
            if len(others) != 1:
                raise ValueError(
                    f"{path!r} holds arrays {keys}; name the images one of "
                    f"{list(NPZ_IMAGE_KEYS)} (and the true labels, if any, 'y')."
                )
            image_key = others[0]
        X = loaded[image_key]
        y = loaded[label_key] if label_key is not None else None
    if y is not None and (y.ndim != 1 or len(y) != len(X)):
        raise ValueError(
            f"{path!r}: the labels {label_key!r} have shape {y.shape}; expected ({len(X)},)."
        )
    return X, y


def _load_dataset(name: str) -> tuple[np.ndarray, np.ndarray, str]:
    from deepclust.datasets import load_digits_images, load_fashion_mnist

    if name == "digits":
        X, y = load_digits_images()
        return X, y, "scikit-learn's 8x8 digits"
    subset = {"fashion-mnist": "all", "fashion-mnist-train": "train", "fashion-mnist-test": "test"}[
        name
    ]
    X, y = load_fashion_mnist(subset=subset)
    return X, y, f"Fashion-MNIST ({subset})"


def load_input(
    source: str,
    *,
    image_size: int | tuple[int, int] | None = None,
    n_channels: int | None = None,
    device: torch.device | None = None,
    on_bad_image: str = "raise",
    progress: Callable | None = None,
    cache_dir: str | None = None,
) -> LoadedInput:
    """Read SOURCE: a folder of images, a ``.npy``/``.npz`` file or a data set name.

    Parameters
    ----------
    source : str
        The command's SOURCE argument: a folder of images, a ``.npy`` or ``.npz`` file, or
        one of :data:`BUILTIN_DATASETS`.
    image_size : int or None
        Side length images are resized to (``None``: arrays keep their size, folders use
        :func:`auto_image_size`).
    n_channels : int or None
        Channels files are converted to (``None``: decided from the files).
    device : torch.device, optional
        Only decides the automatic image size of folders.
    on_bad_image : {'raise', 'skip'}
        What an unreadable file in a folder does: stop with an error, or leave the file out.
    progress : callable, optional
        A ``tqdm``-like factory for the progress bar of decoding files.
    cache_dir : str or None
        Folders only: where the decoded images are kept, memory-mapped, so that a later
        run on the same, unchanged files decodes none (see
        :class:`~deepclust.data.FileSource`).

    Returns
    -------
    LoadedInput
    """
    device = device or torch.device("cpu")
    if os.path.isdir(source):
        return _load_folder(
            source, image_size, n_channels, device, on_bad_image, progress, cache_dir
        )
    if os.path.isfile(source):
        if not source.lower().endswith((".npy", ".npz")):
            raise ValueError(
                f"SOURCE {source!r} is a file but not a .npy/.npz array file. Pass a folder "
                "of images, a .npy/.npz file, or one of " + ", ".join(BUILTIN_DATASETS) + "."
            )
        X, y = _load_array_file(source)
        description = f"{len(X)} samples from {source}"
        kind = "array"
    elif source in BUILTIN_DATASETS:
        X, y, what = _load_dataset(source)
        description = f"{len(X)} images of {what}"
        kind = "dataset"
    else:
        raise FileNotFoundError(
            f"SOURCE {source!r} is neither an existing folder or .npy/.npz file nor a built-in "
            f"data set ({', '.join(BUILTIN_DATASETS)})."
        )
    if X.ndim < 2 or len(X) == 0:
        raise ValueError(f"SOURCE {source!r} holds no samples (array of shape {X.shape}).")
    size = (image_size, image_size) if image_size is not None and X.ndim >= 3 else None
    return LoadedInput(
        data=X,
        names=[str(i) for i in range(len(X))],
        y=None if y is None else np.asarray(y),
        kind=kind,
        description=description,
        image_size=size,
    )
