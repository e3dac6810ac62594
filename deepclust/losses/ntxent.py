"""SimCLR's normalised-temperature cross-entropy (NT-Xent) loss."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["NTXentLoss"]


class NTXentLoss(nn.Module):
    """Normalised-temperature cross-entropy loss of SimCLR (Chen et al., 2020).

    The ``2B`` projections of two augmented views of ``B`` images are
    L2-normalised; each of them is an anchor whose positive is the other view
    of the same image and whose negatives are the remaining ``2B - 2``
    projections. The loss is the cross-entropy of the ``2B - 1``-way softmax
    over cosine similarities divided by ``temperature`` (self-similarity
    excluded), averaged over the ``2B`` anchors.

    The computation runs in float32 with autocast disabled, so half-precision
    projections produced under :func:`torch.autocast` are accepted.

    Parameters
    ----------
    temperature : float, default=0.1
        Softmax temperature; must be positive.

    Examples
    --------
    >>> import torch
    >>> loss_fn = NTXentLoss(temperature=0.5)
    >>> z = torch.randn(8, 16)
    >>> bool(loss_fn(z, z) < loss_fn(z, torch.randn(8, 16)))
    True
    """

    def __init__(self, temperature: float = 0.1) -> None:
        super().__init__()
        if not temperature > 0:
            raise ValueError(f"temperature must be positive, got {temperature!r}.")
        self.temperature = float(temperature)

    def forward(self, z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
        """Compute the loss.

        Parameters
        ----------
        z1, z2 : torch.Tensor of shape (B, D)
            Projections of the first and second view; row ``i`` of both comes
            from the same image.

        Returns
        -------
        torch.Tensor
            Scalar loss.
        """
        if z1.ndim != 2 or z1.shape != z2.shape:
            raise ValueError(
                "z1 and z2 must both have shape (batch, dim) and the same shape; "
                f"got {tuple(z1.shape)} and {tuple(z2.shape)}."
            )
        batch = z1.shape[0]
        if batch < 2:
            raise ValueError(f"NT-Xent needs a batch of at least 2 pairs, got {batch}.")
        with torch.autocast(device_type=z1.device.type, enabled=False):
            z = torch.cat([z1, z2], dim=0).float()
            z = F.normalize(z, dim=1)
            logits = z @ z.T / self.temperature
            self_mask = torch.eye(2 * batch, dtype=torch.bool, device=z.device)
            logits = logits.masked_fill(self_mask, float("-inf"))
            index = torch.arange(batch, device=z.device)
            positives = torch.cat([index + batch, index])
            return F.cross_entropy(logits, positives)

    def extra_repr(self) -> str:
        return f"temperature={self.temperature}"
