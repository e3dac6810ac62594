"""Loss functions of the deep-clustering methods.

Each loss is a :class:`torch.nn.Module` that works on CPU and CUDA and
accepts float16/bfloat16 inputs produced under :func:`torch.autocast`
(softmax and logarithms are computed in float32).
"""

from __future__ import annotations

from deepclust.losses.confidence import ConfidenceCrossEntropyLoss
from deepclust.losses.multihead import MultiHeadCrossEntropy
from deepclust.losses.ntxent import NTXentLoss
from deepclust.losses.scan import EntropyLoss, SCANLoss, entropy

__all__ = [
    "ConfidenceCrossEntropyLoss",
    "EntropyLoss",
    "MultiHeadCrossEntropy",
    "NTXentLoss",
    "SCANLoss",
    "entropy",
]
