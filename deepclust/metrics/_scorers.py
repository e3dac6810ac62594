"""Scorers for model selection of clustering estimators with ground-truth labels.

The scorers call ``estimator.predict(X)`` and compare the cluster
assignments with ``y``, so they suit ``GridSearchCV(..., scoring=...)``
fitted as ``search.fit(X, y)``. scikit-learn resolves *string* scoring names
through its own private registry, which this module does not modify: pass
the scorer objects (``scoring=cluster_accuracy_scorer``), a dict of them for
multi-metric search, or ``scoring=get_scorer("cluster_accuracy")``.
"""

from __future__ import annotations

from collections.abc import Callable

from sklearn.metrics import get_scorer as _sklearn_get_scorer
from sklearn.metrics import get_scorer_names as _sklearn_get_scorer_names
from sklearn.metrics import make_scorer

from deepclust.metrics._cluster import cluster_accuracy, purity

__all__ = [
    "SCORERS",
    "cluster_accuracy_scorer",
    "get_scorer",
    "get_scorer_names",
    "purity_scorer",
]

#: Hungarian cluster accuracy of ``estimator.predict(X)`` against ``y``.
cluster_accuracy_scorer = make_scorer(cluster_accuracy)
#: Purity of ``estimator.predict(X)`` against ``y`` (favours many clusters).
purity_scorer = make_scorer(purity)

#: Scorers defined by deepclust, plus short aliases of scikit-learn's clustering scorers.
SCORERS: dict[str, Callable] = {
    "cluster_accuracy": cluster_accuracy_scorer,
    "acc": cluster_accuracy_scorer,
    "purity": purity_scorer,
    "nmi": _sklearn_get_scorer("normalized_mutual_info_score"),
    "ari": _sklearn_get_scorer("adjusted_rand_score"),
    "ami": _sklearn_get_scorer("adjusted_mutual_info_score"),
}


def get_scorer(scoring: str | Callable) -> Callable:
    """Return a scorer by name, looking in :data:`SCORERS` then in scikit-learn.

    Parameters
    ----------
    scoring : str or callable
        A name from :data:`SCORERS` (``'cluster_accuracy'``, ``'acc'``,
        ``'purity'``, ``'nmi'``, ``'ari'``, ``'ami'``), any name known to
        :func:`sklearn.metrics.get_scorer`, or a callable (returned as is).

    Returns
    -------
    callable
        ``scorer(estimator, X, y) -> float``, greater is better.

    Examples
    --------
    >>> get_scorer("cluster_accuracy") is cluster_accuracy_scorer
    True
    """
    if callable(scoring):
        return scoring
    if not isinstance(scoring, str):
        raise TypeError(f"scoring must be a string or a callable, got {type(scoring).__name__}.")
    if scoring in SCORERS:
        return SCORERS[scoring]
    try:
        return _sklearn_get_scorer(scoring)
    except ValueError:
        raise ValueError(
            f"{scoring!r} is not a known scorer; use one of {sorted(SCORERS)} or a name from "
            "sklearn.metrics.get_scorer_names()."
        ) from None


def get_scorer_names() -> list[str]:
    """Names accepted by :func:`get_scorer` (deepclust's and scikit-learn's), sorted."""
    return sorted(set(SCORERS) | set(_sklearn_get_scorer_names()))
