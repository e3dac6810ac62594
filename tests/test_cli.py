"""The ``deepclust`` command: outputs, predict, resume after SIGKILL, error messages."""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from deepclust.cli import main
from deepclust.data import list_image_files

REPO = Path(__file__).resolve().parents[1]


def read_labels(path: Path) -> list[dict]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def run_cli(*args) -> int:
    return main([str(a) for a in args])


@pytest.fixture(scope="module")
def folder_run(image_folder, tmp_path_factory):
    """One `deepclust cluster` of the 60-image nested folder (SeLa, 2 epochs)."""
    out = tmp_path_factory.mktemp("folder_run")
    code = run_cli(
        "cluster",
        image_folder,
        "--method",
        "sela",
        "--n-clusters",
        3,
        "--out",
        out,
        "--epochs",
        2,
        "--device",
        "cpu",
        "--batch-size",
        32,
        "--quiet",
    )
    assert code == 0
    return out


def test_cluster_writes_every_output(folder_run, image_folder):
    from deepclust.io import load_model

    names = {p.name for p in folder_run.iterdir()}
    assert {
        "labels.csv",
        "clusters.png",
        "report.html",
        "model.json",
        "model.safetensors",
        "run.json",
    } <= names
    assert "metrics.json" not in names  # no true labels for a folder
    assert not any("checkpoint" in n or ".tmp-" in n for n in names)  # cleaned up
    assert ".deepclust.lock" not in names  # the lock is released

    rows = read_labels(folder_run / "labels.csv")
    expected = [
        os.path.relpath(p, image_folder).replace(os.sep, "/")
        for p in list_image_files(image_folder)
    ]
    assert [r["source"] for r in rows] == expected  # input order, relative paths
    assert any("/" in name for name in expected)  # nested sub-folders are named as such
    clusters = np.array([int(r["cluster"]) for r in rows])
    confidence = np.array([float(r["confidence"]) for r in rows])
    # The clusters are SeLa's own (equal-size) labels of the fitted images; the confidence
    # is the network's probability of that cluster, which need not be its argmax.
    np.testing.assert_array_equal(clusters, load_model(folder_run).labels_)
    assert np.all((confidence > 0) & (confidence <= 1.0))


def test_montage_and_report(folder_run):
    with Image.open(folder_run / "clusters.png") as montage:
        assert montage.height >= 3 * 48  # one row per cluster
        pixels = np.asarray(montage.convert("L"))
    assert pixels.std() > 10  # not a blank image
    report = (folder_run / "report.html").read_text()
    assert "data:image/png;base64," in report
    assert report.count("<svg") >= 2  # cluster sizes + at least one training curve
    assert "<script" not in report and "http://" not in report.replace(
        'xmlns="http://www.w3.org/2000/svg"', ""
    )
    assert "selflabel: loss" in report


def test_predict_uses_the_models_predict(folder_run, image_folder, tmp_path):
    from deepclust.io import load_model

    out = tmp_path / "predicted.csv"
    assert run_cli("predict", folder_run, image_folder, "--out", out, "--quiet") == 0
    rows = read_labels(out)
    assert [r["source"] for r in rows] == [
        r["source"] for r in read_labels(folder_run / "labels.csv")
    ]
    model = load_model(folder_run)
    expected = model.predict(list_image_files(image_folder))
    assert [int(r["cluster"]) for r in rows] == expected.tolist()


def test_predict_with_model_json_on_a_sub_folder(folder_run, image_folder, tmp_path):
    whole, out = tmp_path / "whole.csv", tmp_path / "part.csv"
    assert run_cli("predict", folder_run, image_folder, "--out", whole, "--quiet") == 0
    code = run_cli(
        "predict",
        folder_run / "model.json",
        image_folder / "part1",
        "--out",
        out,
        "--device",
        "cpu",
        "--quiet",
    )
    assert code == 0
    full = {r["source"]: r["cluster"] for r in read_labels(whole)}
    part = read_labels(out)
    assert len(part) == 20
    for row in part:
        assert full["part1/" + row["source"]] == row["cluster"]


