"""``deepclust cluster FOLDER --labels-from-folders``: sub-folders as known classes, used
only for scoring (metrics.json, confusion matrix, class-coloured montage)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sklearn.datasets import load_digits

from deepclust.cli import main
from deepclust.cli._known_classes import classes_from_names, matched_confusion, purity_order

CLASS_NAMES = ("zero", "one", "two")


def run_cli(*args) -> int:
    return main([str(a) for a in args])


def _class_folder(root: Path) -> Path:
    """3 classes x 15 digits, as PNG files in one sub-folder per class."""
    digits = load_digits(n_class=3)
    for code, name in enumerate(CLASS_NAMES):
        (root / name).mkdir(parents=True)
        images = digits.images[digits.target == code][:15]
        for i, image in enumerate(images):
            pixels = (image * (255.0 / 16.0)).round().astype(np.uint8)
            Image.fromarray(pixels).save(root / name / f"img_{i:02d}.png")
    return root


def _cluster(source: Path, out: Path) -> int:
    config = source.parent / "config.json"
    config.write_text(json.dumps({"pca_dim": 8, "kmeans_iter": 5}))
    return run_cli(
        "cluster",
        source,
        "--labels-from-folders",
        "--method",
        "deepcluster",
        "--n-clusters",
        3,
        "--out",
        out,
        "--epochs",
        1,
        "--device",
        "cpu",
        "--config",
        config,
        "--quiet",
    )


@pytest.fixture(scope="module")
def known_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("known")
    out = root / "out"
    code = _cluster(_class_folder(root / "images"), out)
    return code, out


def test_metrics_have_scores_and_confusion_matrix(known_run):
    code, out = known_run
    assert code == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert {"acc", "nmi", "ari"} <= set(metrics) and 0 <= metrics["acc"] <= 1
    assert metrics["class_names"] == sorted(CLASS_NAMES)
    confusion = metrics["confusion_matrix"]
    assert sorted(confusion["classes"]) == sorted(CLASS_NAMES)
    assert sorted(confusion["clusters"]) == [0, 1, 2]
    counts = np.asarray(confusion["counts"])
    assert counts.shape == (3, 3) and counts.sum() == 45
    assert np.trace(counts) / 45 == pytest.approx(metrics["acc"])  # matched on the diagonal


def test_report_has_confusion_table_and_class_montage(known_run):
    _, out = known_run
    report = (out / "report.html").read_text()
    assert '<table class="confusion">' in report
    for name in CLASS_NAMES:
        assert f"<th>{name}</th>" in report
    assert "sorted by purity" in report
    assert (out / "clusters.png").is_file()


def test_loose_image_is_refused_before_anything(tmp_path, capsys):
    source = _class_folder(tmp_path / "images")
    Image.new("L", (8, 8), 0).save(source / "loose.png")
    out = tmp_path / "out"
    assert _cluster(source, out) == 2
    err = capsys.readouterr().err
    assert "loose.png" in err and "--labels-from-folders" in err
    assert len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_classes_from_names():
    y, names = classes_from_names(["b/x.png", "a/y.png", "b/deep/z.png"])
    assert names == ["a", "b"] and y.tolist() == [1, 0, 1]
    with pytest.raises(ValueError, match="top.png"):
        classes_from_names(["a/x.png", "top.png"])


def test_matched_confusion_puts_matched_pairs_on_the_diagonal():
    # cluster 0 is mostly class 2, cluster 1 class 0, cluster 2 class 1.
    y = np.array([2, 2, 2, 0, 0, 0, 0, 1, 1, 0])
    labels = np.array([0, 0, 0, 1, 1, 1, 1, 2, 2, 2])
    confusion = matched_confusion(y, labels, 3, ["a", "b", "c"])
    assert confusion["clusters"] == [0, 1, 2]
    assert confusion["classes"] == ["c", "a", "b"]
    counts = np.asarray(confusion["counts"])
    assert np.trace(counts) == 9 and counts.sum() == 10
    natural = np.zeros((3, 3), dtype=int)
    np.add.at(natural, (labels, y), 1)
    assert np.trace(natural) != 9  # the unmatched order would not have them there


def test_matched_confusion_with_more_clusters_than_classes():
    y = np.array([0, 0, 1, 1, 1])
    labels = np.array([2, 2, 0, 1, 1])
    confusion = matched_confusion(y, labels, 4, ["a", "b"])
    assert confusion["clusters"][:2] == [1, 2] and confusion["classes"] == ["b", "a"]
    assert sorted(confusion["clusters"]) == [0, 1, 2, 3]
    assert np.trace(np.asarray(confusion["counts"])[:2]) == 4


def test_purity_order():
    y = np.array([0, 1, 0, 0, 1, 1])
    labels = np.array([0, 0, 1, 1, 2, 2])
    assert purity_order(y, labels, 4) == [1, 2, 0, 3]
