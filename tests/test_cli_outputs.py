"""The ``deepclust`` command's outputs and errors: labels of the fitted images, the output
folder's lock and checks, temporary files, disk-full errors, streams and help texts."""

from __future__ import annotations

import csv
import errno
import fcntl
import io
import json
import os
import pickle
import re
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

import deepclust
from deepclust.cli import main

REPO = Path(__file__).resolve().parents[1]
FAST = ["--method", "sela", "--n-clusters", 3, "--epochs", 1, "--device", "cpu", "--batch-size", 32]


def run_cli(*args) -> int:
    return main([str(a) for a in args])


def read_labels(path: Path) -> list[dict]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def tree(root: Path) -> dict:
    """Every path under ``root`` with its content (files) or None (folders)."""
    return {
        str(p.relative_to(root)): (p.read_bytes() if p.is_file() else None)
        for p in sorted(root.rglob("*"))
    }


def assert_one_error_line(err: str, *fragments: str) -> None:
    assert err.startswith("deepclust: error: "), err
    assert err.count("\n") == 1 and err.endswith("\n"), err
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in err, err


def dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


@pytest.fixture(scope="module")
def digits_npz(tmp_path_factory, digits_small):
    X, y = digits_small
    path = tmp_path_factory.mktemp("npz") / "digits.npz"
    np.savez(path, X=X, y=y)
    return path


@pytest.fixture
def no_decoding(monkeypatch):
    """Fail the test if the command reads SOURCE."""
    import deepclust.cli._inputs

    def refuse(*args, **kwargs):
        raise AssertionError("SOURCE was read before the arguments were checked")

    monkeypatch.setattr(deepclust.cli._inputs, "load_input", refuse)


# ---------------------------------------------------------------------- 1. labels_
def test_labels_csv_holds_the_methods_own_labels(digits_npz, digits_small, tmp_path):
    from deepclust.io import load_model

    X, _ = digits_small
    out = tmp_path / "out"
    assert (
        run_cli(
            "cluster",
            digits_npz,
            *FAST[:4],
            "--epochs",
            2,
            "--device",
            "cpu",
            "--batch-size",
            32,
            "--out",
            out,
            "--quiet",
        )
        == 0
    )
    model = load_model(out)
    rows = read_labels(out / "labels.csv")
    clusters = np.array([int(r["cluster"]) for r in rows])
    confidence = np.array([float(r["confidence"]) for r in rows])
    np.testing.assert_array_equal(clusters, model.labels_)
    proba = model.predict_proba(X)
    np.testing.assert_allclose(confidence, proba[np.arange(len(X)), model.labels_], atol=2e-6)

    agreement = float(np.mean(model.labels_ == model.predict(X)))
    assert agreement < 1  # SeLa's equal-size self-labels differ from the network's argmax
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["predict_agreement"] == pytest.approx(agreement)
    assert set(metrics["predict"]) >= {"acc", "nmi", "ari"}
    report = (out / "report.html").read_text()
    assert f"{100 * agreement:.1f}%" in report


# ---------------------------------------------------------------------- 2. lock
def hold_lock(folder: Path, pid: int):
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder / ".deepclust.lock", os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    os.write(fd, f"{pid}\n".encode())
    return fd


def test_a_locked_output_folder_is_refused(digits_npz, tmp_path, capsys, no_decoding):
    out = tmp_path / "out"
    fd = hold_lock(out, 4242)
    try:
        code = run_cli("cluster", digits_npz, *FAST, "--out", out, "--quiet")
    finally:
        os.close(fd)
    assert code == 2
    assert_one_error_line(capsys.readouterr().err, "PID 4242", str(out))
    assert sorted(os.listdir(out)) == [".deepclust.lock"]  # the holder's file is kept
    assert (out / ".deepclust.lock").read_text() == "4242\n"


def _environment() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    env["OMP_NUM_THREADS"] = "1"
    return env


