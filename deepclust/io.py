"""Save and load fitted estimators in a safe, portable format.

A saved model is two files side by side:

- ``<prefix>.safetensors``: every tensor (the network's ``state_dict`` and fitted arrays
  such as DeepCluster's centroids and whitening), in the `safetensors` format, which holds
  raw tensors only and cannot carry code;
- ``<prefix>.json``: the estimator's class name, its (JSON-serialisable) parameters, the
  fitted scalars and shapes needed to rebuild its network, a format version and the
  SHA-256 of the ``.safetensors`` file.

What a method saves beyond the network and ``labels_`` is declared once, in its
``method_spec.model_file`` (see :class:`deepclust.methods.MethodSpec`).
:func:`load_model` rebuilds the estimator from the registered methods and registered
backbones; it never unpickles or imports anything named in the files, and
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
FORMAT_VERSION = 2

_FORMAT_NAME = "deepclust-model"
_NETWORK = "network."
_WHITENING_ARRAYS = ("mean_", "components_", "explained_variance_")


def _method_class(name: str, where: str) -> type:
    from deepclust.methods import get_method, registered_methods

    classes = sorted(cls.__name__ for cls in registered_methods().values())
    if name not in classes:
        raise ValueError(f"Unknown estimator {name!r} in {where}; expected one of {classes}.")
    return get_method(name)


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
    if isinstance(value, nn.Module) or hasattr(value, "get_params") or callable(value):
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


def _describe(network, backbone, input_shape, estimator_name: str) -> dict:
    from deepclust.networks import describe_network

    try:
        return describe_network(network, backbone, input_shape)
    except ValueError as exc:
        raise ValueError(f"Cannot save {estimator_name}: {exc}.") from exc


def _state_tensors(module: nn.Module, prefix: str) -> dict[str, torch.Tensor]:
    return {
        prefix + key: value.detach().cpu().clone().contiguous()
        for key, value in module.state_dict().items()
    }


def _save_fitted(estimator, attr: str, kind: str, metadata: dict, tensors: dict) -> None:
    """Store one fitted attribute of the kind its method's ``model_file`` declares."""
    value = getattr(estimator, attr)
    name = attr.rstrip("_")
    if kind == "array":
        tensors[attr] = torch.as_tensor(np.ascontiguousarray(value)).clone()
    elif kind == "int":
        metadata["fitted"][attr] = int(value)
    elif kind == "float":
        metadata["fitted"][attr] = float(value)
    elif kind == "network":
        metadata[name] = _describe(
            value, metadata["params"]["backbone"], estimator.input_shape_,
            metadata["estimator"],
        )
        tensors.update(_state_tensors(value, name + "."))
    else:  # whitening
        for array in _WHITENING_ARRAYS:
            tensors[f"{attr}.{array}"] = torch.as_tensor(
                getattr(value, array)
            ).detach().cpu().clone().contiguous()
        metadata[name] = {
            "n_components_": int(value.n_components_),
            "n_features_in_": int(value.n_features_in_),
            "eps": float(value.eps),
            "l2_normalize": bool(value.l2_normalize),
        }


def save_model(estimator, path_prefix: str | os.PathLike) -> tuple[Path, Path]:
    """Write a fitted deepclust estimator as ``<prefix>.safetensors`` + ``<prefix>.json``.

    Both files are written atomically (temporary name, then rename); the JSON file, which
    holds the SHA-256 of the tensors, is written last.

    Parameters
    ----------
    estimator : fitted estimator of a registered method
        Its parameters must be JSON-serialisable: a module-valued ``backbone`` or
        ``pretrained`` cannot be saved (a :class:`ValueError` says so).
    path_prefix : str or path-like
        ``out/model`` writes ``out/model.safetensors`` and ``out/model.json``; a folder
        writes ``model.*`` inside it.

    Returns
    -------
    tensors_path, metadata_path : Path
    """
    from safetensors.torch import save as save_tensors

    metadata, tensors = _model_contents(estimator)
    blob = save_tensors(tensors, metadata={"format": _FORMAT_NAME})
    metadata["tensors"] = {"sha256": hashlib.sha256(blob).hexdigest(), "n_bytes": len(blob)}
    tensors_path, metadata_path = model_paths(path_prefix)
    tensors_path.parent.mkdir(parents=True, exist_ok=True)
    metadata["tensors"]["file"] = tensors_path.name
    atomic_write(tensors_path, blob)
    atomic_write(metadata_path, json.dumps(metadata, indent=1).encode("utf-8"))
    return tensors_path, metadata_path


