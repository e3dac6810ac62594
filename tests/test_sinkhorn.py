"""Tests of deepclust.sinkhorn: SeLa's Sinkhorn-Knopp label assignment."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.exceptions import ConvergenceWarning

from deepclust.sinkhorn import sinkhorn_knopp, sinkhorn_solve
from deepclust.sinkhorn._reference import reference_sela_sinkhorn as _reference_loop


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    """Small problems: one thread avoids OpenMP stalls when the CPU is shared."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def reference_sela_sinkhorn(probs: np.ndarray, lamb: float = 25.0) -> np.ndarray:
    """Labels of SeLa's own loop (the oracle)."""
    return _reference_loop(probs, lamb)[0]


def softmax_inputs(n, k, seed=0, scale=1.0, bias_scale=0.5, dtype=np.float32):
    """Softmax of Gaussian logits with a per-cluster bias (some clusters popular)."""
    rng = np.random.default_rng(seed)
    logits = rng.standard_normal((n, k)) * scale + rng.standard_normal(k) * bias_scale
    logits -= logits.max(axis=1, keepdims=True)
    probs = np.exp(logits)
    probs /= probs.sum(axis=1, keepdims=True)
    return probs.astype(dtype), logits.astype(dtype)


def size_ratio(labels, k):
    sizes = np.bincount(labels, minlength=k)
    return sizes.max() / max(sizes.min(), 1)


@pytest.fixture(scope="module")
def medium():
    probs, logits = softmax_inputs(3000, 30, seed=1)
    return probs, logits, reference_sela_sinkhorn(probs)


def test_matches_reference_labels_and_balance(medium):
    probs, _, ref_labels = medium
    labels = sinkhorn_knopp(probs)
    assert (labels == ref_labels).mean() >= 0.99
    assert size_ratio(labels, 30) <= size_ratio(ref_labels, 30) * 1.05
    # The problem is not trivial: the plain argmax is far from the balanced answer.
    assert (probs.argmax(1) == ref_labels).mean() < 0.8


def test_warm_start_path_matches_reference():
    # 8 x 8 x K rows or more switch on the subsampled warm start.
    probs, _ = softmax_inputs(2400, 20, seed=2)
    ref_labels = reference_sela_sinkhorn(probs)
    warm = sinkhorn_solve(probs)
    cold = sinkhorn_solve(probs, warm_start=False)
    assert warm.warm_start_iter > 0 and cold.warm_start_iter == 0
    assert warm.converged and cold.converged
    assert (warm.labels.numpy() == ref_labels).mean() >= 0.99
    assert (warm.labels == cold.labels).float().mean() >= 0.99


def test_uniform_marginals_respected(medium):
    probs, _, _ = medium
    labels, plan = sinkhorn_knopp(probs, return_plan=True, tol=1e-3)
    np.testing.assert_allclose(plan.sum(axis=1), 1.0, rtol=1e-4)
    np.testing.assert_allclose(plan.sum(axis=0), len(probs) / 30, rtol=2e-3)
    sizes = np.bincount(labels, minlength=30)
    assert sizes.min() >= 0.8 * 100 and sizes.max() <= 1.2 * 100


@pytest.mark.parametrize("as_counts", [False, True])
def test_custom_marginals_respected(as_counts):
    probs, _ = softmax_inputs(4000, 4, seed=3, scale=2.0)
    wanted = np.array([0.1, 0.2, 0.3, 0.4])
    marginals = wanted * 4000 if as_counts else wanted
    labels, plan = sinkhorn_knopp(probs, marginals=marginals, return_plan=True, tol=1e-3)
    np.testing.assert_allclose(plan.sum(axis=0) / 4000, wanted, rtol=2e-3)
    np.testing.assert_allclose(np.bincount(labels, minlength=4) / 4000, wanted, atol=0.02)


def test_numpy_in_numpy_out():
    probs, _ = softmax_inputs(200, 5)
    for array in (probs, probs.astype(np.float64), probs.tolist()):
        labels = sinkhorn_knopp(array)
        assert isinstance(labels, np.ndarray) and labels.dtype == np.int64
        assert labels.shape == (200,)
    labels, plan = sinkhorn_knopp(probs, return_plan=True)
    assert isinstance(plan, np.ndarray) and plan.shape == (200, 5) and plan.dtype == np.float32


