"""SimCLR's normalised-temperature cross-entropy (NT-Xent) loss."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from deepclust.distributed import all_gather_rows, gather_with_gradient, rank, world_size

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

    When a :mod:`torch.distributed` process group of more than one rank is initialised
    (training under ``torchrun``), each rank's anchors are its own ``2B`` projections and
    their negatives are the projections of every rank (gathered with
    :func:`~deepclust.distributed.gather_with_gradient`), as if one process had the
    concatenated batch; the gradient then reaches every rank's rows, and the mean of the
    ranks' losses is the single-process loss of the concatenated batch.

    Parameters
    ----------
    temperature : float, default=0.1
        Softmax temperature; must be positive.
    distributed : bool, default=True
        Take the negatives from every rank when a process group is initialised
        (``False``: this rank's batch only).

    Examples
    --------
    >>> import torch
    >>> loss_fn = NTXentLoss(temperature=0.5)
    >>> z = torch.randn(8, 16)
    >>> bool(loss_fn(z, z) < loss_fn(z, torch.randn(8, 16)))
    True
    """

    def __init__(self, temperature: float = 0.1, distributed: bool = True) -> None:
        super().__init__()
        if not temperature > 0:
            raise ValueError(f"temperature must be positive, got {temperature!r}.")
        self.temperature = float(temperature)
        self.distributed = bool(distributed)

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
        if self.distributed and world_size() > 1:
            return self._across_ranks(z1, z2)
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

    def _across_ranks(self, z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
        """The loss of this rank's anchors against the projections of every rank."""
        with torch.autocast(device_type=z1.device.type, enabled=False):
            z1 = F.normalize(z1.float(), dim=1)
            z2 = F.normalize(z2.float(), dim=1)
            counts = all_gather_rows(torch.tensor([z1.shape[0]], device=z1.device))
            total, start = int(counts.sum()), int(counts[: rank()].sum())
            if total < 2:
                raise ValueError(f"NT-Xent needs a batch of at least 2 pairs, got {total}.")
            everyone = torch.cat([gather_with_gradient(z1), gather_with_gradient(z2)])
            logits = torch.cat([z1, z2]) @ everyone.T / self.temperature
            # This rank's rows are rows start.. of the first view and total + start.. of
            # the second in ``everyone``: their own columns are masked, the other view's
            # are the positives.
            mine = start + torch.arange(z1.shape[0], device=z1.device)
            own = torch.cat([mine, mine + total])
            rows = torch.arange(len(own), device=z1.device)
            logits = logits.index_put((rows, own), torch.tensor(float("-inf"), device=z1.device))
            return F.cross_entropy(logits, torch.cat([mine + total, mine]))

    def extra_repr(self) -> str:
        return f"temperature={self.temperature}"
