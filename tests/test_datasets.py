"""Tests for deepclust.datasets: the IDX reader and the offline loaders."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest

from deepclust.datasets import (
    FASHION_MNIST_ENV_VAR,
    _loaders,
    load_digits_images,
    load_fashion_mnist,
    read_idx,
)

_TYPE_CODES = {
    np.uint8: 0x08,
    np.int8: 0x09,
    np.int16: 0x0B,
    np.int32: 0x0C,
    np.float32: 0x0D,
    np.float64: 0x0E,
}


def idx_bytes(array: np.ndarray) -> bytes:
    """Encode ``array`` in the IDX format (big-endian), independently of read_idx."""
    code = _TYPE_CODES[array.dtype.type]
    header = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


def write_idx(path: Path, array: np.ndarray) -> Path:
    data = idx_bytes(array)
    if path.suffix == ".gz":
        with gzip.open(path, "wb") as handle:
            handle.write(data)
    else:
        path.write_bytes(data)
    return path


@pytest.mark.parametrize("suffix", ["", ".gz"])
@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64])
def test_read_idx_roundtrip(tmp_path, suffix, dtype):
    rng = np.random.RandomState(0)
    array = (rng.uniform(-100, 100, size=(3, 4, 5))).astype(dtype)
    path = write_idx(tmp_path / f"data-idx3{suffix}", array)
    result = read_idx(path)
    assert result.dtype == np.dtype(dtype)
    assert result.dtype.isnative
    np.testing.assert_array_equal(result, array)


def test_read_idx_one_dimensional_labels(tmp_path):
    labels = np.array([3, 1, 4, 1, 5, 9], dtype=np.uint8)
    np.testing.assert_array_equal(read_idx(write_idx(tmp_path / "labels", labels)), labels)


def test_read_idx_truncated_data(tmp_path):
    data = idx_bytes(np.arange(24, dtype=np.uint8).reshape(2, 3, 4))
    path = tmp_path / "short"
    path.write_bytes(data[:-5])
    with pytest.raises(ValueError, match="truncated"):
        read_idx(path)


def test_read_idx_truncated_header(tmp_path):
    data = idx_bytes(np.arange(24, dtype=np.uint8).reshape(2, 3, 4))
    path = tmp_path / "header"
    path.write_bytes(data[:9])
    with pytest.raises(ValueError, match="header"):
        read_idx(path)
    path.write_bytes(data[:2])
    with pytest.raises(ValueError, match="truncated"):
        read_idx(path)


def test_read_idx_truncated_gzip(tmp_path):
    plain = idx_bytes(np.arange(4000, dtype=np.int32).reshape(40, 100))
    path = tmp_path / "cut.gz"
    path.write_bytes(gzip.compress(plain)[:-30])
    with pytest.raises(ValueError, match="gzip"):
        read_idx(path)


def test_read_idx_bad_magic_and_type(tmp_path):
    data = bytearray(idx_bytes(np.zeros((2, 2), dtype=np.uint8)))
    bad_magic = tmp_path / "magic"
    bad_magic.write_bytes(b"\x01" + bytes(data[1:]))
    with pytest.raises(ValueError, match="magic"):
        read_idx(bad_magic)
    data[2] = 0x07
    bad_type = tmp_path / "type"
    bad_type.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="type code"):
        read_idx(bad_type)


def test_read_idx_trailing_bytes(tmp_path):
    path = tmp_path / "long"
    path.write_bytes(idx_bytes(np.zeros((2, 2), dtype=np.uint8)) + b"\x00\x00")
    with pytest.raises(ValueError, match="trailing"):
        read_idx(path)


def test_read_idx_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_idx(tmp_path / "absent")


def make_fake_fashion_mnist(folder: Path, *, gz: bool) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    rng = np.random.RandomState(1)
    suffix = ".gz" if gz else ""
    splits = {}
    for split, prefix, n in (("train", "train", 6), ("test", "t10k", 4)):
        images = rng.randint(0, 256, size=(n, 28, 28)).astype(np.uint8)
        labels = rng.randint(0, 10, size=n).astype(np.uint8)
        write_idx(folder / f"{prefix}-images-idx3-ubyte{suffix}", images)
        write_idx(folder / f"{prefix}-labels-idx1-ubyte{suffix}", labels)
        splits[split] = (images, labels)
    return splits


@pytest.mark.parametrize("gz", [False, True])
def test_load_fashion_mnist_from_path(tmp_path, gz):
    splits = make_fake_fashion_mnist(tmp_path, gz=gz)
    X, y = load_fashion_mnist(tmp_path)
    assert X.shape == (10, 28, 28) and X.dtype == np.uint8
    assert y.shape == (10,) and y.dtype == np.int64
    np.testing.assert_array_equal(X[:6], splits["train"][0])  # train first, then test
    np.testing.assert_array_equal(X[6:], splits["test"][0])
    np.testing.assert_array_equal(y, np.concatenate([splits["train"][1], splits["test"][1]]))
    X_train, y_train = load_fashion_mnist(tmp_path, subset="train")
    X_test, y_test = load_fashion_mnist(str(tmp_path), subset="test")
    assert X_train.shape == (6, 28, 28) and y_train.shape == (6,)
    assert X_test.shape == (4, 28, 28) and y_test.shape == (4,)


def test_load_fashion_mnist_env_var(tmp_path, monkeypatch):
    make_fake_fashion_mnist(tmp_path, gz=True)
    monkeypatch.setenv(FASHION_MNIST_ENV_VAR, str(tmp_path))
    X, _ = load_fashion_mnist(subset="test")
    assert X.shape == (4, 28, 28)


def test_load_fashion_mnist_missing(tmp_path, monkeypatch):
    monkeypatch.delenv(FASHION_MNIST_ENV_VAR, raising=False)
    monkeypatch.setattr(_loaders, "_DEBIAN_FASHION_MNIST_DIR", tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError) as info:
        load_fashion_mnist()
    message = str(info.value)
    assert "apt-get install dataset-fashion-mnist" in message
    assert "path=" in message
    with pytest.raises(FileNotFoundError):
        load_fashion_mnist(tmp_path)


def test_load_fashion_mnist_bad_subset(tmp_path):
    with pytest.raises(ValueError, match="subset"):
        load_fashion_mnist(tmp_path, subset="validation")


def test_load_digits_images():
    from sklearn.datasets import load_digits

    X, y = load_digits_images()
    assert X.shape == (1797, 8, 8) and X.dtype == np.uint8
    assert y.shape == (1797,) and y.dtype == np.int64
    assert X.min() == 0 and X.max() == 255
    digits = load_digits()
    np.testing.assert_array_equal(X, np.rint(digits.images * 255 / 16).astype(np.uint8))
    np.testing.assert_array_equal(y, digits.target)


_DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")


@pytest.mark.skipif(
    not (_DEBIAN_DIR / "train-images-idx3-ubyte.gz").exists(),
    reason="Debian package dataset-fashion-mnist not installed",
)
def test_real_fashion_mnist(monkeypatch):
    monkeypatch.delenv(FASHION_MNIST_ENV_VAR, raising=False)
    X, y = load_fashion_mnist()
    assert X.shape == (70000, 28, 28) and X.dtype == np.uint8
    assert y.shape == (70000,) and y.dtype == np.int64
    np.testing.assert_array_equal(np.bincount(y), np.full(10, 7000))
    X_test, y_test = load_fashion_mnist(subset="test")
    assert X_test.shape == (10000, 28, 28)
    np.testing.assert_array_equal(X_test, X[60000:])
    np.testing.assert_array_equal(y_test, y[60000:])
