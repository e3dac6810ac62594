"""Batched, gradient-free evaluation of a network over a whole data source."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import torch

from deepclust._utils import stderr_is_terminal
from deepclust.data import DataSource
from deepclust.training import _data_parallel
from deepclust.training._precision import autocast_dtype

__all__ = ["LARGE_OUTPUT_VALUES", "run_inference", "run_sharded_inference"]

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
    rows: slice | None = None,
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
    rows : slice, optional
        Evaluate only the consecutive samples ``rows.start`` to ``rows.stop - 1`` (step 1),
        in batches starting at ``rows.start``; the result has ``len(rows)`` rows, stored
        in the dtype the whole pass would use. None evaluates every sample.

    Returns
    -------
    torch.Tensor or list of torch.Tensor
    """
    states = [m.training for m in modules]
    for module in modules:
        module.eval()
    outputs: list[torch.Tensor] | None = None
    is_list = False
    first, n = (0, len(source)) if rows is None else (rows.start, rows.stop)
    start, size = first, int(batch_size)
    dtype = None
    if autocast:
        dtype = autocast_dtype(device, None if autocast is True else autocast)
    bar = None
    if progress and stderr_is_terminal():
        from tqdm.auto import tqdm

        bar = tqdm(total=n - first, desc=progress, unit="img", leave=False)
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
                    outputs = [_allocate(n - first, o, large_dtype, len(source)) for o in parts]
                for stored, o in zip(outputs, parts, strict=True):
                    stored[start - first : stop - first].copy_(o)
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


def _allocate(
    n: int, batch_output: torch.Tensor, large_dtype: torch.dtype | None, n_whole: int
) -> torch.Tensor:
    """The host tensor for ``n`` rows shaped like ``batch_output``'s (float32, or
    ``large_dtype`` when the whole pass's ``n_whole`` rows exceed ``LARGE_OUTPUT_VALUES``
    values)."""
    shape = (n, *batch_output.shape[1:])
    large = large_dtype is not None and n_whole * batch_output[0].numel() > LARGE_OUTPUT_VALUES
    return torch.empty(shape, dtype=large_dtype if large else torch.float32)


def run_sharded_inference(
    fn: Callable[[torch.Tensor], torch.Tensor | list[torch.Tensor]],
    source: DataSource,
    *,
    gather: bool = True,
    **kwargs: Any,
) -> torch.Tensor | list[torch.Tensor]:
    """:func:`run_inference` of a fit's full-data step, split over the ranks of a
    data-parallel fit.

    Under ``torchrun`` (:func:`~deepclust.training._data_parallel.active`, and at least as
    many samples as ranks) each rank evaluates only its consecutive block of samples
    (:func:`~deepclust.training._data_parallel.rank_rows`, the blocks of
    :func:`~deepclust.distributed.shard_indices`) and, with ``gather``, the blocks are
    gathered in rank order, so that every rank gets the whole pass's rows in the sample
    order (equal to :func:`run_inference` up to floating-point noise of the batch
    composition). Otherwise this is :func:`run_inference`. Every rank must call it.

    Parameters
    ----------
    fn : callable
        As for :func:`run_inference`.
    source : DataSource
        The samples.
    gather : bool, default=True
        Gather every rank's rows; ``False`` returns this rank's block only (the whole
        pass when the pass is not sharded: see
        :func:`~deepclust.training._data_parallel.shards_rows`).
    **kwargs
        The keyword arguments of :func:`run_inference` but ``rows``.

    Returns
    -------
    torch.Tensor or list of torch.Tensor
    """
    n_samples = len(source)
    if not _data_parallel.shards_rows(n_samples):
        return run_inference(fn, source, **kwargs)
    outputs = run_inference(fn, source, rows=_data_parallel.rank_rows(n_samples), **kwargs)
    if not gather:
        return outputs
    device = kwargs["device"]
    if isinstance(outputs, list):
        return [_data_parallel.gather_blocks(o, n_samples, device) for o in outputs]
    return _data_parallel.gather_blocks(outputs, n_samples, device)
