"""Batched photometric operations with one parameter per image.

Every function takes ``(N, C, H, W)`` float images with values in ``[0, 1]`` and, where it
has a parameter, a tensor of ``N`` values (one per image) on the same device, and returns new
images with values in ``[0, 1]``. Functions follow the conventions of
:mod:`torchvision.transforms.v2.functional` (ITU-R 601-2 luma weights for grayscale, blends with a
degenerate image for brightness/contrast/saturation/sharpness, HSV for hue).

Channel handling: with three or more channels the first three are RGB and the others
("extra" channels, e.g. alpha or depth) are left untouched by photometric operations; with
one or two channels every channel is an intensity channel, and the colour-only operations
(saturation, hue, grayscale) leave the images unchanged.
"""

from __future__ import annotations

import torch

__all__ = [
    "adjust_brightness",
    "adjust_contrast",
    "adjust_hue",
    "adjust_saturation",
    "adjust_sharpness",
    "autocontrast",
    "equalize",
    "posterize",
    "random_grayscale",
    "solarize",
]

_LUMA = (0.2989, 0.587, 0.114)  # as torchvision.transforms.v2.functional.rgb_to_grayscale


def _per_image(values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return values.to(like.dtype).view(-1, 1, 1, 1)


def _split(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Split into the channels photometric ops act on and the untouched extra channels."""
    if images.shape[1] > 3:
        return images[:, :3], images[:, 3:]
    return images, None


def _join(colour: torch.Tensor, extra: torch.Tensor | None) -> torch.Tensor:
    return colour if extra is None else torch.cat([colour, extra], dim=1)


def _luma(rgb: torch.Tensor) -> torch.Tensor:
    weights = torch.tensor(_LUMA, device=rgb.device, dtype=rgb.dtype)
    return torch.einsum("nchw,c->nhw", rgb, weights).unsqueeze(1)


def _blend(images: torch.Tensor, degenerate: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """``factor * images + (1 - factor) * degenerate``, clamped to ``[0, 1]``."""
    weight = _per_image(factor, images)
    return torch.addcmul(degenerate, images - degenerate, weight).clamp_(0.0, 1.0)


def adjust_brightness(images: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """Multiply intensities by ``factor`` (1 leaves the image unchanged).

    Parameters
    ----------
    images : torch.Tensor of shape (N, C, H, W)
        Float images with values in ``[0, 1]``.
    factor : torch.Tensor of shape (N,)
        Brightness factor per image, ``>= 0``; 0 gives black images.
    """
    colour, extra = _split(images)
    return _join((colour * _per_image(factor, colour)).clamp_(0.0, 1.0), extra)


def adjust_contrast(images: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """Blend with the image's mean (grayscale) intensity; 1 leaves it unchanged, 0 is flat.

    Parameters
    ----------
    images : torch.Tensor of shape (N, C, H, W)
        Float images with values in ``[0, 1]``.
    factor : torch.Tensor of shape (N,)
        Contrast factor per image, ``>= 0``; above 1 increases the contrast.
    """
    colour, extra = _split(images)
    channel_means = colour.mean(dim=(2, 3))
    if colour.shape[1] == 3:
        weights = torch.tensor(_LUMA, device=colour.device, dtype=colour.dtype)
        mean = channel_means @ weights  # mean of the luma image, without computing it
    else:
        mean = channel_means.mean(dim=1)
    return _join(_blend(colour, mean.view(-1, 1, 1, 1), factor), extra)


def adjust_saturation(images: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """Blend RGB images with their grayscale version; no-op for fewer than 3 channels.

    Parameters
    ----------
    images : torch.Tensor of shape (N, C, H, W)
        Float images with values in ``[0, 1]``.
    factor : torch.Tensor of shape (N,)
        Saturation factor per image, ``>= 0``; 0 gives grayscale, above 1 oversaturates.
    """
    colour, extra = _split(images)
    if colour.shape[1] != 3:
        return images
    return _join(_blend(colour, _luma(colour), factor), extra)


def adjust_hue(images: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """Rotate the HSV hue by ``shift`` turns (one per image); no-op for < 3 channels.

    Only the hue changes: each pixel keeps its maximum (value) and its chroma
    (maximum - minimum), exactly as with a round trip through HSV.

    Parameters
    ----------
    images : torch.Tensor of shape (N, C, H, W)
        Float images with values in ``[0, 1]``.
    shift : torch.Tensor of shape (N,)
        Hue rotation per image, in turns (1 is a full turn; usually in ``[-0.5, 0.5]``).
    """
    colour, extra = _split(images)
    if colour.shape[1] != 3:
        return images
    red, green, blue = colour.unbind(dim=1)
    value = torch.maximum(torch.maximum(red, green), blue)
    chroma = value - torch.minimum(torch.minimum(red, green), blue)
    inverse_chroma = chroma.clamp_min(1e-12).reciprocal_()
    # Hue in sixths of a turn, from the channel holding the maximum (grey pixels: any hue).
    sector = torch.where(
        value == red,
        (green - blue) * inverse_chroma,
        torch.where(
            value == green,
            2.0 + (blue - red) * inverse_chroma,
            4.0 + (red - green) * inverse_chroma,
        ),
    )
    sector += 6.0 * shift.to(colour.dtype).view(-1, 1, 1)
    # HSV -> RGB: channel n (centred at hue 0, 2, 4 sixths for R, G, B) loses chroma * ramp,
    # with ramp = clamp(circular distance from its centre - 1, 0, 1).
    offsets = torch.tensor([3.0, 1.0, -1.0], device=colour.device, dtype=colour.dtype)
    ramp = torch.remainder(sector.unsqueeze(1) + offsets.view(1, 3, 1, 1), 6.0)
    ramp = ramp.sub_(3.0).abs_().sub_(1.0).clamp_(0.0, 1.0)
    rgb = value.unsqueeze(1) - chroma.unsqueeze(1) * ramp
    return _join(rgb.clamp_(0.0, 1.0), extra)


def random_grayscale(images: torch.Tensor, selected: torch.Tensor) -> torch.Tensor:
    """Replace the RGB channels of the ``selected`` images (boolean, one per image) by luma.

    Parameters
    ----------
    images : torch.Tensor of shape (N, C, H, W)
        Float images with values in ``[0, 1]``.
    selected : torch.Tensor of shape (N,)
        Boolean mask of the images made grayscale.
    """
    colour, extra = _split(images)
    if colour.shape[1] != 3:
        return images
    grey = _luma(colour).expand_as(colour)
    return _join(torch.where(selected.view(-1, 1, 1, 1), grey, colour), extra)


def autocontrast(images: torch.Tensor) -> torch.Tensor:
    """Stretch each channel of each image to span ``[0, 1]`` (flat channels are unchanged).

    Parameters
    ----------
    images : torch.Tensor of shape (N, C, H, W)
        Float images with values in ``[0, 1]``.
    """
    colour, extra = _split(images)
    low = colour.amin(dim=(2, 3), keepdim=True)
    high = colour.amax(dim=(2, 3), keepdim=True)
    flat = high <= low
    scale = torch.where(flat, 1.0, 1.0 / torch.where(flat, 1.0, high - low))
    low = torch.where(flat, 0.0, low)
    return _join(((colour - low) * scale).clamp_(0.0, 1.0), extra)


def equalize(images: torch.Tensor) -> torch.Tensor:
    """Histogram-equalise each channel of each image on 256 levels (as PIL does).

    Parameters
    ----------
    images : torch.Tensor of shape (N, C, H, W)
        Float images with values in ``[0, 1]``.
    """
    colour, extra = _split(images)
    n, c, h, w = colour.shape
    levels = torch.round(colour.clamp(0.0, 1.0) * 255.0).long().view(n * c, h * w)
    rows = torch.arange(n * c, device=colour.device).view(-1, 1)
    histogram = torch.bincount((levels + 256 * rows).view(-1), minlength=n * c * 256)
    histogram = histogram.view(n * c, 256)
    # The count of the highest level present is excluded from the step, as in PIL.
    last_level = 255 - torch.argmax(histogram.flip(1).gt(0).to(torch.uint8), dim=1)
    last_count = histogram.gather(1, last_level.view(-1, 1)).squeeze(1)
    step = torch.div(h * w - last_count, 255, rounding_mode="floor")
    safe_step = step.clamp(min=1).view(-1, 1)
    cumulative = torch.cumsum(histogram, dim=1)
    lut = torch.div(
        cumulative + torch.div(safe_step, 2, rounding_mode="floor"),
        safe_step,
        rounding_mode="floor",
    )
    lut = torch.cat([torch.zeros_like(lut[:, :1]), lut[:, :-1]], dim=1).clamp_(0, 255)
    equalised = torch.gather(lut, 1, levels).to(colour.dtype) / 255.0
    unchanged = (step == 0).view(-1, 1)
    out = torch.where(unchanged, colour.reshape(n * c, h * w), equalised).view(n, c, h, w)
    return _join(out, extra)


def adjust_sharpness(images: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """Blend with a 3x3-smoothed copy (border pixels kept); >1 sharpens, <1 blurs.

    Parameters
    ----------
    images : torch.Tensor of shape (N, C, H, W)
        Float images with values in ``[0, 1]``.
    factor : torch.Tensor of shape (N,)
        Sharpness factor per image, ``>= 0``; 1 leaves the image unchanged. Images smaller
        than 3x3 are returned unchanged.
    """
    colour, extra = _split(images)
    n, c, h, w = colour.shape
    if h < 3 or w < 3:
        return images
    # PIL's smoothing kernel: centre weight 5, its 8 neighbours weight 1, normalised by 13.
    row_sums = colour[:, :, :-2] + colour[:, :, 1:-1] + colour[:, :, 2:]
    window_sums = row_sums[..., :-2] + row_sums[..., 1:-1] + row_sums[..., 2:]
    smoothed = colour.clone()
    smoothed[:, :, 1:-1, 1:-1] = (window_sums + 4.0 * colour[:, :, 1:-1, 1:-1]) / 13.0
    return _join(_blend(colour, smoothed, factor), extra)


def solarize(images: torch.Tensor, threshold: torch.Tensor) -> torch.Tensor:
    """Invert intensities at or above ``threshold`` (one per image).

    Parameters
    ----------
    images : torch.Tensor of shape (N, C, H, W)
        Float images with values in ``[0, 1]``.
    threshold : torch.Tensor of shape (N,)
        Intensity per image in ``[0, 1]`` from which pixels are inverted; above 1 changes
        nothing.
    """
    colour, extra = _split(images)
    above = colour >= _per_image(threshold, colour)
    return _join(torch.where(above, 1.0 - colour, colour), extra)


def posterize(images: torch.Tensor, bits: torch.Tensor) -> torch.Tensor:
    """Keep the ``bits`` (1 to 8, one per image) most significant bits of 8-bit intensities.

    Parameters
    ----------
    images : torch.Tensor of shape (N, C, H, W)
        Float images with values in ``[0, 1]``.
    bits : torch.Tensor of shape (N,)
        Bits kept per image, integers from 1 to 8 (8 only rounds to 256 levels).
    """
    colour, extra = _split(images)
    step = _per_image(torch.pow(2.0, 8.0 - bits.float()), colour)
    levels = torch.round(colour * 255.0)
    return _join(torch.floor(levels / step) * step / 255.0, extra)
