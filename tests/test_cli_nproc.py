"""``deepclust cluster --nproc N``: the command in N processes on torch.distributed."""

from __future__ import annotations

import csv
import glob
import tempfile

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
