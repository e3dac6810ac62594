"""Batched, gradient-free evaluation of a network over a whole data source."""

from __future__ import annotations

import warnings
from collections.abc import Callable

import torch

from deepclust._utils import stderr_is_terminal
from deepclust.data import DataSource
from deepclust.training._precision import autocast_dtype

__all__ = ["LARGE_OUTPUT_VALUES", "run_inference"]

#: Outputs with more values than this (1 GiB in float32) are stored in ``large_dtype``
#: when one is given: ImageNet's 1.28M x 2048 ResNet-50 features take 5 GiB in float16
#: instead of 10.
LARGE_OUTPUT_VALUES = 2**28


def run_inference(
    fn: Callable[[torch.Tensor], torch.Tensor | list[torch.Tensor]],
    source: DataSource,
    *,
    device: torch.device,
    batch_size: int,
    modules: tuple[torch.nn.Module, ...] = (),
    autocast: bool | str = False,
    progress: str | None = None,
    large_dtype: torch.dtype | None = None,
) -> torch.Tensor | list[torch.Tensor]:
    """Apply ``fn`` to every sample of ``source`` in eval mode and collect on the CPU.

    Results are float32 (``large_dtype`` for outputs of more than
    ``LARGE_OUTPUT_VALUES`` values, when given), written batch by batch into tensors of
    ``len(source)`` rows allocated at the first batch (no second copy for a
    concatenation); ``fn`` returns per-sample rows (the first dimension of every output is
    the batch's). A CUDA out-of-memory error halves the batch size and retries (down to
    one sample) with a warning, instead of failing.

    Parameters
    ----------
    fn : callable
        Maps a ``(B, ...)`` batch on ``device`` to a tensor or a list of tensors.
    source : DataSource
        The samples, loaded in order as ``[0, 1]`` batches.
    device : torch.device
        Where each batch is moved and ``fn`` computes.
    batch_size : int
        Samples per call of ``fn`` at first, ``>= 1``.
    modules : tuple of nn.Module
        Put in eval mode during the pass and restored afterwards.
    autocast : bool or {'auto', 'mixed', 'float32'}
        Run ``fn`` under autocast as the precision policy says
        (:mod:`deepclust.training._precision`); ``True`` takes the policy in force,
        ``False`` always computes in float32.
    progress : str, optional
        Show a progress bar with this description (on stderr, when it is a terminal).
    large_dtype : torch.dtype, optional
        Storage of outputs of more than ``LARGE_OUTPUT_VALUES`` values (e.g.
        ``torch.float16``: half the host memory); None keeps float32.

    Returns
    -------
    torch.Tensor or list of torch.Tensor
    """
    states = [m.training for m in modules]
    for module in modules:
        module.eval()
    outputs: list[torch.Tensor] | None = None
    is_list = False
    start, size, n = 0, int(batch_size), len(source)
    dtype = None
    if autocast:
        dtype = autocast_dtype(device, None if autocast is True else autocast)
    bar = None
    if progress and stderr_is_terminal():
        from tqdm.auto import tqdm

        bar = tqdm(total=n, desc=progress, unit="img", leave=False)
    try:
        with torch.no_grad():
            while start < n:
                stop = min(start + size, n)
                try:
                    batch = source.load(slice(start, stop)).to(device, non_blocking=True)
                    with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
                        out = fn(batch)
                except torch.cuda.OutOfMemoryError:
                    if size == 1:
                        raise
                    torch.cuda.empty_cache()
                    size = max(1, size // 2)
                    warnings.warn(
                        f"CUDA ran out of memory during inference; retrying with batch size "
                        f"{size}.",
                        RuntimeWarning,
                        stacklevel=2,
                    )
                    continue
                is_list = isinstance(out, (list, tuple))
                parts = list(out) if is_list else [out]
                if outputs is None:
                    outputs = [_allocate(n, o, large_dtype) for o in parts]
                for stored, o in zip(outputs, parts, strict=True):
                    stored[start:stop].copy_(o)
                if bar is not None:
                    bar.update(stop - start)
                start = stop
    finally:
        if bar is not None:
            bar.close()
        for module, state in zip(modules, states):
            module.train(state)
    if outputs is None:
        raise ValueError("run_inference needs at least one sample; the source is empty.")
    return outputs if is_list else outputs[0]


def _allocate(n: int, batch_output: torch.Tensor, large_dtype: torch.dtype | None) -> torch.Tensor:
    """The host tensor for ``n`` rows shaped like ``batch_output``'s (float32, or
    ``large_dtype`` above ``LARGE_OUTPUT_VALUES`` values)."""
    shape = (n, *batch_output.shape[1:])
    large = large_dtype is not None and n * batch_output[0].numel() > LARGE_OUTPUT_VALUES
    return torch.empty(shape, dtype=large_dtype if large else torch.float32)
