"""Clustering metrics and model-selection scorers.

Accuracy under the Hungarian (or majority) cluster-to-class mapping, purity,
the scikit-learn information-theoretic and pair-counting scores, and
scorers for :class:`~sklearn.model_selection.GridSearchCV`, with labels and without
(the label-free scores used to choose ``n_clusters``).
"""

from __future__ import annotations

from deepclust.metrics._cluster import (
    adjusted_mutual_info_score,
    adjusted_rand_score,
    ami,
    ari,
    cluster_accuracy,
    cluster_mapping,
    evaluate_clustering,
    matched_confusion_matrix,
    nmi,
    normalized_mutual_info_score,
    purity,
)
from deepclust.metrics._label_free import (
    augmentation_agreement,
    cosine_silhouette,
    linear_predictability,
    linear_predictability_score,
    silhouette_scorer,
    subsample_stability,
)
from deepclust.metrics._scorers import (
    SCORERS,
    cluster_accuracy_scorer,
    get_scorer,
    get_scorer_names,
    purity_scorer,
)

__all__ = [
    "SCORERS",
    "adjusted_mutual_info_score",
    "adjusted_rand_score",
    "ami",
    "ari",
    "augmentation_agreement",
    "cluster_accuracy",
    "cluster_accuracy_scorer",
    "cluster_mapping",
    "cosine_silhouette",
    "evaluate_clustering",
    "get_scorer",
    "get_scorer_names",
    "linear_predictability",
    "linear_predictability_score",
    "matched_confusion_matrix",
    "nmi",
    "normalized_mutual_info_score",
    "purity",
    "purity_scorer",
    "silhouette_scorer",
    "subsample_stability",
]
