"""Tests for deepclust.augment: batched on-device augmentation policies."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from torchvision.transforms.v2 import functional as TF

from deepclust.augment import (
    AUGMENTATION_POLICIES,
    STRONG_OPS,
    IdentityAugmentation,
    SimCLRAugmentation,
    StrongAugmentation,
    WeakAugmentation,
    make_augmentation,
)
from deepclust.augment import _color as color
from deepclust.augment import _geometric as geometric

POLICIES = ("none", "weak", "simclr", "simclr-strong", "strong")
RANDOM_POLICIES = ("weak", "simclr", "simclr-strong", "strong")


def _images(batch: int = 8, channels: int = 3, height: int = 32, width: int = 32, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(batch, channels, height, width, generator=generator)


# --------------------------------------------------------------------------- contract


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize("channels", [1, 3, 4])
def test_shape_dtype_device_and_range_are_kept(policy, channels):
    x = _images(channels=channels, height=28, width=28)
    before = x.clone()
    out = make_augmentation(policy)(x)
    assert out.shape == x.shape
    assert out.dtype == x.dtype
    assert out.device == x.device
    assert out.min() >= 0.0 and out.max() <= 1.0
    assert torch.equal(x, before), "the input must not be modified in place"
    if policy != "none":
        assert out.data_ptr() != x.data_ptr()
        assert not torch.allclose(out, x)


@pytest.mark.parametrize("policy", RANDOM_POLICIES)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float16, torch.bfloat16])
def test_other_float_dtypes_are_kept(policy, dtype):
    x = _images(batch=4).to(dtype)
    out = make_augmentation(policy)(x)
    assert out.dtype == dtype
    assert out.shape == x.shape
    assert out.min() >= 0.0 and out.max() <= 1.0


@settings(max_examples=20, deadline=None)
@given(
    policy=st.sampled_from(RANDOM_POLICIES),
    batch=st.integers(1, 4),
    channels=st.sampled_from([1, 2, 3, 4]),
    height=st.integers(4, 40),
    width=st.integers(4, 40),
    seed=st.integers(0, 2**16),
)
def test_any_image_size_stays_in_range(policy, batch, channels, height, width, seed):
    x = _images(batch, channels, height, width, seed=seed)
    out = make_augmentation(policy)(x, generator=torch.Generator().manual_seed(seed))
    assert out.shape == x.shape
    assert torch.isfinite(out).all()
    assert out.min() >= 0.0 and out.max() <= 1.0


def test_modules_have_no_parameters_or_state():
    for policy in POLICIES:
        module = make_augmentation(policy)
        assert isinstance(module, nn.Module)
        assert list(module.parameters()) == []
        assert module.state_dict() == {}


def test_none_is_identity():
    x = _images()
    module = make_augmentation("none")
    assert isinstance(module, IdentityAugmentation)
    assert module(x) is x
    assert make_augmentation(None)(x) is x


def test_empty_batch():
    x = torch.rand(0, 3, 32, 32)
    for policy in POLICIES:
        assert make_augmentation(policy)(x).shape == (0, 3, 32, 32)


@pytest.mark.parametrize("policy", POLICIES)
def test_tabular_features_pass_through_unchanged(policy):
    features = torch.randn(10, 7)
    assert make_augmentation(policy)(features) is features


# --------------------------------------------------------------------------- randomness


@pytest.mark.parametrize("policy", RANDOM_POLICIES)
def test_identical_images_get_independent_parameters(policy):
    x = _images(batch=1).expand(16, -1, -1, -1).contiguous()
    out = make_augmentation(policy)(x, generator=torch.Generator().manual_seed(1))
    flat = out.flatten(1)
    distinct = {tuple(row) for row in torch.round(flat * 1e4).int().tolist()}
    assert len(distinct) >= 12, f"only {len(distinct)} distinct outputs out of 16"


@pytest.mark.parametrize("policy", RANDOM_POLICIES)
def test_reproducible_under_manual_seed(policy):
    x = _images()
    module = make_augmentation(policy)
    torch.manual_seed(123)
    first = module(x)
    torch.manual_seed(123)
    second = module(x)
    third = module(x)
    assert torch.equal(first, second)
    assert not torch.equal(second, third)


@pytest.mark.parametrize("policy", RANDOM_POLICIES)
def test_generator_argument(policy):
    x = _images()
    module = make_augmentation(policy)
    a = module(x, generator=torch.Generator().manual_seed(5))
    b = module(x, generator=torch.Generator().manual_seed(5))
    c = module(x, generator=torch.Generator().manual_seed(6))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    # The global generator is not consumed when one is given.
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    module(x, generator=torch.Generator().manual_seed(5))
    assert torch.equal(torch.rand(3), expected)


# --------------------------------------------------------------------------- weak


def _symmetric_shift(image: np.ndarray, dy: int, dx: int, pad: int, mode: str) -> np.ndarray:
    padded = np.pad(image, ((0, 0), (pad, pad), (pad, pad)), mode=mode)
    height, width = image.shape[1:]
    return padded[:, pad + dy : pad + dy + height, pad + dx : pad + dx + width]


@pytest.mark.parametrize(
    ("padding_mode", "numpy_mode"), [("zeros", "constant"), ("reflection", "symmetric")]
)
def test_weak_is_a_padded_crop_with_flip(padding_mode, numpy_mode):
    x = _images(batch=12, channels=3, height=32, width=32)
    out = WeakAugmentation(padding_mode=padding_mode)(x, generator=torch.Generator().manual_seed(3))
    pad = 4
    shifts, flips = set(), 0
    for image, result in zip(x.numpy(), out.numpy()):
        matches = [
            (dy, dx, flip)
            for flip in (False, True)
            for dy in range(-pad, pad + 1)
            for dx in range(-pad, pad + 1)
            if np.array_equal(
                _symmetric_shift(image[:, :, ::-1] if flip else image, dy, dx, pad, numpy_mode),
                result,
            )
        ]
        assert len(matches) == 1, "output must be an exact padded crop of the (flipped) input"
        shifts.add(matches[0][:2])
        flips += matches[0][2]
    assert len(shifts) > 1 and 0 < flips < 12


def test_weak_padding_zero_and_no_flip_is_identity():
    x = _images()
    out = WeakAugmentation(padding=0, flip_probability=0.0)(x)
    assert torch.equal(out, x)


# --------------------------------------------------------------------------- simclr


def test_simclr_without_randomness_is_identity():
    x = _images()
    module = SimCLRAugmentation(
        scale=(1.0, 1.0),
        ratio=(1.0, 1.0),
        flip_probability=0.0,
        jitter_probability=0.0,
        grayscale_probability=0.0,
    )
    torch.testing.assert_close(module(x), x, atol=1e-5, rtol=0)


def test_simclr_flip_only_matches_torch_flip():
    x = _images()
    module = SimCLRAugmentation(
        scale=(1.0, 1.0),
        ratio=(1.0, 1.0),
        flip_probability=1.0,
        jitter_probability=0.0,
        grayscale_probability=0.0,
    )
    torch.testing.assert_close(module(x), x.flip(-1), atol=1e-5, rtol=0)


def test_resized_crop_matrices_respect_scale_ratio_and_bounds():
    matrices = geometric.resized_crop_matrices(
        4000,
        32,
        32,
        scale=(0.2, 1.0),
        ratio=(3 / 4, 4 / 3),
        flip_probability=0.5,
        device=torch.device("cpu"),
        generator=torch.Generator().manual_seed(0),
    )
    width_fraction = matrices[:, 0, 0].abs()
    height_fraction = matrices[:, 1, 1]
    area = width_fraction * height_fraction
    # Rounding the crop to whole pixels moves the area a little outside [0.2, 1].
    assert area.min() >= 0.17 and area.max() <= 1.0
    aspect = width_fraction / height_fraction
    assert aspect.min() >= 0.7 and aspect.max() <= 1.4
    # The crop lies inside the image: centre +- half extent within [-1, 1].
    assert (matrices[:, 0, 2].abs() + width_fraction).max() <= 1.0 + 1e-6
    assert (matrices[:, 1, 2].abs() + height_fraction).max() <= 1.0 + 1e-6
    flipped = (matrices[:, 0, 0] < 0).float().mean()
    assert 0.45 < flipped < 0.55
    assert area.std() > 0.1


def test_simclr_on_grayscale_images():
    x = _images(batch=64, channels=1, height=28, width=28)
    module = SimCLRAugmentation(
        scale=(1.0, 1.0), ratio=(1.0, 1.0), flip_probability=0.0, jitter_probability=1.0
    )
    out = module(x, generator=torch.Generator().manual_seed(0))
    assert out.shape == x.shape
    # Brightness and contrast apply to every image (saturation/hue/grayscale are no-ops).
    changed = (out - x).flatten(1).abs().amax(dim=1) > 1e-3
    assert changed.all()


def test_simclr_jitter_and_grayscale_probabilities():
    x = _images(batch=400, height=8, width=8)
    module = SimCLRAugmentation(scale=(1.0, 1.0), ratio=(1.0, 1.0), flip_probability=0.0)
    out = module(x, generator=torch.Generator().manual_seed(0))
    unchanged = (out - x).flatten(1).abs().amax(dim=1) < 1e-5
    same_rg = (out[:, 0] == out[:, 1]).flatten(1).all(dim=1)
    same_gb = (out[:, 1] == out[:, 2]).flatten(1).all(dim=1)
    grey = same_rg & same_gb
    # P(unchanged) = 0.2 * 0.8 = 0.16, P(grey) = 0.2.
    assert 0.09 < unchanged.float().mean() < 0.23
    assert 0.13 < grey.float().mean() < 0.27


def test_extra_channels_are_not_colour_transformed():
    x = _images(batch=16, channels=4)
    module = SimCLRAugmentation(
        scale=(1.0, 1.0),
        ratio=(1.0, 1.0),
        flip_probability=0.0,
        jitter_probability=1.0,
        grayscale_probability=1.0,
    )
    out = module(x)
    torch.testing.assert_close(out[:, 3], x[:, 3], atol=1e-5, rtol=0)
    assert torch.equal(out[:, 0], out[:, 1])


# --------------------------------------------------------------------------- colour ops


def test_colour_ops_match_torchvision():
    generator = torch.Generator().manual_seed(0)
    x = torch.rand(24, 3, 12, 12, generator=generator)
    x[0] = 0.5  # flat grey
    x[1, :, :3] = 1.0  # saturated
    x[2, 1] = x[2, 0]  # ties between channels
    factors = 2.0 * torch.rand(24, generator=generator)
    shifts = torch.rand(24, generator=generator) - 0.5
    cases = [
        (color.adjust_brightness, TF.adjust_brightness, factors),
        (color.adjust_contrast, TF.adjust_contrast, factors),
        (color.adjust_saturation, TF.adjust_saturation, factors),
        (color.adjust_sharpness, TF.adjust_sharpness, factors),
        (color.adjust_hue, TF.adjust_hue, shifts),
    ]
    for ours, reference, values in cases:
        expected = torch.stack([reference(img, float(v)) for img, v in zip(x, values)])
        torch.testing.assert_close(ours(x, values), expected, atol=1e-5, rtol=0)
    torch.testing.assert_close(color.autocontrast(x), TF.autocontrast(x), atol=1e-6, rtol=0)
    grey = torch.arange(24) % 2 == 0
    expected = torch.stack([TF.rgb_to_grayscale(img, 3) if g else img for img, g in zip(x, grey)])
    torch.testing.assert_close(color.random_grayscale(x, grey), expected, atol=1e-6, rtol=0)

    as_bytes = torch.round(x * 255).to(torch.uint8)
    quantised = as_bytes.float() / 255
    assert torch.equal(
        torch.round(color.equalize(quantised) * 255).to(torch.uint8), TF.equalize(as_bytes)
    )
    for bits in range(1, 9):
        ours = color.posterize(quantised, torch.full((24,), float(bits)))
        assert torch.equal(torch.round(ours * 255).to(torch.uint8), TF.posterize(as_bytes, bits))
    thresholds = torch.rand(24, generator=generator)
    expected = torch.stack([TF.solarize(img, float(t)) for img, t in zip(x, thresholds)])
    assert torch.equal(color.solarize(x, thresholds), expected)


def test_contrast_of_single_channel_matches_torchvision():
    x = _images(batch=6, channels=1)
    factors = torch.linspace(0.0, 2.0, 6)
    expected = torch.stack([TF.adjust_contrast(img, float(f)) for img, f in zip(x, factors)])
    torch.testing.assert_close(color.adjust_contrast(x, factors), expected, atol=1e-6, rtol=0)


def test_colour_only_ops_are_noops_on_grayscale():
    x = _images(batch=4, channels=1)
    values = torch.full((4,), 0.3)
    assert color.adjust_saturation(x, values) is x
    assert color.adjust_hue(x, values) is x
    assert color.random_grayscale(x, torch.ones(4, dtype=torch.bool)) is x


# --------------------------------------------------------------------------- geometry


def test_rotation_by_quarter_turn_matches_rot90():
    x = _images(batch=2, channels=1, height=16, width=16)
    matrices = geometric.rotation_matrices(torch.full((2,), math.pi / 2), 16, 16)
    out = geometric.warp_affine(x, matrices, mode="nearest")
    rotated = [torch.rot90(x, k, dims=(2, 3)) for k in (1, -1)]
    assert any(torch.equal(out, r) for r in rotated)


def test_translation_moves_content_by_whole_pixels():
    x = _images(batch=1, channels=1, height=10, width=10)
    matrices = geometric.translation_matrices(torch.tensor([0.2]), axis=0)
    out = geometric.warp_affine(x, matrices, mode="nearest")
    # Sampling 2 pixels to the right shifts content 2 pixels left, with zeros coming in.
    assert torch.equal(out[..., :8], x[..., 2:])
    assert torch.equal(out[..., 8:], torch.zeros_like(out[..., 8:]))


def test_sampling_grid_matches_affine_grid():
    matrices = torch.randn(5, 3, 3, generator=torch.Generator().manual_seed(0))
    expected = F.affine_grid(matrices[:, :2], [5, 1, 7, 9], align_corners=False)
    torch.testing.assert_close(geometric.sampling_grid(matrices, 7, 9), expected)


# --------------------------------------------------------------------------- strong


def test_strong_cutout_zeroes_one_square():
    x = torch.ones(32, 3, 32, 32)
    module = StrongAugmentation(n_ops=0, crop_and_flip=False, cutout_size=8)
    out = module(x, generator=torch.Generator().manual_seed(0))
    erased = out[:, 0] == 0.0
    assert torch.equal(erased, (out == 0.0).all(dim=1)), "cutout erases all channels"
    assert torch.all(out[~erased.unsqueeze(1).expand_as(out)] == 1.0)
    counts = erased.flatten(1).sum(dim=1)
    assert counts.min() > 0 and counts.max() <= 64
    assert (counts == 64).any()  # fully inside the image for some
    for mask in erased:
        rows = mask.any(dim=1).nonzero().view(-1)
        cols = mask.any(dim=0).nonzero().view(-1)
        # The erased region is one solid rectangle (a square clipped by the border).
        assert mask.sum() == rows.numel() * cols.numel()
        assert rows.max() - rows.min() + 1 == rows.numel() <= 8
        assert cols.max() - cols.min() + 1 == cols.numel() <= 8


def test_strong_cutout_fill_and_default_size():
    x = torch.zeros(16, 1, 28, 28)
    module = StrongAugmentation(n_ops=0, crop_and_flip=False, fill=0.5)
    out = module(x)
    counts = (out == 0.5).flatten(1).sum(dim=1)
    assert counts.max() <= 14 * 14 and (counts == 14 * 14).any()


@pytest.mark.parametrize("op", STRONG_OPS)
@pytest.mark.parametrize("channels", [1, 3])
def test_each_strong_op_alone(op, channels):
    x = _images(batch=16, channels=channels)
    module = StrongAugmentation(n_ops=1, ops=(op,), crop_and_flip=False, cutout_size=0)
    out = module(x, generator=torch.Generator().manual_seed(0))
    assert out.shape == x.shape
    assert out.min() >= 0.0 and out.max() <= 1.0
    if op == "identity" or (op == "color" and channels == 1):
        torch.testing.assert_close(out, x, atol=1e-5, rtol=0)
    else:
        assert not torch.allclose(out, x, atol=1e-3)


def test_strong_ops_are_drawn_per_image():
    # With "identity" and "solarize" as the only ops, some images must be solarised and
    # others untouched within the same batch.
    x = _images(batch=64, channels=3)
    module = StrongAugmentation(
        n_ops=1, ops=("identity", "solarize"), crop_and_flip=False, cutout_size=0
    )
    out = module(x, generator=torch.Generator().manual_seed(0))
    unchanged = (out - x).flatten(1).abs().amax(dim=1) < 1e-6
    assert 10 < unchanged.sum() < 54


# --------------------------------------------------------------------------- factory & errors


def test_make_augmentation_names_and_modules():
    assert isinstance(make_augmentation("weak"), WeakAugmentation)
    assert isinstance(make_augmentation(" SimCLR "), SimCLRAugmentation)
    assert isinstance(make_augmentation("strong"), StrongAugmentation)
    full = make_augmentation("simclr-strong")
    assert isinstance(full, SimCLRAugmentation)
    assert (full.brightness, full.contrast, full.saturation, full.hue) == (0.8, 0.8, 0.8, 0.2)
    custom = nn.Identity()
    assert make_augmentation(custom) is custom
    assert set(AUGMENTATION_POLICIES) == set(POLICIES)


def test_unknown_policy_lists_valid_ones():
    with pytest.raises(ValueError, match="unknown augmentation policy 'autoaugment'.*'simclr'"):
        make_augmentation("autoaugment")
    with pytest.raises(TypeError, match="policy must be"):
        make_augmentation(3)


@pytest.mark.parametrize("policy", POLICIES)
def test_bad_inputs_raise(policy):
    module = make_augmentation(policy)
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        module(torch.rand(3, 32, 32))
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        module(torch.rand(2, 1, 3, 32, 32))
    with pytest.raises(TypeError, match="floating-point"):
        module(torch.zeros(2, 3, 8, 8, dtype=torch.uint8))
    with pytest.raises(TypeError, match="torch.Tensor"):
        module(np.zeros((2, 3, 8, 8), dtype=np.float32))
    with pytest.raises(ValueError, match="at least one channel"):
        module(torch.rand(2, 0, 8, 8))


def test_expected_size_and_channels_are_checked():
    module = make_augmentation("simclr", image_size=(28, 28), n_channels=1)
    assert module(torch.rand(2, 1, 28, 28)).shape == (2, 1, 28, 28)
    with pytest.raises(ValueError, match="1-channel"):
        module(torch.rand(2, 3, 28, 28))
    with pytest.raises(ValueError, match="28x28"):
        module(torch.rand(2, 1, 32, 32))
    with pytest.raises(ValueError, match="image_size"):
        make_augmentation("weak", image_size=(0, 28))
    with pytest.raises(ValueError, match="n_channels"):
        make_augmentation("weak", n_channels=0)


def test_invalid_constructor_arguments():
    with pytest.raises(ValueError, match="padding_mode"):
        WeakAugmentation(padding_mode="wrap")
    with pytest.raises(ValueError, match="flip_probability"):
        WeakAugmentation(flip_probability=1.5)
    with pytest.raises(ValueError, match="scale"):
        SimCLRAugmentation(scale=(0.5, 0.2))
    with pytest.raises(ValueError, match="hue"):
        SimCLRAugmentation(hue=0.7)
    with pytest.raises(ValueError, match="ops must be"):
        StrongAugmentation(ops=("rotate", "cutmix"))
    with pytest.raises(ValueError, match="n_ops"):
        StrongAugmentation(n_ops=-1)


def test_generator_must_be_a_generator():
    with pytest.raises(TypeError, match="generator"):
        make_augmentation("weak")(_images(), generator=0)


# --------------------------------------------------------------------------- GPU


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("policy", POLICIES)
def test_policies_run_on_gpu(policy):
    x = _images(batch=64).cuda()
    module = make_augmentation(policy)
    torch.cuda.manual_seed(0)
    first = module(x)
    torch.cuda.manual_seed(0)
    second = module(x)
    assert first.device == x.device and first.shape == x.shape and first.dtype == x.dtype
    assert first.min() >= 0.0 and first.max() <= 1.0
    assert torch.equal(first, second)
    generator = torch.Generator(device="cuda").manual_seed(1)
    assert module(x, generator=generator).device == x.device
    if policy != "none":
        with pytest.raises(ValueError, match="generator is on device"):
            module(x, generator=torch.Generator().manual_seed(1))
        half = module(x.half())
        assert half.dtype == torch.float16 and half.device == x.device
