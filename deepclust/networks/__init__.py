"""Networks: backbones by name or as modules, clustering and projection heads."""

from deepclust.networks._backbones import (
    BACKBONES,
    MLP,
    SmallConvNet,
    build_backbone,
    feature_dim,
    register_backbone,
)
from deepclust.networks._description import describe_network, network_from_description
from deepclust.networks._filters import INPUT_INVARIANCES, InvariantInput, SobelFilter
from deepclust.networks._heads import ClusteringHeads, ProjectionHead, StackedLinearHeads
from deepclust.networks._model import ClusteringNetwork, Normalize

__all__ = [
    "BACKBONES",
    "INPUT_INVARIANCES",
    "InvariantInput",
    "MLP",
    "ClusteringHeads",
    "ClusteringNetwork",
    "Normalize",
    "ProjectionHead",
    "SmallConvNet",
    "SobelFilter",
    "StackedLinearHeads",
    "build_backbone",
    "describe_network",
    "feature_dim",
    "network_from_description",
    "register_backbone",
]
