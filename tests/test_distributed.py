"""Data-parallel helpers and kernels on two CPU processes (gloo backend).

Each test starts two processes with ``torch.multiprocessing``; every rank runs a scenario
on its consecutive block of the rows and saves what it got, and the parent compares the
ranks' results with one process' on all rows.
"""

from __future__ import annotations

import socket
import time
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from deepclust.cluster import PCAWhitening, kmeans
from deepclust.distributed import (
    all_gather_rows,
    gather_with_gradient,
    is_distributed,
    is_main_process,
    rank,
    shard_indices,
    world_size,
)
from deepclust.sinkhorn import sinkhorn_solve

WORLD_SIZE = 2
#: Seconds a collective may wait (a rank left behind fails instead of hanging the test).
COLLECTIVE_TIMEOUT = 30
#: Seconds both ranks may take, start-up included.
RUN_TIMEOUT = 90
#: Forked ranks start at once (torch and deepclust are already imported; no CUDA is used);
#: spawned ones import them again (seconds each), where fork is not available.
START_METHOD = "fork" if "fork" in mp.get_all_start_methods() else "spawn"


# --------------------------------------------------------------------------------------
# the harness
# --------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _rank_worker(rank_: int, port: int, scenario: str, payload: dict, out_dir: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group(
        "gloo",
        init_method=f"tcp://127.0.0.1:{port}",
        rank=rank_,
        world_size=WORLD_SIZE,
        timeout=timedelta(seconds=COLLECTIVE_TIMEOUT),
    )
    try:
        result = (scenario if callable(scenario) else globals()[scenario])(rank_, payload)
        torch.save(result, Path(out_dir) / f"rank{rank_}.pt")
    finally:
        dist.destroy_process_group()


def run_on_two_ranks(scenario, payload: dict, tmp_path: Path) -> list:
    """Run ``scenario(rank, payload)`` on two gloo ranks; their results, in rank order.

    ``scenario`` is the name of a scenario of this module, or a module-level function of
    another test module.
    """
    context = mp.start_processes(
        _rank_worker,
        args=(_free_port(), scenario, payload, str(tmp_path)),
        nprocs=WORLD_SIZE,
        join=False,
        start_method=START_METHOD,
    )
    deadline = time.monotonic() + RUN_TIMEOUT
    while not context.join(timeout=1.0):
        if time.monotonic() > deadline:
            for process in context.processes:
                process.kill()
            pytest.fail(f"{scenario} did not finish within {RUN_TIMEOUT} s")
    return [torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in range(WORLD_SIZE)]


def _my_rows(array, rank_: int):
    """This rank's consecutive block of ``array``'s rows (:func:`shard_indices`)."""
    return array[shard_indices(np.arange(len(array)), rank_, WORLD_SIZE)]


# --------------------------------------------------------------------------------------
# scenarios, run on every rank (module level, so that spawned processes find them)
# --------------------------------------------------------------------------------------


def scenario_gather(rank_: int, payload: dict) -> dict:
    rows = torch.arange(10 * (rank_ + 1), dtype=torch.float32).reshape(-1, 2) + 100 * rank_
    return {
        "queries": (is_distributed(), rank(), world_size(), is_main_process()),
        "gathered": all_gather_rows(rows),
        "gathered_int": all_gather_rows(rows.long()[:, 0]),
        "empty_on_rank0": all_gather_rows(rows if rank_ else rows[:0]),
    }


def scenario_gather_gradient(rank_: int, payload: dict) -> dict:
    mine = torch.as_tensor(_my_rows(payload["z"], rank_)).requires_grad_(True)
    everyone = gather_with_gradient(mine)
    # A contrastive-shaped loss: this rank's anchors against every rank's rows.
    loss = torch.logsumexp(mine @ everyone.T / 0.5, dim=1).sum() + (everyone**2).sum() * 0.1
    loss.backward()
    return {"loss": loss.detach(), "grad": mine.grad}


def scenario_sinkhorn(rank_: int, payload: dict) -> list:
    mine = torch.as_tensor(_my_rows(payload["logits"], rank_))
    return [
        sinkhorn_solve(mine, log_input=True, return_plan=True, distributed=True, **options)
        for options in payload["options"]
    ]