def test_torch_in_torch_out_and_input_untouched():
    probs, _ = softmax_inputs(200, 5)
    tensor = torch.from_numpy(probs.copy())
    labels, plan = sinkhorn_knopp(tensor, return_plan=True)
    assert isinstance(labels, torch.Tensor) and labels.dtype == torch.int64
    assert labels.device == tensor.device
    assert isinstance(plan, torch.Tensor) and plan.device == tensor.device
    np.testing.assert_array_equal(tensor.numpy(), probs)
    np.testing.assert_array_equal(labels.numpy(), sinkhorn_knopp(probs))


def test_log_input_equals_prob_path(medium):
    probs, logits, _ = medium
    labels_p, plan_p = sinkhorn_knopp(probs, return_plan=True)
    # Raw logits: the row-wise normalisation constant must not matter.
    labels_l, plan_l = sinkhorn_knopp(logits + 7.0, log_input=True, return_plan=True)
    assert (labels_p == labels_l).mean() >= 0.999
    np.testing.assert_allclose(plan_p, plan_l, atol=1e-3)


def test_extreme_probabilities_do_not_produce_nan():
    rng = np.random.default_rng(4)
    one_hot = np.eye(3)[rng.integers(0, 3, 60)]
    tiny = np.where(one_hot > 0, 1.0, 1e-30)
    for probs in (one_hot, tiny, tiny.astype(np.float32)):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            labels, plan = sinkhorn_knopp(probs, return_plan=True)
        assert np.all(np.isfinite(plan))
        assert labels.min() >= 0 and labels.max() < 3
        np.testing.assert_allclose(plan.sum(axis=1), 1.0, rtol=1e-4)
    # A cluster no sample can reach still gets its share, from the least unlikely rows.
    probs = np.zeros((30, 3))
    probs[:, 0] = 1.0
    labels, plan = sinkhorn_knopp(probs, return_plan=True)
    assert np.all(np.isfinite(plan))
    np.testing.assert_allclose(plan.sum(axis=0), 10.0, rtol=2e-2)


def test_float32_lamb25_tiny_probabilities_match_float64():
    # Peaked softmax: most entries below 1e-20, so P**25 underflows even float64.
    probs, _ = softmax_inputs(1500, 12, seed=5, scale=20.0, bias_scale=7.0)
    assert (probs < 1e-20).mean() > 0.2
    labels32 = sinkhorn_knopp(probs, lamb=25.0)
    labels64 = sinkhorn_knopp(probs.astype(np.float64), lamb=25.0, dtype="float64")
    assert (labels32 == labels64).mean() >= 0.99
    assert size_ratio(labels32, 12) < 1.5


@pytest.mark.parametrize(
    ("input_dtype", "scale", "storage"),
    [
        # float64 scales whose float32 copy overflows to inf or underflows to zero.
        (torch.float64, 1e39, None),
        (torch.float64, 1e-45, None),
        (torch.float64, 1e39, "bfloat16"),
        (torch.float64, 1e-45, "bfloat16"),
        (torch.float64, 1e300, None),
        (torch.float64, 1e-300, "float64"),
        # Scales representable in float32 and bfloat16 (powers of two: the input is exact).
        (torch.float32, 2.0**100, None),
        (torch.float32, 2.0**-120, None),
        (torch.float32, 2.0**-100, "bfloat16"),
        (torch.bfloat16, 2.0**100, None),
        (torch.bfloat16, 2.0**-100, "bfloat16"),
    ],
)
def test_extreme_common_scale_gives_the_unscaled_result(input_dtype, scale, storage):
    probs = torch.from_numpy(softmax_inputs(600, 7, seed=7, dtype=np.float64)[0])
    probs = probs.to(input_dtype)
    labels, plan = sinkhorn_knopp(probs, return_plan=True, dtype=storage)
    scaled = probs * scale
    assert torch.isfinite(scaled).all() and (scaled.amax(1) > 0).all()
    labels_s, plan_s = sinkhorn_knopp(scaled, return_plan=True, dtype=storage)
    torch.testing.assert_close(labels_s, labels, rtol=0, atol=0)
    torch.testing.assert_close(plan_s, plan, rtol=0, atol=2e-4)


