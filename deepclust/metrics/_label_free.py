"""Label-free scores of a fitted clustering, for choosing ``n_clusters`` without labels.

Every scorer has scikit-learn's signature ``scorer(estimator, X, y=None) -> float``
(greater is better, ``y`` ignored), so it can be passed as ``GridSearchCV(scoring=...)``
or to :func:`deepclust.model_selection.choose_n_clusters`. Every score depends on the
partition only, never on the numbering of the clusters.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import adjusted_mutual_info_score, adjusted_rand_score, cohen_kappa_score
from sklearn.metrics import silhouette_score as _sklearn_silhouette
from sklearn.preprocessing import StandardScaler
from sklearn.utils import check_random_state

from deepclust._utils import to_numpy

__all__ = [
    "augmentation_agreement",
    "cosine_silhouette",
    "linear_predictability",
    "linear_predictability_score",
    "silhouette_scorer",
    "subsample_stability",
]

_AGREEMENT = {"ari": adjusted_rand_score, "ami": adjusted_mutual_info_score}


def _agreement_metric(metric: str):
    if metric not in _AGREEMENT:
        raise ValueError(f"metric must be one of {sorted(_AGREEMENT)}; got {metric!r}.")
    return _AGREEMENT[metric]


def cosine_silhouette(features: Any, labels: Any, *, max_samples: int = 5000) -> float:
    """Cosine silhouette of a clustering of ``features`` (higher is better).

    Parameters
    ----------
    features : array-like of shape (n_samples, n_features)
        The representation the clusters are judged in; rows are L2-normalised first.
    labels : array-like of shape (n_samples,)
        The cluster of every sample (any hashable ids).
    max_samples : int, default=5000
        The silhouette is measured on at most this many samples (a fixed random subset).

    Returns
    -------
    float
        In ``[-1, 1]``; -1 when there is a single cluster or one cluster per sample.
    """
    features = np.asarray(features, dtype=np.float64)
    labels = np.asarray(labels)
    n_labels = len(np.unique(labels))
    if n_labels < 2 or n_labels >= len(labels):
        return -1.0
    norms = np.linalg.norm(features, axis=1, keepdims=True)
    embedding = features / np.maximum(norms, 1e-12)
    return float(
        _sklearn_silhouette(
            embedding,
            labels,
            metric="cosine",
            sample_size=min(max_samples, len(labels)),
            random_state=0,
            n_jobs=1,  # the same distances whatever joblib's active n_jobs (see _base.score)
        )
    )


def silhouette_scorer(estimator, X, y=None) -> float:
    """Scorer: cosine silhouette of ``predict(X)`` on the learned features ``transform(X)``.

    The value the deepclust estimators' own ``score`` returns, for any fitted estimator
    with ``transform`` and ``predict``.

    Parameters
    ----------
    estimator : fitted estimator
        Has ``transform`` (the representation) and ``predict`` (the clusters).
    X : array-like
        The samples scored.
    y : None
        Ignored.

    Returns
    -------
    float
        See :func:`cosine_silhouette`.
    """
    return cosine_silhouette(estimator.transform(X), estimator.predict(X))


def _predict_views(estimator, X, augment, n_views: int, random_state: int) -> list[np.ndarray]:
    """Labels of ``n_views`` independently augmented views of every sample."""
    from deepclust.training import run_inference

    source = estimator._read_input(X, reset=False)
    device = estimator._inference_device()
    network = estimator.network_.to(device)
    head = estimator._head_index()
    generator = torch.Generator(device=device).manual_seed(int(random_state))

    def labels_of_views(batch):
        out = []
        for _ in range(n_views):
            features = network.features(augment(batch, generator))
            logits = network.heads(features)[head]
            out.append(estimator._labels_from_outputs(features, logits))
        return out

    views = run_inference(
        labels_of_views,
        source,
        device=device,
        batch_size=estimator._inference_batch_size(device),
        modules=(network,),
    )
    return [to_numpy(v).astype(np.int64) for v in views]


def _augmenter(estimator, policy, noise: float):
    """``augment(batch, generator)``: the image policy, or Gaussian noise on 2-D features."""
    from deepclust.augment import make_augmentation

    if estimator.input_kind_ != "images":
        scale = noise * estimator.network_.normalize.std.detach().flatten()

        def jitter(batch, generator):
            draw = torch.randn(batch.shape, generator=generator, device=batch.device)
            return batch + draw * scale.to(batch.device, batch.dtype)

        return jitter
    channels, height, width = estimator.input_shape_
    module = make_augmentation(policy, image_size=(height, width), n_channels=channels)
    return lambda batch, generator: module(batch, generator=generator)


def augmentation_agreement(
    estimator,
    X,
    y=None,
    *,
    augmentation: str = "weak",
    noise: float = 0.1,
    metric: str = "ari",
    random_state: int = 0,
) -> float:
    """Scorer: chance-corrected agreement of the clusters of two augmented views.

    Every sample is augmented twice independently and both views are assigned to clusters
    by the estimator's network (as ``predict`` does); the score is the adjusted Rand index
    (or adjusted mutual information) between the two labelings. Adjusted for chance, it is
    about 0 for unrelated labelings whatever the number of clusters, and 1 when no view
    changes cluster.

    Parameters
    ----------
    estimator : fitted deepclust estimator
        Its ``network_`` labels the views.
    X : array-like or images
        The samples, as for ``predict``.
    y : None
        Ignored.
    augmentation : str or nn.Module, default='weak'
        The image augmentation policy (:func:`deepclust.augment.make_augmentation`).
    noise : float, default=0.1
        For 2-D features (which the image policies leave unchanged): Gaussian noise with
        this fraction of each feature's standard deviation (the one the network
        normalises with).
    metric : {'ari', 'ami'}, default='ari'
        Adjusted Rand index or adjusted mutual information.
    random_state : int, default=0
        Seed of the augmentations.

    Returns
    -------
    float
        At most 1; about 0 for chance agreement.
    """
    score = _agreement_metric(metric)
    augment = _augmenter(estimator, augmentation, noise)
    first, second = _predict_views(estimator, X, augment, 2, random_state)
    return float(score(first, second))


def linear_predictability_score(
    features: Any, labels: Any, *, C: float = 1.0, random_state: int = 0
) -> float:
    """How well a linear classifier trained on half the samples predicts the other half.

    A logistic regression (on standardised features) learns ``labels`` from a random half
    of the samples, stratified by cluster, and predicts the other half; the score is
    Cohen's kappa between its predictions and ``labels`` there (1: all right, about 0: no
    better than guessing by cluster sizes).

    Parameters
    ----------
    features : array-like of shape (n_samples, n_features)
        The representation.
    labels : array-like of shape (n_samples,)
        The cluster of every sample.
    C : float, default=1.0
        Inverse regularisation strength of the logistic regression.
    random_state : int, default=0
        Seed of the split.

    Returns
    -------
    float
        Cohen's kappa in ``[-1, 1]``; -1 for a single cluster.
    """
    features = np.asarray(features, dtype=np.float64)
    labels = np.unique(np.asarray(labels), return_inverse=True)[1]
    if labels.max(initial=0) < 1:
        return -1.0
    # Half of every cluster (at least one sample) for training, taken in one random order
    # of the samples, so that the split does not depend on how the clusters are numbered.
    order = check_random_state(random_state).permutation(len(labels))
    train = np.zeros(len(labels), dtype=bool)
    for cluster in np.unique(labels):
        members = order[labels[order] == cluster]
        train[members[: max(1, len(members) // 2)]] = True
    if train.all():
        return -1.0
    scaler = StandardScaler().fit(features[train])
    classifier = LogisticRegression(C=C, max_iter=500)
    classifier.fit(scaler.transform(features[train]), labels[train])
    predicted = classifier.predict(scaler.transform(features[~train]))
    return float(cohen_kappa_score(labels[~train], predicted))


def linear_predictability(estimator, X, y=None, *, C: float = 1.0, random_state: int = 0):
    """Scorer: :func:`linear_predictability_score` of ``predict(X)`` on ``transform(X)``.

    Parameters
    ----------
    estimator : fitted estimator
        Has ``transform`` and ``predict``.
    X : array-like
        The samples scored.
    y : None
        Ignored.
    C : float, default=1.0
        Inverse regularisation strength of the logistic regression.
    random_state : int, default=0
        Seed of the split.

    Returns
    -------
    float
        Cohen's kappa on the held-out half.
    """
    return linear_predictability_score(
        estimator.transform(X), estimator.predict(X), C=C, random_state=random_state
    )


def subsample_stability(
    estimator, X, y=None, *, fraction: float = 0.8, metric: str = "ari", random_state: int = 0
) -> float:
    """Scorer: agreement of two refits on random subsamples, on the samples they share.

    Clones of ``estimator`` (same parameters, the seed included) are fitted on two random
    subsamples of ``X``; each predicts the samples both subsamples hold, and the score is
    the adjusted Rand index (or AMI) between the two predictions. It costs two fits.

    Parameters
    ----------
    estimator : estimator
        Its parameters are used; it need not be fitted.
    X : array-like or images
        Indexable by an integer array along the first axis (arrays, tensors).
    y : None
        Ignored.
    fraction : float, default=0.8
        Fraction of the samples in each subsample.
    metric : {'ari', 'ami'}, default='ari'
        The agreement measure.
    random_state : int, default=0
        Seed of the subsamples.

    Returns
    -------
    float
        At most 1; about 0 for chance agreement.
    """
    score = _agreement_metric(metric)
    n = len(X)
    size = int(round(fraction * n))
    if not 2 <= size <= n:
        raise ValueError(f"fraction={fraction} leaves {size} of {n} samples; use (0, 1].")
    rng = check_random_state(random_state)
    first, second = (np.sort(rng.choice(n, size, replace=False)) for _ in range(2))
    shared = np.intersect1d(first, second)
    labels = [clone(estimator).fit(X[part]).predict(X[shared]) for part in (first, second)]
    return float(score(*labels))
