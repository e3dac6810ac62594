"""Fixed (untrained) input filters placed before a backbone."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["SobelFilter"]


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
