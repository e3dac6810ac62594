"""Save and load fitted estimators in a safe, portable format.

A saved model is two files side by side:

- ``<prefix>.safetensors``: every tensor (the network's ``state_dict`` and fitted arrays
  such as DeepCluster's centroids and whitening), in the `safetensors` format, which holds
  raw tensors only and cannot carry code;
- ``<prefix>.json``: the estimator's class name, its (JSON-serialisable) parameters, the
  fitted scalars and shapes needed to rebuild its network, a format version and the
  SHA-256 of the ``.safetensors`` file.

:func:`load_model` rebuilds the estimator from a fixed list of deepclust classes and
registered backbones; it never unpickles or imports anything named in the files, and
refuses a file whose hash, tensor names or tensor shapes do not match with a
:class:`ValueError`. Unlike ``pickle``, the format survives refactoring of the library's
private attributes and is safe to load from an untrusted source (the SHA-256 detects
corruption and accidental edits; it is not a signature).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from numbers import Integral, Real
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from deepclust._utils import atomic_write

__all__ = ["FORMAT_VERSION", "save_model", "load_model", "model_paths"]

#: Version of the model-file layout written by :func:`save_model`.
FORMAT_VERSION = 1

_FORMAT_NAME = "deepclust-model"
_NETWORK = "network."
_PRETRAINED = "pretrained_network."
_WHITENING = "whitening_."
_WHITENING_ARRAYS = ("mean_", "components_", "explained_variance_")


def _estimator_classes() -> dict[str, type]:
    from deepclust.methods.clusterfit import ClusterFitTransformer
    from deepclust.methods.deepcluster import DeepClusterEstimator
    from deepclust.methods.scan import SCANClusterer
    from deepclust.methods.sela import SelfLabelClusterer

    return {
        cls.__name__: cls
        for cls in (SelfLabelClusterer, DeepClusterEstimator, SCANClusterer, ClusterFitTransformer)
    }


def model_paths(path: str | os.PathLike) -> tuple[Path, Path]:
    """The ``(.safetensors, .json)`` pair a model path refers to.

    Parameters
    ----------
    path : str or path-like
        A prefix (``out/model``), either file of the pair, or a folder holding
        ``model.json``.

    Returns
    -------
    tensors_path, metadata_path : Path
    """
    path = Path(path)
    if path.is_dir():
        path = path / "model"
    if path.suffix in (".json", ".safetensors"):
        path = path.with_suffix("")
    return Path(f"{path}.safetensors"), Path(f"{path}.json")


# ---------------------------------------------------------------------- saving
def _json_param(name: str, value: Any, estimator_name: str) -> Any:
    """A JSON-safe copy of one constructor parameter, or a ValueError saying why not."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, Integral):
        return int(value)
    if isinstance(value, Real):
        return float(value)
    if isinstance(value, torch.device):
        return str(value)
    if isinstance(value, np.random.RandomState):
        return None  # only used for fitting; a loaded model is already fitted
    if isinstance(value, (tuple, list, np.ndarray)):
        array = np.asarray(value)
        if array.dtype.kind in "biuf" and array.ndim == 1:
            return array.tolist()
    if isinstance(value, nn.Module) or getattr(value, "_deepclust_estimator", False) or callable(
        value
    ):
        raise ValueError(
            f"Cannot save {estimator_name} with {name}={type(value).__name__}: a module, "
            "estimator or function cannot be stored in the portable model format (it would "
            "mean executing code when loading). Fit with a registered backbone name "
            "(see deepclust.networks.BACKBONES) and without a custom "
            f"{name!r}, or save the estimator with pickle/joblib instead (trusted files only)."
        )
    raise ValueError(
        f"Cannot save {estimator_name}: parameter {name}={value!r} of type "
        f"{type(value).__name__} is not JSON-serialisable."
    )


def _json_value(value: Any) -> Any:
    """History records and fitted scalars as plain JSON values."""
    if isinstance(value, dict):
        return {str(k): _json_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_value(v) for v in value]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, Integral):
        return int(value)
    if isinstance(value, Real):
        value = float(value)
        return value if math.isfinite(value) else None
    if isinstance(value, str) or value is None:
        return value
    return str(value)


