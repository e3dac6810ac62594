"""Sinkhorn-Knopp pseudo-labelling under cluster-size constraints (SeLa's label step).

:func:`sinkhorn_knopp` turns an (N, K) matrix of class probabilities into N labels that
maximise the total log-probability while giving every cluster its share of the images.
:func:`sinkhorn_solve` is the same solver returning diagnostics (iterations, error), and
:func:`round_to_sizes` rounds its plan to labels with exactly prescribed cluster sizes.
"""

from __future__ import annotations

from deepclust.sinkhorn._rounding import round_to_sizes, target_counts
from deepclust.sinkhorn._sinkhorn import SinkhornResult, sinkhorn_knopp, sinkhorn_solve

__all__ = [
    "SinkhornResult",
    "round_to_sizes",
    "sinkhorn_knopp",
    "sinkhorn_solve",
    "target_counts",
]
