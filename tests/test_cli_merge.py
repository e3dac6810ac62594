"""``deepclust cluster --merge-to M``: run.json, labels, the report's merge table, refusals."""

from __future__ import annotations

import csv
import json
import re

import numpy as np
import pytest

from deepclust.cli import main
from deepclust.cli._report import render_report
from deepclust.methods import DeepClusterEstimator


def _cluster(source, out, *extra) -> int:
    argv = ["cluster", source, "--method", "deepcluster", "--out", out, "--epochs", "1"]
    argv += ["--device", "cpu", "--quiet", *extra]
    return main([str(a) for a in argv])


@pytest.fixture(scope="module")
def digits_npy(digits_small, tmp_path_factory):
    path = tmp_path_factory.mktemp("digits") / "digits.npy"
    np.save(path, digits_small[0][:40])
    return path


@pytest.fixture(scope="module")
def merged_run(digits_npy, tmp_path_factory):
    out = tmp_path_factory.mktemp("merged") / "out"
    code = _cluster(digits_npy, out, "--n-clusters", "6", "--merge-to", "3")
    return code, out


def test_merge_to_exit_0_and_run_json(merged_run):
    code, out = merged_run
    assert code == 0
    params = json.loads((out / "run.json").read_text())["params"]
    assert params["n_clusters"] == 6 and params["merge_to"] == 3
    with open(out / "labels.csv", newline="") as f:
        clusters = {int(row["cluster"]) for row in csv.DictReader(f)}
    assert clusters <= {0, 1, 2}


def test_report_shows_which_clusters_were_merged(merged_run):
    _, out = merged_run
    report = (out / "report.html").read_text()
    assert "<h2>Merged clusters</h2>" in report
    assert "6 clusters were trained, then merged into 3" in report
    table = report.split("<h2>Merged clusters</h2>", 1)[1].split("</table>", 1)[0]
    rows = re.findall(r"<tr><td>(\d+)</td><td>([\d, ]+)</td><td>(\d+)</td>", table)
    assert [int(merged) for merged, _, _ in rows] == [0, 1, 2]
    trained = sorted(int(t) for _, ids, _ in rows for t in ids.split(", "))
    assert trained == list(range(6))  # every trained cluster in exactly one merged one
    assert sum(int(n) for _, _, n in rows) == 6
    assert "<th>clusters</th><td>3</td>" in report  # the summary counts merged clusters


def test_no_merge_table_without_merge_to():
    report = render_report(
        title="t",
        summary={},
        metrics=None,
        sizes=np.array([3, 4]),
        history=[],
        montage_pages=[],
        n_hidden_clusters=0,
        files=[],
    )
    assert "Merged clusters" not in report and "Number of clusters" not in report


@pytest.mark.parametrize(
    "n_clusters, merge_to, message",
    [
        ("4", "4", "--merge-to 4 must be below --n-clusters 4"),
        ("4", "6", "--merge-to 6 must be below --n-clusters 4"),
        ("auto", "3", "cannot be combined with the search"),
        ("3:6", "2", "cannot be combined with the search"),
    ],
)
def test_bad_merge_to_exit_2_before_training(
    digits_npy, tmp_path, capsys, monkeypatch, n_clusters, merge_to, message
):
    fits = []
    monkeypatch.setattr(DeepClusterEstimator, "fit", lambda self, *a, **k: fits.append(self))
    out = tmp_path / "out"
    assert _cluster(digits_npy, out, "--n-clusters", n_clusters, "--merge-to", merge_to) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert fits == [] and not out.exists()


def test_merge_to_below_2_is_a_usage_error(digits_npy, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        _cluster(digits_npy, tmp_path / "out", "--n-clusters", "4", "--merge-to", "1")
    assert exit_info.value.code == 2
    assert "need at least 2 clusters" in capsys.readouterr().err
