"""Save and load fitted estimators in a safe, portable format.

A saved model is two files side by side:

- ``<prefix>.safetensors``: every tensor (the network's ``state_dict`` and fitted arrays
  such as DeepCluster's centroids and whitening), in the `safetensors` format, which holds
  raw tensors only and cannot carry code;
- ``<prefix>.json``: the estimator's class name, its (JSON-serialisable) parameters, the
  fitted scalars and shapes needed to rebuild its network, a format version, and the
  name, size and SHA-256 of its tensors file (``tensors.file``, ``tensors.sha256``) with
  the dtype and shape of each fitted array (``tensors.arrays``).

The ``.json`` file is the model's identity: it names and hashes the tensors file that
belongs to it. What a method saves beyond the network and ``labels_`` is declared once, in
its ``method_spec.model_file`` (see :class:`deepclust.methods.MethodSpec`).

Saving never leaves a pair that cannot be loaded, whenever the process is killed: the
tensors are first written under a pending name derived from their SHA-256
(``<prefix>.safetensors.<sha12>.pending``), then the JSON is replaced atomically, then the
pending file is renamed to ``<prefix>.safetensors``. A kill before the JSON is replaced
leaves the previous model intact; a kill after it leaves the new JSON, which
:func:`load_model` pairs with the pending file its hash names.

:func:`load_model` rebuilds the estimator from the registered methods and registered
backbones; it never unpickles or imports anything named in the files. Before building
anything it checks every field of the JSON (types, ranges and consistency), and the
tensor names, dtypes and shapes recorded in the safetensors header against the networks
the description builds (found on PyTorch's ``meta`` device, without memory); any
mismatch is a :class:`ValueError` naming the field. Unlike ``pickle``, the format
survives refactoring of the library's private attributes and is safe to load from an
untrusted source (the SHA-256 detects corruption and accidental edits; it is not a
signature).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
from collections.abc import Mapping
from numbers import Integral, Real
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from deepclust._utils import atomic_write, is_int, short_repr
from deepclust.augment import check_invariances, is_auto_invariances
from deepclust.networks._backbones import TORCHVISION_PREFIX

__all__ = ["FORMAT_VERSION", "save_model", "load_model", "model_paths"]

#: Version of the model-file layout written by :func:`save_model`.
FORMAT_VERSION = 2

_FORMAT_NAME = "deepclust-model"
_NETWORK = "network."
#: Fitted arrays every method saves when it has them (beside the network and the input
#: description): the labels, and the merge table of a fit with ``merge_to``.
_SHARED_FITTED = {"labels_": "array", "merge_map_": "array"}
_WHITENING_ARRAYS = ("mean_", "components_", "explained_variance_")

#: The largest ``model.json`` read (a description with a long history is well under 1 MiB).
_MAX_JSON_BYTES = 64 * 2**20
#: Entries every model description has.
_REQUIRED = ("format", "format_version", "estimator", "params", "network", "fitted", "tensors")
#: The safetensors dtypes of floating-point and of integer tensors.
_FLOAT_DTYPES = frozenset({"F64", "F32", "F16", "BF16", "F8_E4M3", "F8_E5M2"})
_INT_DTYPES = frozenset({"I64", "I32", "I16", "I8", "U64", "U32", "U16", "U8"})
_DAMAGED = "The file is damaged or was edited."


class _Invalid(ValueError):
    """A refusal of one field of a model file; :func:`_refusal` adds the file and a hint."""

    def __init__(self, message: str, hint: str = _DAMAGED):
        super().__init__(message)
        self.hint = hint


def _refusal(path: Path, exc: _Invalid) -> ValueError:
    return ValueError(f"{path}: {str(exc).rstrip('.')}. {exc.hint}")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def model_paths(path: str | os.PathLike) -> tuple[Path, Path]:
    """The ``(.safetensors, .json)`` pair a model path refers to.

    The ``.json`` file is the model's identity: it names (``tensors.file``) and hashes the
    tensors file that belongs to it, which :func:`save_model` always leaves at the first
    path returned here; :func:`load_model` reads the file the JSON names, falling back to
    the first path (a pair renamed together) and to the pending file of a save that was
    killed after writing the JSON.

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


def _pending_path(tensors_path: Path, sha256: str) -> Path:
    """Where a save writes its tensors before the JSON that hashes them is in place."""
    return tensors_path.with_name(f"{tensors_path.name}.{sha256[:12]}.pending")


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
    if isinstance(value, np.random.RandomState) or (
        name == "weights" and isinstance(value, Mapping)
    ):
        return None  # only used for fitting; a loaded model is already fitted
    if isinstance(value, (tuple, list)) and all(isinstance(item, str) for item in value):
        return list(value)
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
            value,
            estimator._fitted_backbone_name(),
            estimator.input_shape_,
            metadata["estimator"],
        )
        tensors.update(_state_tensors(value, name + "."))
    else:  # whitening
        for array in _WHITENING_ARRAYS:
            tensors[f"{attr}.{array}"] = (
                torch.as_tensor(getattr(value, array)).detach().cpu().clone().contiguous()
            )
        metadata[name] = {
            "n_components_": int(value.n_components_),
            "n_features_in_": int(value.n_features_in_),
            "eps": float(value.eps),
            "l2_normalize": bool(value.l2_normalize),
        }