def test_two_runs_into_one_folder(tmp_path, capsys):
    from deepclust.datasets import load_digits_images

    X, y = load_digits_images()
    np.savez(tmp_path / "digits200.npz", X=X[:200], y=y[:200])
    out = tmp_path / "out"
    first = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "deepclust.cli",
            "cluster",
            str(tmp_path / "digits200.npz"),
            "--method",
            "scan",
            "--n-clusters",
            "5",
            "--epochs",
            "500",
            "--device",
            "cpu",
            "--out",
            str(out),
            "--quiet",
        ],
        env=_environment(),
    )
    lock = out / ".deepclust.lock"
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and first.poll() is None:
            if lock.is_file() and lock.read_text().strip():
                break
            time.sleep(0.05)
        assert lock.is_file(), "the first run took no lock on its --out folder"
        assert lock.read_text() == f"{first.pid}\n"
        code = run_cli("cluster", tmp_path / "digits200.npz", *FAST, "--out", out, "--quiet")
        assert first.poll() is None, "the first run ended before the second started"
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=30)
    assert code == 2
    assert_one_error_line(capsys.readouterr().err, f"PID {first.pid}")
    assert not (out / "labels.csv").exists()


def test_the_lock_is_removed_after_a_run(digits_npz, tmp_path):
    out = tmp_path / "out"
    assert run_cli("cluster", digits_npz, *FAST, "--out", out, "--quiet") == 0
    assert not (out / ".deepclust.lock").exists()
    # A lock file left by a killed run (no process holds it) does not block the next run.
    (out / ".deepclust.lock").write_text(f"{dead_pid()}\n")
    assert run_cli("cluster", digits_npz, *FAST, "--out", out, "--quiet") == 0
    assert not (out / ".deepclust.lock").exists()


# ---------------------------------------------------------------------- 3. temporary files
def _fsync_fails(monkeypatch, fragment: str = "") -> None:
    """``os.fsync`` raises ENOSPC for files whose path contains ``fragment``."""
    real_fsync = os.fsync

    def fsync(fd):
        if fragment in os.readlink(f"/proc/self/fd/{fd}"):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)


@pytest.mark.parametrize("failing", ["write", "rename"])
def test_atomic_write_removes_its_temporary_file(failing, tmp_path, monkeypatch):
    from deepclust._utils import atomic_write

    target = tmp_path / "labels.csv"
    target.write_bytes(b"before")
    if failing == "write":
        _fsync_fails(monkeypatch)
    else:

        def replace(src, dst):
            raise OSError(errno.EXDEV, os.strerror(errno.EXDEV))

        monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(OSError) as info:
        atomic_write(target, b"after")
    assert info.value.errno == (errno.ENOSPC if failing == "write" else errno.EXDEV)
    assert os.listdir(tmp_path) == ["labels.csv"]
    assert target.read_bytes() == b"before"


