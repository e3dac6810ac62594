"""SCAN clustering loss (Van Gansbeke et al., ECCV 2020) and an entropy helper."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["EntropyLoss", "SCANLoss", "entropy"]

_EPS = 1e-8


def entropy(probs: torch.Tensor, *, eps: float = _EPS) -> torch.Tensor:
    """Shannon entropy (natural log) of probability vectors along the last axis.

    Parameters
    ----------
    probs : torch.Tensor of shape (..., K)
        Probabilities summing to one along the last axis.
    eps : float, default=1e-8
        Lower clamp applied inside the logarithm.

    Returns
    -------
    torch.Tensor of shape (...)
        ``-sum(p * log(p))``.
    """
    return -(probs * torch.log(probs.clamp_min(eps))).sum(dim=-1)


class EntropyLoss(nn.Module):
    """Entropy of the batch-mean cluster distribution predicted by logits.

    Maximising it (i.e. subtracting it from a loss) spreads the batch over all
    clusters and so prevents the collapse onto a single cluster.

    Parameters
    ----------
    eps : float, default=1e-8
        Lower clamp applied inside the logarithm.
    """

    def __init__(self, eps: float = _EPS) -> None:
        super().__init__()
        self.eps = eps

    def forward(self, logits: torch.Tensor) -> torch.Tensor:
        """Return ``H(mean_i softmax(logits_i))`` as a scalar tensor.

        Parameters
        ----------
        logits : torch.Tensor of shape (batch, n_clusters)
            Unnormalised cluster scores; the softmax runs in float32 with autocast off.
        """
        if logits.ndim != 2:
            raise ValueError(
                f"logits must have shape (batch, n_clusters), got {tuple(logits.shape)}."
            )
        with torch.autocast(device_type=logits.device.type, enabled=False):
            mean_probs = torch.softmax(logits.float(), dim=1).mean(dim=0)
            return entropy(mean_probs, eps=self.eps)


class SCANLoss(nn.Module):
    r"""Clustering loss of SCAN (Van Gansbeke et al., ECCV 2020, eq. 2).

    For anchors :math:`X` with mined nearest neighbours :math:`k` and the
    clustering head :math:`\Phi` (softmax over ``K`` clusters):

    .. math::

        \text{consistency} = -\frac{1}{B} \sum_i \log \langle \Phi(X_i), \Phi(k_i) \rangle,
        \qquad
        \text{entropy} = -\sum_c \bar p_c \log \bar p_c,
        \quad \bar p = \frac{1}{B} \sum_i \Phi(X_i),

        \text{total} = \text{consistency} - \lambda\, \text{entropy}.

    The dot product is clamped below at ``eps`` before the logarithm. Softmax
    and logarithms run in float32 with autocast disabled. Leading dimensions
    before ``(B, K)`` are independent problems (several candidate heads, say):
    each gets its own loss.

    Parameters
    ----------
    entropy_weight : float, default=5.0
        :math:`\lambda`, weight of the entropy term (non-negative).
    eps : float, default=1e-8
        Lower clamp inside the logarithms.

    Examples
    --------
    >>> import torch
    >>> total, consistency, ent = SCANLoss()(torch.randn(4, 3), torch.randn(4, 3))
    >>> bool(torch.isclose(total, consistency - 5.0 * ent))
    True
    """

    def __init__(self, entropy_weight: float = 5.0, eps: float = _EPS) -> None:
        super().__init__()
        if entropy_weight < 0:
            raise ValueError(f"entropy_weight must be non-negative, got {entropy_weight!r}.")
        self.entropy_weight = float(entropy_weight)
        self.eps = eps

    def forward(
        self, anchor_logits: torch.Tensor, neighbor_logits: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Compute the loss.

        Parameters
        ----------
        anchor_logits : torch.Tensor of shape (..., B, K)
            Cluster logits of the anchors.
        neighbor_logits : torch.Tensor of shape (..., B, K)
            Cluster logits of one mined neighbour per anchor.

        Returns
        -------
        total, consistency, entropy : torch.Tensor of shape (...)
            Scalars for 2-D input; ``total = consistency - entropy_weight * entropy``.
        """
        if anchor_logits.ndim < 2 or anchor_logits.shape != neighbor_logits.shape:
            raise ValueError(
                "anchor_logits and neighbor_logits must both have shape (batch, n_clusters) "
                "(optionally after leading dimensions); "
                f"got {tuple(anchor_logits.shape)} and {tuple(neighbor_logits.shape)}."
            )
        with torch.autocast(device_type=anchor_logits.device.type, enabled=False):
            anchor_probs = torch.softmax(anchor_logits.float(), dim=-1)
            neighbor_probs = torch.softmax(neighbor_logits.float(), dim=-1)
            similarity = (anchor_probs * neighbor_probs).sum(dim=-1)
            consistency = -torch.log(similarity.clamp_min(self.eps)).mean(dim=-1)
            ent = entropy(anchor_probs.mean(dim=-2), eps=self.eps)
            total = consistency - self.entropy_weight * ent
        return total, consistency, ent

    def extra_repr(self) -> str:
        return f"entropy_weight={self.entropy_weight}"