def save_model(estimator, path_prefix: str | os.PathLike) -> tuple[Path, Path]:
    """Write a fitted deepclust estimator as ``<prefix>.safetensors`` + ``<prefix>.json``.

    A kill at any moment leaves a pair that :func:`load_model` reads: the previous model,
    or this one. The tensors are written first, atomically, under a pending name
    (``<prefix>.safetensors.<sha12>.pending``); then the JSON, which names and hashes
    them, replaces the previous one atomically; then the pending file is renamed to
    ``<prefix>.safetensors`` and pending files of earlier interrupted saves are removed.
    Before writing anything, the contents are checked as :func:`load_model` checks them.

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

    from deepclust.methods import method_spec

    metadata, tensors = _model_contents(estimator)
    blob = save_tensors(tensors, metadata={"format": _FORMAT_NAME})
    tensors_path, metadata_path = model_paths(path_prefix)
    header = _tensor_header(blob)
    arrays = _array_names(method_spec(estimator))
    metadata["tensors"] = {
        "sha256": hashlib.sha256(blob).hexdigest(),
        "n_bytes": len(blob),
        "file": tensors_path.name,
        "arrays": {
            attr: {"dtype": header[attr][0], "shape": list(header[attr][1])}
            for attr in arrays
            if attr in header
        },
    }
    _check_loadable(metadata, header)
    _write_pair(blob, json.dumps(metadata, indent=1).encode("utf-8"), tensors_path, metadata_path)
    return tensors_path, metadata_path


def _model_contents(estimator) -> tuple[dict, dict[str, torch.Tensor]]:
    """The JSON description and the tensors of a fitted estimator."""
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
        "network": _describe(
            estimator.network_,
            estimator._fitted_backbone_name(),
            estimator.input_shape_,
            name,
        ),
        "fitted": {
            "input_kind_": str(estimator.input_kind_),
            "input_shape_": [int(s) for s in estimator.input_shape_],
            "n_features_in_": int(estimator.n_features_in_),
            "n_iter_": _json_value(getattr(estimator, "n_iter_", None)),
            "history_": _json_value(getattr(estimator, "history_", [])),
        },
    }
    if getattr(estimator, "recipe_", None) is not None:
        metadata["fitted"]["recipe_"] = _json_value(estimator.recipe_)
    tensors = _state_tensors(estimator.network_, _NETWORK)
    for attr, kind in {**_SHARED_FITTED, **spec.model_file}.items():
        if getattr(estimator, attr, None) is not None:
            _save_fitted(estimator, attr, kind, metadata, tensors)
    return metadata, tensors


def _check_loadable(metadata: dict, header: dict) -> None:
    """Prove now that the files will load: check them as :func:`load_model` does."""
    from deepclust.methods import method_spec

    try:
        written = json.loads(json.dumps(metadata))
        cls, _, states = _check_description(written)
        _check_tensor_header(header, written, states, method_spec(cls))
    except _Invalid as exc:
        raise ValueError(
            f"Cannot save {metadata['estimator']}: its model file would not load: "
            f"{str(exc).rstrip('.')}. A network built from a pretrained module, or edited "
            "after fitting, cannot be stored in the portable format; save the estimator "
            "with pickle/joblib instead (trusted files only)."
        ) from None


def _write_pair(blob: bytes, description: bytes, tensors_path: Path, metadata_path: Path):
    """Tensors under their pending name, then the JSON, then the tensors' final name."""
    folder = metadata_path.parent
    folder.mkdir(parents=True, exist_ok=True)
    pending = _pending_path(tensors_path, hashlib.sha256(blob).hexdigest())
    ours = not pending.exists()  # else it may be the one the JSON on disk names
    atomic_write(pending, blob)
    try:
        atomic_write(metadata_path, description)
    except BaseException:
        if ours:
            pending.unlink(missing_ok=True)
        raise
    _sync_folder(folder)
    _promote(pending, tensors_path)
    _sync_folder(folder)
    stale = re.compile(re.escape(tensors_path.name) + r"\.[0-9a-f]{12}\.pending(\.tmp-\d+)?")
    for path in folder.iterdir():
        if stale.fullmatch(path.name):
            path.unlink(missing_ok=True)


def _promote(pending: Path, tensors_path: Path) -> None:
    """Give the tensors their final name, once the JSON that hashes them is in place."""
    os.replace(pending, tensors_path)


def _sync_folder(folder: Path) -> None:
    """Make the renames in ``folder`` durable (best effort: not every system can)."""
    try:
        handle = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(handle)
    except OSError:
        pass
    finally:
        os.close(handle)


# ---------------------------------------------------------------------- checking
def _array_names(spec) -> list[str]:
    return [*_SHARED_FITTED] + [attr for attr, kind in spec.model_file.items() if kind == "array"]


