"""SeLa's label step one head at a time: the labels of labelling every head's probabilities
at once, the ``sinkhorn_dtype`` option, and one N x K buffer alive whatever ``n_heads``."""

from __future__ import annotations

import gc
import json

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.utils._param_validation import InvalidParameterError

from deepclust import SelfLabelClusterer
from deepclust._testing import fast_instance
from deepclust.data import as_source
from deepclust.io import load_model, save_model
from deepclust.methods import sela
from deepclust.methods._stages import head_probabilities
from deepclust.networks import ClusteringNetwork
from deepclust.training import use_precision

CPU = torch.device("cpu")


def _mixture(n_samples: int, dim: int = 16, n_centres: int = 6, seed: int = 0) -> np.ndarray:
    """Seeded Gaussian-mixture features, float32."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((n_centres, dim)) * 3.0
    labels = rng.integers(0, n_centres, n_samples)
    return (centres[labels] + rng.standard_normal((n_samples, dim))).astype(np.float32)


def _network(dim: int, n_clusters: int, n_heads: int) -> ClusteringNetwork:
    """A small MLP with ``n_heads`` heads whose softmax is far from uniform."""
    torch.manual_seed(0)
    backbone = torch.nn.Sequential(
        torch.nn.Linear(dim, 32), torch.nn.ReLU(), torch.nn.Linear(32, 24), torch.nn.ReLU()
    )
    network = ClusteringNetwork(backbone, 24, n_clusters, n_heads)
    with torch.no_grad():
        for head in network.heads:
            head.weight.mul_(4.0)
    return network


def _all_heads_at_once(est, network, source, batch_size, marginals=None, device=CPU):
    """The label step as it was: every head's float32 probabilities first, then a solve
    per head."""
    probs = head_probabilities(network, source, device, batch_size, output_device=device)
    labels = torch.stack([est._label_step(p, marginals) for p in probs])
    argmax = [p.argmax(1) for p in probs]
    likelihoods = [
        float(p.gather(1, head[:, None]).float().clamp_min(1e-12).log().mean())
        for p, head in zip(probs, labels, strict=True)
    ]
    return labels, argmax, likelihoods


@pytest.mark.parametrize(
    "device, precision",
    [
        ("cpu", "float32"),
        ("cpu", "mixed"),  # the heads run under bfloat16 autocast
        pytest.param("cuda", "auto", marks=pytest.mark.gpu),
    ],
)
def test_streamed_label_pass_equals_all_heads_at_once(device, precision):
    X, device = _mixture(500), torch.device(device)
    network, source = _network(16, 7, n_heads=3).to(device), as_source(X)
    est = SelfLabelClusterer(7, n_heads=3, device=device.type)
    marginals = np.arange(1.0, 8.0) / 28.0
    for sizes in (None, marginals):
        with use_precision(precision):
            expected = _all_heads_at_once(est, network, source, 97, sizes, device)
            labels, argmax, likelihoods = est._label_pass(network, source, device, 97, sizes)
        assert labels.device.type == device.type
        torch.testing.assert_close(labels, expected[0], rtol=0, atol=0)
        for got, want in zip(argmax, expected[1], strict=True):
            torch.testing.assert_close(got, want, rtol=0, atol=0)
        exact = device.type == "cpu"  # cuBLAS may pick other kernels for other shapes
        assert likelihoods == (expected[2] if exact else pytest.approx(expected[2], rel=1e-5))
    assert network.training  # the pass leaves the modes as they were


def test_fit_gives_the_labels_of_all_heads_at_once(digits_small):
    X, _ = digits_small
    est = fast_instance(
        SelfLabelClusterer, n_heads=3, max_epochs=2, n_label_updates=1, precision="float32"
    ).fit(X)
    source = est._read_input(X, reset=False)
    with use_precision("float32"):
        labels, argmax, likelihoods = _all_heads_at_once(
            est, est.network_, source, est._inference_batch_size(CPU)
        )
    np.testing.assert_array_equal(est.labels_per_head_, labels.numpy())
    np.testing.assert_allclose(est.head_log_likelihoods_, likelihoods, rtol=1e-6)
    best = est.best_head_
    agreement = float((argmax[best] == labels[best]).float().mean())
    assert est.history_[-1]["labels_predict_agreement"] == pytest.approx(agreement)


def test_bfloat16_labels_agree_with_float32_and_stay_equal_size(tmp_path):
    X = _mixture(600)
    est = SelfLabelClusterer(
        6,
        n_heads=2,
        max_epochs=3,
        n_label_updates=2,
        batch_size=64,
        sinkhorn_dtype="bfloat16",
        device="cpu",
        precision="float32",
        random_state=0,
    ).fit(X)
    for head in est.labels_per_head_:
        counts = np.bincount(head, minlength=6)
        assert counts.max() / counts.min() <= 1.1, counts
    source = est._read_input(X, reset=False)
    as_float32 = clone(est).set_params(sinkhorn_dtype="float32")
    with use_precision("float32"):
        half = est._label_pass(est.network_, source, CPU, 256, None)
        full = as_float32._label_pass(est.network_, source, CPU, 256, None)
    for half_labels, full_labels in zip(half[0], full[0], strict=True):
        assert float((half_labels == full_labels).float().mean()) >= 0.95
    np.testing.assert_allclose(half[2], full[2], atol=0.01)
    # Model files keep the option; files written before it existed load with float32.
    _, metadata_path = save_model(est, tmp_path / "model")
    assert load_model(metadata_path).sinkhorn_dtype == "bfloat16"
    metadata = json.loads(metadata_path.read_text())
    del metadata["params"]["sinkhorn_dtype"]
    metadata_path.write_text(json.dumps(metadata))
    assert load_model(metadata_path).sinkhorn_dtype == "float32"


def test_bfloat16_buffer_reaches_the_solver(monkeypatch):
    solve, seen = sela.sinkhorn_solve, []

    def spy(probs, *args, **kwargs):
        seen.append((probs.dtype, kwargs.get("dtype")))
        return solve(probs, *args, **kwargs)

    monkeypatch.setattr(sela, "sinkhorn_solve", spy)
    network, source = _network(16, 5, n_heads=2), as_source(_mixture(300))
    est = SelfLabelClusterer(5, n_heads=2, sinkhorn_dtype="bfloat16", device="cpu")
    labels, _, likelihoods = est._label_pass(network, source, CPU, 64, None)
    assert seen == [(torch.bfloat16, "bfloat16")] * 2
    assert labels.dtype == torch.int64 and np.all(np.isfinite(likelihoods))
    for head in labels:
        counts = np.bincount(head.numpy(), minlength=5)
        assert counts.max() / counts.min() <= 1.1, counts


@pytest.mark.parametrize("n_heads", [1, 4])
def test_one_probability_buffer_is_alive_whatever_n_heads(n_heads, monkeypatch):
    n_samples, n_clusters = 203, 7
    step, alive = SelfLabelClusterer._label_step, []

    def spy(self, probs, marginals):
        # Every live N x K tensor the label step could see (views share a storage).
        gc.collect()
        storages = {
            obj.untyped_storage().data_ptr()
            for obj in gc.get_objects()
            if issubclass(type(obj), torch.Tensor) and tuple(obj.shape) == (n_samples, n_clusters)
        }
        alive.append(len(storages))
        return step(self, probs, marginals)

    monkeypatch.setattr(SelfLabelClusterer, "_label_step", spy)
    SelfLabelClusterer(
        n_clusters,
        n_heads=n_heads,
        max_epochs=2,
        n_label_updates=1,
        batch_size=64,
        device="cpu",
        random_state=0,
    ).fit(_mixture(n_samples))
    assert len(alive) == 2 * n_heads  # one label update and the final labels
    assert max(alive) == 1


@pytest.mark.parametrize("bad", ["float16", "float64", "bf16", None, 16])
def test_bad_sinkhorn_dtype_is_refused_before_training(bad, monkeypatch):
    def no_training(*args, **kwargs):
        raise AssertionError("training started")

    monkeypatch.setattr(sela.SeLaFit, "run", no_training)
    est = SelfLabelClusterer(3, sinkhorn_dtype=bad, device="cpu")
    with pytest.raises(
        InvalidParameterError, match=r"'sinkhorn_dtype' parameter .* among .*'float32'"
    ):
        est.fit(_mixture(30))
    assert not hasattr(est, "labels_")
