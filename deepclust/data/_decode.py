"""Decoding image files to upright 8-bit images: EXIF orientation, bit depth and colour."""

from __future__ import annotations

import re
import threading
import warnings

import numpy as np
from PIL import ExifTags, Image, ImageOps

__all__ = ["GREY_MODES", "draft_jpeg", "is_colour_mode", "open_image", "read_image", "upright"]

#: PIL modes of images without colour (grey levels, with or without alpha).
GREY_MODES = frozenset({"1", "L", "LA", "La", "I", "I;16", "I;16L", "I;16B", "I;16N", "F"})

# PIL's integer modes wider than 8 bits.
_WIDE_INTEGER_MODES = frozenset({"I", "I;16", "I;16L", "I;16B", "I;16N"})

_OPEN_LOCK = threading.Lock()


def is_colour_mode(mode: str) -> bool:
    """Whether images of a PIL mode can hold colour (palette images count as colour).

    Parameters
    ----------
    mode : str
        A PIL mode such as ``'L'``, ``'RGB'`` or ``'I;16'``.

    Returns
    -------
    bool
        False for the grey modes of :data:`GREY_MODES`, True otherwise.
    """
    return mode not in GREY_MODES


def open_image(path: str) -> Image.Image:
    """Open an image lazily, refusing decompression bombs with an error.

    PIL only warns between 1x and 2x its ``MAX_IMAGE_PIXELS``; the warning is turned into
    an error here. ``warnings.catch_warnings`` changes process-wide state, so the (cheap,
    header-only) open is serialised; decoding happens outside the lock, in parallel.

    Parameters
    ----------
    path : str
        Image file.

    Returns
    -------
    PIL.Image.Image
        The opened image, its pixels not yet decoded.
    """
    with _OPEN_LOCK, warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        return Image.open(path)


def _stored_integer_max(image: Image.Image) -> int:
    """Largest value of the integer type the pixels of a wide integer image are stored in.

    PIL holds 16-bit images as ``I;16*`` or (some versions, for PNG) as 32-bit ``I``; the
    stored type is read from the decoder's raw mode (e.g. ``I;16B``, ``I;32S``), which is
    only known before the pixels are loaded, then from TIFF tags. Unknown: 32-bit signed,
    the type PIL's ``I`` mode holds.
    """
    if image.mode.startswith("I;16"):
        return 65535
    bits, signed = 32, True
    tile = getattr(image, "tile", None) or []
    args = tile[0][3] if tile and len(tile[0]) > 3 else None
    rawmode = args if isinstance(args, str) else (args[0] if args else None)
    match = re.fullmatch(r"I;(\d+)(\w*)", rawmode) if isinstance(rawmode, str) else None
    if match:
        bits, signed = int(match.group(1)), "S" in match.group(2)
    elif hasattr(image, "tag_v2") and 258 in image.tag_v2:
        bits = int(np.ravel(image.tag_v2[258])[0])
        signed = image.tag_v2.get(339, 1) in (2, (2,))
    return 2 ** (bits - int(signed)) - 1


def _unit_floats(values: np.ndarray) -> np.ndarray:
    """Float pixels in ``[0, 1]``: kept when already there, else min-max scaled."""
    finite = np.isfinite(values)
    if not finite.any():
        return np.zeros(values.shape, np.float64)
    low, high = float(values[finite].min()), float(values[finite].max())
    values = np.where(finite, values, low).astype(np.float64)
    if low >= 0.0 and high <= 1.0:
        return values
    if high > low:
        return (values - low) / (high - low)
    return np.clip(values, 0.0, 1.0)


def _to_eight_bits(image: Image.Image, integer_max: int | None) -> Image.Image:
    """``image`` with wide integer (``I``, ``I;16*``) or float (``F``) pixels as 8-bit ``L``."""
    if image.mode == "F":
        values = _unit_floats(np.asarray(image, dtype=np.float32))
    elif image.mode in _WIDE_INTEGER_MODES:
        values = np.clip(np.asarray(image).astype(np.float64) / integer_max, 0.0, 1.0)
    else:
        return image
    return Image.fromarray(np.round(values * 255.0).astype(np.uint8))