def test_extreme_row_scales_give_the_unscaled_result():
    # Every row its own factor between 1e-300 and 1e300; the warm start and chunking apply.
    probs, _ = softmax_inputs(2400, 20, seed=8, dtype=np.float64)
    factors = 10.0 ** np.random.default_rng(8).uniform(-300, 300, (2400, 1))
    reference = sinkhorn_solve(probs, return_plan=True)
    for kwargs in ({}, {"chunk_size": 7}):
        result = sinkhorn_solve(probs * factors, return_plan=True, **kwargs)
        assert result.converged and result.warm_start_iter > 0
        torch.testing.assert_close(result.labels, reference.labels, rtol=0, atol=0)
        torch.testing.assert_close(result.plan, reference.plan, rtol=0, atol=2e-4)


def test_log_input_with_large_row_offsets_keeps_its_precision():
    # float64 logits offset by +-1e6 per row: a float32 copy would round them to 1/16.
    probs, logits = softmax_inputs(3000, 30, seed=1, dtype=np.float64)
    offsets = 1e6 * np.random.default_rng(9).choice([-1.0, 1.0], (3000, 1))
    labels = sinkhorn_knopp(probs)
    labels_l = sinkhorn_knopp(logits + offsets, log_input=True)
    assert (labels_l == labels).mean() >= 0.999


@pytest.mark.parametrize("scale", [1e45, 1e-45])
def test_round_to_sizes_ignores_an_extreme_common_scale(scale):
    from deepclust.sinkhorn import round_to_sizes, target_counts

    rng = np.random.default_rng(10)
    probs = torch.softmax(torch.from_numpy(rng.normal(0, 0.01, (400, 4))), 1)
    marginals = [0.4, 0.3, 0.2, 0.1]
    result = sinkhorn_solve(probs, 25.0, marginals=marginals)
    counts = target_counts(400, marginals)
    labels = round_to_sizes(probs, result.log_v, 25.0, counts)
    labels_s = round_to_sizes(probs * scale, result.log_v, 25.0, counts)
    torch.testing.assert_close(labels_s, labels, rtol=0, atol=0)


def test_bfloat16_storage_matches_float32(medium):
    probs, _, ref_labels = medium
    labels_bf16, plan = sinkhorn_knopp(probs, dtype="bfloat16", return_plan=True)
    assert (labels_bf16 == ref_labels).mean() >= 0.99
    assert plan.dtype == np.float32
    with pytest.raises(ValueError, match="bfloat16"):
        sinkhorn_knopp(probs, dtype=torch.float16)


def test_chunked_equals_unchunked(medium):
    probs, _, _ = medium
    labels, plan = sinkhorn_knopp(probs, return_plan=True)
    labels_c, plan_c = sinkhorn_knopp(probs, return_plan=True, chunk_size=7)
    assert (labels == labels_c).mean() >= 0.999
    np.testing.assert_allclose(plan, plan_c, atol=1e-4)


