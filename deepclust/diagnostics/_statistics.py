"""Cheap per-image statistics as discrete codes: colour, brightness, background and size.

Each statistic is returned as one small integer code per image, ready for mutual
information with cluster labels: colours on a coarse RGB grid, hues in circular bins, and
continuous values (brightness, contrast, sizes) in quantile bins of the values themselves.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import torch
from PIL import ExifTags, Image

__all__ = [
    "FILE_STATISTICS",
    "IMAGE_STATISTICS",
    "file_statistics",
    "image_statistics",
    "quantile_codes",
]

IMAGE_STATISTICS: tuple[str, ...] = (
    "colour",
    "hue",
    "saturation",
    "brightness",
    "contrast",
    "background",
    "background brightness",
)
"""Statistics computed from the pixels, in the order :func:`image_statistics` returns them."""

FILE_STATISTICS: tuple[str, ...] = ("width", "height", "aspect ratio", "file format", "subfolder")
"""Statistics read from the files' headers and paths by :func:`file_statistics`."""

#: Statistics that need colour; grey images leave them out.
COLOUR_STATISTICS = frozenset({"colour", "hue", "saturation", "background"})

#: Number of quantile bins of the continuous statistics.
N_QUANTILE_BINS = 8

#: Levels per channel of the RGB grid that mean colours are quantised on.
COLOUR_LEVELS = 4

#: Number of circular hue bins; a further code holds the almost grey colours.
N_HUE_BINS = 12

#: Mean colours less saturated than this get the grey hue code.
GREY_SATURATION = 0.1

# EXIF orientations that turn the image by a quarter, swapping its width and height.
_QUARTER_TURNS = frozenset({5, 6, 7, 8})

_UNREADABLE = "<unreadable>"


def quantile_codes(values: np.ndarray, n_bins: int = N_QUANTILE_BINS) -> np.ndarray:
    """Codes of values in quantile bins of the values themselves.

    The bin edges are the quantiles at ``1/n_bins, ..., (n_bins - 1)/n_bins``; equal edges
    are merged, so tied values share a bin and a constant statistic has one code. Bins are
    closed on the right. Non-finite values get a code of their own.

    Parameters
    ----------
    values : ndarray
        One value per image.
    n_bins : int, default=8
        Number of bins when the values have no ties.

    Returns
    -------
    ndarray of int64
        One code per value, in ``0..n_bins``.
    """
    values = np.asarray(values, dtype=np.float64).ravel()
    codes = np.full(values.shape, n_bins, dtype=np.int64)
    finite = np.isfinite(values)
    if finite.any():
        quantiles = np.arange(1, n_bins) / n_bins
        edges = np.unique(np.quantile(values[finite], quantiles))
        codes[finite] = np.searchsorted(edges, values[finite], side="left")
    return codes


def _colour_codes(rgb: np.ndarray) -> np.ndarray:
    """Cell of each ``(N, 3)`` colour in ``[0, 1]`` on the RGB grid (64 cells for 4 levels)."""
    levels = np.clip(np.floor(rgb * COLOUR_LEVELS), 0, COLOUR_LEVELS - 1).astype(np.int64)
    return (levels[:, 0] * COLOUR_LEVELS + levels[:, 1]) * COLOUR_LEVELS + levels[:, 2]


def _hue_codes(rgb: np.ndarray) -> np.ndarray:
    """HSV hue of each ``(N, 3)`` colour in :data:`N_HUE_BINS` circular bins; the almost
    grey colours (saturation below :data:`GREY_SATURATION`) get code ``N_HUE_BINS``."""
    red, green, blue = rgb[:, 0], rgb[:, 1], rgb[:, 2]
    high, low = rgb.max(axis=1), rgb.min(axis=1)
    spread = high - low
    saturation = np.where(high > 0, spread / np.maximum(high, 1e-12), 0.0)
    safe = np.where(spread > 0, spread, 1.0)
    sixths = np.where(
        high == red,
        ((green - blue) / safe) % 6.0,
        np.where(high == green, (blue - red) / safe + 2.0, (red - green) / safe + 4.0),
    )
    codes = np.floor(sixths / 6.0 * N_HUE_BINS).astype(np.int64) % N_HUE_BINS
    codes[saturation < GREY_SATURATION] = N_HUE_BINS
    return codes


def _border_width(height: int, width: int) -> int:
    """Width in pixels of the outer ring that counts as background."""
    return max(1, int(round(min(height, width) / 8)))


def _batch_values(batch: torch.Tensor) -> dict[str, torch.Tensor]:
    """Raw per-image values of a ``(B, C, H, W)`` batch: mean colour, brightness, contrast,
    mean saturation, border colour and border brightness (colour ones only when C >= 3)."""
    colour = batch.shape[1] >= 3
    pixels = batch[:, :3] if colour else batch
    height, width = int(pixels.shape[2]), int(pixels.shape[3])
    intensity = pixels.mean(dim=1).flatten(1)
    values = {
        "brightness": intensity.mean(dim=1),
        "contrast": intensity.std(dim=1, correction=0),
    }
    ring = _border_width(height, width)
    total = pixels.sum(dim=(2, 3))
    inner = pixels[:, :, ring : height - ring, ring : width - ring].sum(dim=(2, 3))
    n_inner = max(0, height - 2 * ring) * max(0, width - 2 * ring)
    border = (total - inner) / (height * width - n_inner)
    values["background brightness"] = border.mean(dim=1)
    if colour:
        values["mean colour"] = total / (height * width)
        values["border colour"] = border
        high, low = pixels.amax(dim=1), pixels.amin(dim=1)
        values["saturation"] = ((high - low) / high.clamp_min(1e-12)).flatten(1).mean(dim=1)
    return values