def scenario_sinkhorn_bad_rows(rank_: int, payload: dict) -> str:
    mine = torch.as_tensor(_my_rows(payload["logits"], rank_)).clone()
    if rank_ == 1:
        mine[0, 0] = float("nan")
    try:
        sinkhorn_solve(mine, log_input=True, distributed=True)
    except ValueError as error:
        return str(error)
    return "no error"


def scenario_kmeans(rank_: int, payload: dict) -> list:
    mine = _my_rows(payload["X"], rank_)
    return [kmeans(mine, backend="torch", distributed=True, **opts) for opts in payload["options"]]


def scenario_pca(rank_: int, payload: dict) -> dict:
    pca = PCAWhitening(3, distributed=True).fit(_my_rows(payload["X"], rank_))
    return {name: getattr(pca, name) for name in ("mean_", "components_", "explained_variance_")}


# --------------------------------------------------------------------------------------
# tests
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("n_samples", [0, 1, 7, 10, 601])
@pytest.mark.parametrize("n_ranks", [1, 2, 3, 4])
def test_shards_cover_the_order_exactly_once(n_samples, n_ranks):
    order = np.random.default_rng(n_samples).permutation(n_samples)
    shards = [shard_indices(order, r, n_ranks) for r in range(n_ranks)]
    np.testing.assert_array_equal(np.concatenate(shards), order)
    sizes = [len(shard) for shard in shards]
    assert max(sizes) - min(sizes) <= 1 and sizes == sorted(sizes, reverse=True)


def test_shard_indices_rejects_a_rank_outside_the_world():
    with pytest.raises(ValueError, match="rank"):
        shard_indices(np.arange(4), 2, 2)


def test_helpers_are_identities_on_one_process():
    rows = torch.randn(3, 2, requires_grad=True)
    assert (is_distributed(), rank(), world_size(), is_main_process()) == (False, 0, 1, True)
    assert all_gather_rows(rows) is rows
    assert gather_with_gradient(rows) is rows


def test_all_gather_rows_of_uneven_blocks(tmp_path):
    results = run_on_two_ranks("scenario_gather", {}, tmp_path)
    blocks = [
        torch.arange(10 * (r + 1), dtype=torch.float32).reshape(-1, 2) + 100 * r for r in (0, 1)
    ]
    expected = torch.cat(blocks)
    for r, result in enumerate(results):
        assert result["queries"] == (True, r, 2, r == 0)
        torch.testing.assert_close(result["gathered"], expected, rtol=0, atol=0)
        torch.testing.assert_close(result["gathered_int"], expected.long()[:, 0], rtol=0, atol=0)
        torch.testing.assert_close(result["empty_on_rank0"], blocks[1], rtol=0, atol=0)


def test_gather_with_gradient_matches_the_loss_on_the_whole_batch(tmp_path):
    z = np.random.default_rng(0).standard_normal((9, 4))  # 5 rows on rank 0, 4 on rank 1
    results = run_on_two_ranks("scenario_gather_gradient", {"z": z}, tmp_path)
    whole = torch.as_tensor(z).requires_grad_(True)
    # The sum of the ranks' losses: every anchor against every row; the second term is
    # counted once per rank.
    loss = torch.logsumexp(whole @ whole.T / 0.5, dim=1).sum() + 2 * (whole**2).sum() * 0.1
    loss.backward()
    torch.testing.assert_close(sum(result["loss"] for result in results), loss.detach())
    torch.testing.assert_close(torch.cat([result["grad"] for result in results]), whole.grad)


SINKHORN_OPTIONS = [
    {},  # defaults: float32, warm start on every 8th row, tol=1e-2
    {"tol": 1e-5, "marginals": [1.0, 2.0, 3.0, 4.0]},
    {"tol": 1e-4, "warm_start": False, "dtype": "bfloat16", "chunk_size": 50},
    {"tol": 1e-6, "dtype": "float64", "marginals": [1.0, 2.0, 3.0, 4.0]},
    {"tol": 1e-4, "dtype": "float64", "lamb": 5.0},
]