def _model_contents(estimator) -> tuple[dict, dict[str, torch.Tensor]]:
    """The JSON description and the tensors of a fitted estimator, checked to rebuild."""
    from sklearn.utils.validation import check_is_fitted

    from deepclust.methods import method_spec

    name = type(estimator).__name__
    try:
        spec = method_spec(estimator)
    except TypeError:
        raise TypeError(
            f"save_model saves the estimators of registered deepclust methods; got {name}."
        ) from None
    check_is_fitted(estimator, "network_")
    params = {
        key: _json_param(key, value, name)
        for key, value in estimator.get_params(deep=False).items()
    }
    metadata: dict[str, Any] = {
        "format": _FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "estimator": name,
        "params": params,
        "network": _describe(estimator.network_, params["backbone"], estimator.input_shape_, name),
        "fitted": {
            "input_kind_": str(estimator.input_kind_),
            "input_shape_": [int(s) for s in estimator.input_shape_],
            "n_features_in_": int(estimator.n_features_in_),
            "n_iter_": _json_value(getattr(estimator, "n_iter_", None)),
            "history_": _json_value(getattr(estimator, "history_", [])),
        },
    }
    tensors = _state_tensors(estimator.network_, _NETWORK)
    for attr, kind in {"labels_": "array", **spec.model_file}.items():
        if getattr(estimator, attr, None) is not None:
            _save_fitted(estimator, attr, kind, metadata, tensors)
    # Prove now that the files will load: rebuild the networks and compare every tensor.
    _check_rebuildable(metadata, tensors, spec)
    return metadata, tensors


def _check_rebuildable(metadata: dict, tensors: dict[str, torch.Tensor], spec) -> None:
    from deepclust.networks import network_from_description

    networks = ["network"] + [
        attr.rstrip("_") for attr, kind in spec.model_file.items() if kind == "network"
    ]
    for key in networks:
        if key not in metadata:
            continue
        rebuilt = network_from_description(metadata[key])
        expected = {k: v.shape for k, v in rebuilt.state_dict().items()}
        prefix = key + "."
        saved = {k[len(prefix):]: v.shape for k, v in tensors.items() if k.startswith(prefix)}
        if expected != saved:
            raise ValueError(
                f"Cannot save {metadata['estimator']}: its {key} does not match the network "
                f"its parameters build (backbone={metadata[key]['backbone']!r}); it was "
                "probably built from a pretrained module. Save it with pickle/joblib instead."
            )


# ---------------------------------------------------------------------- loading
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


def _read_tensors(tensors_path: Path, metadata_path: Path, metadata: dict) -> dict:
    from safetensors import SafetensorError
    from safetensors.torch import load as load_tensors

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
        return load_tensors(blob)
    except (SafetensorError, ValueError, RuntimeError) as exc:
        raise ValueError(f"{str(tensors_path)!r} is not a valid safetensors file: {exc}") from exc


#: Names that version 1 of the format used, and their version-2 names.
_V1_RENAMES = {"pretrained_network": "pretext_network"}
_V1_PARAM_RENAMES = {"SCANClusterer": {"pretext": "pretrained"}}


def _upgrade_v1(metadata: dict, tensors: dict) -> None:
    """Read a version-1 file with version-2 names (in place)."""
    for old, new in _V1_RENAMES.items():
        if old in metadata:
            metadata[new] = metadata.pop(old)
        for key in [k for k in tensors if k.startswith(old + ".")]:
            tensors[new + key[len(old):]] = tensors.pop(key)
    params = metadata.get("params") or {}
    for old, new in _V1_PARAM_RENAMES.get(metadata.get("estimator"), {}).items():
        if old in params:
            params[new] = params.pop(old)


def _new_estimator(cls: type, metadata: dict):
    name = cls.__name__
    params = dict(metadata.get("params") or {})
    unknown = sorted(set(params) - set(cls().get_params(deep=False)))
    if unknown:
        raise ValueError(
            f"The model file gives {name} unknown parameters {unknown}; it was written by a "
            "different version of deepclust."
        )
    if isinstance(params.get("image_size"), list):
        params["image_size"] = tuple(params["image_size"])
    return cls(**params)