def upright(image: Image.Image) -> Image.Image:
    """``image`` turned as its EXIF orientation tag says (unchanged when it has none).

    An EXIF block that cannot be parsed is ignored: the pixels are shown as stored.

    Parameters
    ----------
    image : PIL.Image.Image
        An image, opened from a file or made in memory.

    Returns
    -------
    PIL.Image.Image
        A turned copy, or ``image`` itself when no turn is needed.
    """
    try:
        if image.getexif().get(ExifTags.Base.Orientation, 1) == 1:
            return image
        return ImageOps.exif_transpose(image)
    except Exception:  # noqa: BLE001 - malformed EXIF data; the pixels themselves are fine
        return image


#: EXIF orientations that turn the image a quarter (width and height swap when applied).
_QUARTER_TURNS = frozenset({5, 6, 7, 8})


def _draft_request(image: Image.Image, size: tuple[int, int]) -> tuple[int, int] | None:
    """``(width, height)`` to ask a JPEG's decoder for, as stored (before the EXIF turn),
    when the file is at least twice ``size`` (``(H, W)``, upright) on both sides; else None.
    """
    height, width = int(size[0]), int(size[1])
    try:
        orientation = image.getexif().get(ExifTags.Base.Orientation, 1)
    except Exception:  # noqa: BLE001 - malformed EXIF data is ignored, as by upright()
        orientation = 1
    if orientation in _QUARTER_TURNS:
        height, width = width, height
    if width < 1 or height < 1 or image.width < 2 * width or image.height < 2 * height:
        return None
    return width, height


def draft_jpeg(image: Image.Image, size: tuple[int, int] | None, grey: bool = False) -> bool:
    """Let libjpeg decode an opened, not yet loaded, JPEG at 1/2, 1/4 or 1/8 scale.

    Nothing is done unless ``image`` is a JPEG at least twice ``size`` on both sides. The
    scale is the smallest that keeps both sides at least ``size`` (PIL's ``draft``), so the
    image is then resized down to ``size`` as a full decode would be. ``size`` is upright:
    for EXIF orientations that turn a quarter, width and height are swapped before asking.

    Parameters
    ----------
    image : PIL.Image.Image
        An image opened from a file, its pixels not yet decoded.
    size : tuple of int or None
        ``(H, W)`` the upright image will be resized to; ``None`` does nothing.
    grey : bool, default=False
        Decode a colour (YCbCr) JPEG straight to grey (``L``), its luma channel.

    Returns
    -------
    bool
        Whether a reduced decode was asked for.
    """
    if size is None or image.format != "JPEG" or image.mode not in ("RGB", "L"):
        return False
    request = _draft_request(image, size)
    if request is None:
        return False
    image.draft("L" if grey else image.mode, request)
    return True


def read_image(
    path: str, size: tuple[int, int] | None = None, grey: bool = False
) -> tuple[Image.Image, str]:
    """Decode an image file, upright and with 8-bit channels.

    The EXIF orientation tag is applied. Images with more than 8 bits per channel become
    8-bit grey (``L``) images:

    - 16-bit integer images (``I;16``, ``I;16B``, ``I;16L``) are divided by 65535;
    - 32-bit integer images (``I``) by the largest value of the integer type the file
      stores them in (65535 for 16-bit PNGs that PIL reads as ``I``, 2**31 - 1 for signed
      32-bit TIFFs); negative values of signed types become 0;
    - float images (``F``) are kept when their values lie in ``[0, 1]``, and otherwise
      scaled from their own minimum to their own maximum, image by image (non-finite
      values count as the minimum).

    Other images keep their mode (``L``, ``RGB``, ``RGBA``, ``P``, ...).

    With ``size``, JPEG files at least twice that size on both sides are decoded by libjpeg
    at a reduced scale (1/2, 1/4 or 1/8, never below ``size``; see :func:`draft_jpeg`), so
    the image returned is smaller than the file but still at least ``size``: resize it to
    ``size`` afterwards.

    Parameters
    ----------
    path : str
        Image file.
    size : tuple of int, optional
        ``(H, W)`` the upright image will be resized to, when known.
    grey : bool, default=False
        With ``size``: a colour JPEG decoded at reduced scale comes out grey (``L``).

    Returns
    -------
    image : PIL.Image.Image
        The decoded image, in memory.
    mode : str
        The PIL mode the file was read in, before any conversion (see
        :func:`is_colour_mode`).
    """
    with open_image(path) as image:
        mode = image.mode
        integer_max = _stored_integer_max(image) if mode in _WIDE_INTEGER_MODES else None
        draft_jpeg(image, size, grey)
        image.load()
        return _to_eight_bits(upright(image), integer_max), mode
