"""Tests of deepclust.losses."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from deepclust.losses import (
    ConfidenceCrossEntropyLoss,
    EntropyLoss,
    MultiHeadCrossEntropy,
    NTXentLoss,
    SCANLoss,
    entropy,
)

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


# --------------------------------------------------------------------------- NT-Xent


def _ntxent_numpy(z1: np.ndarray, z2: np.ndarray, temperature: float) -> float:
    """NT-Xent written out anchor by anchor."""
    z = np.concatenate([z1, z2]).astype(np.float64)
    z = z / np.linalg.norm(z, axis=1, keepdims=True)
    two_b = z.shape[0]
    batch = two_b // 2
    losses = []
    for i in range(two_b):
        positive = (i + batch) % two_b
        numerator = math.exp(float(z[i] @ z[positive]) / temperature)
        denominator = sum(
            math.exp(float(z[i] @ z[k]) / temperature) for k in range(two_b) if k != i
        )
        losses.append(-math.log(numerator / denominator))
    return sum(losses) / two_b


def test_ntxent_closed_form_on_orthogonal_pairs():
    # Views e1, e2 | e1, e2 at temperature 1: every anchor sees its positive at
    # cosine 1 and two negatives at cosine 0, so loss = -log(e / (e + 2)).
    z = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    loss = NTXentLoss(temperature=1.0)(z, z.clone())
    assert loss.item() == pytest.approx(math.log(1 + 2 / math.e), rel=1e-6)
    assert loss.item() == pytest.approx(0.551444, abs=1e-5)


def test_ntxent_matches_numpy_arithmetic():
    z1 = np.array([[1.0, 2.0, 0.0], [0.5, -1.0, 1.0], [0.0, 0.0, 3.0]])
    z2 = np.array([[1.0, 1.5, 0.5], [-1.0, 0.5, 0.0], [0.2, 0.1, 1.0]])
    expected = _ntxent_numpy(z1, z2, temperature=0.5)
    loss = NTXentLoss(temperature=0.5)(torch.tensor(z1), torch.tensor(z2))
    assert loss.dtype == torch.float32
    assert loss.item() == pytest.approx(expected, rel=1e-5)


def test_ntxent_is_scale_invariant_and_symmetric():
    generator = torch.Generator().manual_seed(0)
    z1, z2 = torch.randn(6, 4, generator=generator), torch.randn(6, 4, generator=generator)
    loss_fn = NTXentLoss(0.2)
    base = loss_fn(z1, z2)
    torch.testing.assert_close(loss_fn(7.0 * z1, 0.3 * z2), base)
    torch.testing.assert_close(loss_fn(z2, z1), base)


def test_ntxent_lower_for_aligned_views():
    generator = torch.Generator().manual_seed(1)
    z1 = torch.randn(16, 8, generator=generator)
    aligned = z1 + 0.05 * torch.randn(16, 8, generator=generator)
    unrelated = torch.randn(16, 8, generator=generator)
    loss_fn = NTXentLoss(0.1)
    assert loss_fn(z1, aligned) < loss_fn(z1, unrelated) - 1.0


def test_ntxent_gradient_step_decreases_loss():
    generator = torch.Generator().manual_seed(2)
    z1 = torch.randn(8, 5, generator=generator, requires_grad=True)
    z2 = torch.randn(8, 5, generator=generator)
    loss_fn = NTXentLoss(0.5)
    before = loss_fn(z1, z2)
    before.backward()
    with torch.no_grad():
        after = loss_fn(z1 - 0.5 * z1.grad, z2)
    assert after < before


@pytest.mark.parametrize(
    ("z1", "z2"),
    [(torch.zeros(4, 3), torch.zeros(4, 2)), (torch.zeros(1, 3), torch.zeros(1, 3))],
)
def test_ntxent_rejects_bad_shapes(z1, z2):
    with pytest.raises(ValueError):
        NTXentLoss()(z1, z2)


def test_ntxent_rejects_bad_temperature():
    with pytest.raises(ValueError, match="temperature"):
        NTXentLoss(temperature=0.0)


# --------------------------------------------------------------------------- SCAN


def test_scan_loss_hand_computed():
    anchor_probs = [[0.5, 0.5], [0.9, 0.1]]
    neighbor_probs = [[0.5, 0.5], [0.8, 0.2]]
    # <p_a, p_n> = 0.25 + 0.25 = 0.5 and 0.72 + 0.02 = 0.74
    consistency = -(math.log(0.5) + math.log(0.74)) / 2
    # mean anchor distribution = [0.7, 0.3]
    ent = -(0.7 * math.log(0.7) + 0.3 * math.log(0.3))
    assert consistency == pytest.approx(0.497126, abs=1e-6)
    assert ent == pytest.approx(0.610864, abs=1e-6)

    total, got_consistency, got_entropy = SCANLoss(entropy_weight=5.0)(
        torch.tensor(anchor_probs).log(), torch.tensor(neighbor_probs).log()
    )
    assert got_consistency.item() == pytest.approx(consistency, rel=1e-5)
    assert got_entropy.item() == pytest.approx(ent, rel=1e-5)
    assert total.item() == pytest.approx(consistency - 5.0 * ent, rel=1e-5)


def test_scan_loss_uniform_entropy_and_weight_zero():
    logits = torch.zeros(4, 5)
    total, consistency, ent = SCANLoss(entropy_weight=0.0)(logits, logits)
    assert ent.item() == pytest.approx(math.log(5), rel=1e-6)
    assert consistency.item() == pytest.approx(math.log(5), rel=1e-6)  # <u, u> = 1/5
    assert total.item() == pytest.approx(consistency.item())


def test_scan_loss_clamps_disjoint_predictions():
    anchor = torch.tensor([[200.0, -200.0]], requires_grad=True)
    neighbor = torch.tensor([[-200.0, 200.0]])
    total, consistency, _ = SCANLoss()(anchor, neighbor)
    assert torch.isfinite(total)
    assert consistency.item() == pytest.approx(-math.log(1e-8), rel=1e-4)
    total.backward()
    assert torch.isfinite(anchor.grad).all()


def test_scan_loss_gradient_pulls_neighbors_together():
    generator = torch.Generator().manual_seed(3)
    anchor = torch.randn(8, 4, generator=generator, requires_grad=True)
    neighbor = torch.randn(8, 4, generator=generator)
    loss_fn = SCANLoss(entropy_weight=0.0)
    _, before, _ = loss_fn(anchor, neighbor)
    before.backward()
    with torch.no_grad():
        _, after, _ = loss_fn(anchor - 1.0 * anchor.grad, neighbor)
    assert after < before


def test_scan_loss_leading_dimensions_are_independent_problems():
    torch.manual_seed(0)
    anchor, neighbor = torch.randn(3, 8, 4), torch.randn(3, 8, 4)
    total, consistency, ent = SCANLoss(entropy_weight=2.0)(anchor, neighbor)
    assert total.shape == consistency.shape == ent.shape == (3,)
    for h in range(3):
        expected = SCANLoss(entropy_weight=2.0)(anchor[h], neighbor[h])
        for got, want in zip((total[h], consistency[h], ent[h]), expected, strict=True):
            torch.testing.assert_close(got, want)


def test_scan_loss_rejects_bad_input():
    with pytest.raises(ValueError):
        SCANLoss()(torch.zeros(4, 3), torch.zeros(4, 2))
    with pytest.raises(ValueError, match="shape"):
        SCANLoss()(torch.zeros(4), torch.zeros(4))
    with pytest.raises(ValueError, match="entropy_weight"):
        SCANLoss(entropy_weight=-1.0)


def test_entropy_helpers():
    probs = torch.tensor([[0.5, 0.5, 0.0], [1.0, 0.0, 0.0]])
    torch.testing.assert_close(entropy(probs), torch.tensor([math.log(2), 0.0]))
    # batch mean of two one-hot predictions on different clusters -> log 2
    logits = torch.tensor([[50.0, 0.0], [0.0, 50.0]])
    assert EntropyLoss()(logits).item() == pytest.approx(math.log(2), rel=1e-6)


# --------------------------------------------------------------------------- confidence


def _confidence_example() -> tuple[torch.Tensor, torch.Tensor]:
    weak = torch.tensor(
        [
            [10.0, 0.0, 0.0],  # confident, target 0
            [0.0, 10.0, 0.0],  # confident, target 1
            [10.0, 0.0, 0.0],  # confident, target 0
            [1.0, 0.0, 0.0],  # max prob e / (e + 2) = 0.58: not confident
        ]
    )
    strong_probs = torch.tensor(
        [[0.5, 0.25, 0.25], [0.2, 0.6, 0.2], [0.8, 0.1, 0.1], [0.1, 0.1, 0.8]]
    )
    return weak, strong_probs.log()


def test_confidence_loss_hand_computed_balanced():
    weak, strong = _confidence_example()
    loss, n_confident = ConfidenceCrossEntropyLoss(threshold=0.9)(weak, strong)
    assert n_confident == 3
    # counts: class 0 -> 2, class 1 -> 1; K' = 2; weights n/(K' n_c) = 0.75, 1.5
    ce = [math.log(2), -math.log(0.6), -math.log(0.8)]
    weights = [0.75, 1.5, 0.75]
    expected = sum(w * c for w, c in zip(weights, ce)) / sum(weights)
    # = mean over classes of per-class mean CE
    assert expected == pytest.approx(0.5 * (ce[0] + ce[2]) / 2 + 0.5 * ce[1])
    assert loss.item() == pytest.approx(expected, rel=1e-5)


def test_confidence_loss_hand_computed_unbalanced():
    weak, strong = _confidence_example()
    loss, n_confident = ConfidenceCrossEntropyLoss(0.9, class_balancing=False)(weak, strong)
    assert n_confident == 3
    expected = (math.log(2) - math.log(0.6) - math.log(0.8)) / 3
    assert loss.item() == pytest.approx(expected, rel=1e-5)


def test_confidence_loss_balancing_weighs_classes_equally():
    weak, strong = _confidence_example()
    # Repeat the class-0 sample with CE = log 2 five more times.
    weak_more = torch.cat([weak, weak[:1].repeat(5, 1)])
    strong_more = torch.cat([strong, strong[:1].repeat(5, 1)])
    balanced = ConfidenceCrossEntropyLoss(0.9)
    unbalanced = ConfidenceCrossEntropyLoss(0.9, class_balancing=False)
    # Balanced: class 1 still weighs half the loss, class 0's mean CE changes.
    ce0 = (6 * math.log(2) - math.log(0.8)) / 7
    expected = 0.5 * ce0 + 0.5 * -math.log(0.6)
    loss, n = balanced(weak_more, strong_more)
    assert n == 8
    assert loss.item() == pytest.approx(expected, rel=1e-5)
    unbalanced_loss, _ = unbalanced(weak_more, strong_more)
    assert unbalanced_loss.item() == pytest.approx(
        (6 * math.log(2) - math.log(0.6) - math.log(0.8)) / 8, rel=1e-5
    )
    assert abs(unbalanced_loss.item() - loss.item()) > 0.03


def test_confidence_loss_no_confident_sample():
    loss, n_confident = ConfidenceCrossEntropyLoss(0.99)(torch.zeros(5, 4), torch.randn(5, 4))
    assert loss is None
    assert n_confident == 0


def test_confidence_loss_gradient_only_through_strong():
    weak, strong = _confidence_example()
    weak.requires_grad_(True)
    strong.requires_grad_(True)
    loss, _ = ConfidenceCrossEntropyLoss(0.9)(weak, strong)
    loss.backward()
    assert weak.grad is None
    assert strong.grad is not None
    assert torch.all(strong.grad[3] == 0)  # the unconfident sample gives no gradient
    assert torch.any(strong.grad[:3] != 0)


def test_confidence_loss_rejects_bad_input():
    with pytest.raises(ValueError, match="threshold"):
        ConfidenceCrossEntropyLoss(threshold=1.0)
    with pytest.raises(ValueError):
        ConfidenceCrossEntropyLoss()(torch.zeros(3, 2), torch.zeros(3, 4))


# --------------------------------------------------------------------------- multi-head


def test_multihead_uniform_logits():
    logits = [torch.zeros(4, 3), torch.zeros(4, 5)]
    loss = MultiHeadCrossEntropy()(logits, torch.tensor([0, 1, 2, 0]))
    assert loss.item() == pytest.approx((math.log(3) + math.log(5)) / 2, rel=1e-6)


def _cross_entropy_numpy(logits: np.ndarray, targets: np.ndarray) -> float:
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    return float(-log_probs[np.arange(len(targets)), targets].mean())


def test_multihead_per_head_targets():
    rng = np.random.default_rng(0)
    logits = [rng.normal(size=(6, 4)), rng.normal(size=(6, 7))]
    targets = np.array([[0, 1, 2, 3, 0, 1], [6, 5, 4, 3, 2, 1]])
    expected = np.mean([_cross_entropy_numpy(lg, t) for lg, t in zip(logits, targets)])
    loss_fn = MultiHeadCrossEntropy()
    torch_logits = [torch.tensor(lg) for lg in logits]
    loss = loss_fn(torch_logits, torch.tensor(targets))
    assert loss.item() == pytest.approx(expected, rel=1e-5)
    as_list = loss_fn(torch_logits, [torch.tensor(t) for t in targets])
    assert as_list.item() == pytest.approx(expected, rel=1e-5)


def test_multihead_ignore_index():
    logits = [torch.tensor([[2.0, 0.0], [0.0, 0.0]])]
    loss = MultiHeadCrossEntropy(ignore_index=-1)(logits, torch.tensor([-1, 1]))
    assert loss.item() == pytest.approx(math.log(2), rel=1e-6)


def test_multihead_rejects_bad_input():
    loss_fn = MultiHeadCrossEntropy()
    with pytest.raises(TypeError, match="list"):
        loss_fn(torch.zeros(4, 3), torch.zeros(4, dtype=torch.long))
    with pytest.raises(ValueError, match="n_heads"):
        loss_fn([torch.zeros(4, 3)] * 2, torch.zeros(3, 4, dtype=torch.long))
    with pytest.raises(ValueError, match="head 1"):
        loss_fn([torch.zeros(4, 3), torch.zeros(5, 3)], torch.zeros(4, dtype=torch.long))
    with pytest.raises(ValueError, match="empty"):
        loss_fn([], torch.zeros(4, dtype=torch.long))


# --------------------------------------------------------------------------- precision


def _all_losses(logits_a: torch.Tensor, logits_b: torch.Tensor) -> list[torch.Tensor]:
    targets = logits_b.argmax(dim=1)
    confidence_loss, _ = ConfidenceCrossEntropyLoss(threshold=0.5)(logits_a, logits_b)
    return [
        NTXentLoss(0.1)(logits_a, logits_b),
        SCANLoss()(logits_a, logits_b)[0],
        confidence_loss,
        MultiHeadCrossEntropy()([logits_a, logits_b], targets),
        EntropyLoss()(logits_a),
    ]


def _sharp_logits(device: str) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(4)
    a = 4.0 * torch.randn(16, 10, generator=generator)
    b = a + torch.randn(16, 10, generator=generator)
    return a.to(device), b.to(device)


def test_losses_accept_bfloat16_under_cpu_autocast():
    a, b = _sharp_logits("cpu")
    reference = _all_losses(a.bfloat16().float(), b.bfloat16().float())
    with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
        low = _all_losses(a.bfloat16(), b.bfloat16())
    for value, expected in zip(low, reference):
        assert value.dtype == torch.float32
        torch.testing.assert_close(value, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.gpu
@needs_cuda
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_losses_on_cuda_under_autocast(dtype):
    a, b = _sharp_logits("cuda")
    reference = _all_losses(a.to(dtype).float().cpu(), b.to(dtype).float().cpu())
    a = a.to(dtype).requires_grad_(True)
    with torch.autocast(device_type="cuda", dtype=dtype):
        values = _all_losses(a, b.to(dtype))
    for value, expected in zip(values, reference):
        assert value.device.type == "cuda"
        assert value.dtype == torch.float32
        torch.testing.assert_close(value.cpu(), expected, rtol=1e-4, atol=1e-4)
    torch.stack(values).sum().backward()
    assert torch.isfinite(a.grad).all()


def test_functional_cross_entropy_reference_agrees():
    # Sanity link between the numpy helper above and torch.
    logits = np.array([[1.0, 2.0, 3.0], [0.0, -1.0, 1.0]])
    targets = np.array([2, 0])
    expected = F.cross_entropy(torch.tensor(logits), torch.tensor(targets)).item()
    assert _cross_entropy_numpy(logits, targets) == pytest.approx(expected)
