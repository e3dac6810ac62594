"""Decoding that keeps a trainer fed: JPEG draft decoding and the on-disk cache of images."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw, JpegImagePlugin

import deepclust.data._sources as sources
from deepclust.cli import main
from deepclust.data import FileSource, as_source, read_image
from deepclust.data._disk_cache import cache_key


def _photo(width: int, height: int, seed: int = 0) -> Image.Image:
    """A smooth colour image with a few shapes: compresses and scales like a photo."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width] / max(width, height)
    channels = [
        np.sin(6 * xx * rng.uniform(0.5, 2) + 4 * yy * rng.uniform(0.5, 2) + k) for k in range(3)
    ]
    pixels = (np.stack(channels, -1) * 90 + 128).clip(0, 255).astype(np.uint8)
    image = Image.fromarray(pixels)
    draw = ImageDraw.Draw(image)
    for _ in range(4):
        x, y = rng.integers(0, width // 2), rng.integers(0, height // 2)
        fill = tuple(int(v) for v in rng.integers(0, 256, 3))
        draw.ellipse([x, y, x + width // 3, y + height // 3], fill=fill)
    return image


def _resized(image: Image.Image, size: tuple[int, int]) -> np.ndarray:
    image = image.convert("RGB").resize((size[1], size[0]), Image.Resampling.BILINEAR)
    return np.asarray(image, dtype=np.float64)


@pytest.fixture
def draft_calls(monkeypatch):
    """Every ``(mode, size)`` a JPEG's ``draft`` is called with, and the size it gave."""
    calls = []
    original = JpegImagePlugin.JpegImageFile.draft

    def spy(self, mode, size):
        result = original(self, mode, size)
        calls.append((mode, size, self.size))
        return result

    monkeypatch.setattr(JpegImagePlugin.JpegImageFile, "draft", spy)
    return calls


def test_large_jpeg_is_decoded_reduced_and_matches_a_full_decode(tmp_path, draft_calls):
    path = tmp_path / "big.jpg"
    _photo(480, 400).save(path, quality=92)
    size = (50, 60)  # (H, W): 8x smaller on both sides
    reduced, mode = read_image(str(path), size)
    assert mode == "RGB"
    assert draft_calls == [("RGB", (60, 50), (60, 50))]  # libjpeg decoded at 1/8
    assert reduced.size == (60, 50)
    full, _ = read_image(str(path))
    assert full.size == (480, 400)
    difference = np.abs(_resized(reduced, size) - _resized(full, size)).mean()
    assert difference < 3.0  # grey levels, at the target size


def test_file_source_uses_the_reduced_decode(tmp_path, draft_calls):
    for i in range(3):
        _photo(400, 320, seed=i).save(tmp_path / f"{i}.jpg", quality=90)
    reduced = as_source(str(tmp_path), image_size=(32, 40)).load()
    assert [size for _, _, size in draft_calls] == [(50, 40)] * 3  # 1/8 of 400x320
    draft_calls.clear()
    full = torch.stack(
        [
            torch.from_numpy(_resized(read_image(str(tmp_path / f"{i}.jpg"))[0], (32, 40)))
            for i in range(3)
        ]
    ).permute(0, 3, 1, 2)
    assert float((reduced * 255 - full).abs().mean()) < 3.0


def test_grey_source_decodes_colour_jpegs_straight_to_grey(tmp_path, draft_calls):
    _photo(400, 400).save(tmp_path / "a.jpg", quality=90)
    with pytest.warns(UserWarning, match="read as greyscale"):
        grey = as_source(str(tmp_path), image_size=(40, 40), n_channels=1).load()
    assert draft_calls[0][0] == "L"
    full = read_image(str(tmp_path / "a.jpg"))[0].convert("L").resize((40, 40))
    assert float((grey[0, 0] * 255 - torch.from_numpy(np.asarray(full, float))).abs().mean()) < 3


def test_small_jpegs_and_other_formats_are_decoded_in_full(tmp_path, draft_calls):
    _photo(70, 70).save(tmp_path / "small.jpg")  # under twice the size asked for
    _photo(400, 400).save(tmp_path / "big.png")
    assert read_image(str(tmp_path / "small.jpg"), (40, 40))[0].size == (70, 70)
    assert read_image(str(tmp_path / "big.png"), (40, 40))[0].size == (400, 400)
    assert draft_calls == []


@pytest.mark.parametrize("orientation", [6, 8])
def test_reduced_decode_of_a_quarter_turned_jpeg(tmp_path, draft_calls, orientation):
    upright = _photo(240, 480)  # tall as shown
    exif = Image.Exif()
    exif[0x0112] = orientation
    turn = Image.Transpose.ROTATE_90 if orientation == 6 else Image.Transpose.ROTATE_270
    path = tmp_path / "turned.jpg"
    upright.transpose(turn).save(path, quality=95, exif=exif)  # stored 480 wide, 240 high
    size = (60, 30)  # (H, W) upright: the stored file is 8x larger on both sides
    image, _ = read_image(str(path), size)
    assert draft_calls[0][1] == (60, 30)  # (width, height) as stored: the sides swapped
    assert image.size == (30, 60)  # (W, H), upright
    difference = np.abs(_resized(image, size) - _resized(upright, size)).mean()
    assert difference < 4.0


def _folder(tmp_path, n: int = 6, grey: bool = False):
    folder = tmp_path / "images"
    folder.mkdir()
    for i in range(n):
        image = _photo(48 + 8 * i, 40, seed=i)
        (image.convert("L") if grey else image).save(folder / f"{i}.jpg", quality=90)
    return folder


def _cache_files(cache_dir) -> list[str]:
    return sorted(os.listdir(cache_dir)) if os.path.isdir(cache_dir) else []


def test_a_cache_hit_decodes_no_file(tmp_path, monkeypatch):
    folder, cache_dir = _folder(tmp_path), tmp_path / "cache"
    first = as_source(str(folder), image_size=(12, 16), cache_dir=cache_dir)
    expected = first.load()
    files = _cache_files(cache_dir)
    assert [os.path.splitext(f)[1] for f in files] == [".json", ".npy"]
    assert isinstance(np.load(cache_dir / files[1], mmap_mode="r"), np.memmap)

    def no_decoding(*args, **kwargs):
        raise AssertionError("a file was decoded")

    monkeypatch.setattr(sources, "read_image", no_decoding)
    again = as_source(str(folder), image_size=(12, 16), cache_dir=cache_dir)
    assert again.shape == (3, 12, 16)
    assert torch.equal(again.load(), expected)
    assert torch.equal(again.load(np.array([4, 1])), expected[[4, 1]])
    assert _cache_files(cache_dir) == files
    uncached = FileSource(again.paths, (12, 16)).scan  # the cache holds what decoding gives
    monkeypatch.undo()
    assert torch.equal(uncached().load(), expected)


def test_the_cache_key_follows_files_sizes_times_and_target(tmp_path):
    folder = _folder(tmp_path, n=3)
    paths = sorted(str(p) for p in folder.iterdir())
    key = cache_key(paths, (12, 16), None)
    assert cache_key(list(paths), (12, 16), None) == key
    assert cache_key(paths[:2], (12, 16), None) != key
    assert cache_key(paths[::-1], (12, 16), None) != key
    assert cache_key(paths, (16, 16), None) != key
    assert cache_key(paths, (12, 16), 1) != key
    stat = os.stat(paths[0])
    os.utime(paths[0], ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    touched = cache_key(paths, (12, 16), None)
    assert touched != key
    stat = os.stat(paths[1])
    _photo(64, 40, seed=9).save(paths[1], quality=50)  # another size in bytes...
    os.utime(paths[1], ns=(stat.st_atime_ns, stat.st_mtime_ns))  # ...the same time
    assert os.stat(paths[1]).st_size != stat.st_size
    assert cache_key(paths, (12, 16), None) not in (key, touched)


def test_a_changed_file_is_decoded_again(tmp_path):
    folder, cache_dir = _folder(tmp_path, n=3), tmp_path / "cache"
    before = as_source(str(folder), image_size=(12, 16), cache_dir=cache_dir).load()
    Image.new("RGB", (64, 40), (255, 0, 0)).save(folder / "1.jpg")
    after = as_source(str(folder), image_size=(12, 16), cache_dir=cache_dir).load()
    assert len(_cache_files(cache_dir)) == 4  # a second cache beside the first
    assert torch.equal(after[[0, 2]], before[[0, 2]])
    assert float(after[1, 0].mean()) > 0.9 and float(after[1, 1].mean()) < 0.1


def test_an_interrupted_build_leaves_no_cache(tmp_path, monkeypatch):
    folder, cache_dir = _folder(tmp_path), tmp_path / "cache"
    original = FileSource._decode_many
    calls = []

    def failing(self, paths, channels=None):
        calls.append(len(paths))
        if len(calls) == 2:
            raise KeyboardInterrupt  # e.g. Ctrl-C in the middle of the build
        return original(self, paths, channels)

    monkeypatch.setattr(FileSource, "_decode_many", failing)
    source = FileSource(list_sorted(folder), (12, 16), cache_dir=cache_dir)
    with pytest.raises(KeyboardInterrupt):
        source.scan(batch_size=2)
    assert _cache_files(cache_dir) == []  # not even a temporary file
    monkeypatch.undo()
    built = FileSource(list_sorted(folder), (12, 16), cache_dir=cache_dir).scan(batch_size=2)
    assert [os.path.splitext(f)[1] for f in _cache_files(cache_dir)] == [".json", ".npy"]
    assert torch.equal(built.load(), FileSource(list_sorted(folder), (12, 16)).scan().load())


def list_sorted(folder) -> list[str]:
    return sorted(str(p) for p in folder.iterdir())


def test_a_partial_cache_file_is_not_taken_for_a_cache(tmp_path):
    folder, cache_dir = _folder(tmp_path, n=3), tmp_path / "cache"
    paths = list_sorted(folder)
    cache_dir.mkdir()
    key = cache_key(paths, (12, 16), None)
    (cache_dir / f"deepclust-{key}.npy").write_bytes(b"\x93NUMPY truncated")
    source = FileSource(paths, (12, 16), cache_dir=cache_dir).scan()
    assert source.load().shape == (3, 3, 12, 16)


def test_cached_grey_collection_with_an_unreadable_file(tmp_path, monkeypatch):
    folder, cache_dir = _folder(tmp_path, n=4, grey=True), tmp_path / "cache"
    (folder / "2.jpg").write_bytes(b"not an image")
    with pytest.warns(UserWarning, match="Skipping 1 unreadable"):
        first = as_source(
            str(folder), image_size=(10, 10), on_bad_image="skip", cache_dir=cache_dir
        )
    assert first.shape == (1, 10, 10) and len(first) == 3
    monkeypatch.setattr(sources, "read_image", None)  # a hit decodes nothing
    with pytest.warns(UserWarning, match="Skipping 1 unreadable"):
        again = as_source(
            str(folder), image_size=(10, 10), on_bad_image="skip", cache_dir=cache_dir
        )
    assert again.skipped["unreadable"] == 1 and again.paths == first.paths
    assert torch.equal(again.load(), first.load())
    with pytest.raises(ValueError, match="could not be read"):
        as_source(str(folder), image_size=(10, 10), cache_dir=cache_dir)


def test_cluster_command_reuses_its_cache_dir(tmp_path, monkeypatch):
    folder, cache_dir = _folder(tmp_path, n=12), tmp_path / "cache"
    common = ["--n-clusters", "2", "--epochs", "1", "--device", "cpu", "--quiet"]
    common += ["--method", "sela", "--batch-size", "8", "--cache-dir", str(cache_dir)]
    assert main(["cluster", str(folder), "--out", str(tmp_path / "a"), *common]) == 0
    assert len(_cache_files(cache_dir)) == 2
    monkeypatch.setattr(sources, "read_image", None)  # a second run decodes nothing
    assert main(["cluster", str(folder), "--out", str(tmp_path / "b"), *common]) == 0
    labels = [(tmp_path / run / "labels.csv").read_text() for run in ("a", "b")]
    assert labels[0] == labels[1]


def test_estimators_read_and_write_their_cache_dir(tmp_path, monkeypatch):
    from deepclust import DeepClusterEstimator

    folder, cache_dir = _folder(tmp_path), tmp_path / "cache"
    params = dict(n_clusters=2, max_epochs=1, pca_dim=4, device="cpu", random_state=0)
    est = DeepClusterEstimator(cache_dir=str(cache_dir), image_size=12, **params).fit(str(folder))
    files = _cache_files(cache_dir)
    assert files, "fit wrote no cache"

    def no_decoding(*args, **kwargs):
        raise AssertionError("a file was decoded")

    monkeypatch.setattr(sources, "read_image", no_decoding)
    np.testing.assert_array_equal(est.predict(str(folder)), est.labels_)
    assert _cache_files(cache_dir) == files