def test_a_failing_checkpoint_write_leaves_no_temporary_file(tmp_path, monkeypatch):
    from deepclust.training import save_state

    _fsync_fails(monkeypatch)
    with pytest.raises(OSError):
        save_state({"epoch": 1}, tmp_path / "checkpoint.pt")
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("resume", [False, True])
def test_stale_temporary_files_are_removed(resume, digits_npz, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    dead, alive = dead_pid(), os.getppid()
    stale = [f"labels.csv.tmp-{dead}", f"checkpoint.pt.tmp-{dead}", f"clusters.png.tmp-{dead}"]
    kept = [f"model.json.tmp-{alive}", f"notes.txt.tmp-{dead}"]
    for name in stale + kept:
        (out / name).write_bytes(b"partial")
    args = ["--resume"] if resume else []
    assert run_cli("cluster", digits_npz, *FAST, "--out", out, "--quiet", *args) == 0
    names = set(os.listdir(out))
    assert not names & set(stale)
    assert set(kept) <= names


# ---------------------------------------------------------------------- 4. checked first
@pytest.fixture
def source_copy(image_folder, tmp_path):
    folder = tmp_path / "images"
    shutil.copytree(image_folder, folder)
    return folder


@pytest.mark.parametrize(
    "case, message",
    [
        ("existing file", "is a file"),
        ("under a file", "is a file"),
        ("inside source", "inside SOURCE"),
        ("read-only", "not writable"),
        ("mps", "--device mps is not supported; use cpu, cuda or auto"),
        ("bad parameter", "lr"),
    ],
)
def test_cluster_arguments_are_checked_before_reading(
    case, message, source_copy, tmp_path, capsys, monkeypatch, no_decoding
):
    out, extra = tmp_path / "out", []
    if case in ("existing file", "under a file"):
        (tmp_path / "taken").write_text("mine")
        out = tmp_path / "taken" if case == "existing file" else tmp_path / "taken" / "sub"
    elif case == "inside source":
        out = source_copy / "run1"
    elif case == "read-only":
        out = tmp_path / "locked" / "out"
        (tmp_path / "locked").mkdir()
        real_access = os.access
        monkeypatch.setattr(
            os,
            "access",
            lambda p, mode, **kw: (
                False if Path(p) == tmp_path / "locked" else real_access(p, mode, **kw)
            ),
        )
    elif case == "mps":
        extra = ["--device", "mps"]
    else:
        config = tmp_path / "config.json"
        config.write_text(json.dumps({"lr": -1.0}))
        extra = ["--config", config]
    before = tree(tmp_path)
    code = run_cli("cluster", source_copy, *FAST, "--out", out, "--quiet", *extra)
    assert code == 2
    assert_one_error_line(capsys.readouterr().err, message)
    assert tree(tmp_path) == before  # nothing created


def test_a_fit_refused_by_the_estimator_creates_nothing(digits_npz, tmp_path, capsys):
    """The estimator's own checks (here: more clusters than samples) leave no run.json."""
    before = tree(tmp_path)
    code = run_cli(
        "cluster",
        digits_npz,
        "--method",
        "sela",
        "--n-clusters",
        100,
        "--epochs",
        1,
        "--device",
        "cpu",
        "--out",
        tmp_path / "out",
        "--quiet",
    )
    assert code == 2
    assert_one_error_line(capsys.readouterr().err, "n_clusters")
    assert tree(tmp_path) == before


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write into read-only folders")
def test_read_only_output_folder(digits_npz, tmp_path, capsys, no_decoding):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        code = run_cli("cluster", digits_npz, *FAST, "--out", folder / "out", "--quiet")
    finally:
        folder.chmod(0o700)
    assert code == 2
    assert_one_error_line(capsys.readouterr().err, "not writable")


@pytest.mark.parametrize("case", ["folder", "mps"])
def test_predict_arguments_are_checked_before_reading(
    case, image_folder, tmp_path, capsys, no_decoding
):
    model = tmp_path / "model"
    model.mkdir()
    if case == "folder":
        code = run_cli("predict", model, image_folder, "--out", tmp_path, "--quiet")
        message = "give a file name"
    else:
        code = run_cli(
            "predict",
            model,
            image_folder,
            "--out",
            tmp_path / "p.csv",
            "--device",
            "mps",
            "--quiet",
        )
        message = "not supported; use cpu, cuda or auto"
    assert code == 2
    assert_one_error_line(capsys.readouterr().err, message)
    assert sorted(os.listdir(tmp_path)) == ["model"]


class _Payload:
    def __reduce__(self):
        return print, ("code from the checkpoint ran",)


def _bad_checkpoint(kind: str, path: Path) -> None:
    if kind == "random bytes":
        path.write_bytes(np.random.default_rng(0).bytes(4096))
    elif kind == "foreign zip":
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("notes.txt", "not a torch file")
    elif kind == "torch file without keys":
        torch.save({"weights": torch.zeros(3)}, path)
    else:
        path.write_bytes(pickle.dumps(_Payload()))


CHECKPOINT_KINDS = ["random bytes", "foreign zip", "torch file without keys", "pickle payload"]


@pytest.mark.parametrize("kind", CHECKPOINT_KINDS)
def test_load_state_refuses_damaged_or_foreign_checkpoints(kind, tmp_path, capsys):
    from deepclust.training import load_state

    path = tmp_path / "checkpoint.pt"
    _bad_checkpoint(kind, path)
    with pytest.raises(ValueError, match="damaged or is not a deepclust checkpoint") as info:
        load_state(path)
    message = str(info.value)
    assert "without --resume" in message and "delete it" in message.lower()
    assert "weights_only" not in message
    assert "code from the checkpoint ran" not in capsys.readouterr().out


@pytest.mark.parametrize("kind", CHECKPOINT_KINDS)
def test_resume_from_a_bad_checkpoint(kind, digits_npz, tmp_path, capsys, no_decoding):
    out = tmp_path / "out"
    out.mkdir()
    _bad_checkpoint(kind, out / "checkpoint.pt")
    before = tree(tmp_path)
    code = run_cli("cluster", digits_npz, *FAST, "--out", out, "--quiet", "--resume")
    assert code == 2
    err = capsys.readouterr().err
    assert_one_error_line(err, "not a deepclust checkpoint", "without --resume")
    assert "weights_only" not in err
    assert tree(tmp_path) == before


@pytest.mark.parametrize("name", ["labels.csv", "checkpoint.pt"])
def test_disk_full(name, digits_npz, tmp_path, capsys, monkeypatch):
    out = tmp_path / "out"
    _fsync_fails(monkeypatch, name)
    code = run_cli("cluster", digits_npz, *FAST, "--out", out, "--quiet")
    assert code == 2
    assert_one_error_line(
        capsys.readouterr().err, f"no space left on device while writing {out / name}"
    )
    assert not [p for p in os.listdir(out) if ".tmp-" in p]


# ---------------------------------------------------------------------- 5. image size
def test_config_image_size_list_for_folders(image_folder, tmp_path):
    from deepclust.io import load_model

    config = tmp_path / "config.json"
    config.write_text(json.dumps({"image_size": [8, 12]}))
    out = tmp_path / "out"
    assert run_cli("cluster", image_folder, *FAST, "--out", out, "--config", config, "--quiet") == 0
    assert load_model(out).input_shape_[1:] == (8, 12)
    # --image-size still wins over --config.
    out = tmp_path / "out2"
    assert (
        run_cli(
            "cluster",
            image_folder,
            *FAST,
            "--out",
            out,
            "--config",
            config,
            "--image-size",
            10,
            "--quiet",
        )
        == 0
    )
    assert load_model(out).input_shape_[1:] == (10, 10)


def test_config_image_size_must_be_a_size(image_folder, tmp_path, capsys, no_decoding):
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"image_size": [8, 12, 3]}))
    code = run_cli(
        "cluster", image_folder, *FAST, "--out", tmp_path / "out", "--config", config, "--quiet"
    )
    assert code == 2
    assert_one_error_line(capsys.readouterr().err, "image_size")