def _network_spec(network: nn.Module, backbone: Any, input_shape, estimator_name: str) -> dict:
    from deepclust.networks import ClusteringNetwork, SobelFilter

    if not isinstance(network, ClusteringNetwork):
        raise ValueError(
            f"Cannot save {estimator_name}: its network is a {type(network).__name__}, not a "
            "deepclust ClusteringNetwork."
        )
    if isinstance(network.input_filter, SobelFilter):
        input_filter = "sobel"
    elif isinstance(network.input_filter, nn.Identity):
        input_filter = None
    else:
        raise ValueError(
            f"Cannot save {estimator_name}: unknown input filter "
            f"{type(network.input_filter).__name__}."
        )
    heads = network.heads.heads
    projection = network.projection
    return {
        "backbone": backbone,
        "input_shape": [int(s) for s in input_shape],
        "n_features": int(network.n_features),
        "n_clusters": int(heads[0].out_features),
        "n_heads": len(heads),
        "projection_dim": (
            int(projection.layers[-1].out_features) if projection is not None else None
        ),
        "input_filter": input_filter,
    }


def _state_tensors(module: nn.Module, prefix: str) -> dict[str, torch.Tensor]:
    return {
        prefix + key: value.detach().cpu().clone().contiguous()
        for key, value in module.state_dict().items()
    }


def save_model(estimator, path_prefix: str | os.PathLike) -> tuple[Path, Path]:
    """Write a fitted deepclust estimator as ``<prefix>.safetensors`` + ``<prefix>.json``.

    Both files are written atomically (temporary name, then rename); the JSON file, which
    holds the SHA-256 of the tensors, is written last.

    Parameters
    ----------
    estimator : fitted SelfLabelClusterer, DeepClusterEstimator, SCANClusterer or
        ClusterFitTransformer
        Its parameters must be JSON-serialisable: a module-valued ``backbone``,
        ``pretext`` or ``pretrained`` cannot be saved (a :class:`ValueError` says so).
    path_prefix : str or path-like
        ``out/model`` writes ``out/model.safetensors`` and ``out/model.json``; a folder
        writes ``model.*`` inside it.

    Returns
    -------
    tensors_path, metadata_path : Path
    """
    from safetensors.torch import save as save_tensors
    from sklearn.utils.validation import check_is_fitted

    classes = _estimator_classes()
    name = type(estimator).__name__
    if classes.get(name) is not type(estimator):
        raise TypeError(
            f"save_model saves deepclust estimators ({', '.join(sorted(classes))}); got {name}."
        )
    check_is_fitted(estimator, "network_")
    params = {
        key: _json_param(key, value, name)
        for key, value in estimator.get_params(deep=False).items()
    }
    tensors = _state_tensors(estimator.network_, _NETWORK)
    metadata: dict[str, Any] = {
        "format": _FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "estimator": name,
        "params": params,
        "network": _network_spec(
            estimator.network_, params["backbone"], estimator.input_shape_, name
        ),
        "fitted": {
            "input_kind_": str(estimator.input_kind_),
            "input_shape_": [int(s) for s in estimator.input_shape_],
            "n_features_in_": int(estimator.n_features_in_),
            "n_iter_": _json_value(getattr(estimator, "n_iter_", None)),
            "history_": _json_value(getattr(estimator, "history_", [])),
        },
    }
    if hasattr(estimator, "best_head_"):
        metadata["fitted"]["best_head_"] = int(estimator.best_head_)
    if hasattr(estimator, "labels_"):
        tensors["labels_"] = torch.as_tensor(np.asarray(estimator.labels_, dtype=np.int64))
    if getattr(estimator, "cluster_centers_", None) is not None:
        tensors["cluster_centers_"] = torch.as_tensor(
            np.ascontiguousarray(estimator.cluster_centers_)
        ).clone()
    whitening = getattr(estimator, "whitening_", None)
    if whitening is not None:
        for attr in _WHITENING_ARRAYS:
            tensors[_WHITENING + attr] = torch.as_tensor(getattr(whitening, attr)).detach().cpu(
            ).clone().contiguous()
        metadata["whitening"] = {
            "n_components_": int(whitening.n_components_),
            "n_features_in_": int(whitening.n_features_in_),
            "eps": float(whitening.eps),
            "l2_normalize": bool(whitening.l2_normalize),
        }
    pretrained = getattr(estimator, "pretrained_network_", None)
    if pretrained is not None:
        metadata["pretrained_network"] = _network_spec(
            pretrained, params["backbone"], estimator.input_shape_, name
        )
        tensors.update(_state_tensors(pretrained, _PRETRAINED))
    # Prove now that the files will load: rebuild the networks and compare every tensor.
    _check_rebuildable(metadata, tensors)

    blob = save_tensors(tensors, metadata={"format": _FORMAT_NAME})
    metadata["tensors"] = {"sha256": hashlib.sha256(blob).hexdigest(), "n_bytes": len(blob)}
    tensors_path, metadata_path = model_paths(path_prefix)
    tensors_path.parent.mkdir(parents=True, exist_ok=True)
    metadata["tensors"]["file"] = tensors_path.name
    atomic_write(tensors_path, blob)
    atomic_write(metadata_path, json.dumps(metadata, indent=1).encode("utf-8"))
    return tensors_path, metadata_path