def test_convergence_warning_when_max_iter_too_small(medium):
    probs, _, _ = medium
    with pytest.warns(ConvergenceWarning, match="max_iter"):
        sinkhorn_knopp(probs, max_iter=1)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(probs=np.ones(5)), "2-D"),
        (dict(probs=np.ones((2, 3, 4))), "2-D"),
        (dict(probs=np.ones((0, 3))), "at least one row"),
        (dict(probs=np.array([[0.5, np.nan], [0.5, 0.5]])), "NaN"),
        (dict(probs=np.array([[0.5, np.inf], [0.5, 0.5]])), "infinite"),
        (dict(probs=np.array([[1.0, np.inf]]), log_input=True), "infinite"),
        (dict(probs=np.array([[0.5, -0.1], [0.5, 0.5]])), "negative"),
        (dict(probs=np.array([[0.0, 0.0], [0.5, 0.5]])), "positive probability"),
        (dict(probs=np.array([[-np.inf, -np.inf]]), log_input=True), "all -inf"),
        (dict(marginals=[1.0, 2.0]), r"shape \(3,\)"),
        (dict(marginals=[1.0, 0.0, 2.0]), "strictly positive"),
        (dict(marginals=[1.0, np.nan, 2.0]), "strictly positive"),
        (dict(lamb=0.0), "lamb"),
        (dict(lamb=-1.0), "lamb"),
        (dict(lamb=float("nan")), "lamb"),
        (dict(tol=0.0), "tol"),
        (dict(max_iter=0), "max_iter"),
        (dict(chunk_size=0), "chunk_size"),
        (dict(dtype="float16"), "bfloat16"),
    ],
)
def test_bad_inputs_raise_value_error(kwargs, match):
    kwargs = {"probs": np.full((4, 3), 1 / 3), **kwargs}
    with pytest.raises(ValueError, match=match):
        sinkhorn_knopp(**kwargs)


def test_bad_types_raise_type_error():
    with pytest.raises(TypeError, match="real numbers"):
        sinkhorn_knopp(np.array([["a", "b"]]))
    with pytest.raises(TypeError, match="dtype"):
        sinkhorn_knopp(np.full((4, 3), 1 / 3), dtype="int8")


def test_minus_inf_allowed_in_log_input():
    with np.errstate(divide="ignore"):
        logits = np.log(np.array([[1.0, 0.0], [0.0, 1.0], [0.5, 0.5], [0.2, 0.8]]))
    labels = sinkhorn_knopp(logits, log_input=True)
    assert sorted(np.bincount(labels, minlength=2)) == [2, 2]


@st.composite
def extreme_problems(draw):
    n = draw(st.integers(1, 40))
    k = draw(st.integers(1, 6))
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    kind = draw(st.sampled_from(["dirichlet", "one_hot", "tiny", "mixed"]))
    if kind == "dirichlet":
        probs = rng.dirichlet(np.full(k, 0.1), size=n)
    else:
        probs = np.eye(k)[rng.integers(0, k, n)]
        if kind == "tiny":
            probs = np.where(probs > 0, 1.0, 10.0 ** rng.uniform(-40, -5, (n, k)))
        elif kind == "mixed":
            probs = 0.5 * probs + 0.5 * rng.dirichlet(np.ones(k), size=n)
    marginals = rng.uniform(0.2, 1.0, k) if draw(st.booleans()) else None
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    lamb = draw(st.sampled_from([1.0, 10.0, 25.0, 50.0]))
    return probs.astype(dtype), marginals, lamb


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(extreme_problems())
def test_property_valid_labels_and_masses(problem):
    probs, marginals, lamb = problem
    n, k = probs.shape
    result = sinkhorn_solve(probs, lamb, marginals=marginals, return_plan=True)
    labels = result.labels.numpy()
    plan = result.plan.numpy()
    assert labels.shape == (n,) and labels.dtype == np.int64
    assert labels.min() >= 0 and labels.max() < k
    assert np.all(np.isfinite(plan)) and np.all(plan >= 0)
    np.testing.assert_allclose(plan.sum(axis=1), 1.0, rtol=1e-3)
    # Every label is a largest entry of its plan row (up to rounding in near-ties).
    assert np.all(plan[np.arange(n), labels] >= plan.max(axis=1) * (1 - 1e-5))
    if result.converged:
        wanted = np.full(k, 1.0 / k) if marginals is None else marginals / marginals.sum()
        np.testing.assert_allclose(plan.sum(axis=0), n * wanted, rtol=0.03, atol=1e-3)


def test_property_sizes_near_requested_on_generic_inputs():
    # Hard labels can only follow the marginals when rows are distinguishable.
    rng = np.random.default_rng(6)
    for _ in range(5):
        k = int(rng.integers(2, 8))
        n = int(rng.integers(50, 120)) * k
        probs, _ = softmax_inputs(n, k, seed=int(rng.integers(1 << 30)), scale=2.0)
        marginals = rng.uniform(0.3, 1.0, k)
        labels = sinkhorn_knopp(probs, marginals=marginals)
        share = np.bincount(labels, minlength=k) / n
        np.testing.assert_allclose(share, marginals / marginals.sum(), atol=0.04)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("dtype", [None, "bfloat16"])
