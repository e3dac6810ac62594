"""Sinkhorn-Knopp label assignment for SeLa (Asano, Rupprecht and Vedaldi, ICLR 2020).

Given class probabilities ``P`` (N images x K clusters), SeLa's label step solves the
entropy-regularised transport problem

    max_Q  <Q, log P> + H(Q) / lamb   s.t.  Q 1_K = 1_N / N,  Q^T 1_N = r  (r = 1_K / K)

whose solution is ``Q = diag(u) P**lamb diag(v)``; ``u`` and ``v`` are found by
alternately rescaling rows and columns (Sinkhorn-Knopp). The hard labels are
``argmax_k Q[i, k]``.

Numerics
--------
``P**lamb`` (lamb = 25) under- and overflows float32 and even float64, so the kernel is
built in log space. A row factor never changes the argmax nor the solution (``u`` absorbs
it), and a column factor is absorbed by ``v``, so the stored kernel is

    K[i, k] = exp(max(S[i, k] + g[k] - max_j (S[i, j] + g[j]), -FLOOR)),
    S[i, k] = lamb * max(log P[i, k], max_j log P[i, j] - DATA_FLOOR)

with every row's largest entry equal to one. ``g`` are log column scalings absorbed so far.
The iterations keep ``max(v) = 1``; when ``min(v)`` drops below ``exp(-MAX_LOG_RANGE)``,
``log v`` is moved into ``g`` and the kernel is rebuilt *from the input* (no precision is
lost by repeated absorption). With ``FLOOR + MAX_LOG_RANGE < 87`` no float32 product ever
becomes subnormal (subnormals slow x86 arithmetic down by 10-100x), and entries at the floor
stay negligible (at most ``exp(MAX_LOG_RANGE - FLOOR)`` of their row's mass).

Rows on an extreme scale (largest probability outside ``2**-SAFE_LOG2 .. 2**SAFE_LOG2``,
or largest log-input value beyond ``SAFE_LOG_INPUT`` in magnitude, e.g. ``P * 1e39`` in
float64, whose float32 copy would overflow to inf or underflow to zero) are normalised in
the log domain first: their logarithm is taken in the input's precision (at least float32)
and the row maximum subtracted before the values reach the kernel's dtype. The row factor
does not change the solution, so such input gives the result of the rescaled one; rows on
an ordinary scale take the plain path, bit for bit as before.

Speed
-----
* One N x K buffer in float32 (or bfloat16) instead of float64, no transpose copy; the
  power is one fused ``exp2`` per entry (base 2: about 3x faster than ``exp`` on CPUs).
* One pass over memory per iteration: rows are processed in cache-sized blocks, and for
  each block ``u_b = 1 / (K_b v)`` and ``K_b^T u_b`` are computed while it is in cache.
* Over-relaxation of both updates (``log v <- (1 - w) log v + w log v_sinkhorn``, Thibault,
  Chizat, Dossal and Papadakis 2017; w = 1.9 for columns, 1.3 for rows), with a safeguard
  that moves back towards plain Sinkhorn-Knopp when the error stops decreasing. On the
  benchmark the row relaxation cuts the full-size iterations from 22 to 12.
* Multi-scale warm start: for N >= 64 K, the column scalings are first solved on every 8th
  row, so the full-size kernel is built once, already close to the solution.
* Epsilon scaling as a fallback: a solve still running after 100 iterations (duals of large
  magnitude, e.g. near one-hot rows whose counts differ much from the marginals) restarts
  from the duals of ``lamb / 4``, scaled by 4.
* Convergence is checked every iteration from quantities the pass computes anyway.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from sklearn.exceptions import ConvergenceWarning

from deepclust.distributed._helpers import _Collective, _resolve_distributed

__all__ = ["SinkhornResult", "sinkhorn_knopp", "sinkhorn_solve"]

#: Lowest log-value of a stored kernel entry relative to its row maximum.
_FLOOR = 52.0
#: Largest log-range of the column scalings ``v`` before they are absorbed into the kernel.
_MAX_LOG_RANGE = 30.0
#: Entries with ``log P`` more than this below their row's maximum (zero probabilities
#: included) are treated as exactly this far below (a ratio of 7e-46, under float32's
#: smallest number): "impossible" stays finite, so even a cluster that no sample can
#: reach gets its share instead of producing NaN.
_DATA_FLOOR = 104.0
#: Rows whose largest probability lies outside ``[2**-_SAFE_LOG2, 2**_SAFE_LOG2]``, or
#: (``log_input``) whose largest value exceeds ``_SAFE_LOG_INPUT`` in magnitude, are
#: normalised in the log domain before the kernel is built (see the module docstring).
_SAFE_LOG2 = 64.0
_SAFE_LOG_INPUT = 1024.0
#: Over-relaxation factors of the column and row updates (1 is plain Sinkhorn-Knopp).
_OMEGA_V = 1.9
_OMEGA_U = 1.3
#: Iterations after which a slow solve restarts from the duals of an easier problem
#: (``lamb / _ANNEAL_FACTOR``), and the smallest ``lamb`` that does so.
_ANNEAL_AFTER = 100
_ANNEAL_FACTOR = 4.0
_ANNEAL_MIN_LAMB = 0.5
#: Iterations without a new lowest error after which the over-relaxation is reduced.
_STALL_ITERATIONS = 8
#: Row subsampling stride of the warm start, and the fewest rows per cluster it needs.
_WARM_STRIDE = 8
_WARM_MIN_ROWS_PER_CLUSTER = 8
#: Looser tolerance used by the warm start.
_WARM_TOL = 3e-2

_HALF_DTYPES = (torch.bfloat16,)
_DTYPE_NAMES = {
    "float32": torch.float32,
    "float64": torch.float64,
    "bfloat16": torch.bfloat16,
    "float16": torch.float16,
}


@dataclass
class SinkhornResult:
    """Everything one solve produced (``sinkhorn_knopp`` returns parts of it).

    Attributes
    ----------
    labels : torch.Tensor
        (N,) int64 hard labels.
    plan : torch.Tensor or None
        (N, K) soft assignment, rows summing to one, or ``None`` when not asked for.
    log_v : torch.Tensor
        (K,) float64 log column scalings (up to a constant): ``labels = argmax_k
        (lamb * log P[i, k] + log_v[k])``.
    n_iter : int
        Full-size iterations run (the warm start's are in ``warm_start_iter``).
    n_builds : int
        Times the N x K kernel was built from the input (1 + rebuilds).
    error : float
        Final largest relative deviation of a cluster's soft mass from its target.
    converged : bool
        Whether ``error < tol`` was reached within ``max_iter``.
    warm_start_iter : int
        Iterations spent on the subsampled warm start (0 without one).
    """

    labels: torch.Tensor
    plan: torch.Tensor | None
    log_v: torch.Tensor
    n_iter: int
    n_builds: int
    error: float
    converged: bool
    warm_start_iter: int = 0


def sinkhorn_knopp(
    probs: Any,
    lamb: float = 25.0,
    *,
    marginals: Any = None,
    log_input: bool = False,
    return_plan: bool = False,
    tol: float = 1e-2,
    max_iter: int = 1000,
    chunk_size: int | None = None,
    dtype: Any = None,
):
    """Balanced pseudo-labels from class probabilities by Sinkhorn-Knopp (SeLa's label step).

    Finds the labels that maximise the total log-probability ``sum_i log P[i, y_i]`` under
    the constraint that cluster ``k`` receives a share ``marginals[k]`` of the N images,
    through the entropic optimal-transport relaxation solved with the power trick
    ``P**lamb``, as in Asano et al., "Self-labelling via simultaneous clustering and
    representation learning" (ICLR 2020).

    Parameters
    ----------
    probs : numpy.ndarray or torch.Tensor of shape (n_samples, n_clusters)
        Class probabilities (non-negative; rows need not sum to one since a row factor does
        not change the solution, whatever its size: rows beyond float32's range are
        normalised in the log domain first; but every row needs a positive entry), or
        log-probabilities or logits when ``log_input=True``. Not modified. Torch tensors
        are processed on their own device (CUDA included).
    lamb : float, default=25.0
        Inverse entropic regularisation (SeLa's lambda). Larger is closer to the hard
        assignment problem and needs more iterations.
    marginals : array-like of shape (n_clusters,), default=None
        Target cluster sizes, as proportions or counts (any positive vector; it is
        normalised to sum to one). ``None`` asks for equal sizes.
    log_input : bool, default=False
        ``probs`` holds log-probabilities or logits. Any row-wise constant is irrelevant, so
        logits give the same result as ``log_softmax(logits)`` and as ``softmax(logits)``
        with ``log_input=False``. ``-inf`` (a zero probability) is allowed.
    return_plan : bool, default=False
        Also return the soft transport plan.
    tol : float, default=1e-2
        Stop once every cluster's soft mass is within ``tol`` (relative) of its target,
        rows being exactly normalised. ``1e-2`` reproduces the labels of SeLa's reference
        loop (float64, stopping when the summed relative change of the row scalings is below
        0.1) on more than 99.9 % of the images in the benchmark.
    max_iter : int, default=1000
        Most iterations; a :class:`~sklearn.exceptions.ConvergenceWarning` is issued when
        they do not reach ``tol``.
    chunk_size : int, default=None
        Rows processed at a time; bounds temporary memory to about ``chunk_size *
        n_clusters`` float32 values. ``None`` picks about 2 MiB blocks on the CPU (fits the
        cache) and 256 MiB blocks on CUDA.
    dtype : {None, 'float32', 'bfloat16', 'float64'} or torch.dtype, default=None
        Storage type of the N x K kernel (the one working copy of the matrix). ``None``
        means float32. ``'bfloat16'`` halves the memory (products and sums are still
        computed in float32, one row block at a time); it was also about 20 % faster in the
        CPU benchmark, and should gain more on GPUs. float16 is refused: its exponent range
        (1e-8 .. 6e4) cannot hold the kernel's dynamic range.

    Returns
    -------
    labels : numpy.ndarray or torch.Tensor of shape (n_samples,)
        int64 cluster index of every row, ``argmax_k`` of the plan (like the reference
        implementation; no rounding pass, so sizes match ``marginals`` closely but not
        exactly). A NumPy array for NumPy input, else a tensor on ``probs``' device.
    plan : numpy.ndarray or torch.Tensor of shape (n_samples, n_clusters)
        Only with ``return_plan=True``: the soft assignment ``Q`` rescaled so that every
        row sums to one (``N * Q`` of the paper's normalisation); its column sums are
        ``n_samples * marginals`` up to ``tol``. float32 (float64 with ``dtype='float64'``),
        same library and device as ``probs``.

    Raises
    ------
    ValueError
        If ``probs`` is not 2-D or is empty, holds NaN or infinite values (``-inf`` is
        allowed with ``log_input=True``), negative probabilities or a row without any
        positive probability; if ``marginals`` has the wrong length or non-positive
        entries; if ``lamb``, ``tol``, ``max_iter`` or ``chunk_size`` are out of range.
    TypeError
        If ``probs`` is neither a NumPy array nor a torch tensor (nor array-like), or
        ``dtype`` is not understood.

    Notes
    -----
    Memory: one N x K buffer (float32: 4 bytes per entry, bfloat16: 2) plus O(N + K)
    vectors and one row block of temporaries; the input is only read. The plan, when asked
    for, is computed in that buffer (bfloat16 storage needs one float32 copy for it).

    Examples
    --------
    >>> import numpy as np
    >>> from deepclust.sinkhorn import sinkhorn_knopp
    >>> rng = np.random.default_rng(0)
    >>> logits = rng.standard_normal((600, 3)) + [2.0, 0.0, 0.0]  # cluster 0 is popular
    >>> labels = sinkhorn_knopp(logits, log_input=True)
    >>> np.bincount(np.argmax(logits, axis=1), minlength=3)  # plain argmax: unbalanced
    array([507,  47,  46])
    >>> np.bincount(labels, minlength=3)  # balanced
    array([201, 198, 201])
    """
    result = sinkhorn_solve(
        probs,
        lamb,
        marginals=marginals,
        log_input=log_input,
        return_plan=return_plan,
        tol=tol,
        max_iter=max_iter,
        chunk_size=chunk_size,
        dtype=dtype,
    )
    if not result.converged:
        warnings.warn(
            f"sinkhorn_knopp did not reach tol={tol:g} in max_iter={max_iter} iterations "
            f"(largest relative cluster-mass error {result.error:.3g}); increase max_iter or "
            "tol, or lower lamb.",
            ConvergenceWarning,
            stacklevel=2,
        )
    is_numpy = not isinstance(probs, torch.Tensor)
    labels = result.labels.cpu().numpy() if is_numpy else result.labels
    if not return_plan:
        return labels
    plan = result.plan
    if is_numpy:
        plan = plan.cpu().numpy()
    return labels, plan


def sinkhorn_solve(
    probs: Any,
    lamb: float = 25.0,
    *,
    marginals: Any = None,
    log_input: bool = False,
    return_plan: bool = False,
    tol: float = 1e-2,
    max_iter: int = 1000,
    chunk_size: int | None = None,
    dtype: Any = None,
    warm_start: bool = True,
    distributed: Any = False,
) -> SinkhornResult:
    """Same as :func:`sinkhorn_knopp` but return a :class:`SinkhornResult` (torch only).

    ``warm_start=False`` disables the subsampled warm start (for tests and benchmarks).
    Does not warn on non-convergence: check ``result.converged``.

    Parameters
    ----------
    probs : numpy.ndarray or torch.Tensor of shape (n_samples, n_clusters)
        Non-negative probabilities (rows need not sum to one), or log-probabilities or
        logits with ``log_input=True``. Not modified; tensors are solved on their device.
    lamb : float, default=25.0
        Inverse entropic regularisation (SeLa's lambda), ``> 0``.
    marginals : array-like of shape (n_clusters,), default=None
        Positive target cluster proportions or counts; ``None`` asks for equal sizes.
    log_input : bool, default=False
        ``probs`` holds log-probabilities or logits (``-inf`` allowed).
    return_plan : bool, default=False
        Also compute the soft plan into ``result.plan`` (else ``None``).
    tol : float, default=1e-2
        Stop once every cluster's soft mass is within ``tol`` (relative) of its target.
    max_iter : int, default=1000
        Most full-size iterations, ``>= 1``.
    chunk_size : int, default=None
        Rows processed at a time; ``None`` picks about 2 MiB blocks on the CPU and 256 MiB
        blocks on CUDA.
    dtype : {None, 'float32', 'bfloat16', 'float64'} or torch.dtype, default=None
        Storage type of the N x K kernel; ``None`` means float32.
    warm_start : bool, default=True
        Start from the scalings of a solve on a subsample of the rows.
    distributed : bool or torch.distributed.ProcessGroup, default=False
        Solve one problem whose rows are spread over the ranks of a process group
        (``True``: the default group): ``probs`` holds this rank's consecutive block of
        the N x K matrix (ranks in order, blocks may differ in size, each non-empty), and
        every rank calls this function with the same other arguments. The column sums
        are all-reduced every iteration and every decision (stopping, rebuilds, warm
        start on every 8th row of the whole matrix) is taken on global quantities, so all
        ranks run the same iterations; each gets the labels (and plan) of its own rows
        and the same ``log_v``. They equal the single-process solve of the concatenated
        matrix up to the order of floating-point summation. Without an initialised
        process group this is the single-process solve. See :ref:`distributed`.

    Returns
    -------
    SinkhornResult
        Labels (and plan) of the rows of ``probs``, column scalings and diagnostics.
    """
    matrix = _as_tensor(probs)
    lamb = _check_positive_float(lamb, "lamb")
    tol = _check_positive_float(tol, "tol")
    if isinstance(max_iter, bool) or not isinstance(max_iter, (int, np.integer)) or max_iter < 1:
        raise ValueError(f"max_iter must be a positive integer, got {max_iter!r}.")
    n_samples, n_clusters = matrix.shape
    storage = _resolve_dtype(dtype)
    compute = torch.float64 if storage == torch.float64 else torch.float32
    rows = _resolve_chunk_size(chunk_size, n_clusters, matrix.device)
    target = _resolve_marginals(marginals, n_clusters, matrix.device)
    comm = _resolve_distributed(distributed)
    extreme_rows = _validate_values(matrix, bool(log_input), rows, comm)
    counts = comm.row_counts(n_samples, matrix.device)
    shard = _Shard(comm, offset=sum(counts[: comm.rank]), total=sum(counts))
    solver = _Solver(
        matrix, lamb, bool(log_input), target, storage, compute, rows, tol, int(max_iter), shard
    )
    if extreme_rows:
        solver.row_shift = _row_shifts(matrix, bool(log_input), rows)
    return solver.run(return_plan=bool(return_plan), warm_start=bool(warm_start))


# --------------------------------------------------------------------------------------
# input checks
# --------------------------------------------------------------------------------------


def _as_tensor(probs: Any) -> torch.Tensor:
    if isinstance(probs, torch.Tensor):
        matrix = probs.detach()
    else:
        try:
            array = np.asarray(probs)
        except Exception as exc:  # pragma: no cover - exotic objects
            raise TypeError(
                f"probs must be a NumPy array or a torch tensor, got {type(probs).__name__}."
            ) from exc
        if array.dtype == object or not (
            np.issubdtype(array.dtype, np.floating)
            or np.issubdtype(array.dtype, np.integer)
            or array.dtype == np.bool_
        ):
            raise TypeError(
                f"probs must hold real numbers, got a {type(probs).__name__} of dtype "
                f"{array.dtype}."
            )
        if array.dtype not in (np.float32, np.float64):
            array = array.astype(np.float32)
        with warnings.catch_warnings():
            # Read-only arrays (memory maps) are fine: the input is never written to.
            warnings.simplefilter("ignore", UserWarning)
            matrix = torch.from_numpy(array)
    if matrix.is_complex():
        raise TypeError("probs must be real, got a complex tensor.")
    if matrix.ndim != 2:
        raise ValueError(
            f"probs must be 2-D (n_samples, n_clusters), got shape {tuple(matrix.shape)}; "
            "reshape it, e.g. probs.reshape(len(probs), -1)."
        )
    if matrix.shape[0] == 0 or matrix.shape[1] == 0:
        raise ValueError(
            f"probs must have at least one row and one column, got shape {tuple(matrix.shape)}."
        )
    if not matrix.is_floating_point():
        matrix = matrix.float()
    return matrix


def _check_positive_float(value: Any, name: str) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be a positive number, got {value!r}.") from exc
    if not math.isfinite(number) or number <= 0:
        raise ValueError(f"{name} must be a positive finite number, got {value!r}.")
    return number


def _resolve_dtype(dtype: Any) -> torch.dtype:
    if dtype is None:
        return torch.float32
    resolved = None
    if isinstance(dtype, torch.dtype):
        resolved = dtype
    elif isinstance(dtype, str):
        resolved = _DTYPE_NAMES.get(dtype.lower().replace("torch.", ""))
    else:
        try:
            resolved = _DTYPE_NAMES.get(np.dtype(dtype).name)
        except TypeError:
            resolved = None
    if resolved is None:
        raise TypeError(
            f"dtype={dtype!r} is not understood; use None, 'float32', 'bfloat16' or 'float64'."
        )
    if resolved == torch.float16:
        raise ValueError(
            "dtype=float16 is not supported: its exponent range (about 1e-8 to 6e4) cannot "
            "hold the P**lamb kernel; use dtype='bfloat16' for half-size storage."
        )
    if resolved not in (torch.float32, torch.float64, torch.bfloat16):
        raise ValueError(
            f"dtype={dtype!r} is not supported; use None, 'float32', 'bfloat16' or 'float64'."
        )
    return resolved


def _resolve_chunk_size(chunk_size: int | None, n_clusters: int, device: torch.device) -> int:
    if chunk_size is None:
        budget = 2**26 if device.type == "cuda" else 2**19  # float32 entries per block
        return max(1, budget // n_clusters)
    if (
        isinstance(chunk_size, bool)
        or not isinstance(chunk_size, (int, np.integer))
        or chunk_size < 1
    ):
        raise ValueError(
            f"chunk_size must be a positive integer (rows per block) or None, got {chunk_size!r}."
        )
    return int(chunk_size)


def _resolve_marginals(marginals: Any, n_clusters: int, device: torch.device) -> torch.Tensor:
    """Return the target proportions as a float64 tensor summing to one."""
    if marginals is None:
        return torch.full((n_clusters,), 1.0 / n_clusters, dtype=torch.float64, device=device)
    if isinstance(marginals, torch.Tensor):
        values = marginals.detach().to("cpu", torch.float64).numpy()
    else:
        try:
            values = np.asarray(marginals, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise ValueError(
                f"marginals must be a vector of {n_clusters} positive numbers, got {marginals!r}."
            ) from exc
    if values.shape != (n_clusters,):
        raise ValueError(
            f"marginals must have shape ({n_clusters},) to match probs' {n_clusters} columns, "
            f"got shape {values.shape}."
        )
    if not np.all(np.isfinite(values)) or np.any(values <= 0):
        raise ValueError(
            "marginals must be finite and strictly positive (cluster proportions or counts); "
            f"got min {values.min():g}. Drop clusters that must stay empty from probs instead."
        )
    values = values / values.sum()
    return torch.as_tensor(values, dtype=torch.float64, device=device)


def _validate_values(matrix: torch.Tensor, log_input: bool, rows: int, comm: _Collective) -> bool:
    """Check NaN/inf, negative probabilities and rows without mass, one block at a time.

    Returns whether some row is on an extreme scale (see :func:`_row_shifts`). Distributed,
    the findings of every rank are combined first, so that all ranks raise the same error
    (none is left waiting in a collective) and agree on the extreme-scale path.
    """
    problems = torch.tensor(_local_problems(matrix, log_input, rows), dtype=torch.int64)
    nan, infinite, negative, empty_row, extreme_rows = (
        comm.all_reduce(problems.to(matrix.device), "max").bool().tolist()
    )
    if nan:
        raise ValueError("probs contains NaN; check the model outputs that produced it.")
    if infinite:
        allowed = " (-inf, a zero probability, is allowed)" if log_input else ""
        raise ValueError(f"probs contains infinite values{allowed}; pass finite numbers.")
    if negative:
        raise ValueError(
            "probs contains negative values, which are not probabilities; pass softmax "
            "outputs, or pass log-probabilities/logits with log_input=True."
        )
    if empty_row:
        what = "all -inf" if log_input else "without any positive probability"
        raise ValueError(f"probs has a row {what}; every sample needs some possible cluster.")
    return extreme_rows


def _local_problems(matrix: torch.Tensor, log_input: bool, rows: int) -> list[bool]:
    """NaN, forbidden infinities, negatives, empty rows and extreme-scale rows of ``matrix``.

    Three reductions per block and no N x K temporaries: a block's sum is finite unless it
    holds NaN or +-inf (or overflows), and only then are the blocks searched precisely.
    """
    problems = torch.zeros(4, dtype=torch.bool, device=matrix.device)
    for start in range(0, matrix.shape[0], rows):
        block = matrix[start : start + rows]
        row_max = block.amax(dim=1)
        if log_input:
            # -inf entries are allowed; the row maxima are finite unless a row is all -inf.
            problems[0] |= ~torch.isfinite(block.clamp(min=torch.finfo(block.dtype).min).sum())
            problems[2] |= (row_max == -math.inf).any()
            problems[3] |= (row_max.abs() > _SAFE_LOG_INPUT).any()
        else:
            problems[0] |= ~torch.isfinite(block.sum())
            problems[1] |= block.amin() < 0
            problems[2] |= (row_max <= 0).any()
            problems[3] |= ((row_max > 2.0**_SAFE_LOG2) | (row_max < 2.0**-_SAFE_LOG2)).any()
    non_finite, negative, empty_row, extreme_rows = problems.tolist()
    nan = infinite = False
    if non_finite:  # else the sum merely overflowed: the values are fine
        blocks = [matrix[start : start + rows] for start in range(0, matrix.shape[0], rows)]
        nan = any(bool(torch.isnan(block).any()) for block in blocks)
        infinite = not nan and (
            any(bool(torch.isposinf(block).any()) for block in blocks)
            or (not log_input and any(bool(torch.isneginf(block).any()) for block in blocks))
        )
    return [nan, infinite, negative, empty_row, extreme_rows]


def _row_shifts(matrix: torch.Tensor, log_input: bool, rows: int) -> torch.Tensor:
    """Per-row log offsets that bring rows on an extreme scale to a maximum of one.

    ``log2(max_k P[i, k])`` for probabilities, ``max_k P[i, k]`` itself (natural log units)
    with ``log_input``, and zero for rows on an ordinary scale (see the module docstring).
    In the input's precision, at least float32; subtracted in :meth:`_Solver._build`.
    """
    wide = torch.promote_types(matrix.dtype, torch.float32)
    shifts = torch.zeros(matrix.shape[0], dtype=wide, device=matrix.device)
    for start in range(0, matrix.shape[0], rows):
        row_max = matrix[start : start + rows].amax(dim=1).to(wide)
        if log_input:
            shift = torch.where(row_max.abs() > _SAFE_LOG_INPUT, row_max, 0.0)
        else:
            log2_max = torch.log2(row_max)
            shift = torch.where(log2_max.abs() > _SAFE_LOG2, log2_max, 0.0)
        shifts[start : start + row_max.shape[0]] = shift
    return shifts


# --------------------------------------------------------------------------------------
# solver
# --------------------------------------------------------------------------------------


def _relax_less(omega: float) -> float:
    """Halve the over-relaxation ``omega - 1``; plain Sinkhorn (1.0) once it is small."""
    omega = 1.0 + 0.5 * (omega - 1.0)
    return 1.0 if omega < 1.05 else omega


@dataclass(frozen=True)
class _Shard:
    """Where a solver's rows lie in the whole matrix: rows ``offset`` onwards of ``total``.

    One process holds every row (``offset=0``); distributed, each rank holds a
    consecutive block and ``comm`` all-reduces the column sums.
    """

    comm: _Collective
    offset: int
    total: int

    def every(self, stride: int) -> tuple[int, _Shard]:
        """First local row of the global rows ``0, stride, 2 stride, ...``, and their shard."""
        return (-self.offset) % stride, _Shard(
            self.comm, offset=-(-self.offset // stride), total=-(-self.total // stride)
        )


@dataclass
class _SolveState:
    """Kernel, scalings, relaxation and counters of one solve, updated in place."""

    kernel: torch.Tensor
    log_shift: torch.Tensor
    target: torch.Tensor
    log_target: torch.Tensor
    log_v: torch.Tensor
    scale_v: torch.Tensor
    log_u: torch.Tensor
    col_sums: torch.Tensor
    omega_v: float = _OMEGA_V
    omega_u: float = _OMEGA_U
    u_is_valid: bool = False  # log_u holds the previous iterate (False after a (re)build)
    best_error: float = math.inf
    stalled: int = 0
    error: float = math.inf
    converged: bool = False
    n_iter: int = 0
    n_builds: int = 1

    def track_progress(self, error: float) -> None:
        """Reduce the over-relaxation when the error has not improved for a while."""
        if error < self.best_error:
            self.best_error, self.stalled = error, 0
            return
        self.stalled += 1
        if self.stalled >= _STALL_ITERATIONS and (self.omega_v > 1.0 or self.omega_u > 1.0):
            self.omega_v = _relax_less(self.omega_v)
            self.omega_u = _relax_less(self.omega_u)
            self.best_error, self.stalled = error, 0


class _Solver:
    """Sinkhorn-Knopp on one N x K kernel buffer, see the module docstring."""

    def __init__(
        self,
        matrix: torch.Tensor,
        lamb: float,
        log_input: bool,
        target: torch.Tensor,
        storage: torch.dtype,
        compute: torch.dtype,
        rows: int,
        tol: float,
        max_iter: int,
        shard: _Shard | None = None,
    ) -> None:
        self.matrix = matrix
        self.lamb = lamb
        self.log_input = log_input
        self.target = target  # float64 proportions, sum 1
        self.storage = storage
        self.compute = compute
        self.rows = rows
        self.tol = tol
        self.max_iter = max_iter
        self.device = matrix.device
        self.shard = shard if shard is not None else _Shard(_Collective(), 0, matrix.shape[0])
        #: (N,) log offsets of rows on an extreme scale (:func:`_row_shifts`), or None.
        self.row_shift: torch.Tensor | None = None

    # -- the kernel --------------------------------------------------------------------

    def _build(self, kernel: torch.Tensor, log_shift: torch.Tensor) -> None:
        """Fill ``kernel`` from the input, one row block at a time (see module docstring).

        ``exp(max(S + g - rowmax(S + g), -FLOOR))`` with ``S = lamb * max(log P,
        rowmax(log P) - DATA_FLOOR)``; written straight into ``kernel`` when it is in the
        compute dtype, else through one block-sized float32 buffer.
        """
        # Base 2 throughout: exp2 is about 3x faster than exp on CPUs.
        shift = (log_shift / math.log(2.0)).to(self.compute).unsqueeze(0)
        data_floor, floor = _DATA_FLOOR / math.log(2.0), _FLOOR / math.log(2.0)
        direct = kernel.dtype == self.compute
        buffer = None
        for start in range(0, kernel.shape[0], self.rows):
            block = self.matrix[start : start + self.rows]
            if direct:
                values = kernel[start : start + block.shape[0]]
            else:
                if buffer is None:
                    buffer = torch.empty(
                        (min(self.rows, kernel.shape[0]), kernel.shape[1]),
                        dtype=self.compute,
                        device=self.device,
                    )
                values = buffer[: block.shape[0]]
            if self.row_shift is not None:
                row_shift = self.row_shift[start : start + block.shape[0]]
                self._write_shifted_log2(block, row_shift, values)
            elif self.log_input:
                values.copy_(block).mul_(1.0 / math.log(2.0))
            elif block.dtype == values.dtype:
                torch.log2(block, out=values)
            else:
                values.copy_(block).log2_()
            row_max = values.amax(dim=1, keepdim=True)
            values.clamp_(min=row_max - data_floor)  # zero probabilities become tiny ones
            torch.add(shift, values, alpha=self.lamb, out=values)
            row_max = values.amax(dim=1, keepdim=True)
            values.clamp_(min=row_max - floor).sub_(row_max).exp2_()
            if not direct:
                kernel[start : start + block.shape[0]].copy_(values)

    def _write_shifted_log2(
        self, block: torch.Tensor, shift: torch.Tensor, values: torch.Tensor
    ) -> None:
        """``log2`` of ``block`` minus its rows' offsets, computed before any narrowing.

        In the wider of the input's dtype and float32, so that float64 values beyond
        float32's range (``P * 1e39``, ``P * 1e-45``) keep their row's relative scale.
        """
        wide = block.to(torch.promote_types(block.dtype, shift.dtype))
        if self.log_input:
            wide = (wide - shift.unsqueeze(1)).mul_(1.0 / math.log(2.0))
        else:
            wide = torch.log2(wide).sub_(shift.unsqueeze(1))
        values.copy_(wide)

    def _annealed_duals(self) -> torch.Tensor:
        """Log column scalings for ``lamb``, from a solve at ``lamb / _ANNEAL_FACTOR``."""
        coarse = _Solver(
            self.matrix,
            self.lamb / _ANNEAL_FACTOR,
            self.log_input,
            self.target,
            self.storage,
            self.compute,
            self.rows,
            self.tol,
            self.max_iter,
            self.shard,
        )
        coarse.row_shift = self.row_shift
        result = coarse.run(return_plan=False, warm_start=True)
        return result.log_v * _ANNEAL_FACTOR

    def _blocks(self, kernel: torch.Tensor):
        """Yield row blocks of ``kernel`` in the compute dtype (upcast for bfloat16)."""
        if kernel.dtype == self.compute:
            for start in range(0, kernel.shape[0], self.rows):
                yield start, kernel[start : start + self.rows]
            return
        buffer = torch.empty(
            (min(self.rows, kernel.shape[0]), kernel.shape[1]),
            dtype=self.compute,
            device=self.device,
        )
        for start in range(0, kernel.shape[0], self.rows):
            block = kernel[start : start + self.rows]
            upcast = buffer[: block.shape[0]]
            upcast.copy_(block)
            yield start, upcast

    # -- iterations --------------------------------------------------------------------

    def run(self, *, return_plan: bool, warm_start: bool) -> SinkhornResult:
        """Solve, optionally from a subsampled warm start, and extract labels and plan."""
        log_shift, warm_iter = self._warm_start(warm_start)
        state = self._initial_state(log_shift)
        self._iterate(state)
        labels, plan = self._labels_and_plan(state.kernel, state.scale_v, return_plan)
        total_log_v = state.log_shift + state.log_v.to(torch.float64)
        return SinkhornResult(
            labels=labels,
            plan=plan,
            log_v=total_log_v - total_log_v.max(),
            n_iter=state.n_iter,
            n_builds=state.n_builds,
            error=state.error,
            converged=state.converged,
            warm_start_iter=warm_iter,
        )

    def _warm_start(self, warm_start: bool) -> tuple[torch.Tensor, int]:
        """Initial log column shifts (from every ``_WARM_STRIDE``-th row) and their iterations."""
        n_clusters = self.matrix.shape[1]
        stride = _WARM_STRIDE
        if not warm_start or self.shard.total // stride < _WARM_MIN_ROWS_PER_CLUSTER * n_clusters:
            return torch.zeros(n_clusters, dtype=torch.float64, device=self.device), 0
        first, sub_shard = self.shard.every(stride)
        sub = _Solver(
            self.matrix[first::stride],
            self.lamb,
            self.log_input,
            self.target,
            self.storage,
            self.compute,
            self.rows,
            max(self.tol, _WARM_TOL),
            self.max_iter,
            sub_shard,
        )
        if self.row_shift is not None:
            sub.row_shift = self.row_shift[first::stride]
        sub_result = sub.run(return_plan=False, warm_start=True)
        return sub_result.log_v, sub_result.n_iter + sub_result.warm_start_iter

    def _initial_state(self, log_shift: torch.Tensor) -> _SolveState:
        """Build the kernel for ``log_shift`` and start from unit row and column scalings."""
        n_samples, n_clusters = self.matrix.shape
        kernel = torch.empty((n_samples, n_clusters), dtype=self.storage, device=self.device)
        self._build(kernel, log_shift)
        # Rows have mass 1 each, so cluster k must receive n_samples * target[k] (all ranks').
        target = (self.target * self.shard.total).to(self.compute)
        return _SolveState(
            kernel=kernel,
            log_shift=log_shift,
            target=target,
            log_target=torch.log(target),
            log_v=torch.zeros(n_clusters, dtype=self.compute, device=self.device),
            scale_v=torch.ones(n_clusters, dtype=self.compute, device=self.device),
            log_u=torch.zeros(n_samples, dtype=self.compute, device=self.device),
            col_sums=torch.empty(n_clusters, dtype=self.compute, device=self.device),
        )

    def _iterate(self, state: _SolveState) -> None:
        """Alternate row and column updates until ``tol`` or ``max_iter`` is reached."""
        while state.n_iter < self.max_iter:
            state.n_iter += 1
            self._update_rows(state)
            if state.n_iter == _ANNEAL_AFTER and self.lamb > _ANNEAL_MIN_LAMB:
                self._anneal(state)
                continue
            if self._update_columns(state):
                break
        state.log_v = state.log_v - state.log_v.max()
        state.scale_v = torch.exp(state.log_v)

    def _update_rows(self, state: _SolveState) -> None:
        """One pass over the kernel: new row scalings ``u`` and the column sums of diag(u) K."""
        state.col_sums.zero_()
        for start, block in self._blocks(state.kernel):
            block_log_u = state.log_u[start : start + block.shape[0]]
            row_sums = torch.mv(block, state.scale_v)
            if state.u_is_valid:  # log u <- (1 - w) log u + w log(1 / (K v))
                block_log_u.mul_(1.0 - state.omega_u).sub_(torch.log(row_sums), alpha=state.omega_u)
                state.col_sums.addmv_(block.T, torch.exp(block_log_u))
            else:
                torch.log(row_sums, out=block_log_u).neg_()
                state.col_sums.addmv_(block.T, row_sums.reciprocal_())
        # Distributed: every rank gets the same sums, so all take the same decisions.
        self.shard.comm.all_reduce(state.col_sums)
        state.u_is_valid = True

    def _anneal(self, state: _SolveState) -> None:
        """Restart from the scaled duals of an easier problem (epsilon scaling)."""
        # Slow progress means duals of large magnitude (clusters that only reach their
        # target through improbable samples). Solve at lamb / f, whose duals are about f
        # times smaller, and scale them up.
        state.log_shift = self._annealed_duals()
        self._build(state.kernel, state.log_shift)
        state.n_builds += 1
        state.log_v.zero_()
        state.scale_v.fill_(1.0)
        state.u_is_valid, state.best_error, state.stalled = False, math.inf, 0
        state.omega_v, state.omega_u = _OMEGA_V, _OMEGA_U

    def _update_columns(self, state: _SolveState) -> bool:
        """Measure the error and update the column scalings ``v``; True once converged."""
        # Cluster masses of diag(u) K diag(v) for the current iterate.
        error = (state.scale_v * state.col_sums / state.target - 1.0).abs_().max().item()
        state.error = error
        if not math.isfinite(error):
            raise FloatingPointError(
                "sinkhorn_knopp produced non-finite scalings; please report this input."
            )
        sinkhorn_log_v = state.log_target - torch.log(state.col_sums)
        if error < self.tol:
            state.log_v = sinkhorn_log_v  # one last plain update, then stop
            state.converged = True
            return True
        state.track_progress(error)
        state.log_v = (1.0 - state.omega_v) * state.log_v + state.omega_v * sinkhorn_log_v
        state.log_v -= state.log_v.max()
        if -state.log_v.min().item() > _MAX_LOG_RANGE:
            self._absorb(state)
        torch.exp(state.log_v, out=state.scale_v)
        return False

    def _absorb(self, state: _SolveState) -> None:
        """Move ``log v`` into the log shift and rebuild the kernel from the input."""
        state.log_shift += state.log_v.to(torch.float64)
        state.log_shift -= state.log_shift.max()
        state.log_v.zero_()
        self._build(state.kernel, state.log_shift)
        state.n_builds += 1
        state.u_is_valid = False

    def _labels_and_plan(
        self, kernel: torch.Tensor, scale_v: torch.Tensor, return_plan: bool
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Hard labels and, when asked for, the row-normalised plan (computed in ``kernel``)."""
        n_samples, n_clusters = kernel.shape
        labels = torch.empty(n_samples, dtype=torch.int64, device=self.device)
        plan = None
        if return_plan and kernel.dtype != self.compute:
            plan = torch.empty((n_samples, n_clusters), dtype=self.compute, device=self.device)
        for start, block in self._blocks(kernel):
            stop = start + block.shape[0]
            if return_plan:
                out = kernel[start:stop] if plan is None else plan[start:stop]
                weighted = torch.mul(block, scale_v, out=block)
                labels[start:stop] = weighted.argmax(dim=1)
                weighted /= weighted.sum(dim=1, keepdim=True)
                if out.data_ptr() != weighted.data_ptr():
                    out.copy_(weighted)
            else:
                labels[start:stop] = (block * scale_v).argmax(dim=1)
        if return_plan and plan is None:
            plan = kernel
        return labels, plan
