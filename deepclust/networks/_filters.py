"""Fixed (untrained) input filters placed before a backbone."""

from __future__ import annotations

import math

import torch
from torch import nn

__all__ = ["INPUT_INVARIANCES", "InvariantInput", "SobelFilter"]


class SobelFilter(nn.Module):
    """Fixed grayscale conversion followed by horizontal and vertical Sobel filters.

    Maps ``(B, C, H, W)`` input (any ``C``; colour channels are averaged) to two channels,
    as DeepCluster's ``sobel=True`` input layer.
    """

    def __init__(self):
        super().__init__()
        kernel_x = torch.tensor([[1.0, 0.0, -1.0], [2.0, 0.0, -2.0], [1.0, 0.0, -1.0]])
        self.register_buffer("kernel", torch.stack([kernel_x, kernel_x.T])[:, None])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gray = x.mean(dim=1, keepdim=True)
        return nn.functional.conv2d(gray, self.kernel.to(gray.dtype), padding=1)


#: The invariances :class:`InvariantInput` removes from the input, in the order it does.
INPUT_INVARIANCES = ("background", "colour", "brightness", "rotation")

#: The invariances whose transform needs the border's plane.
_NEEDS_PLANE = frozenset({"background", "rotation"})

#: Prefix of an :class:`InvariantInput`'s name in a network description.
_INVARIANT_PREFIX = "invariant:"


def _unit_scale(x: torch.Tensor) -> torch.Tensor:
    """Each image divided by its 99th percentile, so that an object's colour distance
    from the background lies near ``[0, 1]`` whatever the colours, with the background
    at 0."""
    flat = x.flatten(1)
    index = max(0, int(0.99 * flat.shape[1]) - 1)
    scale = flat.sort(dim=1).values[:, index : index + 1].clamp_min(1e-6)
    return x / scale.view(-1, *([1] * (x.ndim - 1)))


def _rotate(x: torch.Tensor, angles: torch.Tensor) -> torch.Tensor:
    """Each image of ``x`` rotated by its angle (radians) about its centre, the uncovered
    corners filled with the nearest border pixel."""
    height, width = x.shape[-2:]
    cos, sin = torch.cos(angles), torch.sin(angles)
    matrices = torch.zeros(x.shape[0], 2, 3, device=x.device, dtype=x.dtype)
    matrices[:, 0, 0], matrices[:, 0, 1] = cos, -sin * height / width
    matrices[:, 1, 0], matrices[:, 1, 1] = sin * width / height, cos
    grid = nn.functional.affine_grid(matrices, list(x.shape), align_corners=False)
    return nn.functional.grid_sample(x, grid, padding_mode="border", align_corners=False)


