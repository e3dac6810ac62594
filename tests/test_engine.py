"""The training engine: checkpoint/resume, divergence, history, hooks and callbacks."""

from __future__ import annotations

import math
import re
import sys
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from deepclust import (
    ClusterFitTransformer,
    DeepClusterEstimator,
    SCANClusterer,
    SelfLabelClusterer,
)
from deepclust._testing import fast_instance
from deepclust.training import (
    Callback,
    Checkpoint,
    EpochLogger,
    ProgressBar,
    Stage,
    Trainer,
    TrainingDivergedError,
    load_state,
)


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
    (
        SCANClusterer,
        dict(
            pretext_epochs=2,
            n_head_candidates=4,
            head_search_epochs=2,
            max_epochs=2,
            selflabel_epochs=1,
        ),
        3,
        7,
    ),
    (
        SCANClusterer,
        dict(
            pretext_epochs=2,
            n_head_candidates=4,
            head_search_epochs=2,
            max_epochs=2,
            selflabel_epochs=1,
        ),
        4,
        7,
    ),
    (ClusterFitTransformer, dict(pretext_epochs=2, max_epochs=2), 3, 4),
]


@pytest.mark.parametrize(
    "cls, params, crash_after, n_epochs",
    RESUME_CASES,
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
    "cls",
    [SelfLabelClusterer, DeepClusterEstimator, SCANClusterer, ClusterFitTransformer],
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


# ---------------------------------------------------------------------------------------
# The Trainer on its own, with a toy regression model.

CPU = torch.device("cpu")


def regression_data(n: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    X = torch.randn(n, 3, generator=generator)
    y = X @ torch.tensor([[1.0], [-2.0], [0.5]]) + 0.3
    return X, y


def regression_stage(model, X, y, name="fit", n_epochs=3, noise=False, **kwargs) -> Stage:
    """A stage fitting ``model`` to ``(X, y)``; ``noise`` adds torch-random input noise."""

    def compute_loss(indices):
        indices = torch.as_tensor(indices)
        inputs = X[indices]
        if noise:
            inputs = inputs + 0.1 * torch.randn_like(inputs)
        return F.mse_loss(model(inputs), y[indices])

    kwargs.setdefault("lr", 0.05)
    return Stage(
        name=name,
        n_epochs=n_epochs,
        n_samples=len(X),
        compute_loss=compute_loss,
        modules=[model],
        **kwargs,
    )


class LabelState:
    """A method's own fit state: labels redrawn (with torch's generator) every epoch."""

    def __init__(self, n: int = 6):
        self.labels = torch.zeros(n, dtype=torch.int64)
        self.n_updates = 0

    def update(self, epoch: int) -> dict:
        self.labels = torch.randint(0, 3, self.labels.shape)
        self.n_updates += 1
        return {"n_updates": self.n_updates}

    def state_dict(self) -> dict:
        return {"labels": self.labels.clone(), "n_updates": self.n_updates}

    def load_state_dict(self, state: dict) -> None:
        self.labels = state["labels"].clone()
        self.n_updates = int(state["n_updates"])


def fit_two_stages(init_seed=0, callbacks=(), resume=None, events=None, state=None):
    """Adam warm-up (2 epochs) then SGD with momentum (3 epochs), with noise and a state."""
    torch.manual_seed(init_seed)
    model = nn.Linear(3, 1)
    X, y = regression_data()
    events = [] if events is None else events
    state = LabelState() if state is None else state
    stages = [
        regression_stage(
            model,
            X,
            y,
            "warmup",
            2,
            noise=True,
            optimizer="adam",
            on_stage_begin=lambda: events.append("warmup"),
            on_epoch_end=state.update,
        ),
        regression_stage(
            model,
            X,
            y,
            "main",
            3,
            noise=True,
            momentum=0.9,
            on_stage_begin=lambda: events.append("main"),
            on_epoch_end=state.update,
        ),
    ]
    torch.manual_seed(123)  # training randomness independent of the initialisation
    trainer = Trainer(CPU, batch_size=8, random_state=0, callbacks=callbacks, state=state)
    if resume is not None:
        trainer.resume_from(resume)
    trainer.fit(stages, [model])
    return model, trainer, state


def test_trainer_fits_a_linear_regression():
    torch.manual_seed(0)
    model = nn.Linear(3, 1)
    X, y = regression_data()
    stage = regression_stage(model, X, y, n_epochs=30, lr=0.1, lr_schedule="constant")
    history = Trainer(CPU, batch_size=8).fit([stage], [model])
    assert len(history) == 30
    assert history[-1]["loss"] < 1e-3 * history[0]["loss"]
    torch.testing.assert_close(
        model.weight.detach(), torch.tensor([[1.0, -2.0, 0.5]]), atol=0.02, rtol=0
    )


def test_stages_run_in_order_with_their_hooks():
    events = []
    models = {"a": nn.Linear(2, 1), "b": nn.Linear(2, 1)}
    X = torch.randn(4, 2)

    def stage(name, n_epochs, **hooks):
        def compute_loss(indices):
            assert models[name].training
            events.append(f"{name}:batch")
            return models[name](X[torch.as_tensor(indices)]).pow(2).mean()

        return Stage(name, n_epochs, 4, compute_loss, [models[name]], **hooks)

    def epoch_hook(kind, key):
        def hook(epoch):
            events.append(f"a:{kind}{epoch}")
            return {key: 10 * epoch}

        return hook

    stages = [
        stage(
            "a",
            2,
            on_stage_begin=lambda: events.append("a:stage_begin"),
            on_epoch_begin=epoch_hook("epoch_begin", "begin_note"),
            on_epoch_end=epoch_hook("epoch_end", "end_note"),
        ),
        stage("b", 1, on_stage_begin=lambda: events.append("b:stage_begin")),
    ]
    for model in models.values():
        model.eval()
    history = Trainer(CPU, batch_size=2).fit(stages, list(models.values()))
    assert events == [
        "a:stage_begin",
        "a:epoch_begin0",
        "a:batch",
        "a:batch",
        "a:epoch_end0",
        "a:epoch_begin1",
        "a:batch",
        "a:batch",
        "a:epoch_end1",
        "b:stage_begin",
        "b:batch",
        "b:batch",
    ]
    assert [(r["stage"], r["epoch"]) for r in history] == [("a", 0), ("a", 1), ("b", 0)]
    assert list(history[1]) == [
        "stage",
        "epoch",
        "begin_note",
        "loss",
        "lr",
        "skipped_batches",
        "end_note",
        "seconds",
    ]
    assert history[1]["begin_note"] == history[1]["end_note"] == 10
    assert list(history[2]) == ["stage", "epoch", "loss", "lr", "skipped_batches", "seconds"]


class Recorder(Callback):
    """Records every hook call with its arguments."""

    def __init__(self):
        self.calls = []

    def on_train_begin(self, trainer):
        self.calls.append(("train_begin",))

    def on_stage_begin(self, trainer, stage):
        self.calls.append(("stage_begin", stage.name, trainer.epoch))

    def on_epoch_begin(self, trainer, stage, epoch):
        self.calls.append(("epoch_begin", stage.name, epoch, trainer.n_batches))

    def on_batch_end(self, trainer, stage, batch_index, loss):
        self.calls.append(("batch_end", stage.name, batch_index, loss))

    def on_epoch_end(self, trainer, record):
        assert record is trainer.history[-1]
        self.calls.append(("epoch_end", record["stage"], record["epoch"], trainer.epoch))

    def on_stage_end(self, trainer, stage):
        self.calls.append(("stage_end", stage.name))

    def on_train_end(self, trainer):
        self.calls.append(("train_end",))


def test_callback_hooks_are_called_in_order_with_their_arguments():
    model = nn.Linear(2, 1)
    X = torch.randn(5, 2)

    def compute_loss(indices):  # skips the short last batch
        return model(X[torch.as_tensor(indices)]).pow(2).mean() if len(indices) == 2 else None

    stages = [Stage("a", 2, 5, compute_loss, [model]), Stage("b", 1, 5, compute_loss, [model])]
    recorder = Recorder()
    history = Trainer(CPU, batch_size=2, callbacks=[recorder]).fit(stages, [model])

    def shape(call):  # a loss's value is checked below
        return call[:3] + (type(call[3]).__name__,) if call[0] == "batch_end" else call

    def epoch(name, index):
        return [
            ("epoch_begin", name, index, 3),
            ("batch_end", name, 0, "float"),
            ("batch_end", name, 1, "float"),
            ("batch_end", name, 2, "NoneType"),
            ("epoch_end", name, index, index + 1),
        ]

    assert [shape(call) for call in recorder.calls] == [
        ("train_begin",),
        ("stage_begin", "a", 0),
        *epoch("a", 0),
        *epoch("a", 1),
        ("stage_end", "a"),
        ("stage_begin", "b", 0),
        *epoch("b", 0),
        ("stage_end", "b"),
        ("train_end",),
    ]
    losses = [call[3] for call in recorder.calls if call[0] == "batch_end"]
    for i, record in enumerate(history):
        assert record["loss"] == pytest.approx(np.mean(losses[3 * i : 3 * i + 2]), rel=1e-12)
        assert record["skipped_batches"] == 1


@pytest.mark.parametrize("crash_after", [1, 2, 4])
def test_trainer_resumed_from_a_checkpoint_ends_like_an_uninterrupted_run(tmp_path, crash_after):
    reference_events = []
    reference, reference_trainer, reference_state = fit_two_stages(events=reference_events)
    assert reference_events == ["warmup", "main"]

    path = tmp_path / "checkpoint.pt"
    with pytest.raises(KeyboardInterrupt):
        fit_two_stages(callbacks=[Checkpoint(path), StopAfter(crash_after)])
    saved = load_state(path)
    assert saved["epochs_done_total"] == crash_after

    events, recorder = [], Recorder()
    resumed, trainer, state = fit_two_stages(
        init_seed=1, callbacks=[recorder], resume=saved, events=events
    )
    # Stage hooks: not again for the stage resumed in; callbacks: for every stage run.
    stage_begins = [call[1:] for call in recorder.calls if call[0] == "stage_begin"]
    if crash_after <= 2:  # in (or at the end of) the warm-up
        assert events == ["main"]
        assert stage_begins == [("warmup", crash_after), ("main", 0)]
    else:
        assert events == []
        assert stage_begins == [("main", crash_after - 2)]

    for a, b in zip(resumed.state_dict().values(), reference.state_dict().values()):
        assert torch.equal(a, b)
    assert [(r["stage"], r["epoch"], r["loss"], r["lr"]) for r in trainer.history] == [
        (r["stage"], r["epoch"], r["loss"], r["lr"]) for r in reference_trainer.history
    ]
    assert state.n_updates == reference_state.n_updates == 5
    assert torch.equal(state.labels, reference_state.labels)


def test_on_stage_begin_is_not_called_again_on_resume(tmp_path):
    path = tmp_path / "checkpoint.pt"
    first_events = []
    with pytest.raises(KeyboardInterrupt):
        fit_two_stages(callbacks=[Checkpoint(path), StopAfter(1)], events=first_events)
    assert first_events == ["warmup"]
    events = []
    fit_two_stages(resume=load_state(path), events=events)
    assert events == ["main"]


def test_state_object_round_trips_through_state_dict_and_checkpoint(tmp_path):
    path = tmp_path / "checkpoint.pt"
    model, trainer, state = fit_two_stages(callbacks=[Checkpoint(path, every=5)])
    assert state.n_updates == 5
    extra = trainer.state_dict()["extra"]
    assert extra["n_updates"] == 5 and torch.equal(extra["labels"], state.labels)

    saved = torch.load(path, weights_only=True)
    assert saved["extra"]["n_updates"] == 5
    assert torch.equal(saved["extra"]["labels"], state.labels)

    restored = LabelState()
    _, restored_trainer, _ = fit_two_stages(init_seed=1, resume=load_state(path), state=restored)
    assert restored.n_updates == 5  # loaded, and no epoch left to run
    assert torch.equal(restored.labels, state.labels)
    assert len(restored_trainer.history) == 5

    assert Trainer(CPU, batch_size=4).state_dict()["extra"] == {}


@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_non_finite_loss_raises_naming_the_stage_and_epoch(bad):
    model = nn.Linear(2, 1)
    X = torch.randn(4, 2)
    calls = []

    def compute_loss(indices):  # the third batch, i.e. in the second epoch, diverges
        calls.append(indices)
        loss = model(X[torch.as_tensor(indices)]).pow(2).mean()
        return loss * bad if len(calls) == 3 else loss

    trainer = Trainer(CPU, batch_size=2)
    message = rf"stage 'explode', epoch 2: the training loss became {bad}\. Lower the lea"
    with pytest.raises(TrainingDivergedError, match=message):
        trainer.fit([Stage("explode", 3, 4, compute_loss, [model], lr=0.01)], [model])
    assert len(trainer.history) == 1


def test_verbose_adds_the_progress_bar_and_epoch_logger():
    user = Recorder()
    callbacks = [user]
    trainer = Trainer(CPU, batch_size=4, verbose=True, callbacks=callbacks)
    assert [type(cb) for cb in trainer.callbacks] == [Recorder, ProgressBar, EpochLogger]
    assert callbacks == [user]
    assert Trainer(CPU, batch_size=4, verbose=False, callbacks=callbacks).callbacks == [user]


@pytest.mark.parametrize("verbose", [True, False])
def test_verbose_prints_one_line_per_epoch(capsys, verbose):
    torch.manual_seed(0)
    model = nn.Linear(3, 1)
    X, y = regression_data()
    stage = regression_stage(model, X, y, name="fit", n_epochs=3)
    Trainer(CPU, batch_size=8, verbose=verbose).fit([stage], [model])
    captured = capsys.readouterr()
    if not verbose:
        assert captured.out == captured.err == ""
        return
    assert captured.out == ""  # epoch lines are status, on stderr
    lines = captured.err.splitlines()
    assert len(lines) == 3
    for i, line in enumerate(lines, start=1):
        assert re.fullmatch(
            rf"\[fit\] epoch {i}/3: loss=\S+, lr=\S+, skipped_batches=0, seconds=\S+", line
        ), line


def test_epoch_logger_line(capsys):
    record = {
        "stage": "scan",
        "epoch": 1,
        "loss": 0.123456,
        "lr": 0.05,
        "skipped_batches": 2,
        "label_change": 0.25,
        "seconds": 12.345678,
        "note": "x",
    }
    trainer = SimpleNamespace(stage=SimpleNamespace(n_epochs=3))
    EpochLogger().on_epoch_end(trainer, record)
    assert capsys.readouterr().err == (
        "[scan] epoch 2/3: loss=0.1235, lr=0.05, skipped_batches=2, label_change=0.25, "
        "seconds=12.35, note=x\n"
    )


class FakeBar:
    bars: list = []

    def __init__(self, **kwargs):
        self.kwargs, self.updates, self.postfix, self.closed = kwargs, 0, [], False
        FakeBar.bars.append(self)

    def update(self, n):
        self.updates += n

    def set_postfix(self, **kwargs):
        self.postfix.append(kwargs)

    def close(self):
        self.closed = True


def test_progress_bar_shows_each_epoch(monkeypatch):
    import tqdm.auto

    monkeypatch.setattr(tqdm.auto, "tqdm", FakeBar)
    monkeypatch.setattr(FakeBar, "bars", [])
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)  # bars only on a terminal
    model = nn.Linear(2, 1)
    X = torch.randn(5, 2)

    def compute_loss(indices):  # skips the short last batch
        return model(X[torch.as_tensor(indices)]).pow(2).mean() if len(indices) == 2 else None

    stage = Stage("fit", 2, 5, compute_loss, [model])
    Trainer(CPU, batch_size=2, callbacks=[ProgressBar()]).fit([stage], [model])
    assert [bar.kwargs for bar in FakeBar.bars] == [
        {"total": 3, "leave": False, "desc": "fit 1/2"},
        {"total": 3, "leave": False, "desc": "fit 2/2"},
    ]
    for bar in FakeBar.bars:
        assert bar.updates == 3 and bar.closed
        assert len(bar.postfix) == 2
        assert all(re.fullmatch(r"\d+\.\d{4}", p["loss"]) for p in bar.postfix)


def test_non_finite_weights_raise_even_when_the_loss_stays_finite():
    model = nn.Linear(2, 1)

    def compute_loss(indices):
        with torch.no_grad():
            model.weight.fill_(math.inf)  # the loss below never sees the weights
        return (model.bias * 0).sum() + 1.0

    trainer = Trainer(CPU, batch_size=2)
    with pytest.raises(TrainingDivergedError, match=r"stage 'w', epoch 1: the weight 'weight'"):
        trainer.fit([Stage("w", 2, 4, compute_loss, [model], lr=0.01)], [model])
