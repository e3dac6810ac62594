"""``clusters.png``: one row per cluster with its most confident images (PIL only)."""

from __future__ import annotations

import io
from collections.abc import Callable

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from deepclust.data._decode import upright

__all__ = ["CLUSTERS_PER_PAGE", "MAX_PAGES", "render_montage_pages", "representatives"]

#: Rows (clusters) per montage image; more clusters go on further pages.
CLUSTERS_PER_PAGE = 50
#: At most this many pages are drawn (``MAX_PAGES * CLUSTERS_PER_PAGE`` clusters).
MAX_PAGES = 10

_LABEL_WIDTH = 120
_PAD = 2
_BACKGROUND = (255, 255, 255)
_EMPTY_TILE = (235, 235, 235)


def _font(size: int) -> ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: fixed bitmap font
        return ImageFont.load_default()


def representatives(
    labels: np.ndarray, confidence: np.ndarray, n_clusters: int, per_cluster: int
) -> list[np.ndarray]:
    """Indices of the ``per_cluster`` most confident members of every cluster (best first).

    Parameters
    ----------
    labels : ndarray of int of shape (n_samples,)
        Each sample's cluster.
    confidence : ndarray of float of shape (n_samples,)
        The probability of each sample's label; ties keep the sample order.
    n_clusters : int
        Clusters ``0`` to ``n_clusters - 1``; an empty one gets an empty array.
    per_cluster : int
        The most members returned per cluster.
    """
    out = []
    for cluster in range(n_clusters):
        members = np.flatnonzero(labels == cluster)
        order = np.argsort(-confidence[members], kind="stable")
        out.append(members[order[:per_cluster]])
    return out


def _tile(image: Image.Image, size: int) -> Image.Image:
    """``image``, upright, fitted into a ``size`` x ``size`` square (pixelated when enlarged a lot).

    Images opened straight from files are turned as their EXIF orientation tag says.
    """
    image = upright(image).convert("RGB")
    scale = size / max(image.size)
    new_size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    method = Image.Resampling.NEAREST if scale >= 2 else Image.Resampling.BILINEAR
    image = image.resize(new_size, method)
    tile = Image.new("RGB", (size, size), _BACKGROUND)
    tile.paste(image, ((size - new_size[0]) // 2, (size - new_size[1]) // 2))
    return tile


def render_montage_pages(
    labels: np.ndarray,
    confidence: np.ndarray,
    n_clusters: int,
    thumbnails: Callable[[np.ndarray], list[Image.Image]],
    *,
    per_cluster: int = 12,
    tile_size: int = 48,
    progress=None,
    order=None,
    max_pages: int = MAX_PAGES,
) -> tuple[list[bytes], int]:
    """Draw the montage as PNG pages.

    Parameters
    ----------
    labels, confidence : ndarray of shape (n_samples,)
        Each sample's cluster and the probability of that label, which orders its members.
    n_clusters : int
        Clusters drawn, empty ones included (at most ``CLUSTERS_PER_PAGE * MAX_PAGES``).
    thumbnails : callable
        ``thumbnails(indices) -> list of PIL images``.
    per_cluster : int
        Images shown per cluster (its most confident members).
    tile_size : int
        Side of each image tile in pixels.
    progress : tqdm-like, optional
        Advanced by one per cluster drawn.
    order : sequence of int, optional
        The clusters to draw, in this order (default: all, by label).
    max_pages : int, default=MAX_PAGES
        At most this many pages are drawn.

    Returns
    -------
    pages : list of bytes
        PNG files, :data:`CLUSTERS_PER_PAGE` clusters each.
    n_hidden : int
        Clusters left out beyond ``max_pages`` pages.
    """
    labels = np.asarray(labels)
    sizes = np.bincount(labels, minlength=n_clusters)
    picks = representatives(labels, np.asarray(confidence), n_clusters, per_cluster)
    order = list(range(n_clusters)) if order is None else [int(c) for c in order]
    shown = min(len(order), CLUSTERS_PER_PAGE * max_pages)
    font, small = _font(15), _font(12)
    row_height = tile_size + 2 * _PAD
    width = _LABEL_WIDTH + per_cluster * (tile_size + _PAD) + _PAD
    pages = []
    for first in range(0, shown, CLUSTERS_PER_PAGE):
        clusters = order[first : min(first + CLUSTERS_PER_PAGE, shown)]
        canvas = Image.new("RGB", (width, row_height * len(clusters)), _BACKGROUND)
        draw = ImageDraw.Draw(canvas)
        for row, cluster in enumerate(clusters):
            top = row * row_height
            if row % 2:
                draw.rectangle([0, top, width, top + row_height - 1], fill=(246, 246, 250))
            draw.text((8, top + _PAD + 2), f"cluster {cluster}", fill=(0, 0, 0), font=font)
            share = 100.0 * sizes[cluster] / max(1, len(labels))
            draw.text(
                (8, top + _PAD + 22),
                f"{sizes[cluster]} images ({share:.1f}%)",
                fill=(80, 80, 80),
                font=small,
            )
            images = thumbnails(picks[cluster]) if len(picks[cluster]) else []
            for column in range(per_cluster):
                left = _LABEL_WIDTH + column * (tile_size + _PAD)
                if column < len(images):
                    canvas.paste(_tile(images[column], tile_size), (left, top + _PAD))
                else:
                    draw.rectangle(
                        [left, top + _PAD, left + tile_size - 1, top + _PAD + tile_size - 1],
                        fill=_EMPTY_TILE,
                    )
            if progress is not None:
                progress.update(1)
        buffer = io.BytesIO()
        canvas.save(buffer, format="PNG", optimize=True)
        pages.append(buffer.getvalue())
    return pages, len(order) - shown
