"""``deepclust cluster --n-clusters auto | LOW:HIGH | K1,K2,...``: the search, run.json."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from deepclust.cli import main
from deepclust.methods import DeepClusterEstimator
from deepclust.model_selection import default_n_clusters_candidates


def _cluster(source, out, n_clusters: str, *extra) -> int:
    argv = ["cluster", source, "--method", "deepcluster", "--n-clusters", n_clusters]
    argv += ["--out", out, "--epochs", "1", "--device", "cpu", "--quiet", *extra]
    return main([str(a) for a in argv])


@pytest.fixture(scope="module")
def digits_npy(digits_small, tmp_path_factory):
    path = tmp_path_factory.mktemp("digits") / "digits.npy"
    np.save(path, digits_small[0][:40])
    return path


def test_auto_writes_the_table_to_run_json(digits_npy, tmp_path):
    out = tmp_path / "out"
    assert _cluster(digits_npy, out, "auto") == 0
    run = json.loads((out / "run.json").read_text())
    search = run["n_clusters_search"]
    candidates = default_n_clusters_candidates(40)
    assert [row["n_clusters"] for row in search["table"]] == candidates
    assert search["best_n_clusters"] in candidates
    assert search["scoring"] == "vote"
    assert search["best_n_clusters"] == max(
        candidates, key=lambda k: (search["votes"][str(k)], search["mean_scores"][str(k)], -k)
    )
    assert run["params"]["n_clusters"] == search["best_n_clusters"]
    assert (out / "labels.csv").is_file()
    report = (out / "report.html").read_text()
    section = report.split("<h2>Number of clusters</h2>", 1)[1].split("<h2>", 1)[0]
    assert f"Chosen without labels: {search['best_n_clusters']} clusters" in section
    rows = re.findall(r"<tr><td>(?:<b>)?(\d+)(?:</b>)?</td><td>(-?[\d.]+)</td>", section)
    assert [int(k) for k, _ in rows] == candidates
    for k, mean in rows:
        assert float(mean) == pytest.approx(search["mean_scores"][k], abs=1e-4)
    assert section.count("chosen</td>") == 1
    assert '<svg xmlns="http://www.w3.org/2000/svg"' in section
    assert "silhouette by number of clusters" in section
    assert "the most points of a vote" in section and "<th>points</th>" in section
    for k, points in search["votes"].items():
        assert re.search(rf"<td>{float(points):g}</td><td>(chosen)?</td></tr>", section), k


@pytest.mark.parametrize("form, expected", [("2:4", [2, 3, 4]), ("5,3", [3, 5])])
def test_range_and_list(digits_npy, tmp_path, form, expected):
    out = tmp_path / "out"
    assert _cluster(digits_npy, out, form) == 0
    search = json.loads((out / "run.json").read_text())["n_clusters_search"]
    assert [row["n_clusters"] for row in search["table"]] == expected


@pytest.mark.parametrize(
    "form, message",
    [
        ("5:3", "LOW:HIGH with 2 <= LOW < HIGH"),
        ("1:4", "need at least 2 clusters"),
        ("3,x", "integers separated by commas"),
        ("3,3", "more than once"),
        ("1,4", "at least 2"),
        ("many", "need at least 2 clusters"),
    ],
)
def test_bad_forms_exit_2_before_reading(form, message, digits_npy, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        _cluster(digits_npy, tmp_path / "out", form)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_too_many_clusters_for_the_data_exit_2_before_training(
    digits_npy, tmp_path, capsys, monkeypatch
):
    fits = []
    monkeypatch.setattr(DeepClusterEstimator, "fit", lambda self, *a, **k: fits.append(self))
    assert _cluster(digits_npy, tmp_path / "out", "10,40") == 2
    assert "not smaller than the 40 samples" in capsys.readouterr().err
    assert fits == []
    assert _cluster(digits_npy, tmp_path / "out", "2,3", "--resume") == 2
    assert "--resume needs a fixed --n-clusters K" in capsys.readouterr().err
