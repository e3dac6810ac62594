"""The training engine: checkpoint/resume, divergence, history."""

from __future__ import annotations

import numpy as np
import pytest

from deepclust import (
    ClusterFitTransformer,
    DeepClusterEstimator,
    SCANClusterer,
    SelfLabelClusterer,
)
from deepclust._testing import fast_instance
from deepclust.training import Callback, Checkpoint, TrainingDivergedError, load_state


class StopAfter(Callback):
    """Simulates a crash: raises after ``n`` epochs (once the checkpoint is written)."""

    def __init__(self, n: int):
        self.n = n

    def on_epoch_end(self, trainer, record):
        if trainer.epochs_done_total >= self.n:
            raise KeyboardInterrupt


RESUME_CASES = [
    (SelfLabelClusterer, dict(max_epochs=6, n_label_updates=4), 2, 6),
    (SelfLabelClusterer, dict(max_epochs=6, n_label_updates=4), 5, 6),
    (DeepClusterEstimator, dict(max_epochs=4), 2, 4),
    # SCAN: crash in the pretext stage and in the SCAN stage.
    (SCANClusterer, dict(pretext_epochs=2, max_epochs=3, selflabel_epochs=1), 1, 6),
    (SCANClusterer, dict(pretext_epochs=2, max_epochs=3, selflabel_epochs=1), 4, 6),
    # SCAN with a head search: crash inside the search, and just after it.
    (SCANClusterer, dict(pretext_epochs=2, n_head_candidates=4, head_search_epochs=2,
                         max_epochs=2, selflabel_epochs=1), 3, 7),
    (SCANClusterer, dict(pretext_epochs=2, n_head_candidates=4, head_search_epochs=2,
                         max_epochs=2, selflabel_epochs=1), 4, 7),
    (ClusterFitTransformer, dict(pretext_epochs=2, max_epochs=2), 3, 4),
]


@pytest.mark.parametrize(
    "cls, params, crash_after, n_epochs", RESUME_CASES,
    ids=[f"{c.__name__}-crash{k}" for c, _, k, _ in RESUME_CASES],
)
def test_resume_ends_like_an_uninterrupted_run(
    digits_small, tmp_path, cls, params, crash_after, n_epochs
):
    X, _ = digits_small
    reference = fast_instance(cls, **params).fit(X)

    path = tmp_path / "checkpoint.pt"
    est = fast_instance(cls, **params)
    with pytest.raises(KeyboardInterrupt):
        est.fit(X, callbacks=[Checkpoint(path), StopAfter(crash_after)])
    assert not hasattr(est, "labels_")  # the interrupted fit left it unfitted
    state = load_state(path)
    assert state["epochs_done_total"] == crash_after
    resumed = fast_instance(cls, **params).fit(X, resume_from=state)
    np.testing.assert_array_equal(resumed.labels_, reference.labels_)
    assert len(resumed.history_) == len(reference.history_) == n_epochs
    for a, b in zip(resumed.history_, reference.history_):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-6, nan_ok=True)


def test_history_records_epochs_and_label_changes(digits_small):
    X, _ = digits_small
    est = fast_instance(SelfLabelClusterer, max_epochs=4, n_label_updates=3).fit(X)
    assert [r["epoch"] for r in est.history_] == [0, 1, 2, 3]
    assert all({"loss", "lr", "seconds", "stage"} <= set(r) for r in est.history_)
    assert any("label_change" in r for r in est.history_)


@pytest.mark.parametrize(
    "cls", [SelfLabelClusterer, DeepClusterEstimator, SCANClusterer, ClusterFitTransformer],
    ids=lambda c: c.__name__,
)
def test_non_finite_loss_names_the_epoch(digits_small, cls):
    X, _ = digits_small
    params = {"lr": 1e30}
    if cls in (SCANClusterer, ClusterFitTransformer):
        params["pretext_lr"] = 1e30
    est = fast_instance(cls, max_epochs=3, **params)
    with pytest.raises(TrainingDivergedError, match=r"epoch \d+.*Lower the learning rate"):
        est.fit(X)
    assert not [k for k in vars(est) if k.endswith("_") and not k.startswith("__")]
