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
        squares to the outer ring of pixels (``max(1, round(min(H, W) / 16))`` wide),
        and refitted twice on the 60 % of the ring closest to the previous fit: a flat or
        linear-gradient background becomes zero, even where the object touches the
        border.
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
        if "background" in self.invariances:
            x = self._remove_background(x)
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
