"""The ``pretrained`` parameter: a network or transformer whose features a method starts from.

SCAN mines its neighbours on these features and, when they come from a network, starts its
backbone from that network's weights; ClusterFit clusters them. One resolver accepts every
form a user may have at hand and gives one error type for a wrong kind.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from sklearn.exceptions import NotFittedError
from sklearn.utils.validation import check_is_fitted
from torch import nn

from deepclust._utils import to_numpy
from deepclust.data import DataSource
from deepclust.networks import ClusteringNetwork
from deepclust.training import run_inference

__all__ = ["FeatureSource", "FrozenFeatures", "check_feature_source", "resolve_feature_source"]

ACCEPTED = (
    "an nn.Module mapping a (B, C, H, W) batch in [0, 1] to features, a callable doing the "
    "same, a fitted scikit-learn transformer (e.g. a fitted PCA, applied to the flattened "
    "samples), a fitted deepclust estimator, or a fitted skorch net (an object with a "
    "module_ attribute)"
)


class FrozenFeatures(nn.Module):
    """A module around a feature function that has no trainable weights.

    Parameters
    ----------
    function : callable
        Maps a ``(B, ...)`` float tensor to ``(B, F)`` features (tensor or array).
    """

    def __init__(self, function: Callable):
        super().__init__()
        self.function = function

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.function(x)
        out = out if isinstance(out, torch.Tensor) else torch.as_tensor(np.asarray(out))
        return out.to(device=x.device, dtype=torch.float32).flatten(1)


@dataclass
class FeatureSource:
    """A resolved ``pretrained`` argument.

    Attributes
    ----------
    module : nn.Module
        Maps a raw ``[0, 1]`` batch to ``(B, F)`` features (a private copy).
    trainable : bool
        Whether ``module`` has weights a backbone can start from (a network), or is a
        fixed function (a transformer or callable).
    backbone : nn.Module
        The part a new network takes as its backbone: without the input normalisation and
        filter when those are given separately.
    stats : tuple of ndarray or None
        The input normalisation ``(mean, std)`` the backbone was trained with, or ``None``
        (raw ``[0, 1]`` input).
    input_filter : nn.Module or None
        A fixed filter the backbone expects before it (DeepCluster's Sobel filter).
    """

    module: nn.Module
    trainable: bool
    backbone: nn.Module
    stats: tuple[np.ndarray, np.ndarray] | None = None
    input_filter: nn.Module | None = None

    def features(
        self,
        source: DataSource,
        device: torch.device,
        batch_size: int,
        progress=None,
        large_dtype: torch.dtype | None = None,
    ) -> torch.Tensor:
        """Features of every sample of ``source``, float32 on the CPU (``large_dtype``
        above 2**28 values, when given).

        Parameters
        ----------
        source : DataSource
            The samples, loaded as raw ``[0, 1]`` batches.
        device : torch.device
            Where the batches are computed; a network is moved there.
        batch_size : int
            Samples per forward pass (halved on running out of GPU memory).
        progress : str, optional
            Show a progress bar with this description (on stderr, when a terminal).
        large_dtype : torch.dtype, optional
            Storage of a feature matrix of more than 2**28 values; None keeps float32.
        """
        module = self.module.to(device) if self.trainable else self.module
        features = run_inference(
            module,
            source,
            device=device,
            batch_size=batch_size,
            modules=(module,),
            autocast=self.trainable,
            progress=progress,
            large_dtype=large_dtype,
        )
        return features.flatten(1)


def _from_network(network) -> FeatureSource:
    network = copy.deepcopy(network)
    stats = (to_numpy(network.normalize.mean), to_numpy(network.normalize.std))
    filt = None if isinstance(network.input_filter, nn.Identity) else network.input_filter
    return FeatureSource(
        module=_NetworkFeatures(network),
        trainable=True,
        backbone=network.backbone,
        stats=stats,
        input_filter=filt,
    )


class _NetworkFeatures(nn.Module):
    """The ``features`` of a :class:`~deepclust.networks.ClusteringNetwork` as a module."""

    def __init__(self, network: nn.Module):
        super().__init__()
        self.network = network

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.network.features(x)


def _from_transformer(transformer) -> FeatureSource:
    def transform(batch: torch.Tensor) -> np.ndarray:
        flat = to_numpy(batch.detach().float().cpu()).reshape(len(batch), -1)
        return np.asarray(transformer.transform(flat), dtype=np.float32)

    module = FrozenFeatures(transform)
    return FeatureSource(module=module, trainable=False, backbone=module)


def _classify(pretrained) -> tuple[str, object]:
    """The kind of a ``pretrained`` argument (``'network'``, ``'module'``,
    ``'transformer'`` or ``'callable'``) and the object its features come from, checked
    for kind and fittedness without copying anything."""
    from deepclust.methods._base import BaseDeepClusterer

    name = type(pretrained).__name__
    if isinstance(pretrained, BaseDeepClusterer):
        network = getattr(pretrained, "network_", None)
        if network is None:
            raise NotFittedError(f"pretrained={name} is not fitted; fit it first or pass None.")
        return "network", network
    if isinstance(pretrained, ClusteringNetwork):
        return "network", pretrained
    module = getattr(pretrained, "module_", None)
    if not isinstance(pretrained, nn.Module) and isinstance(module, nn.Module):
        return "module", module  # a fitted skorch net
    if isinstance(pretrained, nn.Module):
        return "module", pretrained
    if hasattr(pretrained, "transform") and hasattr(pretrained, "fit"):
        try:
            check_is_fitted(pretrained)
        except NotFittedError as exc:
            raise NotFittedError(f"pretrained={name} is not fitted; fit it first.") from exc
        return "transformer", pretrained
    if callable(pretrained):
        return "callable", pretrained
    raise TypeError(f"pretrained must be {ACCEPTED}; got {name}.")


def check_feature_source(pretrained) -> None:
    """Refuse a ``pretrained`` argument of the wrong kind, or not fitted, before training.

    Parameters
    ----------
    pretrained : object
        The argument, as for :func:`resolve_feature_source` (``None`` is not checked here).

    Raises
    ------
    TypeError
        When ``pretrained`` is none of the accepted kinds.
    sklearn.exceptions.NotFittedError
        When it is an estimator or transformer that is not fitted yet.
    """
    _classify(pretrained)


def resolve_feature_source(pretrained) -> FeatureSource:
    """Resolve a ``pretrained`` argument into a :class:`FeatureSource`.

    Parameters
    ----------
    pretrained : nn.Module, callable, fitted transformer, fitted deepclust estimator or \
fitted skorch net
        What the features come from; see :data:`ACCEPTED`. Modules are copied, never
        trained in place.

    Returns
    -------
    FeatureSource

    Raises
    ------
    TypeError
        When ``pretrained`` is none of the accepted kinds.
    sklearn.exceptions.NotFittedError
        When it is an estimator or transformer that is not fitted yet.
    """
    kind, source = _classify(pretrained)
    if kind == "network":
        return _from_network(source)
    if kind == "module":
        module = copy.deepcopy(source)
        return FeatureSource(module=module, trainable=True, backbone=module)
    if kind == "transformer":
        return _from_transformer(source)
    module = FrozenFeatures(source)
    return FeatureSource(module=module, trainable=False, backbone=module)
