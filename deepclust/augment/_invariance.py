"""Declared invariances: what a user says must not matter, and the augmentation it adds.

An invariance is one of :data:`INVARIANCES`. Each adds random transforms to every
augmentation a method applies (pretext, consistency and pseudo-label steps alike), so the
network learns to ignore that property; ``'colour'``, ``'background'`` and
``'brightness'`` also change the network's input (see
:class:`deepclust.networks.InvariantInput`), because augmentation alone does not remove
them.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
from torch import nn

from . import _color as color
from ._common import coin_flips, uniform
from ._geometric import identity_matrices, rotation_matrices, warp_affine

__all__ = [
    "INVARIANCES",
    "InvarianceAugmentation",
    "check_invariances",
    "with_invariances",
]

#: Every value ``invariant_to`` accepts, with the random transforms it adds to training.
INVARIANCES: dict[str, str] = {
    "colour": "random hue, channel order, saturation, greyscale and inversion",
    "background": "random brightness and contrast of the whole image",
    "brightness": "random brightness (0.4-1.6), contrast (0.4-1.6) and gamma (0.5-2)",
    "rotation": "a uniformly random rotation (0-360 degrees)",
    "flip": "random horizontal and vertical flips",
    "scale": "a random zoom (0.6-1.4x)",
}

#: Other spellings accepted for an invariance.
_ALIASES = {"color": "colour"}


def check_invariances(value, name: str = "invariant_to") -> tuple[str, ...]:
    """The declared invariances as a tuple in the order of :data:`INVARIANCES`.

    Parameters
    ----------
    value : None, str or iterable of str
        ``None`` or ``()`` for none; a string holds one name or several separated by
        commas (``'colour,rotation'``). ``'color'`` means ``'colour'``.
    name : str, default='invariant_to'
        The parameter's name, for error messages.

    Returns
    -------
    tuple of str

    Raises
    ------
    ValueError
        Naming the values that are not invariances and listing those that are.
    """
    if value is None:
        return ()
    if isinstance(value, str):
        items = [part.strip() for part in value.split(",") if part.strip()]
    elif isinstance(value, Iterable):
        items = list(value)
    else:
        raise ValueError(
            f"{name} must be None, a string or a sequence of strings among "
            f"{', '.join(map(repr, INVARIANCES))}; got {value!r}."
        )
    items = [_ALIASES.get(item, item) if isinstance(item, str) else item for item in items]
    unknown = [item for item in items if not isinstance(item, str) or item not in INVARIANCES]
    if unknown:
        raise ValueError(
            f"{name} got {', '.join(map(repr, unknown))}, which "
            f"{'is' if len(unknown) == 1 else 'are'} not an invariance; choose among "
            f"{', '.join(map(repr, INVARIANCES))} (e.g. {name}=('colour', 'rotation'))."
        )
    return tuple(key for key in INVARIANCES if key in items)


class InvarianceAugmentation(nn.Module):
    """The random transforms of declared invariances, applied to a batch after a policy.

    Parameters
    ----------
    invariances : iterable of str
        Names of :data:`INVARIANCES` (checked with :func:`check_invariances`).

    Notes
    -----
    Geometric transforms fill uncovered pixels with the nearest border pixel, so no
    artificial black corners appear (they would be a cue of the transform). Colour
    transforms act on 3-channel images; on 1-channel images ``'colour'`` inverts half of
    them and leaves the rest alone.
    """

    def __init__(self, invariances: Iterable[str]):
        super().__init__()
        self.invariances = check_invariances(tuple(invariances))

    def extra_repr(self) -> str:
        return f"invariances={self.invariances}"

    def forward(self, x: torch.Tensor, *, generator: torch.Generator | None = None) -> torch.Tensor:
        """Transform each image of ``(B, C, H, W)`` ``x`` in ``[0, 1]`` independently.

        Parameters
        ----------
        x : torch.Tensor
            Images (2-D feature batches are returned unchanged).
        generator : torch.Generator, optional
            Random generator on ``x``'s device.

        Returns
        -------
        torch.Tensor
            Images of the same shape, dtype and device, in ``[0, 1]``.
        """
        if x.ndim != 4 or x.shape[0] == 0 or not self.invariances:
            return x
        x = self._geometric(x, generator)
        if "colour" in self.invariances:
            x = _random_colour(x, generator)
        if "brightness" in self.invariances or "background" in self.invariances:
            x = _random_intensity(x, generator, strong="brightness" in self.invariances)
        return x

    def _geometric(self, x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        batch, _, height, width = x.shape
        device = x.device
        matrices = identity_matrices(batch, device)
        changed = False
        if "rotation" in self.invariances:
            angles = uniform((batch,), 0.0, 2 * math.pi, device=device, generator=generator)
            matrices = matrices @ rotation_matrices(angles, height, width)
            changed = True
        if "flip" in self.invariances:
            for axis in (0, 1):
                flips = coin_flips(batch, 0.5, device=device, generator=generator)
                matrices[:, axis, :] *= torch.where(flips, -1.0, 1.0).view(-1, 1)
            changed = True
        if "scale" in self.invariances:
            zoom = torch.exp(
                uniform((batch,), math.log(0.6), math.log(1.4), device=device, generator=generator)
            )
            matrices[:, :2, :2] /= zoom.view(-1, 1, 1)
            changed = True
        if not changed:
            return x
        return warp_affine(x, matrices, padding_mode="border")


def _random_colour(x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """Random hue, channel order, saturation and greyscale (RGB), and inversion (any)."""
    batch, device = x.shape[0], x.device
    if x.shape[1] >= 3:
        rgb, extra = x[:, :3], x[:, 3:]
        order = torch.argsort(torch.rand((batch, 3), device=device, generator=generator), 1)
        rgb = torch.gather(rgb, 1, order.view(batch, 3, 1, 1).expand_as(rgb))
        rgb = color.adjust_hue(
            rgb, uniform((batch,), -0.5, 0.5, device=device, generator=generator)
        )
        rgb = color.adjust_saturation(
            rgb, uniform((batch,), 0.0, 2.0, device=device, generator=generator)
        )
        rgb = color.random_grayscale(
            rgb, coin_flips(batch, 0.25, device=device, generator=generator)
        )
        x = torch.cat([rgb, extra], dim=1)
    inverted = coin_flips(batch, 0.5, device=device, generator=generator).view(-1, 1, 1, 1)
    return torch.where(inverted, 1.0 - x, x)


def _random_intensity(
    x: torch.Tensor, generator: torch.Generator | None, *, strong: bool
) -> torch.Tensor:
    """Random brightness and contrast (and gamma when ``strong``) per image."""
    batch, device = x.shape[0], x.device
    low, high = (0.4, 1.6) if strong else (0.7, 1.3)
    x = color.adjust_brightness(x, uniform((batch,), low, high, device=device, generator=generator))
    x = color.adjust_contrast(x, uniform((batch,), low, high, device=device, generator=generator))
    if strong:
        gamma = torch.exp(
            uniform((batch,), math.log(0.5), math.log(2.0), device=device, generator=generator)
        )
        x = x.clamp(1e-6, 1.0) ** gamma.view(-1, 1, 1, 1).to(x.dtype)
    return x


class _Then(nn.Module):
    """``second(first(x))``, passing the generator to both."""

    def __init__(self, first: nn.Module, second: nn.Module):
        super().__init__()
        self.first = first
        self.second = second

    def forward(self, x: torch.Tensor, *, generator: torch.Generator | None = None) -> torch.Tensor:
        x = self.first(x) if generator is None else self.first(x, generator=generator)
        return self.second(x, generator=generator)


def with_invariances(augmentation: nn.Module, invariances: Iterable[str]) -> nn.Module:
    """``augmentation`` followed by the transforms of ``invariances`` (itself when none).

    Parameters
    ----------
    augmentation : nn.Module
        A policy module (``forward(x, *, generator=None)``).
    invariances : iterable of str
        Names of :data:`INVARIANCES`.

    Returns
    -------
    nn.Module
    """
    invariances = check_invariances(tuple(invariances))
    if not invariances:
        return augmentation
    return _Then(augmentation, InvarianceAugmentation(invariances))