# ---------------------------------------------------------------------- 6. streams and help
def test_status_on_stderr_results_on_stdout(digits_npz, tmp_path, capsys):
    assert run_cli("cluster", digits_npz, *FAST, "--out", tmp_path / "out") == 0
    captured = capsys.readouterr()
    assert "Scores against the true labels" in captured.out
    assert "60 samples in" in captured.out and "report.html" in captured.out
    assert "Clustering" not in captured.out and "epoch" not in captured.out
    assert "Clustering" in captured.err and "] epoch 1/1:" in captured.err
    assert "\r" not in captured.err  # no progress bars: stderr is not a terminal


def test_quiet_prints_results_but_no_status(digits_npz, tmp_path, capsys):
    assert run_cli("cluster", digits_npz, *FAST, "--out", tmp_path / "out", "--quiet") == 0
    captured = capsys.readouterr()
    assert captured.err == ""
    assert "Scores against the true labels" in captured.out


class _Stream(io.StringIO):
    def __init__(self, terminal: bool):
        super().__init__()
        self.terminal = terminal

    def isatty(self) -> bool:
        return self.terminal


@pytest.mark.parametrize("terminal", [False, True])
def test_progress_only_on_a_terminal(terminal, monkeypatch):
    import tqdm.auto

    from deepclust.cli._main import _progress_factory
    from deepclust.training import ProgressBar, Stage, Trainer
    from deepclust.training._inference import run_inference

    bars = []

    class FakeBar:
        def __init__(self, **kwargs):
            bars.append(kwargs)

        def update(self, n=1):
            pass

        def set_postfix(self, **kwargs):
            pass

        def close(self):
            pass

    monkeypatch.setattr(tqdm.auto, "tqdm", FakeBar)
    monkeypatch.setattr(sys, "stderr", _Stream(terminal))
    model = torch.nn.Linear(2, 1)
    X = torch.randn(4, 2)
    stage = Stage("fit", 1, 4, lambda idx: model(X[torch.as_tensor(idx)]).pow(2).mean(), [model])
    Trainer(torch.device("cpu"), batch_size=2, callbacks=[ProgressBar()]).fit([stage], [model])
    from deepclust.data import as_source

    run_inference(
        model, as_source(X.numpy()), device=torch.device("cpu"), batch_size=2, progress="features"
    )
    assert len(bars) == (2 if terminal else 0)
    assert (_progress_factory(False) is not None) == terminal
    assert _progress_factory(True) is None


