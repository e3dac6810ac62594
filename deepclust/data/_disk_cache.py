"""A folder of decoded images: one uint8 memory-mapped array per file list, size and mode.

:class:`~deepclust.data.FileSource` with ``cache_dir`` keeps the images it decodes as
``(N, C, H, W)`` uint8 ``.npy`` files in that folder, read back memory-mapped, so a later
epoch or a later run reads them at disk speed instead of decoding the files again.

Each cache is named by a key (:func:`cache_key`) that hashes the file list, each file's size
and modification time, the size the images are resized to and the channel count asked for:
a changed file list, a rewritten or touched file, or another size gives another key. A cache
is two files, ``deepclust-<key>.npy`` (the pixels) and ``deepclust-<key>.json`` (the files'
modes, unreadable files and channel count). Both are written under temporary names in the
same folder and renamed with :func:`os.replace`, the ``.json`` last: a cache whose ``.json``
exists is complete, and an interrupted build leaves only temporary files (removed when the
build fails in Python).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Sequence

import numpy as np

__all__ = ["CACHE_FORMAT", "CacheWriter", "cache_key", "cache_paths", "read_cache"]

#: Version of the cache's layout and of the decoding (2: aspect kept, centre crop); part of
#: every key.
CACHE_FORMAT = 2

_TEMP_PREFIX = ".deepclust-tmp-"


def cache_key(paths: Sequence[str], image_size: tuple[int, int], n_channels: int | None) -> str:
    """Hash naming the cache of ``paths`` decoded at ``image_size`` with ``n_channels``.

    Parameters
    ----------
    paths : sequence of str
        Image files, in order (made absolute before hashing).
    image_size : tuple of int
        ``(H, W)`` the images are resized to.
    n_channels : int or None
        Channel count asked for (``None``: decided from the files).

    Returns
    -------
    str
        Hexadecimal SHA-256 digest of the format version, the size, the channel count and
        every file's absolute path, size in bytes and modification time in nanoseconds.

    Raises
    ------
    OSError
        When a file cannot be looked at (``os.stat``).
    """
    digest = hashlib.sha256()
    header = [CACHE_FORMAT, [int(s) for s in image_size], n_channels]
    digest.update(json.dumps(header).encode())
    for path in paths:
        stat = os.stat(path)
        digest.update(f"\0{os.path.abspath(path)}\0{stat.st_size}\0{stat.st_mtime_ns}".encode())
    return digest.hexdigest()


def cache_paths(cache_dir: str | os.PathLike, key: str) -> tuple[str, str]:
    """The ``.npy`` (pixels) and ``.json`` (description) files of the cache ``key``.

    Parameters
    ----------
    cache_dir : str or path-like
        Folder of the caches.
    key : str
        A key from :func:`cache_key`.

    Returns
    -------
    tuple of str
        ``(pixels, description)``.
    """
    stem = os.path.join(os.fspath(cache_dir), f"deepclust-{key}")
    return stem + ".npy", stem + ".json"


def read_cache(cache_dir: str | os.PathLike, key: str) -> tuple[np.ndarray, dict] | None:
    """Open the complete cache ``key`` of ``cache_dir``, memory-mapped; ``None`` when absent.

    Parameters
    ----------
    cache_dir : str or path-like
        Folder of the caches.
    key : str
        A key from :func:`cache_key`.

    Returns
    -------
    tuple or None
        ``(pixels, description)``: the ``(N, C, H, W)`` uint8 array, mapped copy-on-write
        (writable in memory, the file never changes), and the dictionary written with it.
        ``None`` when there is no complete cache, or it cannot be read.
    """
    pixels_path, description_path = cache_paths(cache_dir, key)
    try:
        with open(description_path, encoding="utf-8") as file:
            description = json.load(file)
        pixels = np.load(pixels_path, mmap_mode="c")
    except (OSError, ValueError):
        return None
    if pixels.dtype != np.uint8 or pixels.ndim != 4 or len(pixels) != description.get("n"):
        return None
    return pixels, description


class CacheWriter:
    """Builds one cache under temporary names; :meth:`commit` renames it into place.

    Parameters
    ----------
    cache_dir : str or path-like
        Folder of the caches (made when missing).
    key : str
        A key from :func:`cache_key`.
    shape : tuple of int
        ``(N, C, H, W)`` of the array rows are written to.

    Attributes
    ----------
    pixels : numpy.memmap
        The ``(N, C, H, W)`` uint8 array being filled, a temporary file of ``cache_dir``.
    """

    def __init__(self, cache_dir: str | os.PathLike, key: str, shape: tuple[int, ...]):
        self.cache_dir = os.fspath(cache_dir)
        self.key = key
        os.makedirs(self.cache_dir, exist_ok=True)
        self._temps: list[str] = []
        self.pixels = np.lib.format.open_memmap(
            self._temp(".npy"), mode="w+", dtype=np.uint8, shape=tuple(shape)
        )

    def _temp(self, suffix: str) -> str:
        """A new, empty temporary file in the cache folder (removed by :meth:`discard`)."""
        handle, path = tempfile.mkstemp(prefix=_TEMP_PREFIX, suffix=suffix, dir=self.cache_dir)
        os.close(handle)
        self._temps.append(path)
        return path

    def keep(self, rows: np.ndarray, n_channels: int) -> None:
        """Keep only ``rows`` (a boolean mask) and the first ``n_channels`` channels.

        Parameters
        ----------
        rows : ndarray of bool
            Rows of :attr:`pixels` to keep.
        n_channels : int
            Channels to keep.
        """
        rows = np.asarray(rows, dtype=bool)
        if rows.all() and n_channels == self.pixels.shape[1]:
            return
        kept = np.flatnonzero(rows)
        shape = (len(kept), n_channels, *self.pixels.shape[2:])
        smaller = np.lib.format.open_memmap(
            self._temp(".npy"), mode="w+", dtype=np.uint8, shape=shape
        )
        for start in range(0, len(kept), 1024):
            chunk = kept[start : start + 1024]
            smaller[start : start + len(chunk)] = self.pixels[chunk, :n_channels]
        larger, self.pixels = self.pixels, smaller
        self._drop(larger)

    def _drop(self, array: np.memmap) -> None:
        """Close and delete the temporary file behind ``array``."""
        path = array.filename
        array.flush()
        del array  # the mapping closes with its last reference
        with contextlib.suppress(OSError):
            os.remove(path)
        self._temps.remove(os.fspath(path))

    def commit(self, description: dict) -> tuple[np.ndarray, dict]:
        """Rename the pixels, then ``description``, into place; return the cache as read.

        Parameters
        ----------
        description : dict
            What :func:`read_cache` returns beside the pixels (``'n'``, the row count, is
            added).

        Returns
        -------
        tuple
            ``(pixels, description)`` as :func:`read_cache` opens them.
        """
        pixels_path, description_path = cache_paths(self.cache_dir, self.key)
        description = {**description, "n": int(self.pixels.shape[0])}
        self.pixels.flush()
        temp_pixels = os.fspath(self.pixels.filename)
        self.pixels = None  # the mapping closes with its last reference
        temp_description = self._temp(".json")
        with open(temp_description, "w", encoding="utf-8") as file:
            json.dump(description, file)
        os.replace(temp_pixels, pixels_path)
        os.replace(temp_description, description_path)
        self._temps.clear()
        cache = read_cache(self.cache_dir, self.key)
        if cache is None:  # pragma: no cover - the folder changed under us
            raise OSError(f"The image cache {pixels_path!r} could not be read back.")
        return cache

    def discard(self) -> None:
        """Remove the temporary files of an unfinished build."""
        self.pixels = None
        for path in self._temps:
            with contextlib.suppress(OSError):
                os.remove(path)
        self._temps.clear()