class InvariantInput(nn.Module):
    """Fixed input transforms that remove background, colour, brightness or rotation.

    Applied in this order, to ``(B, C, H, W)`` input:

    ``'background'``
        Subtract, per image and channel, the plane ``a + b x + c y`` fitted by least
        squares to the outer ring of pixels (``max(1, round(min(H, W) / 16))`` wide),
        and refitted twice on the 60 % of the ring closest to the previous fit: a flat or
        linear-gradient background becomes zero, even where the object touches the
        border.
    ``'colour'``
        Keep one channel. With ``'background'``: the length of each pixel's colour
        vector after the background is removed, divided by its 99th percentile over the
        image, so that an object of any colour on any background gives the same channel,
        with the background at 0. Without: the mean of the channels, standardised as
        below.
    ``'brightness'``
        Standardise each image and channel to zero mean and unit standard deviation.
    ``'rotation'``
        Turn each image to a canonical orientation: its principal axis (of the second
        moments of the pixels' distance from the border's plane) upright, and the third
        moment along it positive. The same object at any angle then gives about the same
        image; the augmentations add a random half turn and a few degrees, the errors of
        this orientation (see :class:`~deepclust.augment.InvarianceAugmentation`).

    Parameters
    ----------
    invariances : iterable of str
        Names among :data:`INPUT_INVARIANCES`; others are ignored.
    """

    def __init__(self, invariances):
        super().__init__()
        self.invariances = tuple(name for name in INPUT_INVARIANCES if name in set(invariances))
        self._planes: dict = {}

    @property
    def name(self) -> str:
        """``'invariant:'`` followed by the invariances, comma-separated (its description)."""
        return _INVARIANT_PREFIX + ",".join(self.invariances)

    @classmethod
    def from_name(cls, name: str) -> InvariantInput:
        """The filter a description names (see :attr:`name`).

        Parameters
        ----------
        name : str
            ``'invariant:background,colour'`` and the like.

        Returns
        -------
        InvariantInput

        Raises
        ------
        ValueError
            When ``name`` does not name invariances of :data:`INPUT_INVARIANCES`.
        """
        parts = name[len(_INVARIANT_PREFIX) :].split(",")
        if not name.startswith(_INVARIANT_PREFIX) or not set(parts) <= set(INPUT_INVARIANCES):
            raise ValueError(
                f"{name!r} is not an input invariance filter; expected 'invariant:' followed "
                f"by names among {INPUT_INVARIANCES}"
            )
        return cls(parts)

    def extra_repr(self) -> str:
        return f"invariances={self.invariances}"

    def _border_design(self, height: int, width: int, like: torch.Tensor) -> tuple:
        """Indices of the border pixels, and the plane's design ``[1, x, y]`` at every
        pixel and at the border's."""
        key = (height, width, like.device, like.dtype)
        if key not in self._planes:
            ring = max(1, round(min(height, width) / 16))
            ys = torch.linspace(-1.0, 1.0, height, dtype=torch.float64, device="cpu")
            xs = torch.linspace(-1.0, 1.0, width, dtype=torch.float64, device="cpu")
            grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")
            design = torch.stack([torch.ones_like(grid_x), grid_x, grid_y], -1).reshape(-1, 3)
            border = torch.ones(height, width, dtype=torch.bool, device="cpu")
            border[ring : height - ring, ring : width - ring] = False
            border = border.reshape(-1).nonzero().squeeze(1)
            self._planes[key] = (
                border.to(like.device),
                design.to(like.device, like.dtype),
                design[border].to(like.device, like.dtype),
            )
        return self._planes[key]

    def _remove_background(self, x: torch.Tensor) -> torch.Tensor:
        """Subtract the plane fitted to the border pixels, refitted twice on the 60 % of
        them closest to the previous fit (an object that touches the border does not
        bend it)."""
        batch, channels, height, width = x.shape
        border, design, border_design = self._border_design(height, width, x)
        values = x.reshape(batch, channels, height * width).index_select(2, border)
        eye = torch.eye(3, device=x.device, dtype=x.dtype)
        keep = max(3, int(0.6 * border.numel()))
        weights = torch.ones(batch, 1, border.numel(), device=x.device, dtype=x.dtype)
        for _ in range(3):
            weighted = border_design.T.unsqueeze(0) * weights  # (B, 3, n)
            normal = weighted @ border_design + 1e-6 * eye  # (B, 3, 3)
            coefficients = torch.linalg.solve(normal, weighted @ values.transpose(1, 2))
            residual = (values - (border_design @ coefficients).transpose(1, 2)).abs().sum(1)
            cutoff = residual.sort(dim=1).values[:, keep - 1 : keep]
            weights = (residual <= cutoff).to(x.dtype).unsqueeze(1)
        plane = (design @ coefficients).transpose(1, 2).reshape(x.shape)  # (B, C, H, W)
        return x - plane

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or not self.invariances:
            return x
        removed = self._remove_background(x) if _NEEDS_PLANE & set(self.invariances) else x
        mass = removed.square().sum(1).sqrt() if "rotation" in self.invariances else None
        if "background" in self.invariances:
            x = removed
        if "colour" in self.invariances and "background" in self.invariances:
            x = _unit_scale(x.square().sum(1, keepdim=True).add(1e-12).sqrt())
        elif "colour" in self.invariances:
            x = x.mean(1, keepdim=True)
        if "brightness" in self.invariances or self.invariances_are(("colour",)):
            mean = x.mean((2, 3), keepdim=True)
            std = x.std((2, 3), keepdim=True)
            x = (x - mean) / (std + 1e-3)
        if "rotation" in self.invariances:
            x = _rotate(x, self._canonical_angles(mass))
        return x

    def invariances_are(self, names: tuple[str, ...]) -> bool:
        """Whether the input invariances are exactly ``names`` among colour, background
        and brightness."""
        return {"colour", "background", "brightness"} & set(self.invariances) == set(names)

    def _canonical_angles(self, mass: torch.Tensor) -> torch.Tensor:
        """Per image, the rotation (radians) that turns ``mass``'s principal axis upright
        with a positive third moment along it."""
        _, height, width = mass.shape
        ys = torch.linspace(-1.0, 1.0, height, device=mass.device, dtype=mass.dtype)
        xs = torch.linspace(-1.0, 1.0, width, device=mass.device, dtype=mass.dtype)
        total = mass.sum((1, 2)).clamp_min(1e-6)
        dx = xs.view(1, 1, -1) - ((mass.sum(1) * xs).sum(1) / total).view(-1, 1, 1)
        dy = ys.view(1, -1, 1) - ((mass.sum(2) * ys).sum(1) / total).view(-1, 1, 1)
        xx, yy, xy = ((mass * a * b).sum((1, 2)) for a, b in ((dx, dx), (dy, dy), (dx, dy)))
        axis = 0.5 * torch.atan2(2 * xy, xx - yy)
        along = dx * torch.cos(axis).view(-1, 1, 1) + dy * torch.sin(axis).view(-1, 1, 1)
        axis = torch.where((mass * along**3).sum((1, 2)) < 0, axis + math.pi, axis)
        return axis - math.pi / 2
