"""Backbone networks by name, plus "bring your own ``nn.Module``"."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

__all__ = [
    "MLP",
    "SmallConvNet",
    "BACKBONES",
    "backbone_factory",
    "build_backbone",
    "feature_dim",
    "register_backbone",
    "resolve_backbone_name",
]

InputShape = tuple[int, ...]
TORCHVISION_PREFIX = "torchvision:"
TIMM_PREFIX = "timm:"
BackboneFactory = Callable[[InputShape], nn.Module]


class MLP(nn.Module):
    """Fully connected backbone for 2-D ``(N, D)`` input (features or tabular data).

    Parameters
    ----------
    in_features : int
        Input width.
    hidden : tuple of int
        Widths of the hidden layers; the last one is the feature size.
    """

    def __init__(self, in_features: int, hidden: tuple[int, ...] = (256, 128)):
        super().__init__()
        layers: list[nn.Module] = [nn.Flatten()]
        width = in_features
        for size in hidden:
            layers += [nn.Linear(width, size), nn.BatchNorm1d(size), nn.ReLU(inplace=True)]
            width = size
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


def _conv_block(c_in: int, c_out: int) -> list[nn.Module]:
    return [
        nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    ]


class SmallConvNet(nn.Module):
    """A small VGG-style conv net for images up to about 32 px.

    Three stages of 3x3 convolutions (``width``, ``2*width``, ``4*width`` channels), each
    followed by 2x2 max-pooling except the last, then global average pooling. The
    feature size is ``4 * width``.

    Parameters
    ----------
    in_channels : int
        Channels of the input images.
    width : int, default=32
        Channels of the first stage; the later stages have twice and four times as many.
    """

    def __init__(self, in_channels: int, width: int = 32):
        super().__init__()
        self.layers = nn.Sequential(
            *_conv_block(in_channels, width),
            *_conv_block(width, width),
            nn.MaxPool2d(2),
            *_conv_block(width, 2 * width),
            *_conv_block(2 * width, 2 * width),
            nn.MaxPool2d(2),
            *_conv_block(2 * width, 4 * width),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


def _resnet(depth: int, shape: InputShape) -> nn.Module:
    from torchvision.models import resnet18, resnet50

    net = (resnet18 if depth == 18 else resnet50)(weights=None)
    channels, height = shape[0], shape[1]
    if height <= 32:
        # Small-image stem (as in CIFAR ResNets): 3x3 stride-1 conv, no max-pooling.
        net.conv1 = nn.Conv2d(channels, 64, 3, stride=1, padding=1, bias=False)
        net.maxpool = nn.Identity()
    elif channels != 3:
        net.conv1 = nn.Conv2d(channels, 64, 7, stride=2, padding=3, bias=False)
    net.fc = nn.Identity()
    return net


class _AlexNetSmall(nn.Module):
    """AlexNet's five conv layers with 3x3 kernels and BN, for images up to 32 px."""

    def __init__(self, in_channels: int):
        super().__init__()
        widths = (64, 192, 384, 256, 256)
        layers: list[nn.Module] = []
        c_in = in_channels
        for i, width in enumerate(widths):
            layers += _conv_block(c_in, width)
            if i in (0, 1, 4):
                layers.append(nn.MaxPool2d(2))
            c_in = width
        layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


def _alexnet(shape: InputShape) -> nn.Module:
    channels, height = shape[0], shape[1]
    if height <= 32:
        return _AlexNetSmall(channels)
    from torchvision.models import alexnet

    net = alexnet(weights=None)
    if channels != 3:
        net.features[0] = nn.Conv2d(channels, 64, 11, stride=4, padding=2)
    net.classifier = net.classifier[:-1]  # keep fc6/fc7: 4096-dimensional features
    return net


def _require_images(name: str, shape: InputShape) -> None:
    if len(shape) != 3:
        raise ValueError(
            f"backbone={name!r} needs images (N, C, H, W); got 2-D features of width "
            f"{shape[0]}. Use backbone='mlp' (or 'auto') for feature matrices."
        )


def _image_backbone(name: str, build: Callable[[InputShape], nn.Module]) -> BackboneFactory:
    def factory(shape: InputShape) -> nn.Module:
        _require_images(name, shape)
        return build(shape)

    return factory


def _mlp(shape: InputShape) -> nn.Module:
    return MLP(int(torch.tensor(shape).prod()))


def _auto(shape: InputShape) -> nn.Module:
    if len(shape) == 1:
        return _mlp(shape)
    if max(shape[1:]) <= 32:
        return SmallConvNet(shape[0])
    return _resnet(18, shape)


