"""Clustering metrics computed against ground-truth class labels."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
from scipy.optimize import linear_sum_assignment
from sklearn.metrics import (
    adjusted_mutual_info_score,
    adjusted_rand_score,
    normalized_mutual_info_score,
)
from sklearn.metrics.cluster import contingency_matrix

__all__ = [
    "adjusted_mutual_info_score",
    "adjusted_rand_score",
    "ami",
    "ari",
    "cluster_accuracy",
    "cluster_mapping",
    "evaluate_clustering",
    "nmi",
    "normalized_mutual_info_score",
    "purity",
]

Mapping = Literal["hungarian", "majority"]

nmi = normalized_mutual_info_score
ari = adjusted_rand_score
ami = adjusted_mutual_info_score


def _as_label_array(labels: Any, name: str) -> np.ndarray:
    if hasattr(labels, "detach") and hasattr(labels, "cpu"):  # torch tensor, any device
        labels = labels.detach().cpu().numpy()
    array = np.asarray(labels)
    if array.ndim != 1:
        raise ValueError(
            f"{name} must be a 1-D array of labels, got an array of shape {array.shape}; "
            "flatten it (e.g. with np.ravel) first."
        )
    return array


def _check_labels(y_true: Any, y_pred: Any) -> tuple[np.ndarray, np.ndarray]:
    y_true = _as_label_array(y_true, "y_true")
    y_pred = _as_label_array(y_pred, "y_pred")
    if y_true.shape[0] != y_pred.shape[0]:
        raise ValueError(
            f"y_true and y_pred must have the same length, got {y_true.shape[0]} and "
            f"{y_pred.shape[0]}."
        )
    if y_true.shape[0] == 0:
        raise ValueError("y_true and y_pred are empty; pass at least one sample.")
    return y_true, y_pred


def _check_mapping(mapping: str) -> None:
    if mapping not in ("hungarian", "majority"):
        raise ValueError(f"mapping must be 'hungarian' or 'majority', got {mapping!r}.")


def _matched_pairs(
    y_true: np.ndarray, y_pred: np.ndarray, mapping: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Return (classes, clusters, class_index, cluster_index, contingency) of the matching."""
    classes, true_codes = np.unique(y_true, return_inverse=True)
    clusters, pred_codes = np.unique(y_pred, return_inverse=True)
    counts = contingency_matrix(true_codes, pred_codes)  # (n_classes, n_clusters)
    if mapping == "hungarian":
        class_index, cluster_index = linear_sum_assignment(counts, maximize=True)
    else:
        cluster_index = np.arange(counts.shape[1])
        class_index = counts.argmax(axis=0)
    return classes, clusters, class_index, cluster_index, counts


def cluster_accuracy(y_true: Any, y_pred: Any, *, mapping: Mapping = "hungarian") -> float:
    """Accuracy of a clustering after mapping its clusters onto the classes.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        Ground-truth class labels (any integers or other sortable labels).
    y_pred : array-like of shape (n_samples,)
        Cluster assignments (any labels; their values carry no meaning).
    mapping : {'hungarian', 'majority'}, default='hungarian'
        ``'hungarian'``: the best one-to-one matching of clusters to classes,
        found with the Hungarian algorithm on the contingency matrix. When the
        numbers of clusters and classes differ, the matrix is rectangular and
        samples of unmatched clusters (or classes) count as errors.
        ``'majority'``: each cluster is mapped to its most frequent class,
        several clusters may share a class (over-clustering protocol); this
        equals :func:`purity`.

    Returns
    -------
    float
        Fraction of samples whose mapped cluster equals their class, in ``[0, 1]``.

    Examples
    --------
    >>> cluster_accuracy([0, 0, 1, 1, 2, 2], [5, 5, 3, 3, 9, 9])
    1.0
    >>> cluster_accuracy([0, 0, 0, 1], [0, 1, 2, 3])
    0.5
    >>> cluster_accuracy([0, 0, 0, 1], [0, 1, 2, 3], mapping="majority")
    1.0
    """
    _check_mapping(mapping)
    y_true, y_pred = _check_labels(y_true, y_pred)
    _, _, class_index, cluster_index, counts = _matched_pairs(y_true, y_pred, mapping)
    return float(counts[class_index, cluster_index].sum() / y_true.shape[0])


def cluster_mapping(y_true: Any, y_pred: Any, *, mapping: Mapping = "hungarian") -> dict:
    """Cluster-to-class mapping used by :func:`cluster_accuracy`.

    Parameters
    ----------
    y_true, y_pred : array-like of shape (n_samples,)
        Ground-truth class labels and cluster assignments.
    mapping : {'hungarian', 'majority'}, default='hungarian'
        See :func:`cluster_accuracy`.

    Returns
    -------
    dict
        ``{cluster_label: class_label}``. With ``'hungarian'``, clusters left
        unmatched (more clusters than classes) are absent.

    Examples
    --------
    >>> cluster_mapping([0, 0, 1, 1], [7, 7, 4, 4])
    {4: 1, 7: 0}
    """
    _check_mapping(mapping)
    y_true, y_pred = _check_labels(y_true, y_pred)
    classes, clusters, class_index, cluster_index, _ = _matched_pairs(y_true, y_pred, mapping)
    return {
        clusters[j].item(): classes[i].item()
        for i, j in sorted(zip(class_index, cluster_index), key=lambda pair: pair[1])
    }


