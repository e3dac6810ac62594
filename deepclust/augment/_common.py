"""Input checks and per-image random draws shared by the augmentation policies."""

from __future__ import annotations

import torch

__all__ = [
    "check_generator",
    "check_input",
    "coin_flips",
    "random_integers",
    "uniform",
]


def check_input(x: object) -> torch.Tensor:
    """Validate an augmentation input and return it as a tensor.

    Parameters
    ----------
    x : object
        Expected to be a floating-point :class:`torch.Tensor` of shape ``(B, C, H, W)``
        (images) or ``(B, D)`` (tabular features).

    Returns
    -------
    torch.Tensor
        ``x`` itself.

    Raises
    ------
    TypeError
        If ``x`` is not a tensor or not floating point.
    ValueError
        If ``x`` has neither 2 nor 4 dimensions, or has zero channels or an empty image.
    """
    if not isinstance(x, torch.Tensor):
        raise TypeError(
            f"augmentations take a torch.Tensor of shape (B, C, H, W), got {type(x).__name__}; "
            "convert with torch.as_tensor(...) first."
        )
    if not x.is_floating_point():
        raise TypeError(
            f"augmentations take a floating-point tensor with values in [0, 1], got dtype "
            f"{x.dtype}; convert uint8 images with x.float() / 255."
        )
    if x.dim() not in (2, 4):
        raise ValueError(
            f"augmentations take images of shape (B, C, H, W) or features of shape (B, D), "
            f"got a tensor of shape {tuple(x.shape)}; add a batch dimension with "
            "x.unsqueeze(0) for a single image or a channel dimension with x.unsqueeze(1) for "
            "a batch of single-channel (B, H, W) images."
        )
    if x.dim() == 4 and (x.shape[1] == 0 or x.shape[2] == 0 or x.shape[3] == 0):
        raise ValueError(
            f"images must have at least one channel and one pixel, got shape {tuple(x.shape)}."
        )
    return x


def check_generator(generator: torch.Generator | None, device: torch.device) -> None:
    """Raise a ``ValueError`` if ``generator`` lives on another device type than the input.

    Parameters
    ----------
    generator : torch.Generator or None
        The user's generator; ``None`` (torch's global one) always passes. Anything else
        that is not a :class:`torch.Generator` raises a ``TypeError``.
    device : torch.device
        The device of the input being augmented.
    """
    if generator is None:
        return
    if not isinstance(generator, torch.Generator):
        raise TypeError(
            f"generator must be a torch.Generator or None, got {type(generator).__name__}."
        )
    if generator.device.type != device.type:
        raise ValueError(
            f"generator is on device {generator.device} but the images are on {device}; "
            f"create it with torch.Generator(device={str(device)!r})."
        )


def uniform(
    size: tuple[int, ...],
    low: float | torch.Tensor,
    high: float | torch.Tensor,
    *,
    device: torch.device,
    generator: torch.Generator | None,
) -> torch.Tensor:
    """Draw float32 values uniformly from ``[low, high)`` on ``device``.

    Parameters
    ----------
    size : tuple of int
        Shape of the result.
    low, high : float or torch.Tensor
        Bounds of the interval; tensors broadcast against ``size`` (per-element bounds).
    device : torch.device
        Where the values are drawn and returned.
    generator : torch.Generator or None
        Source of randomness, on ``device``'s type; ``None`` uses torch's global generator.
    """
    values = torch.rand(size, device=device, generator=generator)
    return low + (high - low) * values


def coin_flips(
    size: int, probability: float, *, device: torch.device, generator: torch.Generator | None
) -> torch.Tensor:
    """Draw ``size`` booleans that are ``True`` with the given probability.

    Parameters
    ----------
    size : int
        Number of draws.
    probability : float
        Chance of ``True`` for each draw, in ``[0, 1]``.
    device : torch.device
        Where the values are drawn and returned.
    generator : torch.Generator or None
        Source of randomness, on ``device``'s type; ``None`` uses torch's global generator.
    """
    return torch.rand(size, device=device, generator=generator) < probability


def random_integers(
    low: torch.Tensor | int,
    high: torch.Tensor | int,
    size: int,
    *,
    device: torch.device,
    generator: torch.Generator | None,
) -> torch.Tensor:
    """Draw integers uniformly from ``[low, high]`` (inclusive), bounds possibly per element.

    Returned as float32 so that they can enter affine matrices directly.

    Parameters
    ----------
    low, high : int or torch.Tensor
        Inclusive bounds, ``low <= high``; tensors of shape ``(size,)`` give per-element
        bounds.
    size : int
        Number of draws.
    device : torch.device
        Where the values are drawn and returned.
    generator : torch.Generator or None
        Source of randomness, on ``device``'s type; ``None`` uses torch's global generator.
    """
    values = torch.rand(size, device=device, generator=generator)
    span = torch.as_tensor(high, device=device, dtype=torch.float32) - low + 1
    drawn = low + torch.floor(values * span)
    # rand() < 1 guarantees drawn <= high, but guard against float rounding anyway.
    return torch.minimum(drawn, torch.as_tensor(high, device=device, dtype=torch.float32))
