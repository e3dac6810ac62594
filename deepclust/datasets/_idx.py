"""Reader for the IDX file format used by MNIST and Fashion-MNIST."""

from __future__ import annotations

import gzip
import os
import struct

import numpy as np

__all__ = ["read_idx"]

# IDX type code (third byte of the magic number) -> big-endian numpy dtype.
_IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


def _read_bytes(path: str | os.PathLike[str]) -> bytes:
    path = os.fspath(path)
    with open(path, "rb") as handle:
        head = handle.read(2)
    # Detect gzip by its magic bytes rather than only by the file name.
    if head == b"\x1f\x8b":
        try:
            with gzip.open(path, "rb") as handle:
                return handle.read()
        except (EOFError, OSError, gzip.BadGzipFile) as exc:
            raise ValueError(
                f"IDX file {path!r} is a corrupt or truncated gzip stream ({exc}); "
                "download or copy the file again."
            ) from exc
    if path.endswith(".gz"):
        raise ValueError(
            f"IDX file {path!r} ends in '.gz' but is not gzip-compressed; "
            "check that the file is complete and not renamed."
        )
    with open(path, "rb") as handle:
        return handle.read()


def read_idx(path: str | os.PathLike[str]) -> np.ndarray:
    """Read an IDX file (the MNIST format) into a numpy array.

    The file starts with a 4-byte magic number ``0x00 0x00 <type> <ndim>``
    followed by ``ndim`` big-endian 32-bit dimension sizes and the data in
    C order. Gzip-compressed files (``.gz``) are decompressed transparently.

    Parameters
    ----------
    path : str or path-like
        Path to the ``.idx``/``-ubyte`` file, optionally gzip-compressed.

    Returns
    -------
    numpy.ndarray
        Array of shape given by the header, in native byte order
        (``uint8`` for image and label files).

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        If the file is truncated, has a bad magic number or an unknown type
        code, or has trailing bytes.
    """
    data = _read_bytes(path)
    name = os.fspath(path)
    if len(data) < 4:
        raise ValueError(
            f"IDX file {name!r} is truncated: {len(data)} bytes, need at least a "
            "4-byte magic number."
        )
    zero0, zero1, type_code, ndim = data[0], data[1], data[2], data[3]
    if zero0 != 0 or zero1 != 0:
        raise ValueError(
            f"IDX file {name!r} has a bad magic number {data[:4].hex()}; the first two "
            "bytes must be zero. Is this really an IDX file?"
        )
    if type_code not in _IDX_DTYPES:
        raise ValueError(
            f"IDX file {name!r} has unknown type code 0x{type_code:02x}; expected one "
            f"of {sorted(hex(c) for c in _IDX_DTYPES)}."
        )
    header_size = 4 + 4 * ndim
    if len(data) < header_size:
        raise ValueError(
            f"IDX file {name!r} is truncated inside its header: {len(data)} bytes, "
            f"the header of a {ndim}-dimensional array needs {header_size}."
        )
    shape = struct.unpack(f">{ndim}I", data[4:header_size])
    dtype = _IDX_DTYPES[type_code]
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    payload = len(data) - header_size
    if payload < expected:
        raise ValueError(
            f"IDX file {name!r} is truncated: header announces shape {tuple(shape)} "
            f"({expected} data bytes) but only {payload} are present."
        )
    if payload > expected:
        raise ValueError(
            f"IDX file {name!r} has {payload - expected} unexpected trailing bytes after "
            f"the data of shape {tuple(shape)}; the file is corrupt."
        )
    array = np.frombuffer(data, dtype=dtype, count=expected // dtype.itemsize, offset=header_size)
    return array.reshape(shape).astype(dtype.newbyteorder("="), copy=True)
