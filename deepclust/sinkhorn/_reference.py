"""SeLa's own Sinkhorn-Knopp loop, kept as the oracle for tests and the benchmark baseline."""

from __future__ import annotations

import numpy as np

__all__ = ["reference_sela_sinkhorn"]


def reference_sela_sinkhorn(probs: np.ndarray, lamb: float = 25.0) -> tuple[np.ndarray, int]:
    """SeLa's CPU Sinkhorn-Knopp (``optimize_L_sk`` of the authors' code), as written.

    float64, the N x K matrix transposed to K x N, ``PS **= lamb``, alternate the cluster
    and sample scalings, every 10 iterations ``err = nansum(|c / c_new - 1|)``, stop when
    ``err < 0.1``; labels are ``argmax_k`` of ``PS * c * r``. ``probs`` is not modified.
    Returns (labels, iterations).

    Parameters
    ----------
    probs : numpy.ndarray of shape (N, K)
        The network's softmax probabilities, one row per sample.
    lamb : float, default=25.0
        SeLa's ``lambda``: the probabilities are raised to this power (larger is closer to
        the unregularised transport problem, and slower).
    """
    PS = np.array(probs, dtype=np.float64).T  # K x N view of a float64 copy
    n_clusters, n_samples = PS.shape
    r = np.ones((n_clusters, 1), dtype=np.float64) / n_clusters
    c = np.ones((n_samples, 1), dtype=np.float64) / n_samples
    PS **= lamb
    inv_k = 1.0 / n_clusters
    inv_n = 1.0 / n_samples
    err = 1e6
    counter = 0
    while err > 1e-1:
        r = inv_k / (PS @ c)
        c_new = inv_n / (r.T @ PS).T
        if counter % 10 == 0:
            err = np.nansum(np.abs(c / c_new - 1))
        c = c_new
        counter += 1
    PS *= np.squeeze(c)
    PS = PS.T
    PS *= np.squeeze(r)
    PS = PS.T
    return np.nanargmax(PS, 0), counter
