"""Model files: every field of ``model.json`` validated, and a save that cannot be half done."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
from safetensors.torch import load as load_tensors
from safetensors.torch import save as save_tensors

import deepclust.io
import deepclust.networks
from deepclust import (
    ClusterFitTransformer,
    DeepClusterEstimator,
    SCANClusterer,
    SelfLabelClusterer,
)
from deepclust.io import load_model, model_paths, save_model

FAST = dict(device="cpu", random_state=0, batch_size=32)
DAMAGED = "damaged or was edited"


@pytest.fixture(scope="module")
def fitted(digits_small):
    """One fitted estimator of each method, by method name."""
    X, _ = digits_small
    return {
        "sela": SelfLabelClusterer(3, n_heads=2, max_epochs=1, **FAST).fit(X),
        "scan": SCANClusterer(
            3,
            n_heads=2,
            n_neighbors=5,
            pretext_epochs=1,
            max_epochs=1,
            selflabel_epochs=0,
            **FAST,
        ).fit(X),
        "deepcluster": DeepClusterEstimator(3, max_epochs=1, pca_dim=8, **FAST).fit(X),
        "clusterfit": ClusterFitTransformer(3, pretext_epochs=1, max_epochs=1, **FAST).fit(X),
    }


def _edit_json(metadata_path, edit) -> None:
    metadata = json.loads(metadata_path.read_text())
    edit(metadata)
    metadata_path.write_text(json.dumps(metadata))


def _edit_tensors(tensors_path, metadata_path, edit) -> None:
    """Edit the tensors and record their new hash (an edit the hash alone cannot catch)."""
    tensors = dict(load_tensors(tensors_path.read_bytes()))
    edit(tensors)
    blob = save_tensors(tensors)
    tensors_path.write_bytes(blob)
    metadata = json.loads(metadata_path.read_text())
    metadata["tensors"]["sha256"] = hashlib.sha256(blob).hexdigest()
    metadata["tensors"]["n_bytes"] = len(blob)
    metadata_path.write_text(json.dumps(metadata))


def _set(section: str, key: str, value):
    return lambda m: m[section].update({key: value})


# ------------------------------------------------------------ model.json validation
@pytest.mark.parametrize(
    "method, edit, message",
    [
        ("sela", lambda m: m.pop("network"), r"network is missing"),
        ("sela", lambda m: m.pop("fitted"), r"fitted is missing"),
        ("sela", lambda m: m.pop("params"), r"params is missing"),
        (
            "sela",
            lambda m: m.update(format_version="2"),
            r"format_version must be an integer between 1 and 2; got '2'",
        ),
        ("sela", lambda m: m.update(format_version=True), r"format_version must be an integer"),
        ("sela", lambda m: m.update(estimator=["SelfLabelClusterer"]), r"estimator must be"),
        ("sela", lambda m: m.update(extra=1), r"unknown entries \['extra'\]"),
        (
            "sela",
            _set("network", "n_clusters", 10**12),
            r"network.n_clusters must be an integer between 2 and 1000000; "
            r"got 1000000000000",
        ),
        ("sela", _set("network", "n_clusters", 2.5), r"network.n_clusters must be an integer"),
        (
            "sela",
            _set("network", "n_heads", 10**6),
            r"network.n_heads must be an integer between 1 and 1000",
        ),
        ("sela", _set("network", "n_features", "128"), r"network.n_features must be"),
        (
            "sela",
            _set("network", "input_shape", [1, 10**6, 8]),
            r"network.input_shape\[1\] must be an integer between 1 and 65536",
        ),
        (
            "sela",
            _set("network", "input_shape", [3, 65536, 65536]),
            r"network.input_shape must hold at most 16777216 values",
        ),
        (
            "sela",
            _set("network", "input_shape", [1, 8]),
            r"network.input_shape must be a list of 1 or 3",
        ),
        ("sela", _set("network", "input_shape", "1, 8, 8"), r"network.input_shape must be"),
        ("sela", _set("network", "projection_dim", -1), r"network.projection_dim must be"),
        ("sela", _set("network", "input_filter", "blur"), r"network.input_filter must be"),
        ("sela", _set("network", "backbone", 7), r"network.backbone must be a string"),
        ("sela", lambda m: m["network"].pop("n_heads"), r"network.n_heads is missing"),
        ("sela", _set("params", "batch_size", "abc"), r"params.batch_size.*Got 'abc'"),
        ("sela", _set("params", "batch_size", True), r"params.batch_size"),
        ("sela", _set("params", "lr", -1.0), r"params.lr"),
        ("sela", _set("params", "augmentation", {"module": "os"}), r"params.augmentation"),
        ("sela", _set("params", "image_size", [4, 10**9]), r"params.image_size"),
        ("sela", _set("params", "device", "not-a-device"), r"params.device"),
        ("sela", _set("params", "sinkhorn_dtype", "float16"), r"params.sinkhorn_dtype"),
        (
            "sela",
            _set("params", "backbone", "convnet"),
            r"params.backbone 'convnet' differs from network.backbone 'convnet-small'",
        ),
        (
            "sela",
            _set("params", "n_clusters", 4),
            r"params.n_clusters 4 differs from network.n_clusters 3",
        ),
        ("sela", lambda m: m.update(params=[1, 2]), r"params must be a JSON object"),
        ("sela", _set("fitted", "input_kind_", "audio"), r"fitted.input_kind_ must be one of"),
        ("sela", _set("fitted", "input_kind_", "features"), r"fitted.input_kind_"),
        ("sela", _set("fitted", "input_shape_", ["1", 8, 8]), r"fitted.input_shape_"),
        (
            "sela",
            _set("fitted", "input_shape_", [1, 8, 9]),
            r"fitted.input_shape_ .* differs from network.input_shape",
        ),
        ("sela", _set("fitted", "n_features_in_", 63), r"fitted.n_features_in_"),
        ("sela", _set("fitted", "n_features_in_", "64"), r"fitted.n_features_in_"),
        ("sela", _set("fitted", "history_", "many epochs"), r"fitted.history_ must be a list"),
        ("sela", _set("fitted", "n_iter_", -3), r"fitted.n_iter_"),
        ("sela", _set("fitted", "best_head_", "0"), r"fitted.best_head_"),
        ("sela", _set("fitted", "evil_", 1), r"fitted has unknown entries"),
        ("sela", _set("tensors", "file", "../other.safetensors"), r"tensors.file must be"),
        ("sela", _set("tensors", "file", "model.pkl"), r"tensors.file must be"),
        ("sela", _set("tensors", "sha256", 12), r"tensors.sha256 must be"),
        ("sela", lambda m: m.pop("tensors"), r"tensors is missing"),
        ("scan", _set("params", "pretrained", "resnet"), r"params.pretrained must be null"),
        ("deepcluster", _set("whitening", "eps", "small"), r"whitening.eps must be"),
        (
            "deepcluster",
            _set("whitening", "n_features_in_", 96),
            r"whitening.n_features_in_ .* differs from network.n_features",
        ),
        (
            "clusterfit",
            _set("pretext_network", "backbone", "convnet"),
            r"pretext_network.backbone 'convnet' differs from network.backbone 'convnet-small'",
        ),
        (
            "clusterfit",
            _set("pretext_network", "n_clusters", 10**7),
            r"pretext_network.n_clusters must be an integer between 2 and 1000000",
        ),
    ],
)
def test_invalid_field_is_refused_naming_it(method, edit, message, fitted, tmp_path):
    _, metadata_path = save_model(fitted[method], tmp_path / "model")
    _edit_json(metadata_path, edit)
    with pytest.raises(ValueError, match=message) as info:
        load_model(tmp_path / "model")
    assert type(info.value) is ValueError
    assert str(info.value).startswith(f"{metadata_path}: ")
    assert DAMAGED in str(info.value)


def test_description_is_checked_before_any_network_is_built(fitted, tmp_path, monkeypatch):
    """A consistent but large ``n_clusters`` (within bounds) that the tensors file does not
    hold is refused from the safetensors header, before a network is built in memory."""
    _, metadata_path = save_model(fitted["sela"], tmp_path / "model")

    def enlarge(m):
        m["network"]["n_clusters"] = m["params"]["n_clusters"] = 200_000

    _edit_json(metadata_path, enlarge)
    real_init = deepclust.networks.ClusteringNetwork.__init__

    def init_without_memory(self, *args, **kwargs):
        real_init(self, *args, **kwargs)
        if any(not p.is_meta for p in self.heads.parameters()):
            raise AssertionError("a network was built before its tensor shapes were checked")

    monkeypatch.setattr(deepclust.networks.ClusteringNetwork, "__init__", init_without_memory)
    with pytest.raises(ValueError, match=r"wrong shapes.*heads\.heads\.0\.weight.*200000"):
        load_model(tmp_path / "model")


def test_huge_n_clusters_is_refused_without_allocating(fitted, tmp_path, monkeypatch):
    _, metadata_path = save_model(fitted["sela"], tmp_path / "model")
    _edit_json(metadata_path, _set("network", "n_clusters", 10**12))

    def no_build(*args, **kwargs):
        raise AssertionError("a network was built")

    monkeypatch.setattr(deepclust.networks.ClusteringNetwork, "__init__", no_build)
    with pytest.raises(ValueError, match="network.n_clusters must be an integer between 2"):
        load_model(tmp_path / "model")


def test_unreadable_json_is_a_value_error(fitted, tmp_path):
    _, metadata_path = save_model(fitted["sela"], tmp_path / "model")
    metadata_path.write_text('{"format": "deepclust-model", "format_version": 1' + "0" * 5000 + "}")
    with pytest.raises(ValueError, match="not a valid model file"):
        load_model(tmp_path / "model")
    metadata_path.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(ValueError, match="not a valid model file"):
        load_model(tmp_path / "model")


# ------------------------------------------------------------ tensors vs description
def test_labels_of_the_wrong_length_are_refused(fitted, tmp_path):
    tensors_path, metadata_path = save_model(fitted["deepcluster"], tmp_path / "model")
    _edit_tensors(tensors_path, metadata_path, lambda t: t.update(labels_=t["labels_"][:-1]))
    with pytest.raises(ValueError, match=r"labels_ has shape \(59,\).*\(60,\)") as info:
        load_model(tmp_path / "model")
    assert DAMAGED in str(info.value)


@pytest.mark.parametrize(
    "labels, message",
    [
        (lambda t: t.float(), r"labels_ .*dtype F32.*integer"),
        (lambda t: t[None, :], r"labels_ has shape \(1, 60\)"),
    ],
)
def test_labels_of_the_wrong_dtype_or_shape_are_refused(labels, message, fitted, tmp_path):
    tensors_path, metadata_path = save_model(fitted["sela"], tmp_path / "model")

    def edit(tensors):
        tensors["labels_"] = labels(tensors["labels_"]).contiguous()

    def forget_record(m):  # as in a file written before arrays were recorded
        m["tensors"].pop("arrays", None)

    _edit_tensors(tensors_path, metadata_path, edit)
    _edit_json(metadata_path, forget_record)
    with pytest.raises(ValueError, match=message) as info:
        load_model(tmp_path / "model")
    assert DAMAGED in str(info.value)


def test_labels_out_of_range_are_refused(fitted, tmp_path):
    tensors_path, metadata_path = save_model(fitted["sela"], tmp_path / "model")

    def edit(tensors):
        tensors["labels_"] = tensors["labels_"].clone()
        tensors["labels_"][0] = 7

    _edit_tensors(tensors_path, metadata_path, edit)
    with pytest.raises(ValueError, match=r"labels_ .*between 0 and 2"):
        load_model(tmp_path / "model")


def test_whitening_tensor_of_the_wrong_shape_is_refused(fitted, tmp_path):
    tensors_path, metadata_path = save_model(fitted["deepcluster"], tmp_path / "model")
    key = "whitening_.mean_"
    _edit_tensors(tensors_path, metadata_path, lambda t: t.update({key: t[key][:-1]}))
    with pytest.raises(ValueError, match=r"whitening_.mean_ has shape \(63,\)"):
        load_model(tmp_path / "model")


def test_every_method_still_round_trips(fitted, digits_small, tmp_path):
    X, _ = digits_small
    for name, estimator in fitted.items():
        save_model(estimator, tmp_path / name)
        loaded = load_model(tmp_path / f"{name}.json")
        np.testing.assert_array_equal(loaded.predict(X), estimator.predict(X))
        np.testing.assert_array_equal(loaded.labels_, estimator.labels_)


# ------------------------------------------------------------ save order
def _fail_json_write(monkeypatch):
    """Make the JSON write raise, as a kill between the two files would stop it."""
    real_write = deepclust.io.atomic_write

    def write(path, data):
        if str(path).endswith(".json"):
            raise KeyboardInterrupt("killed")
        real_write(path, data)

    monkeypatch.setattr(deepclust.io, "atomic_write", write)


def test_kill_before_the_json_is_written_keeps_the_old_model(
    fitted, digits_small, tmp_path, monkeypatch
):
    X, _ = digits_small
    old, new = fitted["sela"], fitted["scan"]
    save_model(old, tmp_path / "model")
    _fail_json_write(monkeypatch)
    with pytest.raises(KeyboardInterrupt):
        save_model(new, tmp_path / "model")
    monkeypatch.undo()
    loaded = load_model(tmp_path)
    assert type(loaded) is type(old)
    np.testing.assert_array_equal(loaded.labels_, old.labels_)
    np.testing.assert_array_equal(loaded.predict(X), old.predict(X))


def test_kill_after_the_json_is_written_loads_the_new_model(
    fitted, digits_small, tmp_path, monkeypatch
):
    X, _ = digits_small
    old, new = fitted["sela"], fitted["scan"]
    save_model(old, tmp_path / "model")

    def killed(*args):
        raise KeyboardInterrupt("killed")

    monkeypatch.setattr(deepclust.io, "_promote", killed)
    with pytest.raises(KeyboardInterrupt):
        save_model(new, tmp_path / "model")
    monkeypatch.undo()
    loaded = load_model(tmp_path)
    assert type(loaded) is type(new)
    np.testing.assert_array_equal(loaded.predict(X), new.predict(X))
    save_model(old, tmp_path / "model")  # the next save tidies the folder
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.json", "model.safetensors"]
    assert type(load_model(tmp_path)) is type(old)


def test_save_leaves_exactly_the_pair(fitted, tmp_path, monkeypatch):
    save_model(fitted["sela"], tmp_path / "model")
    _fail_json_write(monkeypatch)
    with pytest.raises(KeyboardInterrupt):
        save_model(fitted["scan"], tmp_path / "model")
    monkeypatch.undo()
    save_model(fitted["scan"], tmp_path / "model")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.json", "model.safetensors"]
    metadata = json.loads((tmp_path / "model.json").read_text())
    assert metadata["tensors"]["file"] == "model.safetensors"
    assert model_paths(tmp_path) == (tmp_path / "model.safetensors", tmp_path / "model.json")


def test_pair_from_two_different_saves_is_named_as_such(fitted, tmp_path):
    save_model(fitted["sela"], tmp_path / "a")
    save_model(fitted["scan"], tmp_path / "b")
    (tmp_path / "b.safetensors").replace(tmp_path / "a.safetensors")
    with pytest.raises(ValueError, match="SHA-256.*different saves"):
        load_model(tmp_path / "a")


def test_json_reads_the_tensors_file_it_names(fitted, digits_small, tmp_path):
    X, _ = digits_small
    save_model(fitted["sela"], tmp_path / "model")
    (tmp_path / "model.json").replace(tmp_path / "copy.json")
    loaded = load_model(tmp_path / "copy.json")  # names model.safetensors, its own pair
    np.testing.assert_array_equal(loaded.predict(X), fitted["sela"].predict(X))
    # A pair renamed together still loads: <prefix>.safetensors is the fallback.
    (tmp_path / "model.safetensors").replace(tmp_path / "copy.safetensors")
    loaded = load_model(tmp_path / "copy")
    np.testing.assert_array_equal(loaded.predict(X), fitted["sela"].predict(X))