def _restore_input_description(estimator, metadata: dict) -> None:
    fitted = metadata.get("fitted") or {}
    try:
        estimator.input_kind_ = str(fitted["input_kind_"])
        estimator.input_shape_ = tuple(int(s) for s in fitted["input_shape_"])
        estimator.n_features_in_ = int(fitted["n_features_in_"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"The model file lacks fitted attributes: {exc!r}.") from exc
    if list(estimator.input_shape_) != list(metadata["network"]["input_shape"]):
        raise ValueError("The model file's input shape and network description disagree.")
    estimator.history_ = list(fitted.get("history_") or [])
    estimator.n_iter_ = fitted.get("n_iter_")
    estimator.device_ = torch.device("cpu")


def _load_fitted(estimator, attr: str, kind: str, metadata: dict, tensors: dict) -> set:
    """Restore one declared fitted attribute; the tensor names it used."""
    from deepclust.networks import network_from_description

    name = attr.rstrip("_")
    fitted = metadata.get("fitted") or {}
    if kind == "array":
        if attr in tensors:
            setattr(estimator, attr, tensors[attr].numpy())
        return {attr}
    if kind in ("int", "float"):
        if attr in fitted:
            setattr(estimator, attr, (int if kind == "int" else float)(fitted[attr]))
        return set()
    if kind == "network":
        setattr(estimator, attr, None)
        if name not in metadata:
            return set()
        network = network_from_description(metadata[name])
        _load_state(network, tensors, name + ".", name.replace("_", " "))
        setattr(estimator, attr, network)
        return {k for k in tensors if k.startswith(name + ".")}
    if name not in metadata:
        return set()
    setattr(estimator, attr, _load_whitening(attr, metadata[name], tensors, estimator.network_))
    return {f"{attr}.{array}" for array in _WHITENING_ARRAYS}


def _check_fitted_shapes(estimator) -> None:
    heads = estimator.network_.heads
    head = getattr(estimator, "best_head_", None)
    if head is not None and not 0 <= head < len(heads):
        raise ValueError(f"best_head_={head} is out of range for {len(heads)} head(s).")
    whitening = getattr(estimator, "whitening_", None)
    if whitening is not None:
        centers = getattr(estimator, "cluster_centers_", None)
        if centers is None or centers.shape != (heads.n_clusters, whitening.n_components_):
            raise ValueError(
                "The model file's cluster_centers_ are missing or do not match its whitening."
            )


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
        give the same results as the saved estimator. Restored: ``network_``,
        ``labels_``, the input description, ``history_``, ``n_iter_`` and what the
        method's ``method_spec.model_file`` declares (not, e.g., SCAN's ``neighbors_``).

    Raises
    ------
    ValueError
        When the tensors file's SHA-256 differs from the one recorded, or its tensors'
        names or shapes do not match the network the description builds.
    """
    from deepclust.methods import method_spec
    from deepclust.networks import network_from_description

    tensors_path, metadata_path = model_paths(path)
    metadata = _read_metadata(metadata_path)
    tensors = dict(_read_tensors(tensors_path, metadata_path, metadata))
    if metadata["format_version"] == 1:
        _upgrade_v1(metadata, tensors)
    cls = _method_class(metadata.get("estimator"), repr(str(metadata_path)))
    estimator = _new_estimator(cls, metadata)
    estimator.network_ = network_from_description(metadata["network"])
    _load_state(estimator.network_, tensors, _NETWORK, "network")
    used = {k for k in tensors if k.startswith(_NETWORK)}
    _restore_input_description(estimator, metadata)
    for attr, kind in {"labels_": "array", **method_spec(cls).model_file}.items():
        used |= _load_fitted(estimator, attr, kind, metadata, tensors)
    if hasattr(estimator, "labels_"):
        estimator.labels_ = estimator.labels_.astype(np.int64)
    _check_fitted_shapes(estimator)
    leftover = sorted(set(tensors) - used)
    if leftover:
        raise ValueError(
            f"The model file holds unexpected tensors {leftover[:5]}; it is damaged or was "
            "edited."
        )
    return estimator


def _load_whitening(attr: str, spec: dict, tensors: dict, network) -> Any:
    from deepclust.cluster import PCAWhitening

    try:
        whitening = PCAWhitening(
            int(spec["n_components_"]), eps=float(spec["eps"]),
            l2_normalize=bool(spec["l2_normalize"]),
        )
        n_components, n_features = int(spec["n_components_"]), int(spec["n_features_in_"])
        arrays = {name: tensors[f"{attr}.{name}"] for name in _WHITENING_ARRAYS}
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"The model file's whitening is incomplete: {exc!r}.") from exc
    expected = {
        "mean_": (n_features,),
        "components_": (n_components, n_features),
        "explained_variance_": (n_components,),
    }
    for name, shape in expected.items():
        if tuple(arrays[name].shape) != shape:
            raise ValueError(
                f"The model file's whitening {name} has shape {tuple(arrays[name].shape)}, "
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
