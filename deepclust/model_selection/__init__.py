"""Model selection without labels: choosing the number of clusters.

:func:`choose_n_clusters` fits an estimator at several ``n_clusters`` (and seeds), scores
every fit with a label-free scorer of :mod:`deepclust.metrics` and returns an
:class:`NClustersSearch` holding the table, the chosen count and a plot.
"""

from __future__ import annotations

from deepclust.model_selection._n_clusters import (
    NClustersSearch,
    check_n_clusters_candidates,
    choose_n_clusters,
    default_n_clusters_candidates,
    geometric_n_clusters_grid,
)

__all__ = [
    "NClustersSearch",
    "check_n_clusters_candidates",
    "choose_n_clusters",
    "default_n_clusters_candidates",
    "geometric_n_clusters_grid",
]
