"""Nuisance report: planted colour, brightness, background and size are found and named;
statistics independent of the clusters score near zero."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from deepclust.data import as_source
from deepclust.diagnostics import (
    FILE_STATISTICS,
    IMAGE_STATISTICS,
    OPTION_FOR,
    NuisanceReport,
    file_statistics,
    image_statistics,
    nuisance_report,
    score_statistics,
)

torch.set_num_threads(1)


def _texture(rng: np.random.Generator, n: int, size: int, amplitude: float) -> np.ndarray:
    """``(n, size, size)`` zero-mean noise textures (2x2 blocks) in ``[-amplitude, amplitude]``."""
    coarse = rng.uniform(-amplitude, amplitude, size=(n, size // 2, size // 2))
    return coarse.repeat(2, axis=1).repeat(2, axis=2)


def _scores(report: NuisanceReport) -> dict[str, float]:
    return {s.name: round(s.score, 3) for s in report.scores}


def test_planted_brightness_is_ranked_first_and_named_in_the_warning():
    """Grey textures whose centre is dark, mid or bright by group; the border and the
    texture's contrast are the same for all groups."""
    rng = np.random.default_rng(0)
    groups = np.repeat(np.arange(3), 200)
    images = 0.5 + _texture(rng, len(groups), 16, 0.15)
    images[:, 2:14, 2:14] += (np.array([0.2, 0.5, 0.8]) - 0.5)[groups, None, None]
    report = nuisance_report(images.clip(0, 1).astype(np.float32), groups)
    print(_scores(report))
    assert report.n_samples == 600
    assert {s.name for s in report.scores} <= {"brightness", "contrast", "background brightness"}
    assert report.top.name == "brightness"
    assert report.top.score > 0.5
    assert report.top.option == "brightness"
    assert _scores(report)["background brightness"] < 0.1
    warning = report.warning()
    assert warning is not None
    assert "brightness" in warning
    assert "invariant_to=('brightness',)" in warning
    assert "--invariant-to brightness" in warning


def test_statistics_independent_of_the_clusters_score_near_zero():
    """Colour images with random tints and random labels: nothing is flagged."""
    rng = np.random.default_rng(1)
    n = 2000
    tint = rng.uniform(0.1, 0.9, size=(n, 1, 1, 3))
    images = (tint + _texture(rng, n, 16, 0.1)[..., None]).clip(0, 1).astype(np.float32)
    labels = rng.integers(0, 4, n)
    report = nuisance_report(images, labels)
    print(_scores(report))
    assert {s.name for s in report.scores} == set(IMAGE_STATISTICS)
    assert all(s.score < 0.05 for s in report.scores)
    assert report.flagged == ()
    assert report.warning() is None


