"""Recipes: each method's settings resolved at ``fit`` from the data, device and budget.

A method declares its recipe in its :class:`~deepclust.methods.MethodSpec`, as a function
``recipe(facts, budget) -> dict`` of parameter values. Parameters left at ``'auto'``
(``image_size`` at ``None``) take the recipe's values; explicit values win. The values a
fit used are its estimator's ``recipe_``.
"""

from __future__ import annotations

from deepclust.recipes._common import (
    BUDGETS,
    LARGEST_TRAINING_SIDE,
    batch_size_for,
    contrastive_pretext,
    epochs_for,
    image_settings,
    training_images,
)
from deepclust.recipes._facts import DataFacts
from deepclust.recipes._resolve import (
    AUTO,
    describe_invariances,
    is_auto,
    recipe_for,
    resolve_recipe,
    with_settings,
)

__all__ = [
    "AUTO",
    "BUDGETS",
    "LARGEST_TRAINING_SIDE",
    "DataFacts",
    "batch_size_for",
    "contrastive_pretext",
    "describe_invariances",
    "epochs_for",
    "image_settings",
    "is_auto",
    "recipe_for",
    "resolve_recipe",
    "training_images",
    "with_settings",
]