def _check_rebuildable(metadata: dict, tensors: dict[str, torch.Tensor]) -> None:
    for key, prefix in (("network", _NETWORK), ("pretrained_network", _PRETRAINED)):
        if key not in metadata:
            continue
        rebuilt = _build_network(metadata[key], metadata["estimator"])
        expected = {k: v.shape for k, v in rebuilt.state_dict().items()}
        saved = {k[len(prefix):]: v.shape for k, v in tensors.items() if k.startswith(prefix)}
        if expected != saved:
            raise ValueError(
                f"Cannot save {metadata['estimator']}: its {key} does not match the network "
                f"its parameters build (backbone={metadata[key]['backbone']!r}); it was "
                "probably built from a pretext module. Save it with pickle/joblib instead."
            )


# ---------------------------------------------------------------------- loading
def _build_network(spec: dict, estimator_name: str):
    from deepclust.networks import BACKBONES, ClusteringNetwork, SobelFilter, build_backbone

    try:
        backbone = spec["backbone"]
        input_shape = tuple(int(s) for s in spec["input_shape"])
        n_clusters, n_heads = int(spec["n_clusters"]), int(spec["n_heads"])
        projection_dim = spec["projection_dim"]
        filter_name = spec["input_filter"]
        n_features_saved = int(spec["n_features"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"Model file's network description is incomplete: {exc!r}.") from exc
    if not isinstance(backbone, str) or backbone not in BACKBONES:
        raise ValueError(
            f"The model uses backbone {backbone!r}, which is not registered here. Register it "
            "with deepclust.networks.register_backbone(name, factory) before loading."
        )
    if filter_name not in (None, "sobel"):
        raise ValueError(f"Unknown input filter {filter_name!r} in the model file.")
    if n_clusters < 2 or n_heads < 1 or len(input_shape) not in (1, 3) or min(input_shape) < 1:
        raise ValueError(
            f"Invalid network description in the model file: {n_clusters} clusters, "
            f"{n_heads} heads, input shape {input_shape}."
        )
    input_filter = SobelFilter() if filter_name == "sobel" else None
    filter_shape = input_shape
    if input_filter is not None:
        with torch.no_grad():
            filter_shape = tuple(input_filter(torch.zeros(1, *input_shape)).shape[1:])
    module, n_features = build_backbone(backbone, filter_shape)
    if n_features != n_features_saved:
        raise ValueError(
            f"The model's backbone {backbone!r} gives {n_features} features here but the file "
            f"says {n_features_saved}; the file does not match this version of the backbone."
        )
    stats_shape = (input_shape[0],)
    return ClusteringNetwork(
        module, n_features, n_clusters, n_heads, mean=np.zeros(stats_shape, np.float32),
        std=np.ones(stats_shape, np.float32),
        projection_dim=int(projection_dim) if projection_dim else None,
        input_filter=input_filter,
    )


def _load_state(network: nn.Module, tensors: dict, prefix: str, what: str) -> None:
    state = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
    expected = network.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise ValueError(
            f"The model file's {what} tensors do not match the network: missing "
            f"{missing[:5]}{'...' if len(missing) > 5 else ''}, unexpected "
            f"{unexpected[:5]}{'...' if len(unexpected) > 5 else ''}. The file is damaged or "
            "was edited."
        )
    wrong = [
        f"{k}: {tuple(v.shape)} instead of {tuple(expected[k].shape)}"
        for k, v in state.items()
        if tuple(v.shape) != tuple(expected[k].shape)
    ]
    if wrong:
        raise ValueError(
            f"The model file's {what} tensors have wrong shapes ({'; '.join(wrong[:5])}). The "
            "file is damaged or was edited."
        )
    network.load_state_dict(state, strict=True)
    network.eval()


def _read_metadata(metadata_path: Path) -> dict:
    if not metadata_path.is_file():
        raise FileNotFoundError(
            f"No model description {str(metadata_path)!r}. Pass the prefix, the .json or "
            "the .safetensors file written by deepclust.io.save_model, or their folder."
        )
    try:
        metadata = json.loads(metadata_path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{str(metadata_path)!r} is not a valid model file: {exc}.") from exc
    if not isinstance(metadata, dict) or metadata.get("format") != _FORMAT_NAME:
        raise ValueError(f"{str(metadata_path)!r} is not a deepclust model file.")
    version = metadata.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise ValueError(
            f"{str(metadata_path)!r} has model format version {version!r}; this deepclust "
            f"reads versions up to {FORMAT_VERSION}. Upgrade deepclust to load it."
        )
    return metadata


def load_model(path: str | os.PathLike):
    """Rebuild an estimator saved by :func:`save_model`.

    Parameters
    ----------
    path : str or path-like
        The prefix given to :func:`save_model`, either of its two files, or their folder.

    Returns
    -------
    estimator
        Fitted, on the CPU (``predict`` moves it to its ``device`` parameter's device when
        that is available). ``predict``/``predict_proba``/``transform`` on the same images
        give the same results as the saved estimator. Not restored: SCAN's
        ``neighbors_`` and ``stage_labels_``.

    Raises
    ------
    ValueError
        When the tensors file's SHA-256 differs from the one recorded, or its tensors'
        names or shapes do not match the network the description builds.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load as load_tensors

    tensors_path, metadata_path = model_paths(path)
    metadata = _read_metadata(metadata_path)
    if not tensors_path.is_file():
        raise FileNotFoundError(f"The model's tensors file {str(tensors_path)!r} is missing.")
    blob = tensors_path.read_bytes()
    recorded = (metadata.get("tensors") or {}).get("sha256")
    if hashlib.sha256(blob).hexdigest() != recorded:
        raise ValueError(
            f"{str(tensors_path)!r} does not match the SHA-256 recorded in "
            f"{str(metadata_path)!r}: the file is damaged or was changed after saving. "
            "Refusing to load it."
        )
    try:
        tensors = load_tensors(blob)
    except (SafetensorError, ValueError, RuntimeError) as exc:
        raise ValueError(f"{str(tensors_path)!r} is not a valid safetensors file: {exc}") from exc

    classes = _estimator_classes()
    name = metadata.get("estimator")
    if name not in classes:
        raise ValueError(
            f"Unknown estimator {name!r} in {str(metadata_path)!r}; expected one of "
            f"{sorted(classes)}."
        )
    cls = classes[name]
    params = dict(metadata.get("params") or {})
    known = set(cls().get_params(deep=False))
    unknown = sorted(set(params) - known)
    if unknown:
        raise ValueError(
            f"The model file gives {name} unknown parameters {unknown}; it was written by a "
            "different version of deepclust."
        )
    if isinstance(params.get("image_size"), list):
        params["image_size"] = tuple(params["image_size"])
    estimator = cls(**params)

    network = _build_network(metadata["network"], name)
    _load_state(network, tensors, _NETWORK, "network")
    used = {k for k in tensors if k.startswith(_NETWORK)}
    fitted = metadata.get("fitted") or {}
    try:
        estimator.input_kind_ = str(fitted["input_kind_"])
        estimator.input_shape_ = tuple(int(s) for s in fitted["input_shape_"])
        estimator.n_features_in_ = int(fitted["n_features_in_"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"The model file lacks fitted attributes: {exc!r}.") from exc
    if list(estimator.input_shape_) != list(metadata["network"]["input_shape"]):
        raise ValueError("The model file's input shape and network description disagree.")
    estimator.network_ = network
    estimator.history_ = list(fitted.get("history_") or [])
    estimator.n_iter_ = fitted.get("n_iter_")
    estimator.device_ = torch.device("cpu")
    n_heads = len(network.heads.heads)
    if "best_head_" in fitted:
        head = int(fitted["best_head_"])
        if not 0 <= head < n_heads:
            raise ValueError(f"best_head_={head} is out of range for {n_heads} head(s).")
        estimator.best_head_ = head
    if "labels_" in tensors:
        estimator.labels_ = tensors["labels_"].numpy().astype(np.int64)
        used.add("labels_")
    if "cluster_centers_" in tensors:
        estimator.cluster_centers_ = tensors["cluster_centers_"].numpy()
        used.add("cluster_centers_")
    if "whitening" in metadata:
        estimator.whitening_ = _load_whitening(metadata["whitening"], tensors, network)
        used.update(_WHITENING + attr for attr in _WHITENING_ARRAYS)
        centers = getattr(estimator, "cluster_centers_", None)
        if centers is None or centers.shape != (
            network.heads.heads[0].out_features, estimator.whitening_.n_components_
        ):
            raise ValueError(
                "The model file's cluster_centers_ are missing or do not match its whitening."
            )
    if name == "ClusterFitTransformer":
        estimator.pretrained_network_ = None
        if "pretrained_network" in metadata:
            pretrained = _build_network(metadata["pretrained_network"], name)
            pretrained.projection = None
            _load_state(pretrained, tensors, _PRETRAINED, "pretrained network")
            estimator.pretrained_network_ = pretrained
            used.update(k for k in tensors if k.startswith(_PRETRAINED))
    leftover = sorted(set(tensors) - used)
    if leftover:
        raise ValueError(
            f"The model file holds unexpected tensors {leftover[:5]}; it is damaged or was "
            "edited."
        )
    return estimator


def _load_whitening(spec: dict, tensors: dict, network) -> Any:
    from deepclust.cluster import PCAWhitening

    try:
        whitening = PCAWhitening(
            int(spec["n_components_"]), eps=float(spec["eps"]),
            l2_normalize=bool(spec["l2_normalize"]),
        )
        n_components, n_features = int(spec["n_components_"]), int(spec["n_features_in_"])
        arrays = {attr: tensors[_WHITENING + attr] for attr in _WHITENING_ARRAYS}
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"The model file's whitening is incomplete: {exc!r}.") from exc
    expected = {
        "mean_": (n_features,),
        "components_": (n_components, n_features),
        "explained_variance_": (n_components,),
    }
    for attr, shape in expected.items():
        if tuple(arrays[attr].shape) != shape:
            raise ValueError(
                f"The model file's whitening {attr} has shape {tuple(arrays[attr].shape)}, "
                f"expected {shape}."
            )
    if n_features != network.n_features:
        raise ValueError("The model file's whitening does not match the network's features.")
    whitening.mean_ = arrays["mean_"].to(torch.float64)
    whitening.components_ = arrays["components_"].to(torch.float64)
    whitening.explained_variance_ = arrays["explained_variance_"].to(torch.float64)
    whitening.n_components_ = n_components
    whitening.n_features_in_ = n_features
    return whitening
