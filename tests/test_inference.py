"""Faults during inference: :func:`deepclust.training.run_inference` recovers from them."""

from __future__ import annotations

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
