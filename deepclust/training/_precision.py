"""Which floating-point precision training and inference run in, decided once per device.

``'auto'`` (the default of every estimator) runs the forward passes under autocast where the
hardware computes the lower precision natively: bfloat16 on CUDA devices that support it
(float16 with loss scaling on older ones) and on CPUs with AVX512-BF16 or AMX; float32
elsewhere. ``'mixed'`` uses autocast on any device (bfloat16 on a CPU without native
support is emulated and slow); ``'float32'`` never does, which gives the same results on
every CPU.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
from collections.abc import Iterator

import torch

__all__ = [
    "PRECISIONS",
    "autocast_dtype",
    "cpu_has_native_bfloat16",
    "current_precision",
    "use_precision",
]

#: The accepted precision policies.
PRECISIONS = ("auto", "mixed", "float32")

_POLICY: contextvars.ContextVar[str] = contextvars.ContextVar("deepclust_precision", default="auto")


@functools.cache
def cpu_has_native_bfloat16() -> bool:
    """Whether this CPU computes bfloat16 natively (the AVX512-BF16 or AMX-BF16 flags).

    Returns
    -------
    bool
    """
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as handle:
            for line in handle:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return bool(flags & {"avx512_bf16", "amx_bf16"})
    except OSError:
        pass
    return False


def autocast_dtype(device: torch.device, precision: str | None = None) -> torch.dtype | None:
    """The dtype of autocast on ``device`` under ``precision``, or ``None`` for float32.

    Parameters
    ----------
    device : torch.device
        Where the computation runs.
    precision : {'auto', 'mixed', 'float32'}, optional
        The policy; ``None`` takes the one in force (:func:`use_precision`).

    Returns
    -------
    torch.dtype or None
    """
    precision = current_precision() if precision is None else precision
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}; got {precision!r}.")
    if precision == "float32":
        return None
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.type == "cpu" and (precision == "mixed" or cpu_has_native_bfloat16()):
        return torch.bfloat16
    return None


def current_precision() -> str:
    """The precision policy in force (``'auto'`` unless :func:`use_precision` set one).

    Returns
    -------
    str
    """
    return _POLICY.get()


@contextlib.contextmanager
def use_precision(precision: str) -> Iterator[None]:
    """Run the enclosed training and inference under ``precision``.

    Parameters
    ----------
    precision : {'auto', 'mixed', 'float32'}
        The policy.

    Yields
    ------
    None
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}; got {precision!r}.")
    token = _POLICY.set(precision)
    try:
        yield
    finally:
        _POLICY.reset(token)
