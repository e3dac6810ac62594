"""The training engine data-parallel on two CPU processes (gloo backend), as under torchrun.

The harness (forked ranks, a free port, timeouts) is that of ``test_distributed.py``.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_distributed import run_on_two_ranks
from torch import nn

from deepclust.distributed import rank
from deepclust.losses import NTXentLoss
from deepclust.methods import DeepClusterEstimator, SCANClusterer, SelfLabelClusterer
from deepclust.training import Stage, Trainer

N_SAMPLES, N_FEATURES, BATCH = 16, 5, 8


def _regression_fit(payload: dict) -> dict:
    """Two epochs of linear least squares (no BatchNorm, no randomness) on 16 samples."""
    torch.manual_seed(0)
    model = nn.Linear(N_FEATURES, 2)
    unused = nn.Linear(2, 2)  # trained by the stage but not in its loss (a spare head)
    X, Y = torch.as_tensor(payload["X"]), torch.as_tensor(payload["Y"])
    seen = []

    def compute_loss(indices):
        seen.append(np.asarray(indices).copy())
        idx = torch.as_tensor(indices)
        return ((model(X[idx]) - Y[idx]) ** 2).mean()

    stage = Stage(
        "fit", 2, N_SAMPLES, compute_loss, [model, unused], optimizer="sgd", lr=0.5, momentum=0.0,
        weight_decay=0.0, lr_schedule="constant",
    )  # fmt: skip
    trainer = Trainer(torch.device("cpu"), BATCH, random_state=3, precision="float32")
    history = trainer.fit([stage], [model])
    return {"weights": model.state_dict(), "seen": seen, "loss": history[-1]["loss"]}


def scenario_regression(rank_: int, payload: dict) -> dict:
    return _regression_fit(payload)


def scenario_ntxent(rank_: int, payload: dict) -> dict:
    z1, z2 = (torch.as_tensor(z[rank_ * 3 : rank_ * 3 + 3]).requires_grad_() for z in payload["z"])
    loss = NTXentLoss(temperature=0.5)(z1, z2)
    loss.backward()
    return {"loss": loss.detach(), "grads": (z1.grad, z2.grad)}


#: Short fits: DeepCluster (a k-means label step every epoch), SCAN (a SimCLR pretext with
#: NT-Xent across ranks, neighbour mining, SCAN loss and self-labelling), SeLa (label
#: steps with the Sinkhorn problem's rows split over the ranks).
FITS = {
    "deepcluster": (DeepClusterEstimator, {"max_epochs": 2}),
    "scan": (SCANClusterer, {"pretext_epochs": 2, "max_epochs": 2, "selflabel_epochs": 1}),
    "sela": (SelfLabelClusterer, {"max_epochs": 3, "n_label_updates": 2}),
}


def scenario_fit(rank_: int, payload: dict) -> dict:
    estimator, changes = FITS[payload["method"]]
    params = {**estimator.method_spec.test_params, **changes}
    # random_state=None: every rank must still fit with rank 0's seed.
    est = estimator(**params, random_state=None).fit(payload["X"])
    return {
        "weights": est.network_.state_dict(),
        "network_type": type(est.network_).__name__,
        "labels": est.labels_,
        "rank": rank(),
    }


def test_ranks_share_each_batch_and_average_gradients(tmp_path):
    rng = np.random.default_rng(0)
    payload = {
        "X": rng.standard_normal((N_SAMPLES, N_FEATURES)).astype(np.float32),
        "Y": rng.standard_normal((N_SAMPLES, 2)).astype(np.float32),
    }
    alone = _regression_fit(payload)
    ranks = run_on_two_ranks(scenario_regression, payload, tmp_path)
    # Each step's batch is split in two halves, one per rank, which together are the
    # single-process batch.
    for step, batch in enumerate(alone["seen"]):
        halves = [r["seen"][step] for r in ranks]
        assert len(halves[0]) == len(halves[1]) == BATCH // 2
        np.testing.assert_array_equal(np.concatenate(halves), batch)
    # The averaged gradient of the halves is the gradient of the whole batch: the
    # two-process fit is the single-process fit, and its ranks agree exactly.
    for name, value in alone["weights"].items():
        torch.testing.assert_close(
            ranks[0]["weights"][name], ranks[1]["weights"][name], rtol=0, atol=0
        )
        torch.testing.assert_close(ranks[0]["weights"][name], value, rtol=1e-5, atol=1e-6)
    assert ranks[0]["loss"] == ranks[1]["loss"]
    np.testing.assert_allclose(ranks[0]["loss"], alone["loss"], rtol=1e-5)


def test_ntxent_takes_its_negatives_from_every_rank(tmp_path):
    z = [np.random.default_rng(s).standard_normal((6, 4)).astype(np.float32) for s in (1, 2)]
    ranks = run_on_two_ranks(scenario_ntxent, {"z": z}, tmp_path)
    z1, z2 = (torch.as_tensor(v).requires_grad_() for v in z)
    whole = NTXentLoss(temperature=0.5)(z1, z2)
    whole.backward()
    torch.testing.assert_close((ranks[0]["loss"] + ranks[1]["loss"]) / 2, whole.detach())
    # Each rank's rows get the gradient of the ranks' summed loss; DDP's average halves it.
    for view, expected in enumerate((z1.grad, z2.grad)):
        got = torch.cat([r["grads"][view] for r in ranks]) / 2
        torch.testing.assert_close(got, expected)


@pytest.mark.parametrize("method", sorted(FITS))
def test_a_method_fit_ends_the_same_on_both_ranks(tmp_path, digits_small, method):
    X, _ = digits_small
    payload = {"X": np.concatenate([X, X[:4]]), "method": method}
    ranks = run_on_two_ranks(scenario_fit, payload, tmp_path)
    assert [r["rank"] for r in ranks] == [0, 1]
    assert ranks[0]["network_type"] == "ClusteringNetwork"  # the plain module, not DDP
    np.testing.assert_array_equal(ranks[0]["labels"], ranks[1]["labels"])
    assert len(ranks[0]["labels"]) == 64
    for name, value in ranks[0]["weights"].items():
        torch.testing.assert_close(ranks[1]["weights"][name], value, rtol=0, atol=0, msg=name)
