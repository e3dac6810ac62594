"""Declared invariances: what a user says must not matter, and the augmentation it adds.

An invariance is one of :data:`INVARIANCES`. ``'colour'``, ``'background'`` and
``'brightness'`` change the network's input (:class:`deepclust.networks.InvariantInput`),
because augmentation alone does not remove them, and every augmentation of a fit then
acts on that view of the images (:class:`InvariantView`); the others add random
transforms after each augmentation (pretext, consistency and pseudo-label steps alike),
so the network learns to ignore them.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
from torch import nn

from deepclust.networks._filters import InvariantInput

from . import _color as color
from ._common import coin_flips, uniform
from ._geometric import identity_matrices, rotation_matrices, warp_affine

__all__ = [
    "AUTO_INVARIANCES",
    "INVARIANCES",
    "InvarianceAugmentation",
    "InvariantView",
    "check_invariances",
    "is_auto_invariances",
    "with_invariances",
]

#: Every value ``invariant_to`` accepts, with the random transforms it adds to training.
INVARIANCES: dict[str, str] = {
    "colour": "augmentations see the colour-free image (random inversion without 'background')",
    "background": "augmentations see the image with its background removed",
    "brightness": "random brightness (0.4-1.6), contrast (0.4-1.6) and gamma (0.5-2) after "
    "each augmentation",
    "rotation": "augmentations see the image turned to its canonical orientation, then "
    "a random half turn and up to 15 degrees either way",
    "flip": "random horizontal and vertical flips",
    "scale": "a random zoom (0.6-1.4x)",
}

#: The ``invariant_to`` value that lets the fit choose: none, unless the clusters of a first
#: fit follow a statistic that an invariance removes (see the estimators' ``invariant_to``).
AUTO_INVARIANCES = "auto"

#: Other spellings accepted for an invariance.
_ALIASES = {"color": "colour"}

#: Largest random turn (radians) added to the canonical orientation under ``'rotation'``.
CANONICAL_JITTER = math.radians(15.0)


def is_auto_invariances(value) -> bool:
    """Whether an ``invariant_to`` value is :data:`AUTO_INVARIANCES`.

    Parameters
    ----------
    value : object
        An ``invariant_to`` value.

    Returns
    -------
    bool
    """
    return isinstance(value, str) and value.strip().lower() == AUTO_INVARIANCES


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
        The names, each once, in the order of :data:`INVARIANCES`.

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
            f"{', '.join(map(repr, INVARIANCES))} (e.g. {name}=('colour', 'rotation')), "
            f"or {AUTO_INVARIANCES!r} alone."
        )
    return tuple(key for key in INVARIANCES if key in items)


class InvariantView(nn.Module):
    """What the augmentations of a fit see: the image through the network's fixed
    :class:`~deepclust.networks.InvariantInput`, rescaled to ``[0, 1]``.

    Augmenting the image the network will read, rather than the raw one, keeps colour
    operations of a policy (greyscale, saturation) from erasing an object whose colour
    differs from its background's but whose brightness does not. Each image is rescaled
    by one affine map over all its channels, and a colour filter's single channel is
    repeated to the input's channel count, so the network's filter, applied again,
    gives the same image up to that affine map.

    Parameters
    ----------
    invariances : iterable of str
        The declared invariances (those without an input filter are ignored).
    """

    def __init__(self, invariances: Iterable[str]):
        super().__init__()
        self.filter = InvariantInput(check_invariances(tuple(invariances)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The filtered images, one affine map per image to ``[0, 1]``.

        Parameters
        ----------
        x : torch.Tensor
            ``(B, C, H, W)`` images in ``[0, 1]``.

        Returns
        -------
        torch.Tensor
            ``(B, C, H, W)`` images in ``[0, 1]``.
        """
        if x.ndim != 4 or x.shape[0] == 0 or not self.filter.invariances:
            return x
        y = self.filter(x)
        low = y.amin((1, 2, 3), keepdim=True)
        high = y.amax((1, 2, 3), keepdim=True)
        y = (y - low) / (high - low).clamp_min(1e-6)
        return y.expand(-1, x.shape[1], -1, -1).contiguous() if y.shape[1] != x.shape[1] else y


class InvarianceAugmentation(nn.Module):
    """The random transforms of declared invariances, applied to a batch after a policy.

    Parameters
    ----------
    invariances : iterable of str
        Names of :data:`INVARIANCES` (checked with :func:`check_invariances`).

    Notes
    -----
    Geometric transforms fill uncovered pixels with the nearest border pixel, so no
    artificial black corners appear (they would be a cue of the transform).
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
        if "colour" in self.invariances and "background" not in self.invariances:
            x = _random_inversion(x, generator)
        if "brightness" in self.invariances:
            x = _random_intensity(x, generator)
        return x

    def _geometric(self, x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        batch, _, height, width = x.shape
        device = x.device
        matrices = identity_matrices(batch, device)
        changed = False
        if "rotation" in self.invariances:
            # The canonical orientation's errors: the direction along the axis (a half
            # turn) for nearly symmetric objects, and a few degrees of the axis itself.
            half_turns = coin_flips(batch, 0.5, device=device, generator=generator)
            jitter = uniform(
                (batch,), -CANONICAL_JITTER, CANONICAL_JITTER, device=device, generator=generator
            )
            angles = torch.where(half_turns, math.pi, 0.0) + jitter
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


def _random_inversion(x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """Half of the images inverted: the polarity of an object against its background."""
    inverted = coin_flips(x.shape[0], 0.5, device=x.device, generator=generator)
    return torch.where(inverted.view(-1, 1, 1, 1), 1.0 - x, x)


def _random_intensity(x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """Random brightness (0.4-1.6), contrast (0.4-1.6) and gamma (0.5-2) per image."""
    batch, device = x.shape[0], x.device
    x = color.adjust_brightness(x, uniform((batch,), 0.4, 1.6, device=device, generator=generator))
    x = color.adjust_contrast(x, uniform((batch,), 0.4, 1.6, device=device, generator=generator))
    gamma = torch.exp(
        uniform((batch,), math.log(0.5), math.log(2.0), device=device, generator=generator)
    )
    return x.clamp(1e-6, 1.0) ** gamma.view(-1, 1, 1, 1).to(x.dtype)


class _WithInvariances(nn.Module):
    """``after(policy(view(x)))``, passing the generator to the random steps."""

    def __init__(self, policy: nn.Module, invariances: tuple[str, ...]):
        super().__init__()
        self.view = InvariantView(invariances)
        self.policy = policy
        self.after = InvarianceAugmentation(invariances)

    def forward(self, x: torch.Tensor, *, generator: torch.Generator | None = None) -> torch.Tensor:
        x = self.view(x)
        x = self.policy(x) if generator is None else self.policy(x, generator=generator)
        return self.after(x, generator=generator)


def with_invariances(augmentation: nn.Module, invariances: Iterable[str]) -> nn.Module:
    """``augmentation`` of the :class:`InvariantView` of the images, followed by the
    transforms of ``invariances`` (``augmentation`` itself when there are none).

    Parameters
    ----------
    augmentation : nn.Module
        A policy module (``forward(x, *, generator=None)``).
    invariances : iterable of str
        Names of :data:`INVARIANCES`.

    Returns
    -------
    nn.Module
        A module with ``forward(x, *, generator=None)``.
    """
    invariances = check_invariances(tuple(invariances))
    if not invariances:
        return augmentation
    return _WithInvariances(augmentation, invariances)
