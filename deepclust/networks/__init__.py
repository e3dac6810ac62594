"""Networks: backbones by name or as modules, clustering and projection heads."""

from deepclust.networks._backbones import (
    BACKBONES,
    MLP,
    SmallConvNet,
    build_backbone,
    feature_dim,
    register_backbone,
)
from deepclust.networks._filters import SobelFilter
from deepclust.networks._heads import ClusteringHeads, ProjectionHead, StackedLinearHeads
from deepclust.networks._model import ClusteringNetwork, Normalize

__all__ = [
    "BACKBONES",
    "MLP",
    "ClusteringHeads",
    "ClusteringNetwork",
    "Normalize",
    "ProjectionHead",
    "SmallConvNet",
    "SobelFilter",
    "StackedLinearHeads",
    "build_backbone",
    "feature_dim",
    "register_backbone",
]
