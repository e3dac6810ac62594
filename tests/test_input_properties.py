"""Property-based checks of the input layer (:func:`deepclust.data.as_source`)."""

from __future__ import annotations

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from deepclust.data import as_source

SHAPES = st.lists(st.integers(0, 6), min_size=1, max_size=5).map(tuple)
FLOATS = st.one_of(st.floats(-2, 300, width=32), st.sampled_from([np.nan, np.inf, 0.5, 1.0]))
ARRAYS = st.one_of(
    arrays(np.uint8, SHAPES),
    arrays(np.int64, SHAPES, elements=st.integers(-5, 300)),
    arrays(np.float32, SHAPES, elements=FLOATS),
    arrays(np.float64, SHAPES, elements=FLOATS),
)


@settings(max_examples=80, deadline=None)
@given(ARRAYS)
def test_input_layer_accepts_or_refuses_cleanly(X):
    """Any numeric array either becomes a source of the right size or is refused with a
    ValueError/TypeError; nothing else escapes."""
    try:
        source = as_source(X)
    except (ValueError, TypeError):
        return
    assert len(source) == X.shape[0] > 0
    batch = source.load()
    assert batch.dtype == torch.float32 and torch.isfinite(batch).all()
    if source.kind == "images":
        assert batch.shape[1] in (1, 3, 4)
        assert float(batch.min()) >= 0.0 and float(batch.max()) <= 1.0
    else:
        assert X.ndim == 2 and batch.shape == X.shape