def test_distributed_sinkhorn_equals_one_process(tmp_path):
    rng = np.random.default_rng(0)
    logits = (rng.standard_normal((601, 4)) + [1.5, 0.0, 0.0, -0.5]).astype(np.float32)
    payload = {"logits": logits, "options": SINKHORN_OPTIONS}
    per_rank = run_on_two_ranks("scenario_sinkhorn", payload, tmp_path)
    for i, options in enumerate(SINKHORN_OPTIONS):
        whole = sinkhorn_solve(logits, log_input=True, return_plan=True, **options)
        parts = [results[i] for results in per_rank]
        assert whole.converged and all(part.converged for part in parts), options
        # Every rank took the same decisions on the same global quantities.
        assert len({(p.n_iter, p.n_builds, p.error, tuple(p.log_v.tolist())) for p in parts}) == 1
        # The column sums are added in another order. In float32 the error may then cross
        # tol one iteration earlier or later, which at lamb=25 (a nearly hard plan, whose
        # log_v the masses determine loosely) moves log_v by up to ~1e-3 and the plan by
        # up to ~2e-3; in float64 the iterations are the same.
        precise = options.get("dtype") == "float64"
        atol = 1e-6 if precise else 2e-3
        assert parts[0].warm_start_iter == whole.warm_start_iter
        assert abs(parts[0].n_iter - whole.n_iter) <= (0 if precise else 1), options
        torch.testing.assert_close(parts[0].log_v, whole.log_v, rtol=0, atol=atol)
        np.testing.assert_array_equal(torch.cat([p.labels for p in parts]), whole.labels)
        plan = torch.cat([p.plan for p in parts])
        torch.testing.assert_close(plan, whole.plan, rtol=0, atol=atol)
    assert per_rank[0][0].warm_start_iter > 0  # the subsampled warm start ran


def test_distributed_sinkhorn_raises_on_every_rank(tmp_path):
    logits = np.random.default_rng(1).standard_normal((40, 3)).astype(np.float32)
    messages = run_on_two_ranks("scenario_sinkhorn_bad_rows", {"logits": logits}, tmp_path)
    assert all("NaN" in message for message in messages)


def _blobs(n_samples: int, n_features: int, n_centres: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=4.0, size=(n_centres, n_features))
    labels = rng.integers(n_centres, size=n_samples)
    return (centres[labels] + rng.standard_normal((n_samples, n_features))).astype(np.float32)


def _kmeans_options(X: np.ndarray) -> list[dict]:
    far = X[:5].copy()
    far[4] = 1e3  # a centroid no sample is near: re-seeded from the farthest sample
    return [
        {"n_clusters": 5, "random_state": 0},  # k-means++
        {"n_clusters": 5, "random_state": 1, "init": "random", "n_init": 2},
        {"n_clusters": 5, "init": far},
        # No iteration, duplicated centroids: the final assignment repairs three empty
        # clusters; the fifth holds only the outlier, on rank 1 (empty on rank 0 alone).
        {
            "n_clusters": 5,
            "init": np.concatenate([np.repeat(X[:1], 4, axis=0), X[-1:]]),
            "n_iter": 0,
        },
    ]


def test_distributed_kmeans_equals_one_process(tmp_path):
    X = np.concatenate([_blobs(402, 6, 5, seed=0), np.full((1, 6), 50.0, np.float32)])
    options = _kmeans_options(X)
    per_rank = run_on_two_ranks("scenario_kmeans", {"X": X, "options": options}, tmp_path)
    for i, opts in enumerate(options):
        whole = kmeans(X, backend="torch", **opts)
        parts = [results[i] for results in per_rank]
        for part in parts:
            # Sums of float64 per-cluster totals in another order: equal to ~1e-7 in float32.
            np.testing.assert_allclose(part.centroids, whole.centroids, rtol=0, atol=1e-5)
            assert part.n_iter == whole.n_iter
            assert part.inertia == pytest.approx(whole.inertia, rel=1e-6)
        np.testing.assert_array_equal(np.concatenate([p.labels for p in parts]), whole.labels)
        assert len(np.unique(whole.labels)) == 5


def test_distributed_pca_whitening_statistics_equal_one_process(tmp_path):
    X = _blobs(301, 6, 3, seed=2) + 100.0  # far from the origin: the shift matters
    per_rank = run_on_two_ranks("scenario_pca", {"X": X}, tmp_path)
    whole = PCAWhitening(3).fit(X)
    for part in per_rank:
        for name, value in part.items():
            torch.testing.assert_close(value, getattr(whole, name), rtol=1e-9, atol=1e-9)