def test_npz_with_labels_writes_metrics(digits_small, tmp_path):
    X, y = digits_small
    np.savez(tmp_path / "digits.npz", X=X, y=y)
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"pca_dim": 8, "kmeans_iter": 5}))
    out = tmp_path / "out"
    code = run_cli(
        "cluster",
        tmp_path / "digits.npz",
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
    assert code == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics) >= {"acc", "nmi", "ari"} and 0 <= metrics["acc"] <= 1
    rows = read_labels(out / "labels.csv")
    assert [r["source"] for r in rows] == [str(i) for i in range(len(X))]
    run = json.loads((out / "run.json").read_text())
    assert run["params"]["pca_dim"] == 8 and run["params"]["max_epochs"] == 1


# ---------------------------------------------------------------------- errors
def test_empty_folder_is_an_error(tmp_path, capsys):
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    (tmp_path / "empty" / "notes.txt").write_text("no images here")
    code = run_cli(
        "cluster",
        tmp_path / "empty",
        "--method",
        "scan",
        "--n-clusters",
        3,
        "--out",
        tmp_path / "out",
        "--quiet",
    )
    assert code == 2
    assert "contains no image files" in capsys.readouterr().err


def test_unreadable_images_are_named(image_folder, tmp_path, capsys):
    folder = tmp_path / "imgs"
    shutil.copytree(image_folder, folder)
    (folder / "part0" / "broken.png").write_bytes(b"not a png at all")
    code = run_cli(
        "cluster",
        folder,
        "--method",
        "sela",
        "--n-clusters",
        3,
        "--out",
        tmp_path / "out",
        "--quiet",
    )
    assert code == 2
    err = capsys.readouterr().err
    assert "could not be read" in err and "part0/broken.png" in err
    assert not (tmp_path / "out" / "labels.csv").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_request_without_cuda(image_folder, tmp_path, capsys):
    code = run_cli(
        "cluster",
        image_folder,
        "--method",
        "sela",
        "--n-clusters",
        3,
        "--out",
        tmp_path / "out",
        "--device",
        "cuda",
        "--quiet",
    )
    assert code == 2
    assert "CUDA is not available" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()  # refused before reading anything


@pytest.mark.parametrize(
    "args, message",
    [
        (["--n-clusters", "1"], "need at least 2 clusters"),
        (["--n-clusters", "3", "--method", "kmeans"], "invalid choice"),
        (["--n-clusters", "3", "--epochs", "-1"], "integer >= 0"),
        (["--n-clusters", "3", "--image-size", "2"], "at least 4 px"),
    ],
)
def test_bad_arguments(args, message, tmp_path, capsys):
    argv = ["cluster", "digits", "--out", str(tmp_path), "--method", "scan", *args]
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_bad_config_and_source(tmp_path, capsys):
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"learning_rate": 0.1}))
    code = run_cli(
        "cluster",
        "digits",
        "--method",
        "sela",
        "--n-clusters",
        3,
        "--out",
        tmp_path / "out",
        "--config",
        config,
        "--quiet",
    )
    assert code == 2 and "'learning_rate'] are not parameters" in capsys.readouterr().err
    code = run_cli(
        "cluster",
        tmp_path / "nowhere",
        "--method",
        "sela",
        "--n-clusters",
        3,
        "--out",
        tmp_path / "out",
        "--quiet",
    )
    assert code == 2 and "neither an existing folder" in capsys.readouterr().err
    code = run_cli("predict", tmp_path, "digits", "--out", tmp_path / "x.csv", "--quiet")
    assert code == 2 and "model.json" in capsys.readouterr().err