def test_version(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out == f"deepclust {deepclust.__version__}\n"


def test_help_texts(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    with pytest.raises(SystemExit):
        main(["cluster", "--help"])
    text = capsys.readouterr().out
    assert "``" not in text and ":class:" not in text and ":mod:" not in text
    assert "labels.csv" in text and "(default: 0)" in text and "(default: auto)" in text
    with pytest.raises(SystemExit):
        main(["demo", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "(default: fast)" in text and "(default: deepclust-demo)" in text


def test_bad_argument_is_one_line(capsys):
    with pytest.raises(SystemExit) as info:
        main(["cluster", "digits", "--out", "x", "--method", "sela", "--n-clusters", "1"])
    assert info.value.code == 2
    assert_one_error_line(capsys.readouterr().err, "need at least 2 clusters")


def test_bad_image_hint_names_the_option(source_copy, tmp_path, capsys):
    (source_copy / "part0" / "broken.png").write_bytes(b"not a png at all")
    code = run_cli("cluster", source_copy, *FAST, "--out", tmp_path / "out", "--quiet")
    assert code == 2
    err = capsys.readouterr().err
    assert_one_error_line(err, "part0/broken.png", "--skip-bad-images")
    assert "on_bad_image" not in err
    assert not (tmp_path / "out").exists()


def test_skipped_images_warning_is_one_plain_line(source_copy, tmp_path, capsys):
    (source_copy / "part0" / "broken.png").write_bytes(b"not a png at all")
    code = run_cli(
        "cluster", source_copy, *FAST, "--out", tmp_path / "out", "--quiet", "--skip-bad-images"
    )
    assert code == 0
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if "broken.png" in line]
    assert len(lines) == 1
    assert re.match(r"deepclust: warning: Skipping 1 unreadable image file\(s\):", lines[0])
    assert "warnings.warn" not in err and "UserWarning" not in err and ".py:" not in err


# ---------------------------------------------------------------------- 7. user files
def test_user_files_that_would_be_overwritten_are_refused(digits_npz, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    for name in [
        "labels.csv",
        "report.html",
        "clusters.png",
        "model.json",
        "metrics.json",
        "run.json",
        "notes.txt",
    ]:
        (out / name).write_text("mine")
    before = tree(tmp_path)
    code = run_cli("cluster", digits_npz, *FAST, "--out", out, "--quiet")
    assert code == 2
    err = capsys.readouterr().err
    assert_one_error_line(
        err,
        "clusters.png, labels.csv, metrics.json, model.json, report.html and 1 more",
        "overwrite",
    )
    assert "notes.txt" not in err
    assert tree(tmp_path) == before


def test_other_user_files_are_left_alone(digits_npz, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    (out / "photo.jpg").write_bytes(b"mine")
    assert run_cli("cluster", digits_npz, *FAST, "--out", out, "--quiet") == 0
    assert (out / "notes.txt").read_text() == "mine"
    assert (out / "photo.jpg").read_bytes() == b"mine"
    # The outputs of a previous deepclust run (it wrote run.json) are replaced.
    assert run_cli("cluster", digits_npz, *FAST, "--out", out, "--quiet") == 0


def test_a_diverged_run_exits_2_with_one_line(tmp_path, capsys):
    from deepclust.cli import main

    config = tmp_path / "config.json"
    config.write_text('{"lr": 1e6, "max_epochs": 2}')
    out = tmp_path / "run"
    code = main(
        [
            "cluster",
            "digits",
            "--method",
            "sela",
            "--n-clusters",
            "3",
            "--out",
            str(out),
            "--config",
            str(config),
            "--device",
            "cpu",
            "--quiet",
        ]
    )
    err = capsys.readouterr().err
    assert code == 2
    assert "Training diverged" in err and "Traceback" not in err
    assert not (out / "model.json").exists() and not (out / "labels.csv").exists()
