"""Batched, on-device image augmentation with independent random parameters per image.

Every policy is a parameter-free :class:`torch.nn.Module` whose ``forward(x, *,
generator=None)`` takes a float tensor ``(B, C, H, W)`` with values in ``[0, 1]`` on any
device and returns a new tensor of the same shape, dtype and device with values in
``[0, 1]``. The whole batch is processed with tensor operations on the input's device: the
geometric part of a policy is a single ``affine_grid`` + ``grid_sample`` call with one
composed matrix per image, never a Python loop over images.

The policies, by name (see :func:`make_augmentation`):

``"none"``
    :class:`IdentityAugmentation`, returns the input.
``"weak"``
    :class:`WeakAugmentation`, random crop after padding by 1/8 of the side + horizontal flip.
``"simclr"``
    :class:`SimCLRAugmentation`, random resized crop (scale 0.2-1, ratio 3/4-4/3), flip,
    colour jitter 0.4/0.4/0.4/0.1 with p=0.8, grayscale with p=0.2 (SimCLR's CIFAR-10
    colour strength).
``"simclr-strong"``
    :class:`SimCLRStrongColourAugmentation`, the same with colour jitter 0.8/0.8/0.8/0.2
    (SimCLR's full colour strength, its ImageNet setting).
``"strong"``
    :class:`StrongAugmentation`, RandAugment-style random operations followed by cutout.

Declared invariances (:data:`INVARIANCES`, an estimator's ``invariant_to``) add their
own random transforms after a policy (:func:`with_invariances`).

Randomness: parameters are drawn from torch's global random generator of the input's
device, so :func:`torch.manual_seed` makes results reproducible (on CPU bit for bit), or from
the ``generator=`` passed to ``forward``, which must live on the input's device.

Channels and tabular data: 1-channel images are grayscale, so the colour-only operations
(saturation, hue, grayscale, ``color``) are no-ops while brightness, contrast and the other
intensity operations apply. With three or more channels the first three are RGB and further
channels (e.g. a 4th) follow the geometric transforms and cutout but no photometric ones.
2-D ``(B, D)`` tabular features are returned unchanged by every policy (no noise is added).
"""

from __future__ import annotations

from ._invariance import (
    AUTO_INVARIANCES,
    INVARIANCES,
    InvarianceAugmentation,
    InvariantView,
    check_invariances,
    is_auto_invariances,
    with_invariances,
)
from ._policies import (
    AUGMENTATION_POLICIES,
    STRONG_OPS,
    IdentityAugmentation,
    SimCLRAugmentation,
    SimCLRStrongColourAugmentation,
    StrongAugmentation,
    WeakAugmentation,
    make_augmentation,
)

__all__ = [
    "AUGMENTATION_POLICIES",
    "AUTO_INVARIANCES",
    "INVARIANCES",
    "InvarianceAugmentation",
    "InvariantView",
    "STRONG_OPS",
    "IdentityAugmentation",
    "SimCLRAugmentation",
    "SimCLRStrongColourAugmentation",
    "StrongAugmentation",
    "WeakAugmentation",
    "check_invariances",
    "is_auto_invariances",
    "make_augmentation",
    "with_invariances",
]