def _entries(value: Any, field: str, required: tuple, optional: tuple = ()) -> dict:
    """``value`` as a JSON object with these entries, or the refusal naming the field."""
    if not isinstance(value, dict):
        raise _Invalid(f"{field} must be a JSON object; got {short_repr(value)}")
    missing = [key for key in required if key not in value]
    if missing:
        raise _Invalid(f"{field}.{missing[0]} is missing")
    unknown = sorted(set(value) - set(required) - set(optional))
    if unknown:
        raise _Invalid(f"{field} has unknown entries {unknown[:5]}")
    return value


def _check_description(metadata: dict) -> tuple[type, Any, dict]:
    """Check every field of a parsed ``model.json`` before anything is built.

    Returns the method class, the (unfitted) estimator its ``params`` build and, for each
    described network, its ``state_dict`` dtypes and shapes (found without memory).
    Raises :class:`_Invalid` naming the first field that is wrong.
    """
    from deepclust.methods import method_spec

    version = metadata.get("format_version")
    if not (is_int(version) and 1 <= version <= FORMAT_VERSION):
        raise _Invalid(
            f"format_version must be an integer between 1 and {FORMAT_VERSION}; got "
            f"{short_repr(version)}"
        )
    missing = [key for key in _REQUIRED if key not in metadata]
    if missing:
        raise _Invalid(f"{missing[0]} is missing")
    cls = _checked_method(metadata["estimator"])
    spec = method_spec(cls)
    extra = {
        attr.rstrip("_"): kind
        for attr, kind in spec.model_file.items()
        if kind in ("network", "whitening")
    }
    unknown = sorted(set(metadata) - set(_REQUIRED) - set(extra))
    if unknown:
        raise _Invalid(f"the description has unknown entries {unknown[:5]}")
    networks = _checked_networks(metadata, [k for k, v in extra.items() if v == "network"])
    estimator = _checked_estimator(cls, metadata["params"])
    _check_consistency(estimator.get_params(deep=False), networks)
    _check_fitted(metadata["fitted"], spec, networks["network"])
    for key in [k for k, v in extra.items() if v == "whitening" and k in metadata]:
        _check_whitening(metadata[key], key, networks["network"])
    _check_tensors_record(metadata["tensors"], spec)
    return cls, estimator, _network_states(metadata, networks)


def _checked_method(name: Any) -> type:
    from deepclust.methods import get_method, registered_methods

    classes = sorted(cls.__name__ for cls in registered_methods().values())
    if not isinstance(name, str):
        raise _Invalid(
            f"estimator must be the class name of a registered method; got {short_repr(name)}"
        )
    if name not in classes:
        raise _Invalid(
            f"Unknown estimator {name!r}; expected one of {classes}",
            hint="Register its method before loading, unless the file is damaged or was edited.",
        )
    return get_method(name)


def _checked_networks(metadata: dict, extra: list[str]) -> dict[str, dict]:
    """The checked fields of ``network`` and of the method's further networks."""
    from deepclust.networks import backbone_factory
    from deepclust.networks._description import check_description

    networks = {}
    for key in ["network"] + [k for k in extra if k in metadata]:
        try:
            values = check_description(metadata[key], key)
        except ValueError as exc:
            raise _Invalid(str(exc)) from None
        if backbone_factory(values["backbone"]) is None:
            raise _Invalid(
                f"{key}.backbone {values['backbone']!r} is not registered here",
                hint="Register it with deepclust.networks.register_backbone(name, factory) "
                "before loading, unless the file is damaged or was edited.",
            )
        networks[key] = values
    return networks


def _network_states(metadata: dict, networks: dict) -> dict[str, dict]:
    """Each described network's ``state_dict`` as dtypes and shapes, without memory."""
    from deepclust.networks._description import description_state_shapes

    states = {}
    for key in networks:
        try:
            states[key] = description_state_shapes(metadata[key], key)
        except ValueError as exc:
            raise _Invalid(
                str(exc),
                hint="It was written with other backbones than this deepclust's, "
                "or the file is damaged or was edited.",
            ) from None
    return states


