"""Small helpers shared across deepclust: devices, seeding, atomic writes."""

from __future__ import annotations

import os
import random

import numpy as np
import torch

__all__ = [
    "resolve_device",
    "seed_everything",
    "to_numpy",
    "atomic_write",
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
    """Write ``data`` to ``path`` through a temporary file and an atomic rename."""
    path = os.fspath(path)
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
