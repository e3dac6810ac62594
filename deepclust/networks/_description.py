"""A network as a plain description (JSON) plus weights, and back: model files use it."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from deepclust.networks._backbones import BACKBONES, build_backbone
from deepclust.networks._filters import SobelFilter
from deepclust.networks._model import ClusteringNetwork

__all__ = ["describe_network", "network_from_description"]

#: Input filters a description may name, by name.
INPUT_FILTERS = {"sobel": SobelFilter}


def _filter_name(network: ClusteringNetwork) -> str | None:
    if isinstance(network.input_filter, nn.Identity):
        return None
    for name, cls in INPUT_FILTERS.items():
        if type(network.input_filter) is cls:
            return name
    raise ValueError(f"unknown input filter {type(network.input_filter).__name__}")


def describe_network(network: nn.Module, backbone, input_shape) -> dict:
    """The JSON description :func:`network_from_description` rebuilds ``network`` from.

    Parameters
    ----------
    network : ClusteringNetwork
        The network to describe (its weights are stored separately).
    backbone : str
        The registered backbone name it was built with.
    input_shape : tuple of int
        Shape of one input sample.

    Returns
    -------
    dict

    Raises
    ------
    ValueError
        When the network is not a :class:`ClusteringNetwork` or has an unknown filter.
    """
    if not isinstance(network, ClusteringNetwork):
        raise ValueError(f"its network is a {type(network).__name__}, not a ClusteringNetwork")
    projection = network.projection
    return {
        "backbone": backbone,
        "input_shape": [int(s) for s in input_shape],
        "n_features": int(network.n_features),
        "n_clusters": int(network.heads.n_clusters),
        "n_heads": len(network.heads),
        "projection_dim": (
            int(projection.layers[-1].out_features) if projection is not None else None
        ),
        "input_filter": _filter_name(network),
    }


def _read_description(spec: dict) -> tuple:
    try:
        return (
            spec["backbone"], tuple(int(s) for s in spec["input_shape"]),
            int(spec["n_clusters"]), int(spec["n_heads"]), spec["projection_dim"],
            spec["input_filter"], int(spec["n_features"]),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"Model file's network description is incomplete: {exc!r}.") from exc


def network_from_description(spec: dict) -> ClusteringNetwork:
    """A fresh :class:`ClusteringNetwork` (unit input statistics) from its description.

    Parameters
    ----------
    spec : dict
        Written by :func:`describe_network`.

    Returns
    -------
    ClusteringNetwork

    Raises
    ------
    ValueError
        When the description is incomplete, names an unknown backbone or filter, or does
        not match this version of the backbone.
    """
    backbone, input_shape, n_clusters, n_heads, projection_dim, filter_name, n_saved = (
        _read_description(spec)
    )
    if not isinstance(backbone, str) or backbone not in BACKBONES:
        raise ValueError(
            f"The model uses backbone {backbone!r}, which is not registered here. Register it "
            "with deepclust.networks.register_backbone(name, factory) before loading."
        )
    if filter_name is not None and filter_name not in INPUT_FILTERS:
        raise ValueError(f"Unknown input filter {filter_name!r} in the model file.")
    if n_clusters < 2 or n_heads < 1 or len(input_shape) not in (1, 3) or min(input_shape) < 1:
        raise ValueError(
            f"Invalid network description in the model file: {n_clusters} clusters, "
            f"{n_heads} heads, input shape {input_shape}."
        )
    input_filter = INPUT_FILTERS[filter_name]() if filter_name else None
    filter_shape = input_shape
    if input_filter is not None:
        with torch.no_grad():
            filter_shape = tuple(input_filter(torch.zeros(1, *input_shape)).shape[1:])
    module, n_features = build_backbone(backbone, filter_shape)
    if n_features != n_saved:
        raise ValueError(
            f"The model's backbone {backbone!r} gives {n_features} features here but the file "
            f"says {n_saved}; the file does not match this version of the backbone."
        )
    stats_shape = (input_shape[0],)
    return ClusteringNetwork(
        module, n_features, n_clusters, n_heads, mean=np.zeros(stats_shape, np.float32),
        std=np.ones(stats_shape, np.float32),
        projection_dim=int(projection_dim) if projection_dim else None,
        input_filter=input_filter,
    )
