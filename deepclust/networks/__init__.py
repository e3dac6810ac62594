"""Networks: backbones by name or as modules, clustering and projection heads."""

from deepclust.networks._backbones import (
    BACKBONES,
    MLP,
    SmallConvNet,
    backbone_factory,
    build_backbone,
    feature_dim,
    register_backbone,
    resolve_backbone_name,
)
from deepclust.networks._description import describe_network, network_from_description
from deepclust.networks._filters import INPUT_INVARIANCES, InvariantInput, SobelFilter
from deepclust.networks._heads import ClusteringHeads, ProjectionHead, StackedLinearHeads
from deepclust.networks._model import ClusteringNetwork, Normalize
from deepclust.networks._pretrained import (
    TimmBackbone,
    TorchvisionBackbone,
    load_backbone_weights,
    pretrained_image_size,
    read_weights,
    torchvision_model_names,
    weights_image_size,
)

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
    "TimmBackbone",
    "TorchvisionBackbone",
    "backbone_factory",
    "build_backbone",
    "describe_network",
    "feature_dim",
    "load_backbone_weights",
    "network_from_description",
    "pretrained_image_size",
    "read_weights",
    "register_backbone",
    "resolve_backbone_name",
    "torchvision_model_names",
    "weights_image_size",
]
