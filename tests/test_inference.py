"""Faults during inference: :func:`deepclust.training.run_inference` recovers from them."""

from __future__ import annotations

import gc
import weakref

import pytest
import torch

from deepclust.data._sources import TensorSource
from deepclust.training import run_inference


def test_out_of_memory_during_inference_retries_with_smaller_batches():
    source = TensorSource(torch.arange(40, dtype=torch.float32).reshape(20, 2))
    seen: list[int] = []

    def flaky(batch):
        seen.append(len(batch))
        if len(batch) > 4:
            raise torch.cuda.OutOfMemoryError("simulated")
        return batch * 2

    with pytest.warns(RuntimeWarning, match="retrying with batch size"):
        out = run_inference(flaky, source, device=torch.device("cpu"), batch_size=16)
    torch.testing.assert_close(out, source.load() * 2)
    assert seen[:3] == [16, 8, 4]


def test_batches_are_written_into_one_output_not_kept_for_a_concatenation():
    source = TensorSource(torch.arange(60, dtype=torch.float32).reshape(20, 3))
    returned: list[weakref.ref] = []
    alive_at_call: list[int] = []

    def fn(batch):
        gc.collect()
        alive_at_call.append(sum(ref() is not None for ref in returned))
        outputs = (batch * 2, batch.sum(1))
        returned.extend(weakref.ref(o) for o in outputs)
        return outputs

    doubled, sums = run_inference(fn, source, device=torch.device("cpu"), batch_size=6)
    assert max(alive_at_call) <= 2  # at most the previous batch's two outputs are held
    torch.testing.assert_close(doubled, source.load() * 2)
    torch.testing.assert_close(sums, source.load().sum(1))
    assert doubled.dtype == sums.dtype == torch.float32