def test_leftover_checkpoint_needs_resume(tmp_path, capsys):
    (tmp_path / "checkpoint.pt").write_bytes(b"")
    code = run_cli(
        "cluster", "digits", "--method", "sela", "--n-clusters", 3, "--out", tmp_path, "--quiet"
    )
    assert code == 2 and "--resume" in capsys.readouterr().err


def test_outputs_are_replaced_atomically(folder_run, image_folder, tmp_path, monkeypatch):
    """A crash while writing leaves the previous labels.csv whole, never a partial file."""
    out = tmp_path / "out"
    shutil.copytree(folder_run, out)
    before = (out / "labels.csv").read_bytes()
    real_replace = os.replace

    def crash_on_labels(src, dst):
        if str(dst).endswith("labels.csv"):
            raise OSError("disk full (simulated)")
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", crash_on_labels)
    with pytest.raises(OSError, match="simulated"):
        run_cli("predict", out, image_folder, "--out", out / "labels.csv", "--quiet")
    assert (out / "labels.csv").read_bytes() == before


# ---------------------------------------------------------------------- resume after SIGKILL
def _command(*args) -> list[str]:
    return [sys.executable, "-m", "deepclust.cli", *[str(a) for a in args]]


def _environment() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    # One thread: deterministic across the three runs, and no slowdown from OpenMP threads
    # competing for cores with other processes.
    env["OMP_NUM_THREADS"] = "1"
    return env


def test_resume_after_sigkill_ends_like_an_uninterrupted_run(tmp_path):
    from deepclust.datasets import load_digits_images

    X, y = load_digits_images()
    np.savez(tmp_path / "digits200.npz", X=X[:200], y=y[:200])
    args = [
        "cluster",
        tmp_path / "digits200.npz",
        "--method",
        "scan",
        "--n-clusters",
        5,
        "--epochs",
        20,
        "--batch-size",
        16,
        "--device",
        "cpu",
        "--seed",
        3,
        "--quiet",
    ]
    env = _environment()

    reference = tmp_path / "reference"
    subprocess.run(_command(*args, "--out", reference), env=env, check=True, timeout=120)

    interrupted = tmp_path / "interrupted"
    process = subprocess.Popen(_command(*args, "--out", interrupted), env=env)
    checkpoint = interrupted / "checkpoint.pt"
    deadline = time.monotonic() + 90
    while not checkpoint.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    assert checkpoint.exists()
    assert not (interrupted / "labels.csv").exists()

    subprocess.run(
        _command(*args, "--out", interrupted, "--resume"), env=env, check=True, timeout=120
    )
    assert read_labels(interrupted / "labels.csv") == read_labels(reference / "labels.csv")
    assert not checkpoint.exists()


# ---------------------------------------------------------------------- slow
@pytest.mark.slow
def test_demo_writes_outputs_and_scores(tmp_path, capsys):
    assert run_cli("demo", "--device", "cpu", "--out", tmp_path / "demo", "--quiet") == 0
    printed = capsys.readouterr().out
    assert "SCAN     ACC" in printed and "k-means  ACC" in printed
    metrics = json.loads((tmp_path / "demo" / "metrics.json").read_text())
    assert metrics["acc"] > 0.7
    assert len(read_labels(tmp_path / "demo" / "labels.csv")) == 1797
    from deepclust import SCANClusterer
    from deepclust.datasets import load_digits_images
    from deepclust.io import _json_value
    from deepclust.recipes import recipe_for

    expected = recipe_for(SCANClusterer(n_clusters=10, budget="fast"), load_digits_images()[0])
    assert metrics["recipe"] == _json_value(expected)  # the recipe of deepclust cluster


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("chromium") is None, reason="chromium is not installed")
def test_report_renders_in_headless_chromium(folder_run, tmp_path):
    screenshot = tmp_path / "report.png"
    subprocess.run(
        [
            "chromium",
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            f"--screenshot={screenshot}",
            "--window-size=1280,1600",
            (folder_run / "report.html").resolve().as_uri(),
        ],
        check=True,
        timeout=120,
        capture_output=True,
    )
    with Image.open(screenshot) as image:
        pixels = np.asarray(image.convert("L"))
    assert pixels.shape == (1600, 1280)
    assert (pixels < 128).mean() > 0.01  # text, montage and charts were drawn


