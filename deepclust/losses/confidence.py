"""SCAN's self-labelling loss: cross-entropy on confident pseudo-labels."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["ConfidenceCrossEntropyLoss"]


class ConfidenceCrossEntropyLoss(nn.Module):
    r"""Confidence-thresholded, class-balanced cross-entropy (SCAN self-labelling).

    The weakly augmented view gives pseudo-labels: a sample is *confident*
    when its largest softmax probability exceeds ``threshold``, and its
    target is the arg-max cluster. The loss is the cross-entropy of the
    strongly augmented view's logits against those targets, over the
    confident samples only.

    With ``class_balancing=True`` each confident sample of target class
    :math:`c` gets the weight :math:`w_c = n / (K' n_c)`, where :math:`n` is
    the number of confident samples in the batch, :math:`n_c` how many of
    them have target :math:`c` and :math:`K'` the number of distinct targets
    among them. These are the inverse class frequencies that the SCAN paper
    prescribes, normalised so that the weights sum to :math:`n`; the loss is
    the weighted sum divided by :math:`n`, which equals the mean over the
    classes present of each class's mean cross-entropy. Without balancing it
    is the plain mean over confident samples.

    No gradient flows through ``weak_logits``. Softmax and cross-entropy run
    in float32 with autocast disabled.

    Parameters
    ----------
    threshold : float, default=0.99
        Confidence threshold in ``[0, 1)``; samples with max probability
        strictly above it are kept.
    class_balancing : bool, default=True
        Whether to weight classes by inverse frequency among confident samples.

    Examples
    --------
    >>> import torch
    >>> loss_fn = ConfidenceCrossEntropyLoss(threshold=0.9)
    >>> weak = torch.tensor([[10.0, 0.0], [0.0, 0.1]])
    >>> loss, n_confident = loss_fn(weak, torch.zeros(2, 2))
    >>> n_confident, round(loss.item(), 4)
    (1, 0.6931)
    """

    def __init__(self, threshold: float = 0.99, class_balancing: bool = True) -> None:
        super().__init__()
        if not 0.0 <= threshold < 1.0:
            raise ValueError(f"threshold must lie in [0, 1), got {threshold!r}.")
        self.threshold = float(threshold)
        self.class_balancing = bool(class_balancing)

    def forward(
        self, weak_logits: torch.Tensor, strong_logits: torch.Tensor
    ) -> tuple[torch.Tensor | None, int]:
        """Compute the loss.

        Parameters
        ----------
        weak_logits : torch.Tensor of shape (B, K)
            Logits of the weakly augmented view (pseudo-label source).
        strong_logits : torch.Tensor of shape (B, K)
            Logits of the strongly augmented view (trained on).

        Returns
        -------
        loss : torch.Tensor or None
            Scalar loss, or ``None`` when no sample is confident (skip the batch).
        n_confident : int
            Number of confident samples.
        """
        if weak_logits.ndim != 2 or weak_logits.shape != strong_logits.shape:
            raise ValueError(
                "weak_logits and strong_logits must both have shape (batch, n_clusters); "
                f"got {tuple(weak_logits.shape)} and {tuple(strong_logits.shape)}."
            )
        n_clusters = weak_logits.shape[1]
        with torch.autocast(device_type=strong_logits.device.type, enabled=False):
            with torch.no_grad():
                weak_probs = torch.softmax(weak_logits.detach().float(), dim=1)
                confidence, targets = weak_probs.max(dim=1)
                mask = confidence > self.threshold
            n_confident = int(mask.sum().item())
            if n_confident == 0:
                return None, 0
            targets = targets[mask]
            per_sample = F.cross_entropy(strong_logits[mask].float(), targets, reduction="none")
            if not self.class_balancing:
                return per_sample.mean(), n_confident
            counts = torch.bincount(targets, minlength=n_clusters).float()
            present = counts > 0
            class_weights = torch.zeros_like(counts)
            class_weights[present] = n_confident / (present.sum() * counts[present])
            sample_weights = class_weights[targets]
            loss = (sample_weights * per_sample).sum() / sample_weights.sum()
        return loss, n_confident

    def extra_repr(self) -> str:
        return f"threshold={self.threshold}, class_balancing={self.class_balancing}"
