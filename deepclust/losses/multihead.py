"""Cross-entropy averaged over several clustering heads."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["MultiHeadCrossEntropy"]


class MultiHeadCrossEntropy(nn.Module):
    """Mean over heads of the per-head cross-entropy.

    Used by SeLa and DeepCluster with several clustering heads, each trained
    on its own (or a shared) set of pseudo-labels. Cross-entropy runs in
    float32 with autocast disabled.

    Parameters
    ----------
    ignore_index : int, default=-100
        Target value that is ignored (as in :func:`torch.nn.functional.cross_entropy`).

    Examples
    --------
    >>> import torch
    >>> loss_fn = MultiHeadCrossEntropy()
    >>> logits = [torch.zeros(4, 3), torch.zeros(4, 5)]
    >>> round(loss_fn(logits, torch.tensor([0, 1, 2, 0])).item(), 4)  # (log 3 + log 5) / 2
    1.354
    """

    def __init__(self, ignore_index: int = -100) -> None:
        super().__init__()
        self.ignore_index = int(ignore_index)

    def forward(
        self,
        logits: Sequence[torch.Tensor],
        targets: torch.Tensor | Sequence[torch.Tensor],
    ) -> torch.Tensor:
        """Compute the loss.

        Parameters
        ----------
        logits : sequence of torch.Tensor of shape (B, K_h)
            One logit tensor per head; heads may have different ``K_h``.
        targets : torch.Tensor of shape (B,) or (n_heads, B), or sequence of (B,) tensors
            Integer class indices, shared by all heads or one row per head.

        Returns
        -------
        torch.Tensor
            Scalar loss.
        """
        if isinstance(logits, torch.Tensor):
            raise TypeError(
                "logits must be a list of (batch, n_clusters) tensors, one per head; "
                "wrap a single head's logits as [logits]."
            )
        n_heads = len(logits)
        if n_heads == 0:
            raise ValueError("logits is empty; pass at least one head's logits.")
        if not isinstance(targets, torch.Tensor):
            targets = torch.stack(list(targets))
        if targets.ndim == 1:
            per_head_targets = [targets] * n_heads
        elif targets.ndim == 2 and targets.shape[0] == n_heads:
            per_head_targets = list(targets.unbind(0))
        else:
            raise ValueError(
                f"targets must have shape (batch,) or (n_heads={n_heads}, batch); "
                f"got {tuple(targets.shape)}."
            )
        losses = []
        with torch.autocast(device_type=logits[0].device.type, enabled=False):
            for head, (head_logits, head_targets) in enumerate(zip(logits, per_head_targets)):
                if head_logits.ndim != 2 or head_logits.shape[0] != head_targets.shape[0]:
                    raise ValueError(
                        f"head {head}: logits of shape {tuple(head_logits.shape)} do not match "
                        f"targets of shape {tuple(head_targets.shape)}; expected (B, K) and (B,)."
                    )
                losses.append(
                    F.cross_entropy(
                        head_logits.float(),
                        head_targets.to(head_logits.device).long(),
                        ignore_index=self.ignore_index,
                    )
                )
            return torch.stack(losses).mean()

    def extra_repr(self) -> str:
        return f"ignore_index={self.ignore_index}"
