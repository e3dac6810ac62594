"""``deepclust cluster PHOTOS --backbone --weights --freeze-backbone`` on colour JPEGs."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image

from deepclust.cli import main

#: Class name -> (dominant colour, shape drawn in it).
CLASSES = {"apples": (200, 30, 30), "leaves": (30, 170, 40), "sky": (40, 80, 210)}
SIZES = [(64, 48), (80, 80), (50, 90), (120, 70), (72, 60)]


def _photo_folder(root: Path, per_class: int = 8) -> Path:
    """Colour JPEGs of mixed sizes and aspect ratios, one sub-folder per class."""
    rng = np.random.default_rng(0)
    for name, colour in CLASSES.items():
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            width, height = SIZES[i % len(SIZES)]
            noise = rng.normal(0, 25, (height, width, 3))
            pixels = np.clip(np.asarray(colour) + noise, 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(root / name / f"photo_{i}.jpg", quality=90)
    return root


@pytest.fixture(scope="module")
def frozen_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("photos")
    torch.manual_seed(0)
    weights = root / "resnet18.pth"
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), weights)
    out = root / "out"
    args = [
        "cluster",
        _photo_folder(root / "images"),
        "--method",
        "scan",
        "--backbone",
        "resnet18",
        "--weights",
        weights,
        "--freeze-backbone",
        "--labels-from-folders",
        "--n-clusters",
        3,
        "--epochs",
        2,
        "--out",
        out,
        "--device",
        "cpu",
        "--quiet",
    ]
    return main([str(a) for a in args]), out, weights


def test_frozen_run_labels_every_file_and_scores_them(frozen_run):
    code, out, _ = frozen_run
    assert code == 0
    with open(out / "labels.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == len(CLASSES) * 8
    metrics = json.loads((out / "metrics.json").read_text())
    assert 0 <= metrics["acc"] <= 1
    assert np.asarray(metrics["confusion_matrix"]["counts"]).sum() == len(rows)
    assert "confusion" in (out / "report.html").read_text().lower()


def test_frozen_run_reads_images_at_the_weights_size(frozen_run):
    _, out, weights = frozen_run
    run = json.loads((out / "run.json").read_text())
    params = run["params"]
    assert params["weights"] == str(weights) and params["freeze_backbone"] is True
    assert tuple(run["recipe"]["params"]["image_size"]) == (224, 224)
    assert (run["recipe"]["data"]["height"], run["recipe"]["data"]["width"]) == (224, 224)
    assert run["recipe"]["frozen_features"]["data"]["n_features"] == 512


def test_missing_weights_file_is_refused_before_reading(tmp_path, capsys):
    folder = _photo_folder(tmp_path / "images", per_class=2)
    code = main(
        [
            "cluster",
            str(folder),
            "--backbone",
            "resnet18",
            "--weights",
            str(tmp_path / "nowhere.pth"),
            "--n-clusters",
            "3",
            "--out",
            str(tmp_path / "out"),
            "--quiet",
        ]
    )
    assert code == 2
    err = capsys.readouterr().err
    assert "does not exist" in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()
