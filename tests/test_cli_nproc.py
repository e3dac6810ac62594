"""``deepclust cluster --nproc N``: the command in N processes on torch.distributed."""

from __future__ import annotations

import contextlib
import csv
import glob
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from deepclust.cli import main
from deepclust.cli._launch import strip_nproc


def test_strip_nproc():
    argv = ["cluster", "digits", "--nproc", "2", "--out", "o", "--nproc=3"]
    assert strip_nproc(argv) == ["cluster", "digits", "--out", "o"]


def test_two_processes_label_every_image_and_only_rank_0_writes(tmp_path, capfd):
    before = set(glob.glob(f"{tempfile.gettempdir()}/deepclust-rank*"))
    out = tmp_path / "out"
    args = ["cluster", "digits", "--method", "deepcluster", "--n-clusters", "10"]
    args += ["--epochs", "1", "--nproc", "2", "--out", str(out), "--device", "cpu", "--quiet"]
    assert main(args) == 0
    with open(out / "labels.csv", newline="") as handle:
        assert len(list(csv.DictReader(handle))) == 1797
    assert (out / "run.json").exists() and (out / "model.json").exists()
    assert capfd.readouterr().out.count("samples in 10 non-empty clusters") == 1
    assert set(glob.glob(f"{tempfile.gettempdir()}/deepclust-rank*")) == before


def _labels(path: Path) -> list[tuple[str, str]]:
    with open(path, newline="") as handle:
        return [(row["source"], row["cluster"]) for row in csv.DictReader(handle)]


def _run(command: list, env: dict) -> None:
    """Run ``command`` to success in a session of its own, killed (ranks too) if it hangs."""
    process = subprocess.Popen(command, env=env, start_new_session=True)
    try:
        assert process.wait(timeout=180) == 0
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)


def test_two_processes_resume_after_sigkill_like_an_uninterrupted_run(tmp_path):
    from deepclust.datasets import load_digits_images

    X, y = load_digits_images()
    np.savez(tmp_path / "digits400.npz", X=X[:400], y=y[:400])
    command = [sys.executable, "-m", "deepclust.cli", "cluster", str(tmp_path / "digits400.npz")]
    command += ["--method", "sela", "--n-clusters", "10", "--epochs", "3", "--batch-size", "32"]
    command += ["--seed", "3", "--device", "cpu", "--threads", "1", "--nproc", "2", "--quiet"]
    env = dict(os.environ, TMPDIR=str(tmp_path))  # what a killed rank leaves, in tmp_path
    env["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(Path(__file__).resolve().parents[1]), env.get("PYTHONPATH")])
    )
    reference, interrupted = tmp_path / "reference", tmp_path / "interrupted"
    _run([*command, "--out", reference], env)

    # The ranks run in sessions of their own: killing the command's process group kills
    # the launcher, and the ranks die with it.
    process = subprocess.Popen([*command, "--out", interrupted], env=env, start_new_session=True)
    checkpoint = interrupted / "checkpoint.pt"
    deadline = time.monotonic() + 180
    while not checkpoint.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    time.sleep(2)  # a rank left running would go on and write the outputs
    assert checkpoint.exists() and not (interrupted / "labels.csv").exists()

    _run([*command, "--out", interrupted, "--resume"], env)
    labels = _labels(interrupted / "labels.csv")
    assert [source for source, _ in labels] == [str(i) for i in range(400)]
    assert labels == _labels(reference / "labels.csv")
    assert not checkpoint.exists()
