"""A generated colour image data set whose classes are shapes and whose colours are noise."""

from __future__ import annotations

import numpy as np
from sklearn.utils import check_random_state

__all__ = ["make_shapes", "SHAPE_NAMES"]

#: Class names of :func:`make_shapes`, in label order.
SHAPE_NAMES = (
    "disk",
    "square",
    "triangle",
    "plus",
    "ring",
    "diamond",
    "star",
    "crescent",
)

# Smallest Euclidean distance (0..255 RGB) between an image's foreground and background.
_MIN_COLOUR_DISTANCE = 120.0
_NOISE_STD = 8.0
_SIZE_RANGE = (0.45, 0.85)
# Images rendered at once; bounds the memory of the float32 work arrays.
_CHUNK = 1024


def _box(ux: np.ndarray, uy: np.ndarray, half_x: float, half_y: float) -> np.ndarray:
    """Signed distance to an axis-aligned box centred on the origin."""
    qx = np.abs(ux) - half_x
    qy = np.abs(uy) - half_y
    outside = np.hypot(np.maximum(qx, 0), np.maximum(qy, 0))
    return outside + np.minimum(np.maximum(qx, qy), 0)


def _disk(ux: np.ndarray, uy: np.ndarray) -> np.ndarray:
    return np.hypot(ux, uy) - 1


def _square(ux: np.ndarray, uy: np.ndarray) -> np.ndarray:
    return _box(ux, uy, 0.7, 0.7)


def _triangle(ux: np.ndarray, uy: np.ndarray) -> np.ndarray:
    """Equilateral triangle inscribed in the unit circle (apothem 0.5): the largest
    distance to its three edge lines, exact inside and a lower bound outside."""
    angles = 2 * np.pi * np.arange(3) / 3
    edges = [np.cos(a) * ux + np.sin(a) * uy for a in angles]
    return np.maximum(np.maximum(edges[0], edges[1]), edges[2]) - 0.5


def _plus(ux: np.ndarray, uy: np.ndarray) -> np.ndarray:
    return np.minimum(_box(ux, uy, 0.95, 0.3), _box(ux, uy, 0.3, 0.95))


def _ring(ux: np.ndarray, uy: np.ndarray) -> np.ndarray:
    """Annulus between radii 0.55 and 1."""
    return np.abs(np.hypot(ux, uy) - 0.775) - 0.225


def _diamond(ux: np.ndarray, uy: np.ndarray) -> np.ndarray:
    """Rhombus with half-diagonals 1 and 0.55; elongated, so no rotation of the square
    looks like it."""
    a, b = 1.0, 0.55
    return (np.abs(ux) / a + np.abs(uy) / b - 1) / np.hypot(1 / a, 1 / b)


def _star(ux: np.ndarray, uy: np.ndarray) -> np.ndarray:
    """Five-point star with outer radius 1 and inner radius 0.45.

    The angle is folded onto the sector between an outer vertex (angle 0) and the next
    inner vertex (angle pi/5), where the boundary is one segment; the signed distance to
    that segment's line is exact away from the vertices.
    """
    sector = 2 * np.pi / 5
    phi = np.mod(np.arctan2(uy, ux), sector)
    phi = np.minimum(phi, sector - phi)
    rho = np.hypot(ux, uy)
    px, py = rho * np.cos(phi), rho * np.sin(phi)
    inner = 0.45
    bx, by = inner * np.cos(sector / 2), inner * np.sin(sector / 2)
    # Unit normal of the edge from (1, 0) to (bx, by), pointing away from the origin.
    nx, ny = by, 1 - bx
    norm = np.hypot(nx, ny)
    return ((px - 1) * nx + py * ny) / norm


def _crescent(ux: np.ndarray, uy: np.ndarray) -> np.ndarray:
    """The unit disk less a disk of radius 0.85 centred at (0.45, 0)."""
    return np.maximum(np.hypot(ux, uy) - 1, 0.85 - np.hypot(ux - 0.45, uy))


_SHAPES = (_disk, _square, _triangle, _plus, _ring, _diamond, _star, _crescent)


