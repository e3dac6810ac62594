"""SyncBatchNorm on two CPU processes (gloo): one BatchNorm over the ranks' batches.

Every rank normalises its share of a global batch (5 and 3 samples); the outputs, the
running statistics and the gradients must be those of one :class:`torch.nn.BatchNorm2d`
on the whole batch.
"""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
import torch.distributed as dist
from test_distributed import run_on_two_ranks
from torch import nn

from deepclust.distributed import (
    SyncBatchNorm,
    SyncBatchNorm1d,
    convert_sync_batchnorm,
    revert_sync_batchnorm,
)
from deepclust.training import Stage, Trainer

#: Rows of the global batch on rank 0 and rank 1 (uneven on purpose).
SHARES = (5, 3)
CHANNELS = 4


def _global_batch() -> tuple[torch.Tensor, torch.Tensor, dict]:
    """The global batch, an upstream gradient for the output, and the layer's state."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(sum(SHARES), CHANNELS, 3, 2, generator=gen) * 2 + 1
    upstream = torch.randn(x.shape, generator=gen)
    layer = nn.BatchNorm2d(CHANNELS)
    with torch.no_grad():
        layer.weight.uniform_(0.5, 1.5, generator=gen)
        layer.bias.uniform_(-0.5, 0.5, generator=gen)
    return x, upstream, layer.state_dict()


def _step(layer: nn.Module, x: torch.Tensor, upstream: torch.Tensor) -> dict:
    """One training forward and backward of ``layer`` on ``x``; what the tests compare."""
    layer.train()
    x = x.clone().requires_grad_(True)
    out = layer(x)
    (out * upstream).sum().backward()
    return {
        "out": out.detach(),
        "x_grad": x.grad,
        "weight_grad": layer.weight.grad.clone(),
        "bias_grad": layer.bias.grad.clone(),
        "state": {k: v.clone() for k, v in layer.state_dict().items()},
    }


def _rows(rank_: int) -> slice:
    start = sum(SHARES[:rank_])
    return slice(start, start + SHARES[rank_])


def scenario_sync_step(rank_: int, payload: dict) -> dict:
    x, upstream, state = _global_batch()
    layer = payload["layer"](CHANNELS)
    layer.load_state_dict(state)
    rows = _rows(rank_)
    result = _step(layer, x[rows], upstream[rows])
    for key in ("weight_grad", "bias_grad"):  # the sum over the ranks (DDP averages it)
        dist.all_reduce(result[key])
    return result


def _single_process() -> dict:
    x, upstream, state = _global_batch()
    layer = nn.BatchNorm2d(CHANNELS)
    layer.load_state_dict(state)
    return _step(layer, x, upstream)


def _assert_matches_single_process(results: list, expected: dict) -> None:
    for rank_, got in enumerate(results):
        rows = _rows(rank_)
        torch.testing.assert_close(got["out"], expected["out"][rows], atol=1e-5, rtol=0)
        torch.testing.assert_close(got["x_grad"], expected["x_grad"][rows], atol=1e-5, rtol=0)
        for key in ("weight_grad", "bias_grad"):
            torch.testing.assert_close(got[key], expected[key], atol=1e-5, rtol=1e-5)
        for key, value in expected["state"].items():
            torch.testing.assert_close(got["state"][key], value, atol=1e-5, rtol=1e-5)


def test_two_ranks_normalise_like_one_batchnorm_on_the_global_batch(tmp_path):
    results = run_on_two_ranks(scenario_sync_step, {"layer": SyncBatchNorm}, tmp_path)
    _assert_matches_single_process(results, _single_process())
    assert int(results[0]["state"]["num_batches_tracked"]) == 1


def test_plain_batchnorm_on_two_ranks_does_not(tmp_path):
    """The check above fails for rank-local statistics (the problem being fixed)."""
    results = run_on_two_ranks(scenario_sync_step, {"layer": nn.BatchNorm2d}, tmp_path)
    with pytest.raises(AssertionError):
        _assert_matches_single_process(results, _single_process())


@pytest.mark.parametrize("momentum", [0.1, None])
def test_single_process_and_eval_mode_are_plain_batchnorm(momentum):
    x, upstream, state = _global_batch()
    plain, sync = (
        nn.BatchNorm2d(CHANNELS, momentum=momentum),
        SyncBatchNorm(CHANNELS, momentum=momentum),
    )
    plain.load_state_dict(state)
    sync.load_state_dict(state)
    for _ in range(2):  # training mode, not distributed
        a, b = _step(plain, x, upstream), _step(sync, x, upstream)
        for key in ("out", "x_grad", "weight_grad", "bias_grad"):
            assert torch.equal(a[key], b[key]), key
        for key in a["state"]:
            assert torch.equal(a["state"][key], b["state"][key]), key
    plain.eval()
    sync.eval()
    assert torch.equal(plain(x), sync(x))


def test_convert_keeps_parameters_buffers_and_state_dict_keys():
    net = nn.Sequential(
        nn.Conv2d(3, 4, 3),
        nn.BatchNorm2d(4, momentum=None),
        nn.Flatten(),
        nn.Linear(4, 5),
        nn.BatchNorm1d(5, affine=False),
        nn.Sequential(nn.BatchNorm1d(5, track_running_stats=False)),
    )
    net[1].running_mean.fill_(0.3)
    net.eval()
    keys = list(net.state_dict())
    weight, running = net[1].weight, net[1].running_mean
    converted = convert_sync_batchnorm(net)
    assert converted is net
    assert type(net[1]) is SyncBatchNorm and type(net[4]) is SyncBatchNorm1d
    assert type(net[5][0]) is SyncBatchNorm1d
    assert list(net.state_dict()) == keys
    assert net[1].weight is weight and net[1].running_mean is running
    assert net[1].momentum is None and not net[1].training
    assert not net[4].affine and not net[5][0].track_running_stats
    restored = pickle.loads(pickle.dumps(net))
    assert list(restored.state_dict()) == keys
    revert_sync_batchnorm(net)
    assert [type(net[i]) for i in (1, 4)] == [nn.BatchNorm2d, nn.BatchNorm1d]
    assert type(net[5][0]) is nn.BatchNorm1d
    assert list(net.state_dict()) == keys and net[1].weight is weight
    single = convert_sync_batchnorm(nn.BatchNorm2d(3))
    assert type(single) is SyncBatchNorm


def _trainer_fit(payload: dict) -> dict:
    """Two epochs of a small network with BatchNorm1d (batches of 8, no randomness)."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 3), nn.BatchNorm1d(3), nn.ReLU(), nn.Linear(3, 2))
    X, Y = torch.as_tensor(payload["X"]), torch.as_tensor(payload["Y"])
    layer_types = set()

    def compute_loss(indices):
        layer_types.add(type(model[1]).__name__)
        idx = torch.as_tensor(indices)
        return ((model(X[idx]) - Y[idx]) ** 2).mean()

    stage = Stage(
        "fit", 2, len(X), compute_loss, [model], optimizer="sgd", lr=0.5, momentum=0.0,
        weight_decay=0.0, lr_schedule="constant",
    )  # fmt: skip
    Trainer(torch.device("cpu"), 8, random_state=3, precision="float32").fit([stage], [model])
    return {
        "state": model.state_dict(),
        "layer_types": layer_types,
        "after": type(model[1]).__name__,
    }


def scenario_trainer(rank_: int, payload: dict) -> dict:
    return _trainer_fit(payload)


def test_data_parallel_fit_normalises_like_one_process_and_ends_plain(tmp_path):
    rng = np.random.default_rng(0)
    payload = {
        "X": rng.normal(size=(16, 5)).astype(np.float32) * 3,
        "Y": rng.normal(size=(16, 2)).astype(np.float32),
    }
    ranks = run_on_two_ranks(scenario_trainer, payload, tmp_path)
    single = _trainer_fit(payload)
    assert single["layer_types"] == {"BatchNorm1d"}
    for got in ranks:
        assert got["layer_types"] == {"SyncBatchNorm1d"}
        assert got["after"] == "BatchNorm1d"
        assert list(got["state"]) == list(single["state"])
        for key, value in single["state"].items():
            torch.testing.assert_close(got["state"][key], value, atol=1e-5, rtol=1e-5)
