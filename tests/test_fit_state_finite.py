"""The fit's non-finite check reads large matrices in row blocks and misses no entry."""

import pytest
import torch

from deepclust.methods._fit_state import _all_finite


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("row", [0, 16383, 16384, 40_000])
def test_a_single_nan_is_found_in_any_block(dtype, row):
    matrix = torch.rand(40_001, 3, dtype=torch.float32).to(dtype)
    assert _all_finite(matrix)
    matrix[row, 2] = float("nan")
    assert not _all_finite(matrix)
    matrix[row, 2] = float("inf")
    assert not _all_finite(matrix)


def test_vectors_and_scalars_are_checked_whole():
    assert _all_finite(torch.ones(5))
    assert not _all_finite(torch.tensor(float("-inf")))
