"""torchvision classification networks as backbones, and the weights a user already has.

A torchvision backbone is named ``'torchvision:NAME'`` (any classification model of
``torchvision.models``; a plain ``NAME`` that no registered backbone takes means the same).
It is the standard torchvision architecture without its classification layer, reading
``[0, 1]`` images: grey images are repeated to three channels and every image is
normalised with ImageNet's mean and standard deviation inside the backbone, as
torchvision's weights expect.

Weights (``weights=`` of every estimator) are a torchvision weights name such as
``'IMAGENET1K_V1'`` (downloaded by torchvision when the machine is online), a local file
(a ``.pth``/``.pt``/``.pth.tar`` state dict, or ``.safetensors``) or a state dict. Files
are read with ``torch.load(weights_only=True)``, so they never run code.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import torch
from torch import nn

from deepclust.networks._backbones import TIMM_PREFIX, TORCHVISION_PREFIX

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "TORCHVISION_PREFIX",
    "ImageNetInput",
    "TimmBackbone",
    "TorchvisionBackbone",
    "load_backbone_weights",
    "read_weights",
    "torchvision_model_names",
    "pretrained_image_size",
    "weights_image_size",
]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
#: Image side of the torchvision weights of a file or state dict (ImageNet's crop).
FILE_WEIGHTS_SIZE = 224
#: Keys that wrap a state dict in the checkpoints of common training scripts.
_WRAPPER_KEYS = ("state_dict", "model", "model_state_dict", "network", "net")
#: Prefixes that training scripts put before a backbone's own keys.
_PREFIXES = ("", "module.", "backbone.", "model.", "encoder.", "module.backbone.")


def torchvision_model_names() -> list[str]:
    """The classification models of ``torchvision.models``.

    Returns
    -------
    list of str
        Names ``'torchvision:NAME'`` accepts, e.g. ``'resnet18'``, ``'vgg16'``,
        ``'efficientnet_b0'``.
    """
    from torchvision import models

    return sorted(models.list_models(module=models))


class ImageNetInput(nn.Module):
    """Grey images repeated to RGB, then a per-channel normalisation (ImageNet's).

    The constants are non-persistent buffers: they follow the module to its device but
    are not part of its ``state_dict``.

    Parameters
    ----------
    mean, std : tuple of float
        Per RGB channel; ImageNet's by default.
    """

    def __init__(self, mean=IMAGENET_MEAN, std=IMAGENET_STD):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1), False)
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1), False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        return (x - self.mean.to(x.dtype)) / self.std.to(x.dtype)


def _drop_classifier(model: nn.Module) -> str:
    """Replace the last ``nn.Linear`` of ``model`` by ``nn.Identity``; return its name."""
    linear_names = [name for name, module in model.named_modules() if isinstance(module, nn.Linear)]
    if not linear_names:
        raise ValueError(
            f"{type(model).__name__} has no linear classification layer to drop; choose a "
            "torchvision model that ends in one (ResNets, VGGs, EfficientNets, ViTs, ...)."
        )
    name = linear_names[-1]
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, nn.Identity())
    return name


class TorchvisionBackbone(nn.Module):
    """A torchvision classification model without its classification layer.

    Parameters
    ----------
    name : str
        A name of :func:`torchvision_model_names`.
    n_channels : int
        Channels of the input: 1 (repeated to RGB) or 3.

    Attributes
    ----------
    model : nn.Module
        The torchvision model (``weights=None``) whose last linear layer is an identity.
    backbone_name : str
        ``'torchvision:NAME'``, the name model files describe it by.
    classifier_name : str
        The dropped layer's name (its keys are ignored when weights are loaded).
    reads_unit_input : bool
        Always True: the backbone normalises ``[0, 1]`` input itself, so the network around
        it keeps unit input statistics.
    """

    reads_unit_input = True

    def __init__(self, name: str, n_channels: int):
        super().__init__()
        if name not in torchvision_model_names():
            raise ValueError(
                f"{name!r} is not a torchvision classification model; choose one of "
                f"torchvision.models.list_models(module=torchvision.models), e.g. 'resnet18'."
            )
        if n_channels not in (1, 3):
            raise ValueError(
                f"torchvision backbones read grey or RGB images; got {n_channels} channels. "
                "Convert the images to RGB or grey first."
            )
        from torchvision import models

        self.backbone_name = TORCHVISION_PREFIX + name
        self.input = ImageNetInput()
        self.model = models.get_model(name, weights=None)
        self.classifier_name = _drop_classifier(self.model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.model(self.input(x))
        if isinstance(out, tuple):  # GoogLeNet / Inception in training mode
            out = out[0]
        return out.flatten(1)


def _import_timm():
    try:
        import timm
    except ImportError as exc:
        raise ValueError(
            "'timm:' backbones need the timm package: pip install 'deepclust[timm]'"
        ) from exc
    return timm


class TimmBackbone(nn.Module):
    """A timm model without its classifier (``num_classes=0``): its pooled features.

    Parameters
    ----------
    name : str
        A name of ``timm.list_models()``, e.g. ``'resnet50'`` or ``'vit_small_patch16_224'``.
    n_channels : int
        Channels of the input: 1 (repeated to RGB) or 3.

    Attributes
    ----------
    model : nn.Module
        ``timm.create_model(name, pretrained=False, num_classes=0)``.
    backbone_name : str
        ``'timm:NAME'``, the name model files describe it by.
    classifier_name : str
        The classifier's name in timm's state dicts (its keys are ignored when weights are
        loaded).
    reads_unit_input : bool
        Always True: the input is normalised with the model's own ``pretrained_cfg``
        mean and standard deviation inside the backbone.
    """

    reads_unit_input = True

    def __init__(self, name: str, n_channels: int):
        super().__init__()
        timm = _import_timm()
        if name not in timm.list_models():
            raise ValueError(f"{name!r} is not a timm model; see timm.list_models().")
        if n_channels not in (1, 3):
            raise ValueError(f"timm backbones read grey or RGB images; got {n_channels} channels.")
        self.backbone_name = TIMM_PREFIX + name
        self.model = timm.create_model(name, pretrained=False, num_classes=0)
        config = self.model.pretrained_cfg
        self.input = ImageNetInput(
            tuple(config.get("mean", IMAGENET_MEAN)), tuple(config.get("std", IMAGENET_STD))
        )
        classifier = config.get("classifier", "fc")
        self.classifier_name = classifier if isinstance(classifier, str) else classifier[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(self.input(x)).flatten(1)


def _torchvision_weights(name: str, value: str):
    """The torchvision weights enum member ``value`` of model ``name``, or None."""
    from torchvision import models

    try:
        enum = models.get_model_weights(name)
    except ValueError:
        return None
    return enum.__members__.get(value)


def _is_path(weights) -> bool:
    return isinstance(weights, os.PathLike) or (
        isinstance(weights, str) and (os.sep in weights or "." in weights)
    )


def _read_file(path: str) -> Mapping:
    if not os.path.isfile(path):
        raise ValueError(f"weights file {path!r} does not exist.")
    if path.endswith(".safetensors"):
        try:
            from safetensors.torch import load_file
        except ImportError as exc:
            raise ValueError(
                f"Reading {path!r} needs the safetensors package: pip install safetensors"
            ) from exc
        return load_file(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable or unsafe file
        raise ValueError(
            f"weights file {path!r} is not a PyTorch state dict that loads without running "
            f"code ({type(exc).__name__}: {str(exc)[:200]}). Save the network's weights "
            "with torch.save(model.state_dict(), path)."
        ) from exc
    return state


def _unwrap(state) -> Mapping[str, torch.Tensor]:
    """The state dict inside a checkpoint dictionary (``{'state_dict': ...}`` and alike)."""
    for key in _WRAPPER_KEYS:
        if isinstance(state, Mapping) and isinstance(state.get(key), Mapping):
            state = state[key]
            break
    if not isinstance(state, Mapping) or not all(
        isinstance(v, torch.Tensor) for v in state.values()
    ):
        raise ValueError(
            "weights must be a state dict (names to tensors), or a checkpoint holding one "
            f"under one of {list(_WRAPPER_KEYS)}."
        )
    return state


def read_weights(weights, backbone_name: str | None = None) -> Mapping[str, torch.Tensor]:
    """The state dict that ``weights`` names.

    Parameters
    ----------
    weights : str, path-like or mapping
        A torchvision weights name of ``backbone_name`` (``'IMAGENET1K_V1'``,
        ``'DEFAULT'``), a path to a ``.pth``/``.pt``/``.pth.tar``/``.safetensors`` file, or a
        state dict.
    backbone_name : str or None
        The torchvision model the weights are for (needed for weights names).

    Returns
    -------
    mapping of str to torch.Tensor

    Raises
    ------
    ValueError
        When the file is missing or unreadable, the name is no weights of the model, or
        the download fails (offline machines: download on an online one and pass the file).
    """
    if isinstance(weights, Mapping):
        return _unwrap(weights)
    if not isinstance(weights, (str, os.PathLike)):
        raise TypeError(
            f"weights must be a weights name, a file path or a state dict; got "
            f"{type(weights).__name__}."
        )
    member = None
    if isinstance(weights, str) and backbone_name is not None and not _is_path(weights):
        member = _torchvision_weights(backbone_name, weights)
    if member is None:
        if isinstance(weights, str) and not _is_path(weights):
            raise ValueError(
                f"weights={weights!r} is neither a file nor a torchvision weights name of "
                f"{backbone_name!r}; pass a .pth/.pt/.safetensors path, a state dict, or "
                "one of torchvision.models.get_model_weights(name)'s names."
            )
        return _unwrap(_read_file(os.fspath(weights)))
    try:
        return member.get_state_dict(progress=False)
    except Exception as exc:  # noqa: BLE001 - no network, a proxy, a broken cache
        raise ValueError(
            f"Could not download torchvision's {member} ({type(exc).__name__}: "
            f"{str(exc)[:200]}). On a machine without internet, download the file elsewhere "
            f"(its address is {member.url}) and pass its path as weights=."
        ) from exc


def weights_image_size(weights, backbone_name: str) -> int:
    """The image side the weights were trained at (their centre crop; 224 for files).

    Parameters
    ----------
    weights : str, path-like or mapping
        As :func:`read_weights`.
    backbone_name : str
        The torchvision model name.

    Returns
    -------
    int
    """
    if isinstance(weights, str) and not _is_path(weights):
        member = _torchvision_weights(backbone_name, weights)
        if member is not None:
            crop = getattr(member.transforms, "keywords", {}).get("crop_size")
            if crop:
                return int(crop)
    return FILE_WEIGHTS_SIZE


def _matching_keys(state: Mapping, expected: set[str]) -> tuple[dict, str]:
    """The entries of ``state`` under the prefix that covers most ``expected`` keys."""
    best, best_prefix = {}, ""
    for prefix in _PREFIXES:
        found = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
        found = {k: v for k, v in found.items() if k in expected}
        if len(found) > len(best):
            best, best_prefix = found, prefix
    return best, best_prefix


def load_backbone_weights(module: nn.Module, weights, backbone_name: str | None = None) -> None:
    """Load ``weights`` into a backbone in place (the classification layer's keys ignored).

    Parameters
    ----------
    module : nn.Module
        A :class:`TorchvisionBackbone` (weights go to its ``model``) or any backbone.
    weights : str, path-like or mapping
        As :func:`read_weights`. Keys may carry a ``module.``, ``backbone.``, ``model.`` or
        ``encoder.`` prefix (DataParallel, a deepclust network's state dict, ...).
    backbone_name : str or None
        The torchvision model name, for weights names.

    Raises
    ------
    ValueError
        When keys of the backbone are missing from the weights, the weights have keys the
        backbone lacks (besides its classification layer's), or shapes differ.
    """
    target = module.model if isinstance(module, (TorchvisionBackbone, TimmBackbone)) else module
    state = read_weights(weights, backbone_name)
    expected = target.state_dict()
    found, prefix = _matching_keys(state, set(expected))
    missing = sorted(set(expected) - set(found))
    if missing:
        raise ValueError(
            f"The weights do not fit this backbone: {len(missing)} of its {len(expected)} "
            f"entries are missing (e.g. {missing[:3]}; the weights have e.g. "
            f"{sorted(state)[:3]}). Check that backbone= names the architecture the weights "
            "were saved from."
        )
    classifier = getattr(module, "classifier_name", None)
    extra = sorted(
        key[len(prefix) :]
        for key in state
        if key.startswith(prefix)
        and key[len(prefix) :] not in expected
        and not (classifier and key[len(prefix) :].startswith(classifier + "."))
    )
    if extra:
        raise ValueError(
            f"The weights do not fit this backbone: they have {len(extra)} entries it lacks "
            f"(e.g. {extra[:3]}). Check that backbone= names the architecture the weights "
            "were saved from (e.g. 'resnet34' rather than 'resnet18')."
        )
    wrong = [k for k, v in found.items() if tuple(v.shape) != tuple(expected[k].shape)]
    if wrong:
        key = wrong[0]
        raise ValueError(
            f"The weights do not fit this backbone: {prefix}{key} has shape "
            f"{tuple(found[key].shape)} but the backbone's is {tuple(expected[key].shape)}. "
            "Check backbone= and the number of image channels."
        )
    target.load_state_dict(found)


def pretrained_image_size(backbone: str, weights) -> int | None:
    """The image side a backbone with ``weights`` reads by default, or None.

    Parameters
    ----------
    backbone : str
        A resolved backbone name (see :func:`~deepclust.networks.resolve_backbone_name`).
    weights : object
        The ``weights`` parameter; None gives None.

    Returns
    -------
    int or None
        For a torchvision backbone, the weights' own size (:func:`weights_image_size`);
        for a ``'timm:'`` one, its ``pretrained_cfg`` input size; else None (the recipe
        decides).
    """
    if weights is None or not isinstance(backbone, str):
        return None
    if backbone.startswith(TORCHVISION_PREFIX):
        return weights_image_size(weights, backbone[len(TORCHVISION_PREFIX) :])
    if backbone.startswith(TIMM_PREFIX):
        config = _import_timm().get_pretrained_cfg(backbone[len(TIMM_PREFIX) :])
        size = getattr(config, "input_size", None) if config is not None else None
        return int(size[-1]) if size else FILE_WEIGHTS_SIZE
    return None
