"""Data sources: images or 2-D feature matrices, served as batches of tensors.

Every estimator reads its input through :func:`as_source`, which turns what a user passes
(image arrays or tensors, image files, folders, or an ``(N, D)`` feature matrix) into a
:class:`DataSource`: something with a length, a per-sample ``shape`` and a
:meth:`DataSource.load` method that returns a float32 CPU tensor for any set of indices.
Images come out channels-first ``(B, C, H, W)`` with values in ``[0, 1]``; feature
matrices come out as ``(B, D)``.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps

from deepclust.data._decode import is_colour_mode, open_image, read_image
from deepclust.data._disk_cache import CacheWriter, cache_key, read_cache
from deepclust.data._files import (
    IMAGE_EXTENSIONS,
    describe_left_out,
    list_image_files,
    scan_image_folder,
    summarise_images,
)

__all__ = [
    "IMAGE_EXTENSIONS",
    "DEFAULT_FILE_IMAGE_SIZE",
    "default_file_size",
    "DataSource",
    "TensorSource",
    "FileSource",
    "as_source",
    "list_image_files",
    "open_image",
    "scan_image_folder",
]

DEFAULT_FILE_IMAGE_SIZE = 64
"""Side length files are resized to when ``image_size`` is not given."""

#: Decoded file collections up to this many bytes are kept in memory after the first pass.
FILE_CACHE_BYTES = 1 << 30


class DataSource:
    """A collection of samples, images or feature vectors, that can be loaded in batches.

    A source serves either images (from arrays, tensors or image files) or the rows of a
    2-D ``(N, D)`` feature matrix; ``kind`` tells which.

    Attributes
    ----------
    kind : {'images', 'features'}
        Images load as ``(B, C, H, W)`` in ``[0, 1]``; features as ``(B, D)``.
    shape : tuple of int
        Shape of one sample: ``(C, H, W)`` or ``(D,)``.
    """

    kind: str
    shape: tuple[int, ...]

    def __len__(self) -> int:  # pragma: no cover - abstract
        raise NotImplementedError

    def load(self, indices: np.ndarray | slice | None = None) -> torch.Tensor:
        """Return the samples at ``indices`` as a float32 CPU tensor.

        Parameters
        ----------
        indices : ndarray, slice or None
            Samples to load; ``None`` loads all of them.

        Returns
        -------
        torch.Tensor
            ``(B, C, H, W)`` images in ``[0, 1]`` or ``(B, D)`` features.
        """
        raise NotImplementedError  # pragma: no cover - abstract

    @property
    def n_features(self) -> int:
        """Number of values per sample.

        Returns
        -------
        int
            The product of :attr:`shape`.
        """
        return int(np.prod(self.shape))

    @property
    def native_size(self) -> tuple[int, int] | None:
        """``(H, W)`` of the images before any resizing (``None`` for features).

        Returns
        -------
        tuple of int or None
        """
        return getattr(self, "image_size", None)

    def at_image_size(self, image_size: tuple[int, int]) -> DataSource:
        """The same samples loaded at ``image_size`` (this source when it already is).

        Parameters
        ----------
        image_size : tuple of int
            ``(H, W)``.

        Returns
        -------
        DataSource
        """
        if self.kind != "images" or tuple(image_size) == tuple(self.shape[1:]):
            return self
        raise NotImplementedError(f"{type(self).__name__} cannot change its image size.")

    @property
    def n_channels(self) -> int | None:
        """Channel count of images, ``None`` for features.

        Returns
        -------
        int or None
            ``shape[0]`` for images.
        """
        return self.shape[0] if self.kind == "images" else None

    def channel_stats(self, max_samples: int = 10_000, seed: int = 0) -> tuple[np.ndarray, ...]:
        """Per-channel (images) or per-feature (features) mean and standard deviation.

        Parameters
        ----------
        max_samples : int
            At most this many samples are read, drawn without replacement.
        seed : int
            Seed of the draw.

        Returns
        -------
        mean, std : ndarray
            Per channel or feature; a standard deviation below 1e-6 is replaced by 1.
        """
        n = len(self)
        if n > max_samples:
            idx = np.sort(np.random.default_rng(seed).choice(n, max_samples, replace=False))
        else:
            idx = np.arange(n)
        total = None
        total_sq = None
        count = 0
        for start in range(0, len(idx), 1024):
            batch = self.load(idx[start : start + 1024]).double()
            dims = (0, 2, 3) if self.kind == "images" else (0,)
            batch_sum = batch.sum(dim=dims)
            batch_sq = (batch * batch).sum(dim=dims)
            total = batch_sum if total is None else total + batch_sum
            total_sq = batch_sq if total_sq is None else total_sq + batch_sq
            count += batch.numel() // batch_sum.numel()
        mean = total / count
        var = (total_sq / count - mean * mean).clamp_min(0.0)
        std = var.sqrt()
        std[std < 1e-6] = 1.0
        return mean.float().numpy(), std.float().numpy()


class TensorSource(DataSource):
    """Samples held in memory as a tensor (uint8 images are scaled on load).

    Parameters
    ----------
    data : torch.Tensor
        ``(N, C, H, W)`` images (uint8 0..255 or float 0..1) or ``(N, D)`` float features.
    image_size : tuple of int, optional
        ``(H, W)`` to resize images to on load; ``None`` keeps their size.
    """

    def __init__(self, data: torch.Tensor, image_size: tuple[int, int] | None = None):
        self.data = data
        self._resized: torch.Tensor | None = None
        if data.ndim == 4:
            self.kind = "images"
            size = tuple(image_size) if image_size is not None else tuple(data.shape[2:])
            self.image_size = size
            self.shape = (int(data.shape[1]), int(size[0]), int(size[1]))
        else:
            self.kind = "features"
            self.image_size = None
            self.shape = (int(data.shape[1]),)

    def __len__(self) -> int:
        return int(self.data.shape[0])

    @property
    def native_size(self) -> tuple[int, int] | None:
        """``(H, W)`` of the images as given (``None`` for features).

        Returns
        -------
        tuple of int or None
        """
        return tuple(int(s) for s in self.data.shape[2:]) if self.kind == "images" else None

    def at_image_size(self, image_size: tuple[int, int]) -> DataSource:
        """The same images resized to ``image_size`` once, at their first load.

        Parameters
        ----------
        image_size : tuple of int
            ``(H, W)``.

        Returns
        -------
        DataSource
        """
        if self.kind != "images" or tuple(image_size) == tuple(self.image_size):
            return self
        return TensorSource(self.data, tuple(int(s) for s in image_size))

    def load(self, indices: np.ndarray | slice | None = None) -> torch.Tensor:
        if indices is None:
            indices = slice(None)
        elif not isinstance(indices, slice):
            indices = torch.as_tensor(np.asarray(indices), dtype=torch.long)
        data = self._data_at_size()
        batch = data[indices]
        if batch.dtype == torch.uint8:
            batch = batch.float().div_(255.0)
        else:
            batch = batch.float()
        if self.kind == "images" and tuple(batch.shape[2:]) != self.image_size:
            batch = resize_images(batch, self.image_size)
        return batch

    def _data_at_size(self) -> torch.Tensor:
        """The images resized once and kept (uint8 stays uint8), when they fit
        :data:`FILE_CACHE_BYTES`; otherwise the original data, resized at every load."""
        if self.kind != "images" or tuple(self.data.shape[2:]) == self.image_size:
            return self.data
        if self._resized is None:
            n, channels = int(self.data.shape[0]), int(self.data.shape[1])
            item = self.data.element_size() if self.data.dtype == torch.uint8 else 4
            if n * channels * self.image_size[0] * self.image_size[1] * item > FILE_CACHE_BYTES:
                return self.data
            self._resized = self._resize_all()
        return self._resized

    def _resize_all(self, chunk: int = 4096) -> torch.Tensor:
        """Every image at ``image_size``, computed in chunks."""
        parts = []
        for start in range(0, int(self.data.shape[0]), chunk):
            part = self.data[start : start + chunk]
            if part.dtype == torch.uint8:
                resized = resize_images(part.float().div_(255.0), self.image_size)
                parts.append(resized.mul_(255.0).round_().clamp_(0, 255).to(torch.uint8))
            else:
                parts.append(resize_images(part.float(), self.image_size))
        return torch.cat(parts)


class FileSource(DataSource):
    """Images read from files, decoded in batches and resized to a common size.

    The files are decoded once by :meth:`scan` (which also finds unreadable ones and decides
    the channel count). When the decoded collection is small (up to 1 GiB), it is kept in
    memory; otherwise each :meth:`load` decodes its batch again, so the whole collection is
    never in memory at once. With ``cache_dir``, the decoded images are kept on disk
    instead, as one memory-mapped uint8 array per file list, size and channel count (see
    :mod:`deepclust.data._disk_cache`): a later scan of the same, unchanged files, in this
    run or a later one, decodes nothing, and :meth:`load` reads at disk speed.

    Each image is scaled, its aspect ratio kept, to the smallest size that covers
    ``image_size``, and its centre is cropped to ``image_size`` (as torchvision's ``Resize``
    then ``CenterCrop``), so that nothing is squashed.

    JPEG files at least twice ``image_size`` on both sides are decoded by libjpeg at a
    reduced scale (1/2, 1/4 or 1/8, never below ``image_size``) before being resized.

    Files are decoded upright (their EXIF orientation applied) and with 8 bits per channel:
    16-bit, 32-bit and float images are scaled to ``[0, 1]`` as :func:`read_image`
    describes, then kept at 8-bit precision.

    Parameters
    ----------
    paths : sequence of str
        Image files.
    image_size : tuple of int
        ``(H, W)`` every image is resized to.
    n_channels : int or None
        1 (grayscale) or 3 (RGB); ``None`` decides during :meth:`scan`: RGB when any file
        is in colour (grey files are then repeated over the three channels), else grey.
    root : str or None
        Folder the paths were found in (used to report relative names).
    skipped : mapping of str to int, optional
        Counts of files left out before this source was made (see
        :func:`scan_image_folder`); :meth:`scan` adds ``'unreadable'`` files it skips.
    cache_dir : str or path-like, optional
        Folder (made when missing) where the decoded images are kept between scans and
        runs; ``None`` keeps them in memory only, when they fit.

    Attributes
    ----------
    modes : dict of str to str
        PIL mode of each file read by :meth:`scan` (e.g. ``'L'``, ``'RGB'``, ``'I;16'``).
    skipped : dict of str to int
        Counts of files left out, by reason.
    """

    def __init__(
        self,
        paths: Sequence[str],
        image_size: tuple[int, int],
        n_channels: int | None = None,
        root: str | None = None,
        skipped: Mapping[str, int] | None = None,
        cache_dir: str | os.PathLike | None = None,
    ):
        self.paths = [os.fspath(p) for p in paths]
        self.cache_dir = None if cache_dir is None else os.fspath(cache_dir)
        self.image_size = (int(image_size[0]), int(image_size[1]))
        self.root = root
        self.kind = "images"
        self.skipped = dict(skipped or {})
        self.modes: dict[str, str] = {}
        self._n_channels = n_channels
        self._cache: torch.Tensor | None = None
        self._native_size: tuple[int, int] | None = None
        self.shape = (n_channels or 0, *self.image_size)

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def native_size(self) -> tuple[int, int]:
        """Median ``(H, W)`` of the files as stored (read from the headers of up to 256
        of them, evenly spaced in the list).

        Returns
        -------
        tuple of int
        """
        if self._native_size is None:
            self._native_size = probe_native_size(self.paths)
        return self._native_size

    def at_image_size(self, image_size: tuple[int, int]) -> DataSource:
        """The same files decoded at ``image_size`` (scanned again when it differs).

        Parameters
        ----------
        image_size : tuple of int
            ``(H, W)``.

        Returns
        -------
        DataSource
        """
        if tuple(image_size) == self.image_size:
            return self
        resized = FileSource(
            self.paths,
            image_size,
            self._n_channels,
            root=self.root,
            skipped=self.skipped,
            cache_dir=self.cache_dir,
        )
        resized._native_size = self._native_size
        return resized.scan()

    def summary(self) -> str:
        """One line on the files, e.g. ``'1,200 images; left out: 3 hidden, 1 unreadable'``.

        Returns
        -------
        str
            The number of images and the counts of :attr:`skipped`, when any.
        """
        return summarise_images(len(self.paths), self.skipped)

    def _decode(self, path: str, channels: int | None) -> tuple[np.ndarray, str]:
        """``(H, W, C)`` uint8 pixels of one file and its PIL mode.

        ``channels=None`` keeps the file's own kind: 3 for colour files, 1 for grey ones.
        """
        image, mode = read_image(path, self.image_size, grey=channels == 1)
        if channels is None:
            channels = 3 if is_colour_mode(mode) else 1
        image = image.convert("L" if channels == 1 else "RGB")
        if image.size != (self.image_size[1], self.image_size[0]):
            # Aspect kept: scaled to cover the target, then its centre cropped.
            image = ImageOps.fit(
                image, (self.image_size[1], self.image_size[0]), Image.Resampling.BILINEAR
            )
        array = np.asarray(image, dtype=np.uint8)
        return (array[:, :, None] if array.ndim == 2 else array), mode

    def _decode_many(
        self, paths: Sequence[str], channels: int | None = None
    ) -> tuple[np.ndarray, list[tuple[str, str]], list[str | None]]:
        """Decode ``paths`` in parallel.

        Returns the ``(N, H, W, C)`` uint8 pixels (zeros for unreadable files), the
        ``(path, reason)`` of unreadable files, and each file's PIL mode (``None`` when
        unreadable). With ``channels=None``, ``C`` is 3 when any file is in colour (grey
        files repeated over the channels), else 1.
        """
        arrays: list[np.ndarray | None] = [None] * len(paths)
        modes: list[str | None] = [None] * len(paths)
        errors: list[tuple[str, str]] = []

        def work(i_path):
            i, path = i_path
            try:
                arrays[i], modes[i] = self._decode(path, channels)
            except Exception as exc:  # noqa: BLE001 - every decoding failure is reported
                errors.append((path, f"{type(exc).__name__}: {exc}"))

        with ThreadPoolExecutor(max_workers=min(8, (os.cpu_count() or 1) * 2)) as pool:
            list(pool.map(work, enumerate(paths)))
        depth = channels or max((a.shape[2] for a in arrays if a is not None), default=1)
        out = np.zeros((len(paths), *self.image_size, depth), dtype=np.uint8)
        for i, array in enumerate(arrays):
            if array is not None:
                out[i] = array  # a grey (H, W, 1) array fills all three channels
        return out, errors, modes

    def _decode_all(self, batch_size: int) -> tuple[list[np.ndarray] | None, list]:
        """Decode every file once, recording its mode in :attr:`modes`.

        Returns the decoded batches of readable files (``None`` when the collection is
        too large to keep) and the ``(path, reason)`` of unreadable files.
        """
        channels = self._n_channels
        pixels_per_channel = len(self.paths) * self.image_size[0] * self.image_size[1]
        decoded: list[np.ndarray] | None = []
        bad: list[tuple[str, str]] = []
        depth = channels or 1
        for start in range(0, len(self.paths), batch_size):
            chunk = self.paths[start : start + batch_size]
            arrays, errors, modes = self._decode_many(chunk, channels)
            self.modes.update((p, m) for p, m in zip(chunk, modes) if m is not None)
            bad.extend(errors)
            depth = max(depth, arrays.shape[3])
            if decoded is not None:
                if pixels_per_channel * depth > FILE_CACHE_BYTES:
                    decoded = None  # too large to keep: load() decodes batch by batch
                else:
                    failed = {path for path, _ in errors}
                    decoded.append(arrays[[p not in failed for p in chunk]])
        return decoded, bad

    def scan(self, on_bad_image: str = "raise", batch_size: int = 512) -> FileSource:
        """Decode every file once, report unreadable ones, and cache small collections.

        Without ``n_channels``, the collection is RGB when any file is in colour (the mode
        of every file is looked at, not just the first ones), else grey. With
        ``n_channels=1``, colour files are read as grey with a warning that says so.

        Parameters
        ----------
        on_bad_image : {'raise', 'skip'}
            ``'raise'`` raises a :class:`ValueError` naming the unreadable files; ``'skip'``
            drops them with a warning that lists them, and counts them in
            ``skipped['unreadable']``.
        batch_size : int
            Number of files decoded at a time.

        Returns
        -------
        self : FileSource
            This source, scanned.
        """
        if self.cache_dir is not None:
            return self._scan_to_disk(on_bad_image, batch_size)
        decoded, bad = self._decode_all(batch_size)
        self._settle(bad, on_bad_image)
        if decoded is not None:
            array = np.concatenate(
                [np.broadcast_to(a, (*a.shape[:3], self._n_channels)) for a in decoded]
            )
            self._cache = torch.from_numpy(np.ascontiguousarray(array.transpose(0, 3, 1, 2)))
        return self

    def _settle(self, bad: list[tuple[str, str]], on_bad_image: str) -> None:
        """Leave out the unreadable files and decide the channel count (see :meth:`scan`)."""
        if bad:
            self._leave_out_unreadable(bad, on_bad_image)
        if not self.paths:
            raise ValueError("None of the image files could be read; nothing to cluster.")
        n_colour = sum(is_colour_mode(self.modes[p]) for p in self.paths)
        if self._n_channels is None:
            self._n_channels = 3 if n_colour else 1
        elif self._n_channels == 1 and n_colour:
            warnings.warn(
                f"{n_colour} of {len(self.paths)} image files are in colour but are read as "
                "greyscale (n_channels=1, e.g. for a model fitted on greyscale images), so "
                "their colour is lost. Pass n_channels=3 (or fit on colour images) to keep "
                "it, or convert the files to greyscale to silence this warning.",
                UserWarning,
                stacklevel=4,
            )
        self.shape = (self._n_channels, *self.image_size)

    def _scan_to_disk(self, on_bad_image: str, batch_size: int) -> FileSource:
        """:meth:`scan` with :attr:`cache_dir`: open the cache of these files, or build it."""
        key = cache_key(self.paths, self.image_size, self._n_channels)
        cache = read_cache(self.cache_dir, key)
        if cache is None and self._n_channels is not None:
            # A scan that let the files decide (a fit) wrote the same pixels when it
            # settled on this channel count (a later predict asks for it).
            undecided = read_cache(self.cache_dir, cache_key(self.paths, self.image_size, None))
            if undecided is not None and undecided[1].get("channels") == self._n_channels:
                cache = undecided
        if cache is None:
            cache = self._build_disk_cache(key, batch_size)
        pixels, description = cache
        self.modes.update(description["modes"])
        self._settle([tuple(b) for b in description["bad"]], on_bad_image)
        if pixels.shape != (len(self.paths), *self.shape):  # pragma: no cover - defensive
            raise ValueError(
                f"The image cache of {len(self.paths)} files in "
                f"{self.cache_dir!r} has shape {pixels.shape}; remove it."
            )
        self._cache = torch.from_numpy(pixels)
        return self

    def _build_disk_cache(self, key: str, batch_size: int) -> tuple[np.ndarray, dict]:
        """Decode every file into a new cache of :attr:`cache_dir`, renamed into place only
        once complete; returns it as :func:`read_cache` does."""
        n_files = len(self.paths)
        depth = self._n_channels or 3
        writer = CacheWriter(self.cache_dir, key, (n_files, depth, *self.image_size))
        try:
            readable = np.ones(n_files, dtype=bool)
            modes: dict[str, str] = {}
            bad: list[tuple[str, str]] = []
            for start in range(0, n_files, batch_size):
                chunk = self.paths[start : start + batch_size]
                arrays, errors, chunk_modes = self._decode_many(chunk, self._n_channels)
                writer.pixels[start : start + len(chunk)] = arrays.transpose(0, 3, 1, 2)
                failed = {path for path, _ in errors}
                readable[start : start + len(chunk)] = [p not in failed for p in chunk]
                modes.update((p, m) for p, m in zip(chunk, chunk_modes) if m is not None)
                bad.extend(errors)
            colour = any(is_colour_mode(m) for m in modes.values())
            channels = self._n_channels or (3 if colour else 1)
            writer.keep(readable, channels)
            return writer.commit({"modes": modes, "bad": bad, "channels": channels})
        except BaseException:
            writer.discard()
            raise

    def _leave_out_unreadable(self, bad: list[tuple[str, str]], on_bad_image: str) -> None:
        """Raise on unreadable files, or drop them from :attr:`paths` with a warning."""
        listing = "\n".join(f"  {self._name(path)}: {why}" for path, why in sorted(bad))
        if on_bad_image == "raise":
            raise ValueError(
                f"{len(bad)} image file(s) could not be read:\n{listing}\n"
                "Remove or repair them, or pass on_bad_image='skip' to leave them out."
            )
        warnings.warn(
            f"Skipping {len(bad)} unreadable image file(s):\n{listing}",
            UserWarning,
            stacklevel=5,
        )
        failed = {path for path, _ in bad}
        self.paths = [p for p in self.paths if p not in failed]
        self.skipped["unreadable"] = self.skipped.get("unreadable", 0) + len(bad)

    def _name(self, path: str) -> str:
        if self.root is not None:
            try:
                return os.path.relpath(path, self.root)
            except ValueError:
                return path
        return path

    def relative_names(self) -> list[str]:
        """File names relative to the folder they were found in (or as given).

        Returns
        -------
        list of str
            One name per file of :attr:`paths`, in the same order.
        """
        return [self._name(p) for p in self.paths]

    def load(self, indices: np.ndarray | slice | None = None) -> torch.Tensor:
        if self.shape[0] == 0:
            self.scan()
        if self._cache is not None:
            return TensorSource(self._cache).load(indices)
        if indices is None:
            indices = slice(None)
        paths = (
            self.paths[indices]
            if isinstance(indices, slice)
            else [self.paths[i] for i in np.asarray(indices)]
        )
        arrays, errors, _ = self._decode_many(paths, self.shape[0])
        if errors:
            listing = ", ".join(self._name(p) for p, _ in errors)
            raise ValueError(f"Image file(s) could not be read: {listing}")
        return torch.from_numpy(arrays.transpose(0, 3, 1, 2).copy()).float().div_(255.0)


def resize_images(batch: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Resize a float ``(B, C, H, W)`` batch with bilinear interpolation (antialiased).

    Parameters
    ----------
    batch : torch.Tensor
        Images in ``[0, 1]``.
    size : tuple of int
        ``(H, W)`` to resize to.

    Returns
    -------
    torch.Tensor
        The resized batch, clamped to ``[0, 1]``.
    """
    antialias = size[0] < batch.shape[2] or size[1] < batch.shape[3]
    return F.interpolate(
        batch, size=size, mode="bilinear", align_corners=False, antialias=antialias
    ).clamp_(0.0, 1.0)