class DeepClusterConvNet(nn.Module):
    """The convnets of DeepCluster's released models (AlexNet and VGG-16 with batch norm).

    ``features`` (convolutions, each followed by batch norm and ReLU, and max-pooling),
    average pooling to the grid the reference flattens (6x6 for AlexNet, 7x7 for VGG-16:
    the identity at 224 px, where the reference needs exactly that grid), then
    ``classifier`` up to fc7 and its ReLU: 4096 features. Module indices follow the
    reference's (``features.N``, ``classifier.N``) so its weights load by name.

    Parameters
    ----------
    arch : {'alexnet', 'vgg16'}
        The network.
    in_channels : int
        Input channels: 2 after the Sobel filter of the released models, else 3.
    """

    #: Convolutions ``(channels, kernel, stride, padding)`` and ``'M'`` (max-pooling).
    CONFIGS = {
        "alexnet": [(96, 11, 4, 2), "M", (256, 5, 1, 2), "M", (384, 3, 1, 1)]
        + [(384, 3, 1, 1), (256, 3, 1, 1), "M"],
        "vgg16": [
            *[(64, 3, 1, 1)] * 2 + ["M"],
            *[(128, 3, 1, 1)] * 2 + ["M"],
            *[(256, 3, 1, 1)] * 3 + ["M"],
            *([(512, 3, 1, 1)] * 3 + ["M"]) * 2,
        ],
    }

    def __init__(self, arch: str, in_channels: int):
        super().__init__()
        layers: list[nn.Module] = []
        c_in = in_channels
        for entry in self.CONFIGS[arch]:
            if entry == "M":
                layers.append(nn.MaxPool2d(3, 2) if arch == "alexnet" else nn.MaxPool2d(2, 2))
                continue
            width, kernel, stride, padding = entry
            conv = nn.Conv2d(c_in, width, kernel, stride=stride, padding=padding)
            layers += [conv, nn.BatchNorm2d(width), nn.ReLU(inplace=True)]
            c_in = width
        self.features = nn.Sequential(*layers)
        grid = 6 if arch == "alexnet" else 7
        self.pool = nn.AdaptiveAvgPool2d(grid)
        fc6, fc7 = nn.Linear(c_in * grid * grid, 4096), nn.Linear(4096, 4096)
        relu = [nn.ReLU(inplace=True), nn.ReLU(inplace=True)]
        if arch == "alexnet":
            self.classifier = nn.Sequential(
                nn.Dropout(0.5), fc6, relu[0], nn.Dropout(0.5), fc7, relu[1]
            )
        else:
            self.classifier = nn.Sequential(fc6, relu[0], nn.Dropout(0.5), fc7, relu[1])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.pool(self.features(x)).flatten(1))


def _scan_resnet18_stl(shape: InputShape) -> nn.Module:
    """SCAN's STL-10 ResNet-18: a 3x3 stride-1 stem, then 2x2 stride-2 max-pooling with
    padding 1 (global average pooling, their 7x7 average pooling at 96 px)."""
    from torchvision.models import resnet18

    net = resnet18(weights=None)
    net.conv1 = nn.Conv2d(shape[0], 64, 3, stride=1, padding=1, bias=False)
    net.maxpool = nn.MaxPool2d(2, stride=2, padding=1)
    net.fc = nn.Identity()
    return net


BACKBONES: dict[str, BackboneFactory] = {
    "auto": _auto,
    "mlp": _mlp,
    "convnet": _image_backbone("convnet", lambda s: SmallConvNet(s[0])),
    "convnet-small": _image_backbone("convnet-small", lambda s: SmallConvNet(s[0], width=16)),
    "resnet18": _image_backbone("resnet18", lambda s: _resnet(18, s)),
    "resnet50": _image_backbone("resnet50", lambda s: _resnet(50, s)),
    "alexnet": _image_backbone("alexnet", _alexnet),
    "deepcluster-alexnet": _image_backbone(
        "deepcluster-alexnet", lambda s: DeepClusterConvNet("alexnet", s[0])
    ),
    "deepcluster-vgg16": _image_backbone(
        "deepcluster-vgg16", lambda s: DeepClusterConvNet("vgg16", s[0])
    ),
    "scan-resnet18-stl": _image_backbone("scan-resnet18-stl", _scan_resnet18_stl),
}
"""Registered backbone factories; each takes the per-sample input shape."""


def register_backbone(name: str, factory: BackboneFactory) -> None:
    """Register ``factory(input_shape) -> nn.Module`` under ``name``.

    Parameters
    ----------
    name : str
        The name estimators accept as ``backbone``; an existing entry is replaced.
    factory : callable
        ``factory(input_shape) -> nn.Module``, called with the per-sample shape
        ``(C, H, W)`` or ``(D,)``; the module maps a batch to ``(B, F)`` features.
    """
    BACKBONES[name] = factory


def _torchvision_factory(name: str) -> BackboneFactory:
    from deepclust.networks._pretrained import TorchvisionBackbone

    def factory(shape: InputShape) -> nn.Module:
        _require_images(TORCHVISION_PREFIX + name, shape)
        return TorchvisionBackbone(name, shape[0])

    return factory