def _colours(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Uniform background and foreground RGB colours, the foreground re-drawn until it is
    farther than ``_MIN_COLOUR_DISTANCE`` from the background."""
    background = rng.integers(0, 256, size=(n, 3)).astype(np.float32)
    foreground = rng.integers(0, 256, size=(n, 3)).astype(np.float32)
    close = np.linalg.norm(foreground - background, axis=1) <= _MIN_COLOUR_DISTANCE
    while close.any():
        foreground[close] = rng.integers(0, 256, size=(int(close.sum()), 3))
        close = np.linalg.norm(foreground - background, axis=1) <= _MIN_COLOUR_DISTANCE
    return background, foreground


def _coverage(
    labels: np.ndarray,
    centres: np.ndarray,
    radii: np.ndarray,
    angles: np.ndarray,
    image_size: int,
) -> np.ndarray:
    """Fraction of each pixel the shape covers, shape ``(n, image_size, image_size)``.

    Pixel centres are mapped into each shape's frame (unit radius, rotated), the shape's
    signed distance is scaled back to pixels, and a one-pixel ramp across the boundary
    antialiases the edge.
    """
    grid = np.arange(image_size, dtype=np.float32) + 0.5
    dx = grid[None, None, :] - centres[:, 0, None, None]
    dy = grid[None, :, None] - centres[:, 1, None, None]
    cos = np.cos(angles)[:, None, None]
    sin = np.sin(angles)[:, None, None]
    scale = radii[:, None, None]
    ux = (cos * dx + sin * dy) / scale
    uy = (cos * dy - sin * dx) / scale
    distance = np.empty_like(ux)
    for label, shape in enumerate(_SHAPES):
        rows = labels == label
        if rows.any():
            distance[rows] = shape(ux[rows], uy[rows]) * scale[rows]
    return np.clip(0.5 - distance, 0, 1)


def make_shapes(
    n_samples: int = 5000,
    *,
    image_size: int = 32,
    random_state: int | np.random.RandomState | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Generate colour images of eight filled shapes on random backgrounds.

    A clustering benchmark whose classes are shapes (disk, square, triangle, plus, ring,
    diamond, five-point star, crescent; see ``SHAPE_NAMES``) while everything else is a
    nuisance drawn independently for each image: a uniform RGB background colour, a
    uniform RGB foreground colour farther than 120 (Euclidean, 0..255 RGB) from it, a
    shape size of 45-85 % of the image side, a centre that keeps the shape inside the
    image, and a uniform rotation. Gaussian pixel noise (standard deviation 8) is added
    and the result clipped. Colour dominates the raw pixels, so clustering them (e.g.
    k-means) scores near chance.

    Parameters
    ----------
    n_samples : int, default=5000
        Number of images. Classes are balanced: ``n_samples // 8`` images each, the
        remainder given one more to the first classes; the order is shuffled.
    image_size : int, default=32
        Height and width of the images in pixels.
    random_state : int, RandomState instance or None, default=None
        Determines every random draw; an int gives the same images on every call.

    Returns
    -------
    X : numpy.ndarray of shape (n_samples, image_size, image_size, 3), dtype uint8
        RGB images.
    y : numpy.ndarray of shape (n_samples,), dtype int64
        Shape labels in ``0..7``, indexing ``SHAPE_NAMES``.
    """
    if n_samples < 0:
        raise ValueError(f"n_samples must be >= 0, got {n_samples}.")
    if image_size < 4:
        raise ValueError(f"image_size must be >= 4, got {image_size}.")
    seed = check_random_state(random_state).randint(np.iinfo(np.int32).max)
    rng = np.random.default_rng(seed)
    y = rng.permutation(np.arange(n_samples, dtype=np.int64) % len(_SHAPES))
    background, foreground = _colours(n_samples, rng)
    radii = (rng.uniform(*_SIZE_RANGE, size=n_samples) * image_size / 2).astype(np.float32)
    # Every shape lies inside its unit circle, so a centre at least one radius from each
    # border keeps it inside the image at any rotation.
    free = (image_size - 2 * radii)[:, None]
    centres = (radii[:, None] + rng.uniform(size=(n_samples, 2)) * free).astype(np.float32)
    angles = rng.uniform(0, 2 * np.pi, size=n_samples).astype(np.float32)
    X = np.empty((n_samples, image_size, image_size, 3), dtype=np.uint8)
    for start in range(0, n_samples, _CHUNK):
        part = slice(start, start + _CHUNK)
        alpha = _coverage(y[part], centres[part], radii[part], angles[part], image_size)
        alpha = alpha[..., None]
        bg = background[part, None, None, :]
        fg = foreground[part, None, None, :]
        image = bg + alpha * (fg - bg)
        image += rng.standard_normal(image.shape, dtype=np.float32) * _NOISE_STD
        X[part] = np.rint(np.clip(image, 0, 255))
    return X, y