def test_cuda_matches_cpu(medium, dtype):
    probs, _, ref_labels = medium
    tensor = torch.from_numpy(probs).cuda()
    labels, plan = sinkhorn_knopp(tensor, return_plan=True, dtype=dtype)
    assert labels.is_cuda and plan.is_cuda and labels.dtype == torch.int64
    assert (labels.cpu().numpy() == ref_labels).mean() >= 0.99
    np.testing.assert_allclose(plan.sum(0).cpu().numpy(), 100.0, rtol=2e-2)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("scale", [1e39, 1e-45])
def test_cuda_extreme_common_scale_matches_cpu(scale):
    probs = torch.from_numpy(softmax_inputs(600, 7, seed=7, dtype=np.float64)[0])
    labels, plan = sinkhorn_knopp(probs, return_plan=True)
    labels_c, plan_c = sinkhorn_knopp((probs * scale).cuda(), return_plan=True)
    torch.testing.assert_close(labels_c.cpu(), labels, rtol=0, atol=0)
    torch.testing.assert_close(plan_c.cpu(), plan, rtol=0, atol=2e-4)


# --------------------------------------------------------------------------- rounding


def test_target_counts_sum_and_proportions():
    from deepclust.sinkhorn import target_counts

    # Shares 2.5 / 2.5 / 5: the one left-over image goes to the first tied cluster.
    np.testing.assert_array_equal(target_counts(10, [1, 1, 2]), [3, 2, 5])
    np.testing.assert_array_equal(target_counts(7, None, 3), [3, 2, 2])


def test_round_to_sizes_gives_exact_sizes_where_argmax_collapses():
    from deepclust.sinkhorn import round_to_sizes, sinkhorn_solve, target_counts

    rng = np.random.default_rng(0)
    # An untrained network: nearly uniform predictions; unequal target sizes.
    probs = torch.softmax(torch.from_numpy(rng.normal(0, 0.001, (1000, 4))).float(), 1)
    marginals = [0.4, 0.3, 0.2, 0.1]
    result = sinkhorn_solve(probs, 25.0, marginals=marginals)
    argmax_sizes = np.bincount(result.labels.numpy(), minlength=4)
    assert argmax_sizes.max() > 0.9 * 1000  # the plan's argmax puts nearly all in one
    counts = target_counts(1000, marginals)
    labels = round_to_sizes(probs, result.log_v, 25.0, counts)
    np.testing.assert_array_equal(np.bincount(labels.numpy(), minlength=4), counts)


def test_round_to_sizes_keeps_an_argmax_that_already_fits():
    from deepclust.sinkhorn import round_to_sizes, sinkhorn_solve

    probs = torch.eye(3).repeat(5, 1) * 0.9 + 0.05  # 5 clear members per cluster
    result = sinkhorn_solve(probs, 25.0)
    labels = round_to_sizes(probs, result.log_v, 25.0, [5, 5, 5])
    torch.testing.assert_close(labels, result.labels)
    with pytest.raises(ValueError, match="summing to n_samples"):
        round_to_sizes(probs, result.log_v, 25.0, [5, 5, 4])


def test_round_to_sizes_is_the_same_in_any_row_blocks():
    from deepclust.sinkhorn import round_to_sizes, sinkhorn_solve, target_counts

    rng = np.random.default_rng(1)
    probs = torch.softmax(torch.from_numpy(rng.normal(0, 0.01, (500, 7))).float(), 1)
    result = sinkhorn_solve(probs, 25.0)
    counts = target_counts(500, None, 7)
    whole = round_to_sizes(probs, result.log_v, 25.0, counts, chunk_size=10**6)
    for chunk_size in (None, 13):
        blocks = round_to_sizes(probs, result.log_v, 25.0, counts, chunk_size=chunk_size)
        torch.testing.assert_close(blocks, whole)
