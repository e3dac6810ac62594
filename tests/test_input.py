"""The input layer: every accepted form, and refusals of bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from deepclust.data import FileSource, TensorSource, as_source, list_image_files


def test_numpy_grayscale_and_channels_last(digits_small):
    X, _ = digits_small
    source = as_source(X)
    assert isinstance(source, TensorSource)
    assert source.shape == (1, 8, 8) and len(source) == 60
    batch = source.load(np.arange(4))
    assert batch.dtype == torch.float32 and batch.shape == (4, 1, 8, 8)
    assert torch.allclose(batch[0, 0], torch.from_numpy(X[0] / 255.0).float())
    rgb = np.repeat(X[..., None], 3, axis=-1)
    source = as_source(rgb)
    assert source.shape == (3, 8, 8)
    assert torch.equal(source.load([1])[0, 2], source.load([1])[0, 0])


def test_float_images_and_tensors(digits_small):
    X, _ = digits_small
    as_float = X.astype(np.float32) / 255.0
    assert torch.allclose(as_source(as_float).load(), as_source(X).load(), atol=1e-6)
    tensor = torch.from_numpy(X)[:, None]
    source = as_source(tensor)
    assert source.shape == (1, 8, 8)
    assert torch.allclose(source.load(), as_source(X).load())


def test_resize_to_image_size(digits_small):
    X, _ = digits_small
    source = as_source(X, image_size=16)
    assert source.shape == (1, 16, 16)
    assert source.load(slice(0, 3)).shape == (3, 1, 16, 16)


def test_features_2d():
    X = np.random.default_rng(0).normal(size=(10, 5))
    source = as_source(X)
    assert source.kind == "features" and source.shape == (5,)
    assert source.load().shape == (10, 5)


def test_folder_is_recursive_sorted_and_lazy(image_folder):
    files = list_image_files(image_folder)
    assert len(files) == 60
    assert files == sorted(files, key=lambda p: str(p).replace(str(image_folder), ""))
    source = as_source(str(image_folder), image_size=8)
    assert isinstance(source, FileSource)
    assert source.shape == (1, 8, 8)
    assert len(source) == 60
    batch = source.load(np.array([0, 5]))
    assert batch.shape == (2, 1, 8, 8)
    names = source.relative_names()
    assert all(not n.startswith("/") for n in names)


def test_file_list_default_size_and_channel_conversion(image_folder, tmp_path):
    files = list_image_files(image_folder)[:5]
    source = as_source(files)
    assert source.shape == (1, 8, 8)  # the files' own (median) size
    large = tmp_path / "large.png"
    Image.fromarray(np.zeros((300, 150), np.uint8)).save(large)
    assert as_source([str(large)]).shape == (1, 64, 32)  # scaled down to 64 px, aspect kept
    rgb = as_source(files, n_channels=3, image_size=8)
    assert rgb.shape == (3, 8, 8)


def test_large_file_collections_are_not_cached(image_folder, monkeypatch):
    import deepclust.data._sources as sources

    monkeypatch.setattr(sources, "FILE_CACHE_BYTES", 10)
    source = as_source(str(image_folder), image_size=8)
    assert source._cache is None
    assert source.load(np.array([3])).shape == (1, 1, 8, 8)


def test_channel_stats():
    X = np.zeros((4, 2, 2, 3), dtype=np.uint8)
    X[..., 0] = 255
    mean, std = as_source(X).channel_stats()
    np.testing.assert_allclose(mean, [1.0, 0.0, 0.0], atol=1e-6)
    np.testing.assert_allclose(std, [1.0, 1.0, 1.0])  # zero std replaced by 1


@pytest.mark.parametrize(
    "X, error, match",
    [
        (np.zeros((0, 8, 8), np.uint8), ValueError, "0 sample"),
        (np.full((3, 8, 8), np.nan), ValueError, "NaN"),
        (np.zeros((3, 8, 8, 2, 2)), ValueError, "5-D"),
        (np.zeros((3, 8, 8, 5)), ValueError, "channels-last"),
        (np.full((3, 8, 8), 3.5), ValueError, r"\[0, 1\]"),
        (torch.zeros(3, 5, 8, 8), ValueError, "channels-first"),
        (torch.zeros(2, 2, 2, 2, 2), ValueError, "4-D"),
        (np.array(["a", "b"], dtype=object), FileNotFoundError, "do not exist"),
        (np.array([1.5, object()], dtype=object), TypeError, "not file paths"),
        ({"a": 1}, TypeError, "Cannot read"),
    ],
)
def test_bad_input_is_refused(X, error, match):
    with pytest.raises(error, match=match):
        as_source(X)


def test_missing_files_and_empty_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.png"):
        as_source([str(tmp_path / "nope.png")])
    with pytest.raises(ValueError, match="no image files"):
        as_source(str(tmp_path))
    with pytest.raises(FileNotFoundError, match="No such file or folder"):
        as_source(str(tmp_path / "missing-folder"))


def test_corrupt_images_are_named_or_skipped(tmp_path):
    good = tmp_path / "good.png"
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(good)
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    truncated = tmp_path / "truncated.png"
    truncated.write_bytes(good.read_bytes()[:40])
    with pytest.raises(ValueError, match="bad.png") as info:
        as_source(str(tmp_path))
    assert "truncated.png" in str(info.value)
    with pytest.warns(UserWarning, match="bad.png"):
        source = as_source(str(tmp_path), on_bad_image="skip")
    assert len(source) == 1


def test_decompression_bomb_is_refused(tmp_path, monkeypatch):
    Image.fromarray(np.zeros((64, 64), np.uint8)).save(tmp_path / "huge.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
    with pytest.raises(ValueError, match="huge.png"):
        as_source(str(tmp_path))