def purity(y_true: Any, y_pred: Any) -> float:
    """Purity: fraction of samples that belong to their cluster's majority class.

    Purity rewards over-clustering (one cluster per sample gives 1.0); compare
    clusterings with the same number of clusters, or use
    :func:`cluster_accuracy` with ``mapping='hungarian'``.

    Parameters
    ----------
    y_true, y_pred : array-like of shape (n_samples,)
        Ground-truth class labels and cluster assignments.

    Returns
    -------
    float
        ``sum over clusters of max_c |cluster ∩ class c| / n_samples``.

    Examples
    --------
    >>> purity([0, 0, 1, 1, 1], [0, 0, 0, 1, 1])
    0.8
    """
    return cluster_accuracy(y_true, y_pred, mapping="majority")


_METRICS = {
    "acc": cluster_accuracy,
    "nmi": normalized_mutual_info_score,
    "ari": adjusted_rand_score,
    "ami": adjusted_mutual_info_score,
    "purity": purity,
}


def evaluate_clustering(
    y_true: Any, y_pred: Any, *, metrics: Sequence[str] = ("acc", "nmi", "ari")
) -> dict[str, float]:
    """Compute the usual clustering metrics at once.

    Parameters
    ----------
    y_true, y_pred : array-like of shape (n_samples,)
        Ground-truth class labels and cluster assignments.
    metrics : sequence of str, default=('acc', 'nmi', 'ari')
        Any of ``'acc'`` (Hungarian :func:`cluster_accuracy`), ``'nmi'``,
        ``'ari'``, ``'ami'`` and ``'purity'``.

    Returns
    -------
    dict of str to float
        One entry per requested metric, in the requested order.

    Examples
    --------
    >>> evaluate_clustering([0, 0, 1, 1], [1, 1, 0, 0])
    {'acc': 1.0, 'nmi': 1.0, 'ari': 1.0}
    """
    if isinstance(metrics, str):
        metrics = (metrics,)
    unknown = [name for name in metrics if name not in _METRICS]
    if unknown:
        raise ValueError(f"unknown metric(s) {unknown}; choose from {sorted(_METRICS)}.")
    y_true, y_pred = _check_labels(y_true, y_pred)
    return {name: float(_METRICS[name](y_true, y_pred)) for name in metrics}


def matched_confusion_matrix(
    y_true: Any,
    y_pred: Any,
    *,
    n_clusters: int | None = None,
    class_names: Sequence[str] | None = None,
) -> dict:
    """Clusters (rows) by classes (columns), the Hungarian matching of ACC on the diagonal.

    Matched clusters come first, by cluster number, each with its matched class in the
    same column position; then the unmatched clusters (rows) and classes (columns), so
    ``trace(counts) / n_samples`` is :func:`cluster_accuracy`.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        Known classes: any labels, or indices into ``class_names`` when it is given.
    y_pred : array-like of int of shape (n_samples,)
        Clusters, ``0`` to ``n_clusters - 1`` (e.g. a fitted estimator's ``labels_``).
    n_clusters : int, optional
        Rows, empty clusters included; by default the largest cluster number plus one.
    class_names : sequence of str, optional
        Names of the classes by index (``y_true`` then holds indices).

    Returns
    -------
    dict
        ``clusters`` (the row order, as cluster numbers), ``classes`` (the column order,
        as class names or labels) and ``counts`` (rows of int).
    """
    y_pred = np.asarray(y_pred, dtype=np.int64)
    if class_names is None:
        labels, codes = np.unique(np.asarray(y_true), return_inverse=True)
        names = labels.tolist()
    else:
        codes, names = np.asarray(y_true, dtype=np.int64), list(class_names)
    n_rows = int(y_pred.max()) + 1 if n_clusters is None else int(n_clusters)
    counts = np.zeros((n_rows, len(names)), dtype=np.int64)
    np.add.at(counts, (y_pred, codes), 1)
    rows, cols = linear_sum_assignment(counts, maximize=True)
    pairs = sorted(zip(rows.tolist(), cols.tolist()))
    matched_rows, matched_cols = {r for r, _ in pairs}, {c for _, c in pairs}
    row_order = [r for r, _ in pairs] + [r for r in range(n_rows) if r not in matched_rows]
    col_order = [c for _, c in pairs] + [c for c in range(len(names)) if c not in matched_cols]
    return {
        "clusters": row_order,
        "classes": [names[c] for c in col_order],
        "counts": counts[np.ix_(row_order, col_order)].tolist(),
    }
