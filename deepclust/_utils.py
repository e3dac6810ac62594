"""Small helpers shared across deepclust: devices, seeding, atomic writes, terminals."""

from __future__ import annotations

import contextlib
import os
import random
import sys

import numpy as np
import torch

__all__ = [
    "resolve_device",
    "seed_everything",
    "to_numpy",
    "atomic_write",
    "stderr_is_terminal",
]


def resolve_device(device: str | torch.device | None) -> torch.device:
    """Turn a user's ``device`` parameter into a :class:`torch.device`.

    ``'auto'`` (or ``None``) picks CUDA when it is available, else the CPU. ``'cuda'`` or
    ``'cuda:N'`` on a machine without CUDA raises a :class:`ValueError` that says so.
    """
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(
            f"device={device!r} is not a valid torch device; use 'auto', 'cpu', 'cuda' "
            "or 'cuda:N'."
        ) from exc
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(
                f"device={device!r} was requested but CUDA is not available on this machine "
                "(torch.cuda.is_available() is False); use device='cpu' or device='auto'."
            )
        if resolved.index is not None and resolved.index >= torch.cuda.device_count():
            raise ValueError(
                f"device={device!r} was requested but only {torch.cuda.device_count()} CUDA "
                "device(s) are visible."
            )
    elif resolved.type not in ("cpu", "mps"):
        raise ValueError(f"device={device!r} is not supported; use 'auto', 'cpu' or 'cuda'.")
    return resolved


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's global generators (all devices)."""
    seed = int(seed) % (2**32)
    random.seed(seed)
    np.random.seed(seed)  # noqa: NPY002 - libraries may still draw from the global state
    torch.manual_seed(seed)


def to_numpy(tensor: torch.Tensor) -> np.ndarray:
    """Detach a tensor and return it as a NumPy array on the CPU."""
    return tensor.detach().cpu().numpy()


def atomic_write(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file and an atomic rename.

    The temporary file, ``<path>.tmp-<pid>``, is removed when writing or renaming fails
    (a full disk, say), so a failure leaves ``path`` as it was and nothing else behind.

    Parameters
    ----------
    path : str or os.PathLike
    data : bytes

    Raises
    ------
    OSError
        When writing or renaming fails; its ``filename`` names ``path`` when the error
        came from writing the data (which names no file).
    """
    path = os.fspath(path)
    tmp = f"{path}.tmp-{os.getpid()}"
    try:
        with open(tmp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(exc, OSError) and exc.errno is not None and exc.filename is None:
            exc.filename = path
        raise


def stderr_is_terminal() -> bool:
    """Whether ``sys.stderr`` is a terminal: progress bars are shown only then."""
    stream = sys.stderr
    try:
        return bool(stream is not None and stream.isatty())
    except (AttributeError, ValueError):  # a stream without isatty, or a closed one
        return False
