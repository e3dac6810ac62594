"""What the fits of one method at several ``n_clusters`` can share (for
:func:`deepclust.model_selection.choose_n_clusters`): the stages that do not depend on
``n_clusters``, passed to the other fits as ``pretrained``.
"""

from __future__ import annotations

from typing import Any

from sklearn.base import clone

__all__ = ["shared_description", "shared_stage"]


def _pretext_only(estimator, seed: int):
    """SCAN with no SCAN, head-search or self-labelling epoch: its fit is the pretext."""
    return clone(estimator).set_params(
        random_state=seed,
        max_epochs=0,
        selflabel_epochs=0,
        n_head_candidates=0,
        head_warmup_epochs=0,
    )


def shared_stage(estimator, X, k: int, seed: int) -> tuple[dict, Any]:
    """What the fits of one seed share: ``(params for every candidate, first fit or None)``.

    SCAN: a pretext-only fit, whose network every candidate starts from (``pretrained``).
    ClusterFit: the first candidate's fit, whose ``pretext_network_`` the others cluster.
    """
    from deepclust.methods.clusterfit import ClusterFitTransformer
    from deepclust.methods.scan import SCANClusterer

    if getattr(estimator, "pretrained", None) is not None:
        return {}, None
    if getattr(estimator, "pretext_epochs", None) == 0:
        return {}, None
    if isinstance(estimator, SCANClusterer):
        pretext = _pretext_only(estimator, seed).set_params(n_clusters=k).fit(X)
        return {"pretrained": pretext}, None
    if isinstance(estimator, ClusterFitTransformer):
        first = clone(estimator).set_params(n_clusters=k, random_state=seed).fit(X)
        return {"pretrained": first.pretext_network_}, first
    return {}, None


def shared_description(estimator) -> str:
    from deepclust.methods.clusterfit import ClusterFitTransformer
    from deepclust.methods.scan import SCANClusterer

    name = type(estimator).__name__
    if getattr(estimator, "pretrained", None) is not None:
        return f"{name} was given pretrained=; every candidate starts from it"
    if getattr(estimator, "pretext_epochs", None) == 0:
        return f"nothing: {name} has pretext_epochs=0"
    if isinstance(estimator, SCANClusterer):
        return "the pretext network: one pretext-only fit per seed, passed as pretrained="
    if isinstance(estimator, ClusterFitTransformer):
        return (
            "the pretext network: the first candidate's pretext_network_ per seed, passed "
            "as pretrained= to the others"
        )
    return f"nothing: {name} has no stage that does not depend on n_clusters"