@pytest.mark.slow
def test_fashion_mnist_folder_with_scan(tmp_path):
    """A few thousand 28x28 PNGs in nested folders, SCAN defaults, every file labelled."""
    from deepclust.datasets import load_fashion_mnist

    try:
        X, _ = load_fashion_mnist(subset="test")
    except FileNotFoundError as exc:
        pytest.skip(str(exc))
    n = 3000
    root = tmp_path / "fashion"
    for i, image in enumerate(X[:n]):
        folder = root / f"batch{i % 7}" / f"group{i % 3}"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(folder / f"item{i:05d}.png")
    started = time.perf_counter()
    out = tmp_path / "out"
    subprocess.run(
        _command(
            "cluster",
            root,
            "--method",
            "scan",
            "--n-clusters",
            10,
            "--out",
            out,
            "--device",
            "cpu",
            "--quiet",
        ),
        env=_environment(),
        check=True,
        timeout=20 * 60,
    )
    assert time.perf_counter() - started < 20 * 60
    rows = read_labels(out / "labels.csv")
    assert len(rows) == n
    assert {r["source"] for r in rows} == {
        p.relative_to(root).as_posix() for p in root.rglob("*.png")
    }


@pytest.mark.gpu
def test_cluster_and_predict_on_cuda(image_folder, tmp_path):
    out = tmp_path / "out"
    assert (
        run_cli(
            "cluster",
            image_folder,
            "--method",
            "scan",
            "--n-clusters",
            3,
            "--out",
            out,
            "--epochs",
            2,
            "--device",
            "cuda",
            "--quiet",
        )
        == 0
    )
    assert (
        run_cli(
            "predict", out, image_folder, "--out", tmp_path / "p.csv", "--device", "cuda", "--quiet"
        )
        == 0
    )
    assert read_labels(tmp_path / "p.csv") == read_labels(out / "labels.csv")


def test_montage_pages_for_many_clusters():
    import io

    from deepclust.cli._montage import CLUSTERS_PER_PAGE, MAX_PAGES, render_montage_pages

    rng = np.random.default_rng(0)
    n_clusters = CLUSTERS_PER_PAGE * MAX_PAGES + 30
    labels = rng.integers(0, n_clusters, 4000)
    confidence = rng.random(4000)
    requested = []

    def thumbnails(indices):
        requested.append(np.asarray(indices))
        return [Image.new("L", (8, 8), 255) for _ in indices]

    pages, hidden = render_montage_pages(
        labels, confidence, n_clusters, thumbnails, per_cluster=4, tile_size=16
    )
    assert len(pages) == MAX_PAGES and hidden == 30
    with Image.open(io.BytesIO(pages[0])) as first:
        assert first.height == CLUSTERS_PER_PAGE * (16 + 4)
    # Each cluster shows its most confident members, best first.
    members = np.flatnonzero(labels == 0)
    best = members[np.argsort(-confidence[members])][:4]
    np.testing.assert_array_equal(requested[0], best)


def test_resume_with_other_settings_is_refused(folder_run, image_folder, tmp_path, capsys):
    out = tmp_path / "out"
    shutil.copytree(folder_run, out)
    (out / "checkpoint.pt").write_bytes(b"")
    code = run_cli(
        "cluster",
        image_folder,
        "--method",
        "sela",
        "--n-clusters",
        3,
        "--out",
        out,
        "--epochs",
        3,
        "--device",
        "cpu",
        "--batch-size",
        32,
        "--quiet",
        "--resume",
    )
    assert code == 2
    assert "max_epochs: 2 then, 3 now" in capsys.readouterr().err
