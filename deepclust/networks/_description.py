"""A network as a plain description (JSON) plus weights, and back: model files use it."""

from __future__ import annotations

import contextlib
import math
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from deepclust._utils import is_int, short_repr
from deepclust.networks._backbones import backbone_factory, build_backbone, feature_dim
from deepclust.networks._filters import InvariantInput, SobelFilter
from deepclust.networks._model import ClusteringNetwork

__all__ = [
    "check_description",
    "describe_network",
    "description_state_shapes",
    "network_from_description",
]

#: Input filters a description may name, by name (besides ``'invariant:...'`` names of
#: :class:`InvariantInput`).
INPUT_FILTERS = {"sobel": SobelFilter}

#: Upper bounds of a description's fields: a description beyond them is refused before
#: anything is allocated (they are far above what any model of this library needs).
MAX_CLUSTERS = 1_000_000
MAX_HEADS = 1_000
MAX_DIM = 65_536  #: each input dimension, and the projection size
MAX_INPUT_VALUES = 2**24  #: values per input sample (C * H * W or D)
MAX_FEATURES = 2**20  #: backbone feature size

#: The fields of a description, in the order :func:`describe_network` writes them.
DESCRIPTION_FIELDS = (
    "backbone",
    "input_shape",
    "n_features",
    "n_clusters",
    "n_heads",
    "projection_dim",
    "input_filter",
)
#: Fields a description has only when they are set (older descriptions lack them).
OPTIONAL_FIELDS = ("feature_normalize",)


def _one_filter_name(module: nn.Module) -> str:
    if isinstance(module, InvariantInput):
        return module.name
    for name, cls in INPUT_FILTERS.items():
        if type(module) is cls:
            return name
    raise ValueError(f"unknown input filter {type(module).__name__}")


def _filter_name(network: ClusteringNetwork) -> str | list[str] | None:
    """The description of the network's input filter: None, a name or a list of names."""
    if isinstance(network.input_filter, nn.Identity):
        return None
    if isinstance(network.input_filter, nn.Sequential):
        return [_one_filter_name(module) for module in network.input_filter]
    return _one_filter_name(network.input_filter)


def make_input_filter(description: str | list[str] | None) -> nn.Module | None:
    """The input filter a description names (see :func:`describe_network`).

    Parameters
    ----------
    description : str, list of str or None
        ``'sobel'``, ``'invariant:colour,background'``, a list of them (applied in order)
        or None.

    Returns
    -------
    nn.Module or None
    """
    if description is None:
        return None
    if isinstance(description, list):
        return nn.Sequential(*(make_input_filter(name) for name in description))
    if description in INPUT_FILTERS:
        return INPUT_FILTERS[description]()
    return InvariantInput.from_name(description)


def _check_filter(value: Any, field: str) -> None:
    names = value if isinstance(value, list) and value else [value]
    for name in names:
        if not isinstance(name, str):
            break
        try:
            make_input_filter(name)
        except ValueError:
            break
    else:
        return
    raise ValueError(
        f"{field} must be null, one of {sorted(INPUT_FILTERS)} or 'invariant:' and input "
        f"invariances, or a list of them; got {short_repr(value)}"
    )


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
    optional = {"feature_normalize": True} if network.feature_normalize is not None else {}
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
        **optional,
    }


def _bounded_int(value: Any, field: str, low: int, high: int) -> int:
    if not (is_int(value) and low <= value <= high):
        raise ValueError(
            f"{field} must be an integer between {low} and {high}; got {short_repr(value)}"
        )
    return value


def _input_shape(value: Any, field: str) -> tuple[int, ...]:
    if not isinstance(value, (list, tuple)) or len(value) not in (1, 3):
        raise ValueError(
            f"{field} must be a list of 1 or 3 integers (features (D,) or images (C, H, W)); "
            f"got {short_repr(value)}"
        )
    shape = tuple(_bounded_int(s, f"{field}[{i}]", 1, MAX_DIM) for i, s in enumerate(value))
    if math.prod(shape) > MAX_INPUT_VALUES:
        raise ValueError(
            f"{field} must hold at most {MAX_INPUT_VALUES} values per sample; got "
            f"{list(shape)} ({math.prod(shape)} values)"
        )
    return shape


def check_description(spec: Any, where: str = "network") -> dict:
    """Check every field of a network description without building anything.

    Parameters
    ----------
    spec : object
        A description as read from a model file (any JSON value).
    where : str, default='network'
        The description's name in the file, used in error messages
        (``network.n_clusters must be ...``).

    Returns
    -------
    dict
        The fields, with ``input_shape`` as a tuple.

    Raises
    ------
    ValueError
        Naming the first field that is missing, of the wrong type or out of range
        (``n_clusters`` <= 1,000,000, ``n_heads`` <= 1,000, each input dimension and
        ``projection_dim`` <= 65,536, at most 2**24 values per input sample). Whether
        ``backbone`` is registered is not checked here.
    """
    if not isinstance(spec, dict):
        raise ValueError(f"{where} must be a JSON object; got {short_repr(spec)}")
    missing = [key for key in DESCRIPTION_FIELDS if key not in spec]
    if missing:
        raise ValueError(f"{where}.{missing[0]} is missing")
    unknown = sorted(set(spec) - set(DESCRIPTION_FIELDS) - set(OPTIONAL_FIELDS))
    if unknown:
        raise ValueError(f"{where} has unknown entries {unknown}")
    if not isinstance(spec["backbone"], str):
        raise ValueError(
            f"{where}.backbone must be a string naming a registered backbone; got "
            f"{short_repr(spec['backbone'])}"
        )
    projection = spec["projection_dim"]
    if projection is not None:
        _bounded_int(projection, f"{where}.projection_dim", 1, MAX_DIM)
    if spec["input_filter"] is not None:
        _check_filter(spec["input_filter"], f"{where}.input_filter")
    feature_normalize = spec.get("feature_normalize", False)
    if not isinstance(feature_normalize, bool):
        raise ValueError(
            f"{where}.feature_normalize must be true or false; got {short_repr(feature_normalize)}"
        )
    return {
        "backbone": spec["backbone"],
        "input_shape": _input_shape(spec["input_shape"], f"{where}.input_shape"),
        "n_features": _bounded_int(spec["n_features"], f"{where}.n_features", 1, MAX_FEATURES),
        "n_clusters": _bounded_int(spec["n_clusters"], f"{where}.n_clusters", 2, MAX_CLUSTERS),
        "n_heads": _bounded_int(spec["n_heads"], f"{where}.n_heads", 1, MAX_HEADS),
        "projection_dim": projection,
        "input_filter": spec["input_filter"],
        "feature_normalize": feature_normalize,
    }


