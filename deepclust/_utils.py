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
    "available_cpus",
    "torch_threads_at_most",
    "short_repr",
    "is_int",
]


def resolve_device(device: str | torch.device | None) -> torch.device:
    """Turn a user's ``device`` parameter into a :class:`torch.device`.

    ``'auto'`` (or ``None``) picks CUDA when it is available, else the CPU. ``'cuda'`` or
    ``'cuda:N'`` on a machine without CUDA raises a :class:`ValueError` that says so.

    Parameters
    ----------
    device : str, torch.device or None
        ``'auto'``, ``None``, ``'cpu'``, ``'cuda'``, ``'cuda:N'`` or ``'mps'`` (or the
        equivalent :class:`torch.device`).
    """
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(
            f"device={device!r} is not a valid torch device; use 'auto', 'cpu', 'cuda' or 'cuda:N'."
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
    """Seed Python's, NumPy's and torch's global generators (all devices).

    Parameters
    ----------
    seed : int
        Any integer; taken modulo ``2**32``.
    """
    seed = int(seed) % (2**32)
    random.seed(seed)
    np.random.seed(seed)  # noqa: NPY002 - libraries may still draw from the global state
    torch.manual_seed(seed)


def to_numpy(tensor: torch.Tensor) -> np.ndarray:
    """Detach a tensor and return it as a NumPy array on the CPU.

    Parameters
    ----------
    tensor : torch.Tensor
        A tensor on any device; its dtype and shape are kept.
    """
    return tensor.detach().cpu().numpy()


def all_finite(tensor: torch.Tensor, chunk_rows: int = 16384) -> bool:
    """Whether every entry of ``tensor`` is finite, read in blocks of ``chunk_rows`` rows
    so the check's temporaries stay small beside an N x K matrix.

    Parameters
    ----------
    tensor : torch.Tensor
        Any floating tensor (integer tensors are always finite).
    chunk_rows : int, default=16384
        Rows checked at a time.

    Returns
    -------
    bool
    """
    if not tensor.is_floating_point():
        return True
    if tensor.ndim < 2:
        return bool(torch.isfinite(tensor).all())
    return all(
        bool(torch.isfinite(tensor[start : start + chunk_rows]).all())
        for start in range(0, tensor.shape[0], chunk_rows)
    )


def atomic_write(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file and an atomic rename.

    The temporary file, ``<path>.tmp-<pid>``, is removed when writing or renaming fails
    (a full disk, say), so a failure leaves ``path`` as it was and nothing else behind.

    Parameters
    ----------
    path : str or os.PathLike
        The file to write; replaced as a whole if it exists.
    data : bytes
        The file's complete new contents.

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


def _cgroup_cpu_limit() -> float | None:
    """The CPU limit of this process's cgroup (v2 ``cpu.max`` or v1 CFS quota), if any."""
    candidates = (
        ("/sys/fs/cgroup/cpu.max", None),
        ("/sys/fs/cgroup/cpu/cpu.cfs_quota_us", "/sys/fs/cgroup/cpu/cpu.cfs_period_us"),
    )
    for quota_path, period_path in candidates:
        try:
            with open(quota_path, encoding="ascii") as handle:
                fields = handle.read().split()
            if period_path is not None:
                with open(period_path, encoding="ascii") as handle:
                    fields = [fields[0], handle.read().strip()]
        except (OSError, IndexError):
            continue
        if len(fields) >= 2 and fields[0] not in ("max", "-1"):
            try:
                return float(fields[0]) / float(fields[1])
            except (ValueError, ZeroDivisionError):
                return None
        return None
    return None


def available_cpus() -> int:
    """The CPUs this process may use: its affinity mask, capped by a cgroup CPU limit.

    ``os.cpu_count()`` counts the machine's cores, which in a container limited to a few
    CPUs makes torch start far too many threads.

    Returns
    -------
    int
    """
    try:
        count = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        count = os.cpu_count() or 1
    limit = _cgroup_cpu_limit()
    if limit is not None:
        count = min(count, max(1, int(limit)))
    return max(1, count)


@contextlib.contextmanager
def torch_threads_at_most(n_threads: int):
    """Run the enclosed code with at most ``n_threads`` torch threads, then restore.

    Parameters
    ----------
    n_threads : int
        The cap; a smaller thread count set by the user is kept.

    Yields
    ------
    None
    """
    before = torch.get_num_threads()
    if before > n_threads:
        torch.set_num_threads(n_threads)
    try:
        yield
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)


def short_repr(value) -> str:
    """``repr(value)``, cut to 80 characters, for error messages about user input.

    Parameters
    ----------
    value : object
        The value shown.

    Returns
    -------
    str
    """
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def is_int(value) -> bool:
    """Whether ``value`` is an integer and not a bool (JSON fields, parameters).

    Parameters
    ----------
    value : object
        The value checked.

    Returns
    -------
    bool
    """
    return isinstance(value, int) and not isinstance(value, bool)