def _is_path_like(value) -> bool:
    return isinstance(value, (str, os.PathLike))


def _normalise_image_size(image_size) -> tuple[int, int] | None:
    if image_size is None:
        return None
    if isinstance(image_size, (int, np.integer)):
        return (int(image_size), int(image_size))
    return (int(image_size[0]), int(image_size[1]))


def probe_native_size(paths: Sequence[str], max_files: int = 256) -> tuple[int, int]:
    """Median ``(H, W)`` of image files, read from the headers of up to ``max_files``.

    Parameters
    ----------
    paths : sequence of str
        Image files.
    max_files : int, default=256
        How many files, evenly spaced in ``paths``, are opened.

    Returns
    -------
    tuple of int
        ``(DEFAULT_FILE_IMAGE_SIZE,) * 2`` when none of them can be opened.
    """
    step = max(1, len(paths) // max_files)
    sizes = []
    for path in list(paths)[::step][:max_files]:
        try:
            with Image.open(path) as image:
                sizes.append((image.height, image.width))
        except (OSError, ValueError, Image.DecompressionBombError):
            continue
    if not sizes:
        return (DEFAULT_FILE_IMAGE_SIZE, DEFAULT_FILE_IMAGE_SIZE)
    height, width = np.median(np.asarray(sizes), axis=0)
    return int(round(height)), int(round(width))


def default_file_size(
    paths: Sequence[str], largest: int = DEFAULT_FILE_IMAGE_SIZE
) -> tuple[int, int]:
    """The size files are decoded at when none is given: their median ``(H, W)``
    (:func:`probe_native_size`), scaled down, aspect kept, so that no side exceeds
    ``largest``.

    Parameters
    ----------
    paths : sequence of str
        Image files.
    largest : int, default=DEFAULT_FILE_IMAGE_SIZE
        The longest side allowed.

    Returns
    -------
    tuple of int
        ``(height, width)``, each at least 4.
    """
    height, width = probe_native_size(paths)
    scale = min(1.0, largest / max(height, width))
    return max(4, round(height * scale)), max(4, round(width * scale))


def _paths_source(X, image_size, n_channels, cache_dir=None) -> FileSource:
    size = _normalise_image_size(image_size)
    if _is_path_like(X):
        path = os.fspath(X)
        if os.path.isdir(path):
            files, skipped = scan_image_folder(path)
            if not files:
                left_out = describe_left_out(skipped)
                raise ValueError(
                    f"The folder {path!r} contains no image files (searched recursively for "
                    f"{', '.join(IMAGE_EXTENSIONS)}"
                    f"{'; left out: ' + left_out if left_out else ''}). Point to a folder "
                    "that holds images."
                )
            return FileSource(
                files,
                size or default_file_size(files),
                n_channels,
                root=path,
                skipped=skipped,
                cache_dir=cache_dir,
            )
        if not os.path.exists(path):
            raise FileNotFoundError(
                f"No such file or folder: {path!r}. Pass an existing image folder, a list of "
                "image files, or an array of images."
            )
        paths = [path]
    else:
        paths = [os.fspath(p) for p in X]
    missing = [p for p in paths if not os.path.isfile(p)]
    if missing:
        shown = ", ".join(repr(p) for p in missing[:10])
        more = f" and {len(missing) - 10} more" if len(missing) > 10 else ""
        raise FileNotFoundError(
            f"{len(missing)} image file(s) do not exist: {shown}{more}. Check the paths."
        )
    return FileSource(paths, size or default_file_size(paths), n_channels, cache_dir=cache_dir)


def _array_to_tensor(X: np.ndarray) -> torch.Tensor:
    """Convert validated ``(N, H, W)`` or ``(N, H, W, C)`` images to a ``(N, C, H, W)`` tensor."""
    if X.ndim == 3:
        X = X[:, None, :, :]
    else:
        X = np.moveaxis(X, -1, 1)
    # Always a private copy: the caller's array may be read-only (a memmap) or change later.
    if X.dtype == np.uint8:
        return torch.from_numpy(np.array(X, order="C"))
    return torch.from_numpy(np.array(X, dtype=np.float32, order="C"))


def _check_image_values(X) -> None:
    if isinstance(X, torch.Tensor):
        if X.dtype == torch.uint8 or X.numel() == 0:
            return
        low, high = float(X.min()), float(X.max())
    else:
        if X.dtype == np.uint8 or X.size == 0:
            return
        low, high = float(X.min()), float(X.max())
    if low < -1e-3 or high > 1.0 + 1e-3:
        raise ValueError(
            f"Float images must have values in [0, 1]; got values in [{low:.3g}, {high:.3g}]. "
            "Pass uint8 images (0..255) or divide float images by their maximum."
        )


def _check_finite(X) -> None:
    if isinstance(X, torch.Tensor):
        finite = bool(torch.isfinite(X).all()) if X.is_floating_point() else True
    else:
        finite = bool(np.isfinite(X).all()) if X.dtype.kind == "f" else True
    if not finite:
        raise ValueError(
            "Input contains NaN or infinity. Remove or impute those values before fitting."
        )


def _path_input(X):
    """``X`` as a path or a list of paths when it names image files, else None."""
    if _is_path_like(X):
        return X
    if isinstance(X, (list, tuple)) and len(X) > 0 and all(_is_path_like(x) for x in X):
        return X
    if isinstance(X, np.ndarray) and X.dtype.kind in "OUS" and X.ndim == 1 and X.size > 0:
        values = X.tolist()
        if all(_is_path_like(v) for v in values):
            return values
        raise TypeError(
            "X is a 1-D array of objects that are not file paths. Pass image file paths, "
            "a folder, or a numeric array of images or features."
        )
    return None


def _tensor_source(X: torch.Tensor, image_size, validate_features) -> TensorSource:
    """Source of a torch tensor: ``(N, D)`` features or ``(N, H, W)``/``(N, C, H, W)`` images."""
    tensor = X.detach().cpu()
    if tensor.ndim not in (2, 3, 4):
        raise ValueError(
            f"Expected a 2-D (N, D), 3-D (N, H, W) or 4-D (N, C, H, W) tensor; got shape "
            f"{tuple(tensor.shape)}."
        )
    if tensor.shape[0] == 0:
        raise ValueError("Found array with 0 sample(s); X must contain at least one sample.")
    if tensor.ndim > 2 and min(tensor.shape[-2:]) == 0:
        raise ValueError(f"Images must be at least 1x1 pixel; got shape {tuple(tensor.shape)}.")
    if tensor.is_complex():
        raise TypeError("Complex data is not supported; pass real-valued images.")
    _check_finite(tensor)
    if tensor.ndim == 2:
        return _features_source(tensor.numpy(), validate_features)
    if tensor.ndim == 3:
        tensor = tensor[:, None]
    if tensor.shape[1] not in (1, 3, 4):
        raise ValueError(
            f"Tensors are read channels-first (N, C, H, W) with C in 1, 3 or 4; got shape "
            f"{tuple(tensor.shape)}. For channels-last data use tensor.permute(0, 3, 1, 2)."
        )
    _check_image_values(tensor)
    if tensor.dtype != torch.uint8:
        tensor = tensor.float()
    return TensorSource(tensor.contiguous(), _normalise_image_size(image_size))


def _features_source(X: np.ndarray, validate_features) -> TensorSource:
    """Source of a 2-D ``(N, D)`` feature matrix (lower dimensions only via the validator)."""
    if validate_features is not None:
        X = validate_features(X)
    elif X.ndim != 2:
        raise ValueError(
            f"Expected 2-D features or 3-D/4-D images; got a {X.ndim}-D array. "
            "Reshape a single sample with X.reshape(1, -1)."
        )
    X = np.asarray(X)
    if X.shape[0] == 0 or X.shape[1] == 0:
        raise ValueError(
            f"Found array with shape {X.shape}; X needs at least one sample and one feature."
        )
    _check_finite(X)
    return TensorSource(torch.from_numpy(np.array(X, dtype=np.float32)))


def _check_image_array(X: np.ndarray) -> None:
    """Check the dimensions, dtype, shape and finiteness of a numpy image array."""
    if X.ndim > 4:
        raise ValueError(
            f"Expected 2-D features, (N, H, W) or (N, H, W, C) images; got a {X.ndim}-D "
            f"array of shape {X.shape}."
        )
    if X.dtype.kind not in "biuf":
        raise TypeError(f"Image arrays must be numeric (uint8 or float); got dtype {X.dtype}.")
    if X.shape[0] == 0:
        raise ValueError("Found array with 0 sample(s); X must contain at least one sample.")
    if min(X.shape[1:3]) == 0:
        raise ValueError(f"Images must be at least 1x1 pixel; got shape {X.shape}.")
    if X.ndim == 4 and X.shape[-1] not in (1, 3, 4):
        raise ValueError(
            f"4-D numpy arrays are read channels-last (N, H, W, C) with C in 1, 3 or 4; got "
            f"shape {X.shape}. For channels-first data use np.moveaxis(X, 1, -1) or pass a "
            "torch tensor."
        )
    _check_finite(X)


def _array_source(X, image_size, validate_features) -> TensorSource:
    """Source of array-like input: a feature matrix (2-D or less) or numpy images."""
    if not isinstance(X, np.ndarray):
        X = np.asarray(X)
    if X.ndim <= 2:
        return _features_source(X, validate_features)
    _check_image_array(X)
    if X.dtype != np.uint8:
        if X.dtype.kind in "iub" and X.max(initial=0) <= 255 and X.min(initial=0) >= 0:
            X = X.astype(np.uint8)
        else:
            _check_image_values(X)
    return TensorSource(_array_to_tensor(X), _normalise_image_size(image_size))


def as_source(
    X,
    *,
    image_size=None,
    n_channels: int | None = None,
    on_bad_image: str = "raise",
    validate_features=None,
    cache_dir: str | os.PathLike | None = None,
) -> DataSource:
    """Wrap user input (images or a 2-D feature matrix) in a :class:`DataSource`.

    Parameters
    ----------
    X : array-like, torch.Tensor, str, path or sequence of paths
        - numpy ``(N, H, W)`` grayscale or ``(N, H, W, C)`` channels-last with ``C`` in
          1/3/4, uint8 (0..255) or float (0..1);
        - torch ``(N, C, H, W)`` channels-first (or ``(N, H, W)`` grayscale);
        - a folder (searched recursively for image files, see :func:`scan_image_folder`
          for what is left out), one image file, or a sequence of image file paths; files
          are decoded upright and at 8 bits as :func:`~deepclust.data.read_image` says;
        - a 2-D ``(N, D)`` matrix of features.
    image_size : int or (int, int), optional
        Size images are resized to; ``None`` keeps an array's own size and uses
        :data:`DEFAULT_FILE_IMAGE_SIZE` for files.
    n_channels : int, optional
        Channel count to convert files to (``None``: RGB when any file is in colour, else
        grey; see :meth:`FileSource.scan`).
    on_bad_image : {'raise', 'skip'}
        What to do with files that cannot be decoded.
    validate_features : callable, optional
        Called on 2-D numeric input (used by estimators to run scikit-learn's
        ``validate_data``); must return the validated array.
    cache_dir : str or path-like, optional
        Files only: folder where the decoded images are kept, memory-mapped, for later
        scans and runs (see :class:`FileSource`).

    Returns
    -------
    DataSource
        A :class:`TensorSource` for arrays and tensors, a scanned :class:`FileSource` for
        files.
    """
    paths = _path_input(X)
    if paths is not None:
        return _paths_source(paths, image_size, n_channels, cache_dir).scan(on_bad_image)
    if isinstance(X, torch.Tensor):
        return _tensor_source(X, image_size, validate_features)
    if hasattr(X, "__array__") or isinstance(X, (list, tuple)):
        return _array_source(X, image_size, validate_features)
    raise TypeError(
        f"Cannot read input of type {type(X).__name__}. Pass a numpy array, a torch tensor, "
        "a folder path or a list of image file paths."
    )