class _ShapesOnly(TorchFunctionMode):
    """Tensors created from a shape (parameters, buffers, dry-run inputs) go to the meta
    device, which holds shapes but no memory; tensors created from data stay on the CPU
    (``MLP`` sizes itself with ``torch.tensor(shape).prod()``)."""

    _FROM_SHAPE = frozenset(
        {
            torch.empty,
            torch.empty_strided,
            torch.zeros,
            torch.ones,
            torch.full,
            torch.rand,
            torch.randn,
            torch.randint,
            torch.eye,
        }
    )

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = dict(kwargs or {})
        if func in self._FROM_SHAPE and kwargs.get("device") is None:
            kwargs["device"] = "meta"
        return func(*args, **kwargs)


def _registered(backbone: str, where: str) -> None:
    if backbone_factory(backbone) is None:
        raise ValueError(
            f"{where}.backbone {backbone!r} is not registered here. Register it with "
            "deepclust.networks.register_backbone(name, factory) before loading"
        )


def _filter_shape(filter_name, input_shape: tuple[int, ...], where: str) -> tuple:
    """Shape of one sample after the input filter, found without memory."""
    if filter_name is None:
        return input_shape
    if len(input_shape) != 3:
        raise ValueError(
            f"{where}.input_filter {filter_name!r} needs images, but {where}.input_shape is "
            f"{list(input_shape)}"
        )
    with torch.device("meta"):
        return tuple(make_input_filter(filter_name)(torch.zeros(1, *input_shape)).shape[1:])


def _build(values: dict, where: str, shapes_only: bool) -> ClusteringNetwork:
    """The network of checked description ``values``: with ``shapes_only`` on the meta
    device (no memory), else on the CPU. Its feature size is found by a dry run on the
    meta device (for real only for a backbone that cannot run there)."""
    backbone, input_shape = values["backbone"], values["input_shape"]
    filter_name = values["input_filter"]
    filter_shape = _filter_shape(filter_name, input_shape, where)
    module = None
    with _ShapesOnly():
        try:
            n_features = feature_dim(backbone_factory(backbone)(filter_shape), filter_shape)
        except Exception:  # noqa: BLE001 - a backbone that cannot run on the meta device
            n_features = values["n_features"] if shapes_only else None
    if n_features is None:
        module, n_features = build_backbone(backbone, filter_shape)
    if n_features != values["n_features"]:
        raise ValueError(
            f"The model's backbone {backbone!r} gives {n_features} features here but "
            f"{where}.n_features is {values['n_features']}; the file does not match this "
            "version of the backbone"
        )
    stats_shape = (input_shape[0],)
    feature_stats = None
    if values["feature_normalize"]:
        feature_stats = (np.zeros(n_features, np.float32), np.ones(n_features, np.float32))
    with _ShapesOnly() if shapes_only else contextlib.nullcontext():
        return ClusteringNetwork(
            module if module is not None else backbone_factory(backbone)(filter_shape),
            n_features,
            values["n_clusters"],
            values["n_heads"],
            mean=np.zeros(stats_shape, np.float32),
            std=np.ones(stats_shape, np.float32),
            projection_dim=values["projection_dim"],
            input_filter=make_input_filter(filter_name),
            feature_stats=feature_stats,
        )


def description_state_shapes(spec: Any, where: str = "network") -> dict:
    """The ``state_dict`` the described network has, as shapes, without allocating it.

    Parameters
    ----------
    spec : object
        A network description, checked with :func:`check_description`.
    where : str, default='network'
        The description's name in the file, used in error messages.

    Returns
    -------
    dict of str to (torch.dtype, tuple of int)
        Each ``state_dict`` entry's dtype and shape, found by building the network on the
        meta device (parameters without memory).

    Raises
    ------
    ValueError
        As :func:`network_from_description`.
    """
    values = check_description(spec, where)
    _registered(values["backbone"], where)
    network = _build(values, where, shapes_only=True)
    return {key: (value.dtype, tuple(value.shape)) for key, value in network.state_dict().items()}


def network_from_description(spec: dict, where: str = "network") -> ClusteringNetwork:
    """A fresh :class:`ClusteringNetwork` (unit input statistics) from its description.

    Parameters
    ----------
    spec : dict
        Written by :func:`describe_network`.
    where : str, default='network'
        The description's name, used in error messages.

    Returns
    -------
    ClusteringNetwork
        On the CPU, with freshly initialised weights (load the saved ``state_dict`` next).

    Raises
    ------
    ValueError
        When a field is missing, of the wrong type or out of range (see
        :func:`check_description`), the backbone is not registered, or the description
        does not match this version of the backbone.
    """
    values = check_description(spec, where)
    _registered(values["backbone"], where)
    return _build(values, where, shapes_only=False)