def _gradient_image(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """A smooth colour gradient of random direction and colours (keeps its contrast when
    resized, unlike pixel noise)."""
    ys, xs = np.mgrid[0:height, 0:width]
    angle = rng.uniform(0, 2 * np.pi)
    ramp = np.cos(angle) * xs / width + np.sin(angle) * ys / height
    ramp = (ramp - ramp.min()) / max(ramp.max() - ramp.min(), 1e-9)
    start, end = rng.uniform(0, 1, size=(2, 3))
    pixels = start + ramp[..., None] * (end - start)
    return (pixels * 255).round().astype(np.uint8)


def test_planted_image_size_is_found_in_the_file_headers(tmp_path):
    rng = np.random.default_rng(2)
    labels = np.tile([0, 1], 60)
    sizes = {0: (20, 20), 1: (40, 28)}
    paths = []
    for i, label in enumerate(labels):
        path = tmp_path / f"image{i:03d}.png"
        Image.fromarray(_gradient_image(rng, *sizes[label])).save(path)
        paths.append(str(path))
    source = as_source(paths, image_size=(16, 16))
    report = nuisance_report(source, labels)
    print(_scores(report))
    assert set(FILE_STATISTICS) - {"file format", "subfolder"} <= {s.name for s in report.scores}
    assert report.top.name in {"width", "height", "aspect ratio"}
    assert report.top.score > 0.5
    assert report.top.option == "scale"
    assert "invariant_to=('scale',)" in report.warning()

    random_labels = rng.integers(0, 2, len(labels))
    unrelated = _scores(nuisance_report(source, random_labels))
    print(unrelated)
    assert max(unrelated[name] for name in ("width", "height", "aspect ratio")) < 0.1


def test_planted_background_colour_is_ranked_first():
    """Red, green or blue border by group (equal brightness) around a centre of random
    colour."""
    rng = np.random.default_rng(3)
    n, size, ring = 600, 24, 3
    groups = rng.integers(0, 3, n)
    border = np.full((3, 3), 0.05) + np.eye(3) * 0.85
    border = border[groups] + rng.uniform(-0.04, 0.04, size=(n, 3))
    images = np.empty((n, size, size, 3))
    images[:] = border[:, None, None, :]
    images[:, ring:-ring, ring:-ring] = rng.uniform(0, 1, size=(n, 1, 1, 3))
    images += _texture(rng, n, size, 0.04)[..., None]
    report = nuisance_report(images.clip(0, 1).astype(np.float32), groups)
    print(_scores(report))
    assert report.top.name == "background"
    assert report.top.score > 0.5
    assert report.top.option == "background"
    assert "invariant_to=('background',)" in report.warning()


def test_report_round_trips_through_json():
    rng = np.random.default_rng(4)
    labels = rng.integers(0, 3, 300)
    statistics = {"brightness": labels * 2 + rng.integers(0, 2, 300), "contrast": labels * 0}
    report = score_statistics(labels, statistics, threshold=0.4)
    assert [s.name for s in report.scores] == ["brightness"]  # one-code statistics left out
    assert report.scores[0].n_values == 6
    again = NuisanceReport.from_dict(json.loads(json.dumps(report.to_dict())))
    assert again == report
    assert again.warning() == report.warning()


def test_single_cluster_and_feature_sources_give_empty_reports():
    rng = np.random.default_rng(5)
    images = rng.uniform(0, 1, size=(50, 8, 8)).astype(np.float32)
    single = nuisance_report(images, np.zeros(50, dtype=int))
    assert single.scores == () and single.top is None and single.warning() is None
    features = nuisance_report(as_source(rng.normal(size=(50, 4))), rng.integers(0, 2, 50))
    assert features.scores == () and features.n_samples == 0 and features.warning() is None
    with pytest.raises(ValueError, match="labels"):
        nuisance_report(images, np.zeros(49, dtype=int))


def test_grey_images_have_no_colour_statistics_and_codes_are_discrete():
    rng = np.random.default_rng(6)
    grey = as_source(rng.uniform(0, 1, size=(40, 8, 8)).astype(np.float32))
    codes = image_statistics(grey, np.arange(40), batch_size=16)
    assert list(codes) == ["brightness", "contrast", "background brightness"]
    colour = as_source(rng.uniform(0, 1, size=(40, 8, 8, 3)).astype(np.float32))
    codes = image_statistics(colour, np.arange(40), batch_size=16)
    assert list(codes) == list(IMAGE_STATISTICS)
    assert all(c.dtype == np.int64 and c.shape == (40,) for c in codes.values())
    assert codes["colour"].max() < 64 and codes["hue"].max() <= 12
    assert all(len(np.unique(codes[name])) == 8 for name in ("brightness", "contrast"))
    constant = as_source(np.full((10, 8, 8), 0.5, dtype=np.float32))
    assert len(np.unique(image_statistics(constant, np.arange(10))["brightness"])) == 1


def test_file_statistics_read_formats_and_subfolders(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b" / "deep").mkdir(parents=True)
    paths = []
    for name, size, ext in [
        ("a/x", (10, 10), "png"),
        ("a/y", (12, 10), "jpg"),
        ("b/deep/z", (14, 10), "png"),
        ("top", (16, 10), "png"),
    ]:
        path = tmp_path / f"{name}.{ext}"
        Image.new("RGB", size).save(path)
        paths.append(str(path))
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not an image")
    paths.append(str(broken))
    stats = file_statistics(paths, root=str(tmp_path))
    assert list(stats) == list(FILE_STATISTICS)
    assert stats["subfolder"].tolist() == [0, 0, 1, 2, 2]  # 'top' and 'broken' in the root
    assert stats["file format"].tolist() == [0, 1, 0, 0, 2]  # PNG, JPEG, unreadable
    assert len(set(stats["width"][:4])) == 4 and stats["width"][4] not in stats["width"][:4]
    by_parent = file_statistics(paths)["subfolder"]
    assert by_parent.tolist() == [0, 0, 1, 2, 2]  # 'a', 'deep', the temporary folder
    assert all(OPTION_FOR[name] is None for name in ("file format", "subfolder"))