def image_statistics(source, indices: np.ndarray, batch_size: int = 1024) -> dict[str, np.ndarray]:
    """Per-image statistics of the images at ``indices``, as discrete codes.

    - ``'colour'``: the mean RGB colour on a 4x4x4 grid (64 codes);
    - ``'hue'``: the HSV hue of the mean colour in 12 circular bins, and a 13th code for
      an almost grey mean colour (saturation below 0.1);
    - ``'saturation'``: the mean HSV saturation of the pixels in 8 quantile bins;
    - ``'brightness'``: the mean intensity (over channels and pixels) in 8 quantile bins;
    - ``'contrast'``: the standard deviation of the pixels' intensity in 8 quantile bins;
    - ``'background'``: the mean RGB colour of the border (the outer ring of width
      ``max(1, round(min(H, W) / 8))``) on the 4x4x4 grid;
    - ``'background brightness'``: the mean intensity of the border in 8 quantile bins.

    Quantile bins are taken at the quantiles of the values themselves (see
    :func:`quantile_codes`). Grey images have no ``'colour'``, ``'hue'``, ``'saturation'``
    or ``'background'``.

    Parameters
    ----------
    source : DataSource
        An image source (``source.kind == 'images'``), e.g. from
        :func:`deepclust.data.as_source`.
    indices : ndarray of int
        Images to describe, 1-D.
    batch_size : int, default=1024
        Images loaded at a time.

    Returns
    -------
    dict of str to ndarray of int64
        One code per index for each statistic, in the order of :data:`IMAGE_STATISTICS`.
    """
    indices = np.asarray(indices, dtype=np.int64).ravel()
    parts: dict[str, list[np.ndarray]] = {}
    with torch.no_grad():
        for start in range(0, len(indices), max(1, int(batch_size))):
            batch = source.load(indices[start : start + batch_size])
            for key, value in _batch_values(batch).items():
                parts.setdefault(key, []).append(value.double().numpy())
    if not parts:
        return {}
    values = {key: np.concatenate(chunks) for key, chunks in parts.items()}
    codes = {}
    if "mean colour" in values:
        codes["colour"] = _colour_codes(values["mean colour"])
        codes["hue"] = _hue_codes(values["mean colour"])
        codes["saturation"] = quantile_codes(values["saturation"])
    codes["brightness"] = quantile_codes(values["brightness"])
    codes["contrast"] = quantile_codes(values["contrast"])
    if "border colour" in values:
        codes["background"] = _colour_codes(values["border colour"])
    codes["background brightness"] = quantile_codes(values["background brightness"])
    return codes


def _header(path: str) -> tuple[float, float, str]:
    """``(width, height, format)`` of an image file as shown upright, read from its header;
    ``(nan, nan, '<unreadable>')`` when it cannot be opened."""
    try:
        with Image.open(path) as image:
            width, height = image.size
            file_format = image.format or _UNREADABLE
            try:
                orientation = image.getexif().get(ExifTags.Base.Orientation, 1)
            except Exception:  # noqa: BLE001 - malformed EXIF data; the stored size stands
                orientation = 1
    except (OSError, ValueError, Image.DecompressionBombError):
        return np.nan, np.nan, _UNREADABLE
    if orientation in _QUARTER_TURNS:
        width, height = height, width
    return float(width), float(height), file_format


def _subfolder(path: str, root: str | None) -> str:
    """First component of ``path`` below ``root`` (``''`` for files directly in it), or
    the name of the file's folder when ``root`` is None."""
    if root is None:
        return os.path.basename(os.path.dirname(os.path.abspath(path)))
    try:
        relative = os.path.relpath(path, root)
    except ValueError:
        return os.path.dirname(os.path.abspath(path))
    parts = os.path.normpath(relative).split(os.sep)
    return parts[0] if len(parts) > 1 else ""


def _name_codes(names: Sequence[str]) -> np.ndarray:
    """One code per distinct name, in order of first appearance."""
    seen: dict[str, int] = {}
    return np.asarray([seen.setdefault(name, len(seen)) for name in names], dtype=np.int64)


def file_statistics(paths: Sequence[str], root: str | None = None) -> dict[str, np.ndarray]:
    """Statistics of image files read from their headers and paths, as discrete codes.

    Only the headers are read (no pixels are decoded). Sizes are those of the images shown
    upright (an EXIF quarter turn swaps width and height).

    - ``'width'``, ``'height'``: the size in pixels in 8 quantile bins;
    - ``'aspect ratio'``: ``log(width / height)`` in 8 quantile bins;
    - ``'file format'``: one code per format (``'PNG'``, ``'JPEG'``, ...);
    - ``'subfolder'``: one code per first folder below ``root`` (files directly in
      ``root`` share one code); when ``root`` is None, one code per parent folder name.

    Files that cannot be opened get a code of their own in every size statistic and in
    ``'file format'``.

    Parameters
    ----------
    paths : sequence of str
        Image files.
    root : str or None, default=None
        Folder the files were found in.

    Returns
    -------
    dict of str to ndarray of int64
        One code per path for each statistic, in the order of :data:`FILE_STATISTICS`.
    """
    paths = [os.fspath(p) for p in paths]
    if not paths:
        return {}
    headers = [_header(path) for path in paths]
    width = np.asarray([h[0] for h in headers], dtype=np.float64)
    height = np.asarray([h[1] for h in headers], dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        aspect = np.log(width / height)
    root = None if root is None else os.fspath(root)
    return {
        "width": quantile_codes(width),
        "height": quantile_codes(height),
        "aspect ratio": quantile_codes(aspect),
        "file format": _name_codes([h[2] for h in headers]),
        "subfolder": _name_codes([_subfolder(path, root) for path in paths]),
    }
