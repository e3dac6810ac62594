"""The non-finite check reads large matrices in row blocks and misses no entry."""

import pytest
import torch

from deepclust._utils import all_finite


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("row", [0, 16383, 16384, 40_000])
def test_a_single_nan_is_found_in_any_block(dtype, row):
    matrix = torch.rand(40_001, 3, dtype=torch.float32).to(dtype)
    assert all_finite(matrix)
    matrix[row, 2] = float("nan")
    assert not all_finite(matrix)
    matrix[row, 2] = float("inf")
    assert not all_finite(matrix)


def test_vectors_and_scalars_are_checked_whole():
    assert all_finite(torch.ones(5))
    assert not all_finite(torch.tensor(float("-inf")))


def test_integer_tensors_are_finite():
    assert all_finite(torch.arange(10).reshape(5, 2))
