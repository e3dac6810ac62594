"""Resolve a method's recipe for one fit: ``'auto'`` parameters take the recipe's values."""

from __future__ import annotations

import copy

from deepclust.augment import INVARIANCES, check_invariances
from deepclust.networks import INPUT_INVARIANCES, InvariantInput
from deepclust.recipes._common import BUDGETS
from deepclust.recipes._facts import DataFacts

__all__ = [
    "AUTO",
    "describe_invariances",
    "is_auto",
    "recipe_for",
    "resolve_recipe",
    "with_settings",
]

#: The value of a parameter that the method's recipe sets at ``fit``.
AUTO = "auto"

#: Parameters whose "not set" value is ``None`` rather than ``'auto'``.
_NONE_MEANS_AUTO = frozenset({"image_size"})


def is_auto(name: str, value) -> bool:
    """Whether a parameter value leaves the setting to the recipe.

    Parameters
    ----------
    name : str
        The parameter's name.
    value : object
        Its value on the estimator.

    Returns
    -------
    bool
    """
    if isinstance(value, str) and value == AUTO:
        return True
    return value is None and name in _NONE_MEANS_AUTO


def resolve_recipe(estimator, facts: DataFacts) -> dict:
    """The settings one fit of ``estimator`` uses on data described by ``facts``.

    Parameters
    ----------
    estimator : BaseDeepClusterer
        A registered method's estimator; its ``budget`` parameter chooses the training
        length.
    facts : DataFacts
        The data and device of the fit.

    Returns
    -------
    dict
        ``budget``, ``data`` (``facts`` as a dictionary), ``params`` (every parameter the
        recipe covers, with the value the fit uses) and ``set_by_user`` (the names among
        them that the estimator set explicitly, which win over the recipe).
    """
    budget = getattr(estimator, "budget", "default")
    if budget not in BUDGETS:
        raise ValueError(f"budget must be one of {sorted(BUDGETS)}; got {budget!r}.")
    recipe = type(estimator).method_spec.recipe
    proposed = dict(recipe(facts, budget)) if recipe is not None else {}
    current = estimator.get_params(deep=False)
    unknown = sorted(set(proposed) - set(current))
    if unknown:
        raise TypeError(
            f"The recipe of {type(estimator).__name__} sets {unknown}, which are not its "
            "parameters."
        )
    params, set_by_user = {}, []
    for name, value in proposed.items():
        if is_auto(name, current[name]):
            params[name] = value
        else:
            params[name] = current[name]
            set_by_user.append(name)
    return {
        "budget": budget,
        "data": facts.as_dict(),
        "params": params,
        "set_by_user": set_by_user,
        "invariances": describe_invariances(estimator._invariances()),
    }


def describe_invariances(invariant_to) -> dict:
    """What a fit applies for the declared invariances.

    Parameters
    ----------
    invariant_to : None, str or sequence of str
        An estimator's ``invariant_to`` (checked here).

    Returns
    -------
    dict
        ``declared`` (the invariances applied, in a fixed order), ``input_filter`` (the name of
        the :class:`~deepclust.networks.InvariantInput` the network reads its input
        through, or None) and ``augmentation`` (each invariance's added random
        transforms).

    Raises
    ------
    ValueError
        When a value is not an invariance.
    """
    declared = check_invariances(invariant_to)
    removed = [name for name in INPUT_INVARIANCES if name in declared]
    return {
        "declared": list(declared),
        "input_filter": InvariantInput(removed).name if removed else None,
        "augmentation": {name: INVARIANCES[name] for name in declared},
    }


def recipe_for(estimator, X) -> dict:
    """The settings ``estimator.fit(X)`` would resolve, without training.

    Parameters
    ----------
    estimator : BaseDeepClusterer
        A registered method's estimator (unchanged).
    X : array-like, torch.Tensor, folder or list of image paths
        The data, in any form ``fit`` accepts.

    Returns
    -------
    dict
        What the fitted estimator's ``recipe_`` would be (see :func:`resolve_recipe`).
    """
    return estimator._recipe_for(X)


def with_settings(estimator, params: dict):
    """A shallow copy of ``estimator`` whose parameters ``params`` are set (no validation).

    The fit trains through this copy, so the user's estimator keeps its ``'auto'``
    parameters, as scikit-learn's conventions ask.

    Parameters
    ----------
    estimator : BaseDeepClusterer
        The estimator being fitted.
    params : dict
        Resolved parameter values.

    Returns
    -------
    BaseDeepClusterer
    """
    resolved = copy.copy(estimator)
    vars(resolved).update(params)
    return resolved