def _check_param_value(cls: type, name: str, value: Any, default: Any) -> None:
    """What scikit-learn's constraints leave open for a parameter read from JSON."""
    from deepclust.networks._description import MAX_DIM

    field = f"params.{name}"
    if isinstance(value, list):
        scalar = all(_is_number(v) for v in value) or all(isinstance(v, str) for v in value)
    else:
        scalar = value is None or isinstance(value, (bool, int, float, str))
    if not scalar:
        raise _Invalid(
            f"{field} must be null, a boolean, a number, a string or a list of numbers or "
            f"of strings; got {short_repr(value)}"
        )
    if name == "invariant_to" and not is_auto_invariances(value):
        try:
            check_invariances(value, field)
        except ValueError as error:
            raise _Invalid(str(error)) from None
    if name in getattr(cls, "_fitted_input_params", ()) and value is not None:
        raise _Invalid(
            f"{field} must be null (a fitted object is never stored in a model file); got "
            f"{short_repr(value)}"
        )
    constraints = cls._parameter_constraints.get(name, [])
    constraints = [constraints] if isinstance(constraints, str) else constraints
    if (
        isinstance(value, bool)
        and not isinstance(default, bool)
        and not ({"boolean", "verbose"} & {c for c in constraints if isinstance(c, str)})
    ):
        raise _Invalid(f"{field} must not be a boolean; got {value}")
    if (
        name == "image_size"
        and value is not None
        and not (
            (isinstance(value, list) and len(value) == 2 or is_int(value))
            and all(is_int(v) and 4 <= v <= MAX_DIM for v in np.atleast_1d(value).tolist())
        )
    ):
        raise _Invalid(
            f"{field} must be null, or one or two integers between 4 and {MAX_DIM}; got "
            f"{short_repr(value)}"
        )
    if name == "device" and isinstance(value, str) and value != "auto":
        try:
            kind = torch.device(value).type
        except (RuntimeError, ValueError, TypeError):
            kind = None
        if kind not in ("cpu", "cuda", "mps"):
            raise _Invalid(
                f"{field} must be 'auto' or a device such as 'cpu', 'cuda' or 'cuda:0'; got "
                f"{short_repr(value)}"
            )


def _checked_estimator(cls: type, params: Any):
    """The unfitted estimator ``params`` build, validated by scikit-learn's constraints."""
    if not isinstance(params, dict):
        raise _Invalid(f"params must be a JSON object; got {short_repr(params)}")
    defaults = cls().get_params(deep=False)
    unknown = sorted(set(params) - set(defaults))
    if unknown:
        raise _Invalid(
            f"params gives {cls.__name__} unknown parameters {unknown[:5]}",
            hint="It was written by a different version of deepclust, or the file is "
            "damaged or was edited.",
        )
    for name, value in params.items():
        _check_param_value(cls, name, value, defaults[name])
    params = {
        k: tuple(v) if k == "image_size" and v is not None and isinstance(v, list) else v
        for k, v in params.items()
    }
    try:
        estimator = cls(**params)
        estimator._validate_params()
    except (ValueError, TypeError) as exc:  # scikit-learn's InvalidParameterError is both
        found = re.search(r"The '(\w+)' parameter", str(exc))
        field = f"params.{found.group(1)}" if found else "params"
        raise _Invalid(f"{field} is invalid: {str(exc).rstrip('.')}") from None
    return estimator


def _check_consistency(params: dict, networks: dict) -> None:
    main = networks["network"]
    for key, values in networks.items():
        if isinstance(params["backbone"], str) and params["backbone"] != "auto":
            if values["backbone"] not in (
                params["backbone"],
                TORCHVISION_PREFIX + params["backbone"],
            ):
                raise _Invalid(
                    f"params.backbone {params['backbone']!r} differs from {key}.backbone "
                    f"{values['backbone']!r}"
                )
        elif values["backbone"] != main["backbone"]:  # 'auto': the recipe chose one for all
            raise _Invalid(
                f"{key}.backbone {values['backbone']!r} differs from network.backbone "
                f"{main['backbone']!r}"
            )
        if values["input_shape"] != main["input_shape"]:
            raise _Invalid(
                f"{key}.input_shape {list(values['input_shape'])} differs from "
                f"network.input_shape {list(main['input_shape'])}"
            )
    if params["n_clusters"] != main["n_clusters"]:
        raise _Invalid(
            f"params.n_clusters {params['n_clusters']} differs from network.n_clusters "
            f"{main['n_clusters']}"
        )


def _check_fitted(fitted: Any, spec, network: dict) -> None:
    """The input description, ``n_iter_``, ``history_`` and the method's scalars."""
    scalars = {attr: kind for attr, kind in spec.model_file.items() if kind in ("int", "float")}
    _entries(
        fitted,
        "fitted",
        ("input_kind_", "input_shape_", "n_features_in_"),
        ("n_iter_", "history_", "recipe_", *scalars),
    )
    if not isinstance(fitted.get("recipe_", {}), dict):
        raise _Invalid(f"fitted.recipe_ must be a JSON object; got {short_repr(fitted['recipe_'])}")
    kind, shape = fitted["input_kind_"], fitted["input_shape_"]
    if kind not in ("images", "features"):
        raise _Invalid(
            f"fitted.input_kind_ must be one of ['features', 'images']; got {short_repr(kind)}"
        )
    if not isinstance(shape, list) or not all(is_int(s) for s in shape):
        raise _Invalid(f"fitted.input_shape_ must be a list of integers; got {short_repr(shape)}")
    if shape != list(network["input_shape"]):
        raise _Invalid(
            f"fitted.input_shape_ {shape} differs from network.input_shape "
            f"{list(network['input_shape'])}"
        )
    if len(shape) != (3 if kind == "images" else 1):
        raise _Invalid(
            f"fitted.input_kind_ {kind!r} does not fit the input shape {shape} "
            "(images have shape (C, H, W), features (D,))"
        )
    n_values = math.prod(shape)
    if not is_int(fitted["n_features_in_"]) or fitted["n_features_in_"] != n_values:
        raise _Invalid(
            f"fitted.n_features_in_ must be the number of values per sample, "
            f"{n_values}; got {short_repr(fitted['n_features_in_'])}"
        )
    n_iter = fitted.get("n_iter_")
    if n_iter is not None and not (is_int(n_iter) and 0 <= n_iter <= 10**9):
        raise _Invalid(
            f"fitted.n_iter_ must be null or an integer between 0 and {10**9}; got "
            f"{short_repr(n_iter)}"
        )
    history = fitted.get("history_", [])
    if not isinstance(history, list) or not all(isinstance(r, dict) for r in history):
        raise _Invalid(
            "fitted.history_ must be a list of JSON objects (one per epoch); got "
            f"{short_repr(history)}"
        )
    for attr, kind in scalars.items():
        value = fitted.get(attr)
        if attr in fitted and not (is_int(value) if kind == "int" else _is_number(value)):
            expected = "an integer" if kind == "int" else "a number"
            raise _Invalid(f"fitted.{attr} must be {expected}; got {short_repr(value)}")
    head = fitted.get("best_head_")
    if head is not None and not 0 <= head < network["n_heads"]:
        raise _Invalid(
            f"fitted.best_head_ {head} is out of range for network.n_heads {network['n_heads']}"
        )


