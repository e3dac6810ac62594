"""deepclust.training.TensorBoardLogger and ``deepclust cluster --tensorboard``: the event
files it writes parse with TensorBoard's own reader."""

from __future__ import annotations

import numpy as np
import pytest

from deepclust import SelfLabelClusterer
from deepclust._testing import fast_instance
from deepclust.cli import main
from deepclust.training import TensorBoardLogger

pytest.importorskip("tensorboard")
from tensorboard.backend.event_processing.event_accumulator import (  # noqa: E402
    EventAccumulator,
)


def read_events(log_dir) -> EventAccumulator:
    events = EventAccumulator(str(log_dir), size_guidance={"scalars": 0, "histograms": 0})
    events.Reload()
    return events


def test_loss_label_change_and_cluster_sizes_per_epoch(digits_small, tmp_path):
    X, _ = digits_small
    est = fast_instance(SelfLabelClusterer, max_epochs=4, n_label_updates=3)
    est.fit(X, callbacks=[TensorBoardLogger(tmp_path)])
    events = read_events(tmp_path)
    scalars = events.Tags()["scalars"]
    assert {"selflabel/loss", "selflabel/lr", "selflabel/label_change"} <= set(scalars)
    assert [e.step for e in events.Scalars("selflabel/loss")] == [1, 2, 3, 4]
    losses = [e.value for e in events.Scalars("selflabel/loss")]
    np.testing.assert_allclose(losses, [r["loss"] for r in est.history_], rtol=1e-6)
    changes = {e.step: e.value for e in events.Scalars("selflabel/label_change")}
    expected = {i + 1: r["label_change"] for i, r in enumerate(est.history_) if "label_change" in r}
    assert changes.keys() == expected.keys()
    assert events.Tags()["histograms"] == ["cluster_sizes"]
    last = events.Histograms("cluster_sizes")[-1]
    assert last.step == 4 and last.histogram_value.num == len(X)
    smallest = events.Scalars("cluster_sizes/smallest")[-1].value
    largest = events.Scalars("cluster_sizes/largest")[-1].value
    assert smallest <= len(X) / 3 <= largest


def test_cluster_tensorboard_option(digits_small, tmp_path):
    X, y = digits_small
    data = tmp_path / "digits.npz"
    np.savez(data, X=X, y=y)
    logs = tmp_path / "logs"
    code = main(
        ["cluster", str(data), "--method", "sela", "--n-clusters", "3", "--epochs", "2",
         "--device", "cpu", "--out", str(tmp_path / "run"), "--quiet",
         "--tensorboard", str(logs)]
    )  # fmt: skip
    assert code == 0
    assert len(read_events(logs).Scalars("selflabel/loss")) == 2
