"""A data-parallel fit's full-data steps split over two CPU processes (gloo backend).

The inference passes of a fit (features, head probabilities) run each rank on its block
of the samples and are gathered in order; SeLa's label step solves the Sinkhorn problem
with each rank holding its own rows. The harness is that of ``test_distributed.py``.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_distributed import run_on_two_ranks
from test_streaming_labels import _mixture, _network

from deepclust import DeepClusterEstimator, SelfLabelClusterer
from deepclust.data import as_source
from deepclust.distributed import all_gather_rows
from deepclust.methods import sela
from deepclust.methods._stages import extract_features, head_probabilities
from deepclust.training import run_inference
from deepclust.training._data_parallel import rank_rows
from deepclust.training._inference import run_sharded_inference

CPU = torch.device("cpu")
#: Unequal target sizes for the label step.
MARGINALS = np.arange(1.0, 8.0) / 28.0


def _counting(fn, seen: list):
    """``fn`` that records how many samples each call sees."""

    def counted(batch):
        seen.append(len(batch))
        return fn(batch)

    return counted


def scenario_sharded_inference(rank_: int, payload: dict) -> dict:
    network, source = _network(16, 7, n_heads=2), as_source(payload["X"])
    seen = []

    def outputs(batch):
        return [network.features(batch), torch.softmax(network(batch)[1], dim=1)]

    sharded = run_sharded_inference(
        _counting(outputs, seen), source, device=CPU, batch_size=8, modules=(network,)
    )
    tiny = as_source(payload["X"][:1])  # fewer samples than ranks: the whole pass
    return {
        "sharded": sharded,
        "seen": sum(seen),
        "rows": rank_rows(len(source)),
        "tiny": run_sharded_inference(network.features, tiny, device=CPU, batch_size=8),
        "features": extract_features(network, source, CPU, 8),
        "mine": extract_features(network, source, CPU, 8, gather=False),
        "heads": head_probabilities(network, source, CPU, 8),
    }


def scenario_sela_label_pass(rank_: int, payload: dict) -> dict:
    network, source = _network(16, 7, n_heads=3), as_source(payload["X"])
    est = SelfLabelClusterer(7, n_heads=3, device="cpu")
    solved_rows, solve = [], sela.sinkhorn_solve

    def spy(probs, *args, **kwargs):
        solved_rows.append(len(probs))
        return solve(probs, *args, **kwargs)

    sela.sinkhorn_solve = spy
    try:
        passes = [est._label_pass(network, source, CPU, 16, sizes) for sizes in payload["sizes"]]
    finally:
        sela.sinkhorn_solve = solve
    return {"passes": passes, "solved_rows": solved_rows}


def scenario_sela_label_step(rank_: int, payload: dict) -> list:
    est = SelfLabelClusterer(payload["k"], device="cpu")
    probs = torch.as_tensor(payload["probs"])
    mine = probs[rank_rows(len(probs))]
    return [est._label_step(mine, sizes, n_total=len(probs)) for sizes in payload["sizes"]]


def test_a_fit_inference_pass_is_split_over_the_ranks_and_gathered_in_order(tmp_path):
    X = _mixture(37)  # odd: the ranks' blocks differ in size (19 and 18)
    network, source = _network(16, 7, n_heads=2), as_source(X)
    whole = run_inference(
        lambda b: [network.features(b), torch.softmax(network(b)[1], dim=1)],
        source,
        device=CPU,
        batch_size=8,
        modules=(network,),
    )
    # The fit's passes, on one process (under the precision policy in force).
    features, heads = (
        extract_features(network, source, CPU, 8),
        head_probabilities(network, source, CPU, 8),
    )
    ranks = run_on_two_ranks(scenario_sharded_inference, {"X": X}, tmp_path)
    assert [r["seen"] for r in ranks] == [19, 18]  # each rank evaluates its block only
    assert [r["rows"] for r in ranks] == [slice(0, 19), slice(19, 37)]
    for r in ranks:
        for got, want in zip(r["sharded"], whole, strict=True):
            torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-6)
        torch.testing.assert_close(r["features"], features, rtol=1e-6, atol=1e-6)
        torch.testing.assert_close(r["mine"], features[r["rows"]], rtol=1e-6, atol=1e-6)
        for got, want in zip(r["heads"], heads, strict=True):
            torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-6)
        torch.testing.assert_close(r["tiny"], network.features(torch.as_tensor(X[:1])))
    for got, want in zip(ranks[0]["sharded"], ranks[1]["sharded"], strict=True):
        torch.testing.assert_close(got, want, rtol=0, atol=0)  # the same on every rank


def test_sela_label_pass_on_two_ranks_equals_one_process(tmp_path):
    X, sizes = _mixture(301), [None, MARGINALS]
    network, source = _network(16, 7, n_heads=3), as_source(X)
    est = SelfLabelClusterer(7, n_heads=3, device="cpu")
    alone = [est._label_pass(network, source, CPU, 16, s) for s in sizes]
    ranks = run_on_two_ranks(scenario_sela_label_pass, {"X": X, "sizes": sizes}, tmp_path)
    # Every head's Sinkhorn solve saw only the rank's rows (its share of N x K).
    assert ranks[0]["solved_rows"] == [151] * 6
    assert ranks[1]["solved_rows"] == [150] * 6
    for r in ranks:
        for (labels, argmax, likelihoods), want in zip(r["passes"], alone, strict=True):
            torch.testing.assert_close(labels, want[0], rtol=0, atol=0)
            for got, expected in zip(argmax, want[1], strict=True):
                torch.testing.assert_close(got, expected, rtol=0, atol=0)
            np.testing.assert_allclose(likelihoods, want[2], rtol=1e-5)


@pytest.mark.parametrize("rounded", [False, True])
def test_sela_label_step_on_two_ranks_equals_one_process(tmp_path, rounded):
    rng = np.random.default_rng(1)
    k = 5
    if rounded:  # nearly uniform rows and unequal sizes: the argmax misses, rounding runs
        probs = 1.0 / k + 1e-4 * rng.random((203, k))
        sizes = [np.array([0.5, 0.2, 0.15, 0.1, 0.05])]
    else:
        probs = rng.dirichlet(np.full(k, 0.3), 203)
        sizes = [None, np.array([0.4, 0.3, 0.1, 0.1, 0.1])]
    probs = torch.as_tensor(probs / probs.sum(1, keepdims=True), dtype=torch.float32)
    est = SelfLabelClusterer(k, device="cpu")
    alone = [est._label_step(probs, s) for s in sizes]
    if rounded:  # the case is the one meant: Sinkhorn's argmax alone misses the sizes
        plain = sela.sinkhorn_solve(probs, est.lamb, marginals=sizes[0]).labels
        assert not torch.equal(plain, alone[0])
    payload = {"probs": probs.numpy(), "sizes": sizes, "k": k}
    ranks = run_on_two_ranks(scenario_sela_label_step, payload, tmp_path)
    for r in ranks:
        for got, want in zip(r, alone, strict=True):
            torch.testing.assert_close(got, want, rtol=0, atol=0)


def scenario_deepcluster_cluster(rank_: int, payload: dict) -> dict:
    features = torch.as_tensor(payload["features"])
    est = DeepClusterEstimator(payload["k"], pca_dim=8, kmeans_backend=payload["backend"])
    n_total = len(features) if est._shards_kmeans(len(features)) else None
    mine = features[rank_rows(len(features))] if n_total else features
    whitening, whitened, result = est._cluster(mine, 5, CPU, n_total=n_total)
    return {
        "n_total": n_total,
        "rows": len(whitened),
        "whitening": (whitening.mean_, whitening.components_, whitening.explained_variance_),
        "plain": (whitening.device, whitening.distributed, whitening.mean_.device),
        "centroids": torch.as_tensor(result.centroids),
        "labels": all_gather_rows(torch.as_tensor(result.labels)) if n_total else result.labels,
    }


@pytest.mark.parametrize("backend", ["auto", "faiss"])
def test_deepcluster_kmeans_step_on_two_ranks_equals_one_process(tmp_path, backend):
    if backend == "faiss":
        pytest.importorskip("faiss")
    features = torch.as_tensor(_mixture(211, dim=12, n_centres=4, seed=3))
    one = DeepClusterEstimator(
        4, pca_dim=8, kmeans_backend="torch" if backend == "auto" else backend
    )
    whitening, _, result = one._cluster(features, 5, CPU)
    payload = {"features": features.numpy(), "k": 4, "backend": backend}
    ranks = run_on_two_ranks(scenario_deepcluster_cluster, payload, tmp_path)
    # Split over the ranks unless faiss is asked for (it runs whole on every rank).
    sharded = backend == "auto"
    assert [r["rows"] for r in ranks] == ([106, 105] if sharded else [211, 211])
    for r in ranks:
        assert r["plain"] == (None, False, CPU)  # a one-process whitening, on the CPU
        for got, want in zip(
            r["whitening"],
            (whitening.mean_, whitening.components_, whitening.explained_variance_),
            strict=True,
        ):
            torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-9)
        torch.testing.assert_close(
            r["centroids"], torch.as_tensor(result.centroids), rtol=1e-5, atol=1e-6
        )
        np.testing.assert_array_equal(np.asarray(r["labels"]), np.asarray(result.labels))