def _check_whitening(whitening: Any, key: str, network: dict) -> None:
    fields = ("n_components_", "n_features_in_", "eps", "l2_normalize")
    _entries(whitening, key, fields)
    n_features, n_components = whitening["n_features_in_"], whitening["n_components_"]
    if not is_int(n_features) or n_features != network["n_features"]:
        raise _Invalid(
            f"{key}.n_features_in_ {short_repr(n_features)} differs from "
            f"network.n_features {network['n_features']}"
        )
    if not (is_int(n_components) and 1 <= n_components <= n_features):
        raise _Invalid(
            f"{key}.n_components_ must be an integer between 1 and {n_features}; "
            f"got {short_repr(n_components)}"
        )
    eps = whitening["eps"]
    if not (_is_number(eps) and math.isfinite(eps) and eps >= 0):
        raise _Invalid(f"{key}.eps must be a finite number >= 0; got {short_repr(eps)}")
    if not isinstance(whitening["l2_normalize"], bool):
        raise _Invalid(
            f"{key}.l2_normalize must be true or false; got {short_repr(whitening['l2_normalize'])}"
        )


def _is_plain_name(name: Any) -> bool:
    """A file name in the model's folder: no folder part, ending in ``.safetensors``."""
    return (
        isinstance(name, str)
        and name.endswith(".safetensors")
        and len(name) > 12
        and len(name) <= 255
        and not any(c in name for c in "/\\:\0")
        and Path(name).name == name
    )


def _check_tensors_record(record: Any, spec) -> None:
    """``tensors``: the SHA-256, size and name of the tensors file, and its arrays."""
    _entries(record, "tensors", ("sha256", "n_bytes"), ("file", "arrays"))
    sha = record["sha256"]
    if not (isinstance(sha, str) and re.fullmatch(r"[0-9a-f]{64}", sha)):
        raise _Invalid(f"tensors.sha256 must be 64 lower-case hex digits; got {short_repr(sha)}")
    if not (is_int(record["n_bytes"]) and 8 <= record["n_bytes"] <= 2**50):
        raise _Invalid(
            f"tensors.n_bytes must be an integer between 8 and {2**50}; got "
            f"{short_repr(record['n_bytes'])}"
        )
    if "file" in record and not _is_plain_name(record["file"]):
        raise _Invalid(
            "tensors.file must be a file name ending in '.safetensors', without "
            f"folders; got {short_repr(record['file'])}"
        )
    arrays = record.get("arrays", {})
    _entries(arrays, "tensors.arrays", (), tuple(_array_names(spec)))
    for attr, entry in arrays.items():
        _entries(entry, f"tensors.arrays.{attr}", ("dtype", "shape"))
        if entry["dtype"] not in _FLOAT_DTYPES | _INT_DTYPES | {"BOOL"}:
            raise _Invalid(
                f"tensors.arrays.{attr}.dtype must be a numeric safetensors dtype; "
                f"got {short_repr(entry['dtype'])}"
            )
        shape = entry["shape"]
        if not (isinstance(shape, list) and all(is_int(s) and s >= 0 for s in shape)):
            raise _Invalid(
                f"tensors.arrays.{attr}.shape must be a list of integers >= 0; got "
                f"{short_repr(shape)}"
            )