def _timm_factory(name: str) -> BackboneFactory:
    from deepclust.networks._pretrained import TimmBackbone

    def factory(shape: InputShape) -> nn.Module:
        _require_images(TIMM_PREFIX + name, shape)
        return TimmBackbone(name, shape[0])

    return factory


def backbone_factory(name: str) -> BackboneFactory | None:
    """The factory of backbone ``name``: a registered one, ``'torchvision:NAME'`` or
    ``'timm:NAME'``.

    Parameters
    ----------
    name : str
        A key of :data:`BACKBONES`, ``'torchvision:'`` followed by a torchvision
        classification model's name, or ``'timm:'`` followed by a timm model's name (with
        the optional ``timm`` package; whether the name exists is checked when it is built).

    Returns
    -------
    callable or None
        ``factory(input_shape) -> nn.Module``; None for an unknown name.
    """
    if name in BACKBONES:
        return BACKBONES[name]
    if name.startswith(TIMM_PREFIX):
        return _timm_factory(name[len(TIMM_PREFIX) :])
    if name.startswith(TORCHVISION_PREFIX):
        from deepclust.networks._pretrained import torchvision_model_names

        if name[len(TORCHVISION_PREFIX) :] in torchvision_model_names():
            return _torchvision_factory(name[len(TORCHVISION_PREFIX) :])
    return None


def resolve_backbone_name(backbone: str, weights=None) -> str:
    """The backbone a name builds: a registered one, else the torchvision model.

    Registered names win, except that with ``weights`` the names of torchvision models
    (``'resnet18'``, ``'resnet50'``, ``'alexnet'``) mean the standard torchvision
    architecture, which is the one such weights fit.

    Parameters
    ----------
    backbone : str
        The ``backbone`` parameter.
    weights : object, optional
        The ``weights`` parameter (only whether it is None matters).

    Returns
    -------
    str
        A name :func:`backbone_factory` builds, unchanged when it builds nothing (the
        caller reports the unknown name).
    """
    if backbone.startswith((TORCHVISION_PREFIX, TIMM_PREFIX)):
        return backbone
    if backbone in BACKBONES and weights is None:
        return backbone  # without importing torchvision
    from deepclust.networks._pretrained import torchvision_model_names

    in_torchvision = backbone in torchvision_model_names()
    if in_torchvision and (weights is not None or backbone not in BACKBONES):
        return TORCHVISION_PREFIX + backbone
    return backbone


def feature_dim(module: nn.Module, input_shape: InputShape) -> int:
    """Output feature size of ``module``, found by a dry forward pass on two zero samples.

    Parameters
    ----------
    module : nn.Module
        A backbone, run in eval mode on the device of its parameters (its training mode
        is restored); outputs beyond two dimensions are flattened.
    input_shape : tuple of int
        Shape of one sample: ``(C, H, W)`` or ``(D,)``.
    """
    was_training = module.training
    module.eval()
    try:
        param = next(module.parameters(), None)
        device = param.device if param is not None else torch.device("cpu")
        with torch.no_grad():
            out = module(torch.zeros((2, *input_shape), device=device))
    finally:
        module.train(was_training)
    if out.ndim != 2:
        out = out.reshape(out.shape[0], -1)
    return int(out.shape[1])


def build_backbone(backbone: str | nn.Module, input_shape: InputShape) -> tuple[nn.Module, int]:
    """Build (or adopt) a backbone and find its feature size.

    Parameters
    ----------
    backbone : str or nn.Module
        A registered name (see :data:`BACKBONES`), a torchvision classification model
        (``'torchvision:NAME'``, or ``NAME`` when no registered backbone has it) or a
        module mapping a batch of samples to ``(B, F)`` features (anything else is
        flattened). A given module is used as is (the caller passes a copy if it must stay
        untouched).
    input_shape : tuple of int
        Shape of one sample: ``(C, H, W)`` or ``(D,)``.

    Returns
    -------
    module : nn.Module
    n_features : int
    """
    if isinstance(backbone, nn.Module):
        module = backbone
    elif isinstance(backbone, str):
        factory = backbone_factory(resolve_backbone_name(backbone))
        if factory is None:
            raise ValueError(
                f"Unknown backbone {backbone!r}; choose one of {sorted(BACKBONES)}, a "
                "torchvision classification model ('torchvision:NAME' or NAME, e.g. "
                "'vgg16'), or pass an nn.Module."
            )
        module = factory(tuple(input_shape))
    else:
        raise TypeError(f"backbone must be a name or an nn.Module; got {type(backbone).__name__}.")
    try:
        n_features = feature_dim(module, tuple(input_shape))
    except Exception as exc:
        raise ValueError(
            f"The backbone failed on input of shape {tuple(input_shape)}: {exc}. Check that it "
            "accepts this many channels and this image size."
        ) from exc
    return module, n_features
