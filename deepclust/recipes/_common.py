"""Settings that several methods' recipes share, each decided in one place.

The values cite the measurements behind them; the runs themselves are listed on the
benchmarks page (``docs/benchmarks.rst``, "Recipes").
"""

from __future__ import annotations

import math

from deepclust.recipes._facts import DataFacts

__all__ = [
    "BUDGETS",
    "batch_size_for",
    "contrastive_pretext",
    "epochs_for",
    "image_settings",
    "training_images",
]

#: How much training each budget buys, relative to ``'default'``.
BUDGETS: dict[str, float] = {"fast": 1 / 3, "default": 1.0, "thorough": 3.0}

#: The collection size at which a recipe's ``images_at_5000`` holds; other sizes scale by
#: the square root of their ratio to it (or a stage's ``growth`` above it), so a collection
#: 14 times larger (Fashion-MNIST's 70,000 against 5,000) trains on 3.7 times more images
#: and for a quarter of the epochs.
_REFERENCE_SIZE = 5000

#: The exponent of the growth with the number of samples: always up to
#: ``_REFERENCE_SIZE``, and above it for every stage that sets no ``growth`` of its own.
_SQUARE_ROOT = 0.5

#: No stage runs more epochs than this, however small the collection.
_MAX_EPOCHS = 600


def training_images(
    facts: DataFacts, budget: str, images_at_5000: float, growth: float = _SQUARE_ROOT
) -> float:
    """Images one stage trains on (epochs times samples) for this data and budget.

    Parameters
    ----------
    facts : DataFacts
        The data.
    budget : {'fast', 'default', 'thorough'}
        The training budget.
    images_at_5000 : float
        Images seen by the stage at ``budget='default'`` on 5,000 samples.
    growth : float, default=0.5
        The exponent of the growth above 5,000 samples; smaller collections always
        scale by the square root.

    Returns
    -------
    float
        ``images_at_5000 * (n_samples / 5000) ** exponent`` times the budget's factor,
        the exponent being 0.5 up to 5,000 samples and ``growth`` above.
    """
    ratio = facts.n_samples / _REFERENCE_SIZE
    exponent = growth if ratio > 1 else _SQUARE_ROOT
    return images_at_5000 * ratio**exponent * BUDGETS[budget]


def epochs_for(
    facts: DataFacts,
    budget: str,
    images_at_5000: float,
    at_least: int = 1,
    growth: float = _SQUARE_ROOT,
) -> int:
    """Epochs of a stage that trains on :func:`training_images` images.

    Parameters
    ----------
    facts : DataFacts
        The data.
    budget : {'fast', 'default', 'thorough'}
        The training budget.
    images_at_5000 : float
        Images seen by the stage at ``budget='default'`` on 5,000 samples.
    at_least : int, default=1
        The fewest epochs returned.
    growth : float, default=0.5
        The exponent of the growth above 5,000 samples (:func:`training_images`).

    Returns
    -------
    int
        Between ``at_least`` and 600.
    """
    images = training_images(facts, budget, images_at_5000, growth)
    return int(min(_MAX_EPOCHS, max(at_least, round(images / facts.n_samples))))


def batch_size_for(facts: DataFacts, largest: int = 256) -> int:
    """A power-of-two batch size: ``largest`` when the data has at least eight such
    batches, smaller for small collections (128 for scikit-learn's 1,797 digits).

    Parameters
    ----------
    facts : DataFacts
        The data.
    largest : int, default=256
        The batch size for large collections.

    Returns
    -------
    int
        At least 2 and at most ``n_samples``.
    """
    fitting = 2 ** int(math.log2(max(2, facts.n_samples // 8)))
    return int(max(2, min(largest, fitting, facts.n_samples)))


def _scaled_size(facts: DataFacts, longest: int) -> tuple[int, int]:
    """The native size scaled down (never up) so its longer side is at most ``longest``."""
    scale = min(1.0, longest / facts.side)
    return max(4, round(facts.height * scale)), max(4, round(facts.width * scale))


#: The longest image side the recipes train at, by device type (colour images on a CPU;
#: grey ones at most 20 px there), see :func:`image_settings`.
LARGEST_TRAINING_SIDE = {"cpu": 32, "cuda": 64}


def image_settings(facts: DataFacts, largest_batch: int = 256) -> dict:
    """Backbone, training image size and batch size for the data and device.

    Parameters
    ----------
    facts : DataFacts
        The data.
    largest_batch : int, default=256
        The batch size on large collections (on a CPU; twice it on a GPU).

    Returns
    -------
    dict
        ``backbone``, ``image_size`` and ``batch_size``.
    """
    if facts.kind != "images":
        batch_size = batch_size_for(facts, largest_batch)
        return {"backbone": "mlp", "image_size": None, "batch_size": batch_size}
    if facts.device == "cuda":
        # Not yet measured on a GPU: the papers' CIFAR-size settings.
        size = _scaled_size(facts, LARGEST_TRAINING_SIDE["cuda"])
        backbone = "convnet" if max(size) <= 32 else "resnet18"
        return {
            "backbone": backbone,
            "image_size": size,
            "batch_size": batch_size_for(facts, 2 * largest_batch),
        }
    # On 2 CPU cores: 'convnet-small' at 20 px trains Fashion-MNIST's 28 px images at
    # about 1,900 images/s in the pretext (2026-12-03), with the pretext k-means and SCAN
    # accuracies of docs/benchmarks.rst; colour images keep up to 32 px, where shape
    # details survive the downscaling.
    size = _scaled_size(facts, LARGEST_TRAINING_SIDE["cpu"] if facts.is_colour else 20)
    batch_size = batch_size_for(facts, largest_batch)
    return {"backbone": "convnet-small", "image_size": size, "batch_size": batch_size}


def contrastive_pretext(facts: DataFacts, budget: str, growth: float = _SQUARE_ROOT) -> dict:
    """Settings of the SimCLR pretext that SCAN and ClusterFit train.

    Parameters
    ----------
    facts : DataFacts
        The data.
    budget : {'fast', 'default', 'thorough'}
        The training budget.
    growth : float, default=0.5
        How the pretext's length grows above 5,000 samples (:func:`training_images`).

    Returns
    -------
    dict
        ``pretext_epochs``, ``temperature``, ``pretext_lr`` and ``pretext_augmentation``.
    """
    return {
        # 800,000 images at 5,000 samples (160 epochs); at 70,000, 3.0 million (43 epochs)
        # with the square root's growth, 4.5 million (64 epochs) with n ** 0.65.
        "pretext_epochs": epochs_for(facts, budget, 800_000, growth=growth),
        # Temperature 0.5 against 0.1: pretext k-means ACC 0.60 against 0.53 on a
        # Fashion-MNIST subset of 10,000 after 15 epochs.
        "temperature": 0.5,
        "pretext_lr": 0.2,
        # SimCLR's full colour strength: on 5,000 Fashion-MNIST images pretext k-means
        # ACC 0.655 and SCAN 0.692, against 0.565 and 0.632 with 'simclr' (seed 0), and
        # fewer clusters of dark or bright garments of every kind.
        "pretext_augmentation": "simclr-strong",
    }