# ---------------------------------------------------------------------- tensors
def _tensor_header(blob: bytes) -> dict[str, tuple[str, tuple[int, ...]]]:
    """Each tensor's dtype and shape, read from the safetensors header (no tensor loaded)."""
    size = int.from_bytes(blob[:8], "little") if len(blob) >= 8 else -1
    if not 2 <= size <= len(blob) - 8:
        raise _Invalid("the safetensors header is missing or longer than the file")
    try:
        header = json.loads(blob[8 : 8 + size].decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        header = None
    if not isinstance(header, dict):
        raise _Invalid("the safetensors header is not a JSON object")
    tensors = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        dtype = entry.get("dtype") if isinstance(entry, dict) else None
        shape = entry.get("shape") if isinstance(entry, dict) else None
        if not (
            isinstance(dtype, str)
            and isinstance(shape, list)
            and all(is_int(s) and s >= 0 for s in shape)
        ):
            raise _Invalid(f"the safetensors header entry of {name!r} is invalid")
        tensors[name] = (dtype, tuple(shape))
    return tensors


def _check_state_tensors(header: dict, key: str, state: dict) -> set[str]:
    """The tensors of network ``key`` against the ``state_dict`` its description builds."""
    prefix, what = key + ".", key.replace("_", " ")
    found = {k[len(prefix) :]: v for k, v in header.items() if k.startswith(prefix)}
    missing = sorted(set(state) - set(found))
    unexpected = sorted(set(found) - set(state))
    if missing or unexpected:
        raise _Invalid(
            f"the model file's {what} tensors do not match the network: missing "
            f"{missing[:5]}{'...' if len(missing) > 5 else ''}, unexpected "
            f"{unexpected[:5]}{'...' if len(unexpected) > 5 else ''}"
        )
    wrong = [
        f"{k}: {shape} instead of {state[k][1]}"
        for k, (_, shape) in found.items()
        if shape != state[k][1]
    ]
    if wrong:
        raise _Invalid(
            f"the model file's {what} tensors have wrong shapes ({'; '.join(wrong[:5])})"
        )
    wrong = [
        f"{k}: {dtype}"
        for k, (dtype, _) in found.items()
        if dtype not in (_FLOAT_DTYPES if state[k][0].is_floating_point else _INT_DTYPES)
    ]
    if wrong:
        raise _Invalid(
            f"the model file's {what} tensors have wrong dtypes ({'; '.join(wrong[:5])})"
        )
    return {prefix + k for k in found}


def _check_array_tensors(header: dict, metadata: dict, spec) -> set[str]:
    """Fitted arrays: as ``tensors.arrays`` records them; ``labels_`` 1-D integers."""
    record = metadata["tensors"].get("arrays")
    names = [attr for attr in _array_names(spec) if attr in header]
    for attr in names:
        dtype, shape = header[attr]
        if record is not None and attr not in record:
            raise _Invalid(f"{attr} is in the tensors file but not in tensors.arrays")
        if record is not None and tuple(record[attr]["shape"]) != shape:
            raise _Invalid(
                f"{attr} has shape {shape} in the tensors file but "
                f"{tuple(record[attr]['shape'])} in tensors.arrays"
            )
        if record is not None and record[attr]["dtype"] != dtype:
            raise _Invalid(
                f"{attr} has dtype {dtype} in the tensors file but "
                f"{record[attr]['dtype']} in tensors.arrays"
            )
        if dtype not in _FLOAT_DTYPES | _INT_DTYPES | {"BOOL"}:
            raise _Invalid(f"{attr} has dtype {dtype}, which is not numeric")
    lost = sorted(set(record or {}) - set(names))
    if lost:
        raise _Invalid(f"{lost[0]} is recorded in tensors.arrays but not in the tensors file")
    if "labels_" in header and header["labels_"][0] not in _INT_DTYPES:
        raise _Invalid(
            f"labels_ has dtype {header['labels_'][0]}; cluster labels must have an integer dtype"
        )
    if "labels_" in header and len(header["labels_"][1]) != 1:
        raise _Invalid(f"labels_ has shape {header['labels_'][1]}; cluster labels must be 1-D")
    return set(names)


def _check_whitening_tensors(header: dict, attr: str, whitening: dict) -> set[str]:
    n_components, n_features = whitening["n_components_"], whitening["n_features_in_"]
    expected = {
        "mean_": (n_features,),
        "components_": (n_components, n_features),
        "explained_variance_": (n_components,),
    }
    for name, shape in expected.items():
        key = f"{attr}.{name}"
        if key not in header:
            raise _Invalid(f"{key} is missing from the tensors file")
        if header[key][1] != shape or header[key][0] not in _FLOAT_DTYPES:
            raise _Invalid(
                f"{key} has shape {header[key][1]} and dtype {header[key][0]}; "
                f"expected shape {shape} and a floating-point dtype"
            )
    return {f"{attr}.{name}" for name in expected}


def _check_tensor_header(header: dict, metadata: dict, states: dict, spec) -> None:
    """Every tensor's name, dtype and shape against the checked description."""
    used = set()
    for key, state in states.items():
        used |= _check_state_tensors(header, key, state)
    used |= _check_array_tensors(header, metadata, spec)
    for attr, kind in spec.model_file.items():
        if kind == "whitening" and attr.rstrip("_") in metadata:
            used |= _check_whitening_tensors(header, attr, metadata[attr.rstrip("_")])
    leftover = sorted(set(header) - used)
    if leftover:
        raise _Invalid(f"the model file holds unexpected tensors {leftover[:5]}")


# ---------------------------------------------------------------------- loading
def _read_metadata(metadata_path: Path) -> dict:
    if not metadata_path.is_file():
        raise FileNotFoundError(
            f"No model description {str(metadata_path)!r}. Pass the prefix, the .json or "
            "the .safetensors file written by deepclust.io.save_model, or their folder."
        )
    if metadata_path.stat().st_size > _MAX_JSON_BYTES:
        raise ValueError(
            f"{str(metadata_path)!r} is larger than a model description can be "
            f"({_MAX_JSON_BYTES} bytes); it is not a deepclust model file."
        )
    try:
        metadata = json.loads(metadata_path.read_bytes().decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise ValueError(f"{str(metadata_path)!r} is not a valid model file: {exc}.") from None
    if not isinstance(metadata, dict) or metadata.get("format") != _FORMAT_NAME:
        raise ValueError(f"{str(metadata_path)!r} is not a deepclust model file.")
    version = metadata.get("format_version")
    if is_int(version) and version > FORMAT_VERSION:
        raise ValueError(
            f"{str(metadata_path)!r} has model format version {version!r}; this deepclust "
            f"reads versions up to {FORMAT_VERSION}. Upgrade deepclust to load it."
        )
    if is_int(version) and version == 1:
        _upgrade_v1(metadata)
    return metadata


def _read_tensor_file(tensors_path: Path, metadata_path: Path, record: dict) -> tuple:
    """The tensors file the JSON names and hashes, and its bytes.

    Candidates, in order: ``tensors.file`` in the JSON's folder, ``<prefix>.safetensors``
    (a pair renamed together, or files written before ``tensors.file`` was read), and the
    pending file of either (a save killed after writing the JSON).
    """
    sha = record["sha256"]
    named = metadata_path.with_name(record["file"]) if "file" in record else tensors_path
    candidates = [named, tensors_path, _pending_path(named, sha), _pending_path(tensors_path, sha)]
    existing = [path for path in dict.fromkeys(candidates) if path.is_file()]
    if not existing:
        raise FileNotFoundError(f"The model's tensors file {str(named)!r} is missing.")
    for path in existing:
        blob = path.read_bytes()
        if hashlib.sha256(blob).hexdigest() != sha:
            continue
        if len(blob) != record["n_bytes"]:
            raise _refusal(
                metadata_path,
                _Invalid(
                    f"tensors.n_bytes {record['n_bytes']} differs from the size of the tensors "
                    f"file it hashes, {len(blob)}"
                ),
            )
        return path, blob
    raise ValueError(
        f"{str(existing[0])!r} does not match the SHA-256 recorded in "
        f"{str(metadata_path)!r}: the two files come from different saves, or the tensors "
        "file is damaged or was changed after saving. Refusing to load it."
    )


#: Names that version 1 of the format used, and their version-2 names.
_V1_RENAMES = {"pretrained_network": "pretext_network"}
_V1_PARAM_RENAMES = {"SCANClusterer": {"pretext": "pretrained"}}


def _upgrade_v1(metadata: dict) -> None:
    """Read a version-1 description with version-2 names (in place)."""
    for old, new in _V1_RENAMES.items():
        if old in metadata:
            metadata[new] = metadata.pop(old)
    params = metadata.get("params")
    renames = (
        _V1_PARAM_RENAMES.get(metadata.get("estimator"), {})
        if isinstance(metadata.get("estimator"), str)
        else {}
    )
    for old, new in renames.items():
        if isinstance(params, dict) and old in params:
            params[new] = params.pop(old)


def _tensor_name(name: str, version: int) -> str:
    """A tensor's version-2 name."""
    if version == 1:
        for old, new in _V1_RENAMES.items():
            if name.startswith(old + "."):
                return new + name[len(old) :]
    return name


def _load_state(network: nn.Module, tensors: dict, prefix: str, what: str) -> None:
    state = {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}
    expected = network.state_dict()
    if set(state) != set(expected) or any(
        tuple(v.shape) != tuple(expected[k].shape) for k, v in state.items()
    ):  # the header check has already refused this; kept as a last guard
        raise _Invalid(f"the model file's {what} tensors do not match the network")
    network.load_state_dict(state, strict=True)
    network.eval()


def _restore_input_description(estimator, metadata: dict) -> None:
    fitted = metadata["fitted"]
    estimator.input_kind_ = fitted["input_kind_"]
    estimator.input_shape_ = tuple(fitted["input_shape_"])
    estimator.n_features_in_ = fitted["n_features_in_"]
    estimator.history_ = list(fitted.get("history_") or [])
    estimator.n_iter_ = fitted.get("n_iter_")
    if "recipe_" in fitted:
        estimator.recipe_ = fitted["recipe_"]
    estimator.device_ = torch.device("cpu")


def _load_fitted(estimator, attr: str, kind: str, metadata: dict, tensors: dict) -> None:
    """Restore one declared fitted attribute."""
    from deepclust.networks import network_from_description

    name = attr.rstrip("_")
    fitted = metadata["fitted"]
    if kind == "array":
        if attr in tensors:
            setattr(estimator, attr, tensors[attr].numpy())
    elif kind in ("int", "float"):
        if attr in fitted:
            setattr(estimator, attr, (int if kind == "int" else float)(fitted[attr]))
    elif kind == "network":
        setattr(estimator, attr, None)
        if name in metadata:
            network = network_from_description(metadata[name], name)
            _load_state(network, tensors, name + ".", name.replace("_", " "))
            setattr(estimator, attr, network)
    elif name in metadata:
        setattr(estimator, attr, _load_whitening(attr, metadata[name], tensors, estimator.network_))


def _check_fitted_values(estimator) -> None:
    """What only the tensors' values tell: labels in range, centroids matching whitening."""
    n_clusters = estimator.network_.heads.n_clusters
    labels = getattr(estimator, "labels_", None)
    if labels is not None and labels.size and not (0 <= labels.min() and labels.max() < n_clusters):
        raise _Invalid(
            f"labels_ must hold cluster indices between 0 and {n_clusters - 1}; got values "
            f"from {labels.min()} to {labels.max()}"
        )
    _check_merge_map(estimator, n_clusters)
    whitening = getattr(estimator, "whitening_", None)
    if whitening is not None:
        centers = getattr(estimator, "cluster_centers_", None)
        if centers is None or centers.shape != (n_clusters, whitening.n_components_):
            raise _Invalid("cluster_centers_ are missing or do not match the whitening")


def _check_merge_map(estimator, n_clusters: int) -> None:
    """``merge_map_`` (saved with ``merge_to``): one merged id in range per trained cluster."""
    merge_map = getattr(estimator, "merge_map_", None)
    if merge_map is None:
        return
    n_merged = estimator.merge_to if is_int(estimator.merge_to) else n_clusters
    if merge_map.shape != (n_clusters,) or merge_map.dtype.kind not in "iu":
        raise _Invalid(
            f"merge_map_ must be {n_clusters} integers (one per trained cluster); got "
            f"shape {merge_map.shape} and dtype {merge_map.dtype}"
        )
    if merge_map.size and not (0 <= merge_map.min() and merge_map.max() < n_merged):
        raise _Invalid(
            f"merge_map_ must hold merged cluster ids between 0 and {n_merged - 1} "
            f"(params.merge_to {estimator.merge_to}); got values from {merge_map.min()} to "
            f"{merge_map.max()}"
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
    FileNotFoundError
        When the JSON file or the tensors file it names is missing.
    ValueError
        When a field of the JSON file is missing, of the wrong type, out of range or
        inconsistent with another (the message names it, as in ``model.json:
        network.n_clusters must be an integer between 2 and 1000000; got ...``); when the
        tensors file's SHA-256 differs from the one recorded (the two files come from
        different saves, or one was changed); or when the tensors' names, dtypes or
        shapes do not match what the description builds. Everything is checked before
        any network is built.
    """
    from deepclust.methods import method_spec

    tensors_path, metadata_path = model_paths(path)
    metadata = _read_metadata(metadata_path)
    try:
        cls, estimator, states = _check_description(metadata)
    except _Invalid as exc:
        raise _refusal(metadata_path, exc) from None
    spec = method_spec(cls)
    tensors_path, blob = _read_tensor_file(tensors_path, metadata_path, metadata["tensors"])
    try:
        header = {
            _tensor_name(k, metadata["format_version"]): v for k, v in _tensor_header(blob).items()
        }
        _check_tensor_header(header, metadata, states, spec)
        tensors = {
            _tensor_name(k, metadata["format_version"]): v for k, v in _decode_tensors(blob).items()
        }
        _restore(estimator, metadata, tensors, spec)
    except _Invalid as exc:
        raise _refusal(tensors_path, exc) from None
    return estimator


def _decode_tensors(blob: bytes) -> dict:
    from safetensors import SafetensorError
    from safetensors.torch import load as load_tensors

    try:
        return load_tensors(blob)
    except (SafetensorError, ValueError, RuntimeError) as exc:
        raise _Invalid(f"it is not a valid safetensors file: {exc}") from None


def _restore(estimator, metadata: dict, tensors: dict, spec) -> None:
    """Build the checked networks and set the fitted attributes."""
    from deepclust.networks import network_from_description

    estimator.network_ = network_from_description(metadata["network"])
    _load_state(estimator.network_, tensors, _NETWORK, "network")
    _restore_input_description(estimator, metadata)
    for attr, kind in {**_SHARED_FITTED, **spec.model_file}.items():
        _load_fitted(estimator, attr, kind, metadata, tensors)
    if getattr(estimator, "labels_", None) is not None:
        estimator.labels_ = estimator.labels_.astype(np.int64)
    if getattr(estimator, "merge_map_", None) is not None:
        estimator.merge_map_ = estimator.merge_map_.astype(np.int64)
        estimator.n_clusters_trained_ = int(estimator.merge_map_.shape[0])
    _check_fitted_values(estimator)


def _load_whitening(attr: str, spec: dict, tensors: dict, network) -> Any:
    from deepclust.cluster import PCAWhitening

    try:
        whitening = PCAWhitening(
            int(spec["n_components_"]),
            eps=float(spec["eps"]),
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
