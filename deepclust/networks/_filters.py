"""Fixed (untrained) input filters placed before a backbone."""

from __future__ import annotations

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
INPUT_INVARIANCES = ("background", "colour", "brightness")

#: Prefix of an :class:`InvariantInput`'s name in a network description.
_INVARIANT_PREFIX = "invariant:"


class InvariantInput(nn.Module):
    """Fixed input transforms that remove background, colour or brightness from images.

    Applied in this order, to ``(B, C, H, W)`` input:

    ``'background'``
        Subtract, per image and channel, the plane ``a + b x + c y`` fitted by least
        squares to the outer ring of pixels (``max(1, round(min(H, W) / 16))`` wide): a
        flat or linear-gradient background becomes zero.
    ``'colour'``
        Keep one channel: the length of each pixel's colour vector after the background
        is removed (so an object of any colour on any background gives the same
        channel), or the mean of the channels when the background is kept.
    ``'brightness'`` (and ``'colour'``)
        Standardise each image and channel to zero mean and unit standard deviation.

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

    def _plane_projection(self, height: int, width: int, like: torch.Tensor) -> tuple:
        """Border mask and the matrix mapping border values to the fitted plane."""
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
            projection = design @ torch.linalg.pinv(design[border])  # (H*W, n_border)
            self._planes[key] = (
                border.to(like.device),
                projection.T.to(like.device, like.dtype).contiguous(),
            )
        return self._planes[key]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or not self.invariances:
            return x
        batch, channels, height, width = x.shape
        if "background" in self.invariances:
            border, projection = self._plane_projection(height, width, x)
            flat = x.reshape(batch, channels, height * width)
            x = (flat - flat.index_select(2, border) @ projection).reshape(x.shape)
        if "colour" in self.invariances:
            if "background" in self.invariances:
                x = x.square().sum(1, keepdim=True).add(1e-12).sqrt()
            else:
                x = x.mean(1, keepdim=True)
        if "colour" in self.invariances or "brightness" in self.invariances:
            mean = x.mean((2, 3), keepdim=True)
            std = x.std((2, 3), keepdim=True)
            x = (x - mean) / (std + 1e-3)
        return x
