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
_LEGEND_HEIGHT = 24


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


def _class_colour(index: int) -> tuple[int, int, int]:
    from deepclust.cli._known_classes import CLASS_PALETTE

    return CLASS_PALETTE[int(index) % len(CLASS_PALETTE)]


def _draw_legend(canvas: Image.Image, class_names: list[str], font: ImageFont.ImageFont) -> None:
    """The class colours and names along the top ``_LEGEND_HEIGHT`` pixels of ``canvas``."""
    draw = ImageDraw.Draw(canvas)
    left = 8
    for index, name in enumerate(class_names):
        draw.rectangle([left, 6, left + 12, 18], fill=_class_colour(index))
        draw.text((left + 16, 5), name, fill=(0, 0, 0), font=font)
        left += 16 + int(draw.textlength(name, font=font)) + 14
        if left > canvas.width - 40:
            break


def _draw_row(
    canvas: Image.Image,
    top: int,
    cluster: int,
    images: list,
    members: np.ndarray,
    sizes: np.ndarray,
    n_samples: int,
    classes: np.ndarray | None,
    fonts: tuple,
    geometry: tuple[int, int, int],
) -> None:
    """One cluster's row: its name, size (and purity) and its tiles, framed by class."""
    tile_size, per_cluster, width = geometry
    font, small = fonts
    draw = ImageDraw.Draw(canvas)
    draw.text((8, top + _PAD + 2), f"cluster {cluster}", fill=(0, 0, 0), font=font)
    share = 100.0 * sizes[cluster] / max(1, n_samples)
    draw.text(
        (8, top + _PAD + 22),
        f"{sizes[cluster]} images ({share:.1f}%)",
        fill=(80, 80, 80),
        font=small,
    )
    if classes is not None and sizes[cluster]:
        member_classes = classes[np.asarray(members, dtype=np.int64)]
        purity = np.bincount(member_classes).max() / len(member_classes)
        draw.text(
            (8, top + _PAD + 36), f"purity {100 * purity:.0f}%", fill=(80, 80, 80), font=small
        )
    for column in range(per_cluster):
        left = _LABEL_WIDTH + column * (tile_size + _PAD)
        box = [left, top + _PAD, left + tile_size - 1, top + _PAD + tile_size - 1]
        if column < len(images):
            canvas.paste(_tile(images[column], tile_size), (left, top + _PAD))
            if classes is not None:
                colour = _class_colour(classes[int(members[column])])
                draw.rectangle(box, outline=colour, width=max(2, tile_size // 16))
        else:
            draw.rectangle(box, fill=_EMPTY_TILE)


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
    classes: np.ndarray | None = None,
    class_names: list[str] | None = None,
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
    classes : ndarray of int of shape (n_samples,), optional
        Known classes (indices into ``class_names``): every tile is framed in its class's
        colour, each row gives its cluster's purity and each page starts with a legend.
    class_names : list of str, optional
        Names of the classes, for the legend.

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
    fonts = (_font(15), _font(12))
    row_height = tile_size + 2 * _PAD
    width = _LABEL_WIDTH + per_cluster * (tile_size + _PAD) + _PAD
    header = _LEGEND_HEIGHT if classes is not None else 0
    pages = []
    for first in range(0, shown, CLUSTERS_PER_PAGE):
        clusters = order[first : min(first + CLUSTERS_PER_PAGE, shown)]
        canvas = Image.new("RGB", (width, header + row_height * len(clusters)), _BACKGROUND)
        if classes is not None:
            _draw_legend(canvas, list(class_names or []), fonts[1])
        for row, cluster in enumerate(clusters):
            top = header + row * row_height
            if row % 2:
                ImageDraw.Draw(canvas).rectangle(
                    [0, top, width, top + row_height - 1], fill=(246, 246, 250)
                )
            images = thumbnails(picks[cluster]) if len(picks[cluster]) else []
            _draw_row(
                canvas,
                top,
                cluster,
                images,
                picks[cluster],
                sizes,
                len(labels),
                classes,
                fonts,
                (tile_size, per_cluster, width),
            )
            if progress is not None:
                progress.update(1)
        buffer = io.BytesIO()
        canvas.save(buffer, format="PNG", optimize=True)
        pages.append(buffer.getvalue())
    return pages, len(order) - shown
