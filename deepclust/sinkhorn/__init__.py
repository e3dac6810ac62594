"""Sinkhorn-Knopp pseudo-labelling under cluster-size constraints (SeLa's label step).

:func:`sinkhorn_knopp` turns an (N, K) matrix of class probabilities into N labels that
maximise the total log-probability while giving every cluster its share of the images.
:func:`sinkhorn_solve` is the same solver returning diagnostics (iterations, error).
"""

from __future__ import annotations

from deepclust.sinkhorn._sinkhorn import SinkhornResult, sinkhorn_knopp, sinkhorn_solve

__all__ = ["SinkhornResult", "sinkhorn_knopp", "sinkhorn_solve"]
