"""What the fits of one method at several ``n_clusters`` can share (for
:func:`deepclust.model_selection.choose_n_clusters`): each method declares it in its
:class:`~deepclust.methods.MethodSpec` (``share_pretext``); this module applies it.
"""

from __future__ import annotations

from typing import Any

from sklearn.base import clone

from deepclust.methods._registry import method_spec

__all__ = [
    "first_candidate_pretext",
    "pretext_only_fit",
    "shared_description",
    "shared_stage",
]


def pretext_only_fit(estimator, X, n_clusters: int, seed: int) -> tuple[dict, None]:
    """SCAN's sharing: one fit with no SCAN, head-search or self-labelling epoch (its
    pretext only), whose network every candidate starts from as ``pretrained``.

    Parameters
    ----------
    estimator : SCANClusterer
        The estimator searched over.
    X : array-like
        The training data.
    n_clusters : int
        The first candidate (the heads of the pretext-only fit are not used).
    seed : int
        The search's seed.

    Returns
    -------
    params : dict
        ``{'pretrained': the pretext-only fit}``.
    first_fit : None
    """
    pretext = clone(estimator).set_params(
        n_clusters=n_clusters,
        random_state=seed,
        max_epochs=0,
        selflabel_epochs=0,
        n_head_candidates=0,
        head_warmup_epochs=0,
    )
    return {"pretrained": pretext.fit(X)}, None


def first_candidate_pretext(estimator, X, n_clusters: int, seed: int) -> tuple[dict, Any]:
    """ClusterFit's sharing: the first candidate's fit, whose ``pretext_network_`` the
    other candidates cluster as ``pretrained``.

    Parameters
    ----------
    estimator : ClusterFitTransformer
        The estimator searched over.
    X : array-like
        The training data.
    n_clusters : int
        The first candidate.
    seed : int
        The search's seed.

    Returns
    -------
    params : dict
        ``{'pretrained': the first fit's pretext network}``.
    first_fit : ClusterFitTransformer
        The first candidate's fit.
    """
    first = clone(estimator).set_params(n_clusters=n_clusters, random_state=seed).fit(X)
    return {"pretrained": first.pretext_network_}, first


def _share(estimator):
    """The method's ``share_pretext`` (None for an estimator of no registered method)."""
    try:
        return method_spec(estimator).share_pretext
    except TypeError:
        return None


def _own_pretext(estimator) -> str | None:
    """Why the estimator has nothing to share whatever its method, or None."""
    if getattr(estimator, "pretrained", None) is not None:
        return "pretrained"
    if getattr(estimator, "pretext_epochs", None) == 0:
        return "no pretext"
    return None


def shared_stage(estimator, X, k: int, seed: int) -> tuple[dict, Any]:
    """What the fits of one seed share: ``(params for every candidate, first fit or None)``.

    Parameters
    ----------
    estimator : BaseDeepClusterer
        The estimator searched over.
    X : array-like
        The training data.
    k : int
        The first candidate.
    seed : int
        The search's seed.

    Returns
    -------
    params : dict
    first_fit : estimator or None
    """
    share = _share(estimator)
    if share is None or _own_pretext(estimator):
        return {}, None
    return share(estimator, X, k, seed)


def shared_description(estimator) -> str:
    """What :func:`shared_stage` shares for this estimator, in words.

    Parameters
    ----------
    estimator : BaseDeepClusterer
        The estimator searched over.

    Returns
    -------
    str
    """
    name = type(estimator).__name__
    reason = _own_pretext(estimator)
    if reason == "pretrained":
        return f"{name} was given pretrained=; every candidate starts from it"
    if reason == "no pretext":
        return f"nothing: {name} has pretext_epochs=0"
    if _share(estimator) is None:
        return f"nothing: {name} has no stage that does not depend on n_clusters"
    return method_spec(estimator).share_description
