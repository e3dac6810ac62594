"""The method registry: every deep-clustering method declares itself once, on its class.

A method is an estimator class (a subclass of
:class:`~deepclust.methods.BaseDeepClusterer`) with a :class:`MethodSpec` in its
``method_spec`` attribute, registered with :func:`register_method`. The command line, the
model files (:mod:`deepclust.io`), the test helpers (:mod:`deepclust._testing`) and the
benchmarks read the registry; none of them keeps its own list of methods.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

__all__ = [
    "MODEL_FILE_KINDS",
    "MethodSpec",
    "get_method",
    "method_names",
    "method_spec",
    "register_method",
    "registered_methods",
    "unregister_method",
]

#: What a fitted attribute can be stored as in a model file (see :mod:`deepclust.io`):
#: ``'array'`` a numeric ndarray (a tensor), ``'int'``/``'float'`` a scalar in the JSON
#: description, ``'network'`` a further :class:`~deepclust.networks.ClusteringNetwork`
#: (weights plus its description), ``'whitening'`` a fitted
#: :class:`~deepclust.cluster.PCAWhitening`.
MODEL_FILE_KINDS = ("array", "int", "float", "network", "whitening")


def _main_epochs(epochs: int) -> dict:
    return {"max_epochs": epochs}


@dataclass(frozen=True)
class MethodSpec:
    """What is particular to one method, declared once on its estimator class.

    Parameters
    ----------
    name : str
        The method's name on the command line (``deepclust cluster --method NAME``) and in
        benchmark result files: lower case letters, digits and ``-``.
    title : str
        One line naming the method and its paper, for reports and documentation.
    recipe : callable or None
        ``recipe(facts, budget) -> dict``: the values of the parameters the method leaves
        at ``'auto'``, resolved at ``fit`` from a :class:`~deepclust.recipes.DataFacts`
        and a budget (``'fast'``, ``'default'``, ``'thorough'``); see
        :func:`deepclust.recipes.resolve_recipe`. The estimators, ``deepclust cluster``
        and ``benchmarks/quality.py`` all train with it.
    epoch_params : callable
        ``epoch_params(E) -> dict``: the estimator parameters ``deepclust cluster
        --epochs E`` sets (overriding the recipe's training length).
    test_params : mapping
        Parameters for a fit of about 50 small samples in well under a second, used by
        the test suite (scikit-learn's common checks included).
    model_file : mapping of str to str
        Fitted attributes saved in and restored from a model file beyond those every
        method has (``network_``, ``labels_``, the input description), each with its kind,
        one of :data:`MODEL_FILE_KINDS`.
    share_pretext : callable or None
        ``share_pretext(estimator, X, n_clusters, seed) -> (params, first_fit)``: trains
        what the fits at several ``n_clusters`` can share (for
        :func:`deepclust.model_selection.choose_n_clusters`) and returns the parameters
        every candidate is then fitted with (e.g. ``{'pretrained': network}``) and the
        fit of the first candidate when sharing produced it (else None). None: every
        candidate trains in full.
    share_description : str
        What ``share_pretext`` shares, for the search's record.
    frozen_params : mapping
        Parameters a fit with ``freeze_backbone=True`` sets for its training on the
        frozen features (e.g. no pretext stage: the frozen backbone is the pretext).
    """

    name: str
    title: str
    recipe: Callable[..., Mapping[str, object]] | None = None
    epoch_params: Callable[[int], dict] = _main_epochs
    test_params: Mapping[str, object] = field(default_factory=dict)
    model_file: Mapping[str, str] = field(default_factory=dict)
    share_pretext: Callable[..., tuple[dict, object]] | None = None
    share_description: str = ""
    frozen_params: Mapping[str, object] = field(default_factory=dict)

    def __post_init__(self):
        if not self.name or not all(c.islower() or c.isdigit() or c == "-" for c in self.name):
            raise ValueError(
                f"A method name is lower-case letters, digits and '-'; got {self.name!r}."
            )
        bad = {k: v for k, v in self.model_file.items() if v not in MODEL_FILE_KINDS}
        if bad:
            raise ValueError(
                f"Method {self.name!r}: model_file kinds must be among {MODEL_FILE_KINDS}; got "
                f"{bad}."
            )
        if self.recipe is not None and not callable(self.recipe):
            raise TypeError(
                f"Method {self.name!r}: recipe must be a function (facts, budget) -> dict; "
                f"got {self.recipe!r}."
            )
        for name in ("test_params", "model_file", "frozen_params"):
            object.__setattr__(self, name, MappingProxyType(dict(getattr(self, name))))


_REGISTRY: dict[str, type] = {}


def register_method(cls: type) -> type:
    """Register an estimator class under its ``method_spec.name`` (a class decorator).

    Parameters
    ----------
    cls : type
        A subclass of :class:`~deepclust.methods.BaseDeepClusterer` with a
        :class:`MethodSpec` in ``method_spec``.

    Returns
    -------
    cls : type
        Unchanged, so the function works as a decorator.

    Raises
    ------
    TypeError
        When ``cls`` is not a :class:`~deepclust.methods.BaseDeepClusterer` subclass or
        does not define its own ``method_spec``.
    ValueError
        When another class is registered under the same method name or has the same class
        name (model files name classes).
    """
    from deepclust.methods._base import BaseDeepClusterer

    spec = getattr(cls, "method_spec", None)
    if not (isinstance(cls, type) and issubclass(cls, BaseDeepClusterer)):
        raise TypeError(f"register_method takes a BaseDeepClusterer subclass; got {cls!r}.")
    if not isinstance(spec, MethodSpec) or "method_spec" not in vars(cls):
        raise TypeError(
            f"{cls.__name__} needs its own method_spec = MethodSpec(...) to be registered."
        )
    registered = _REGISTRY.get(spec.name)
    if registered is not None and registered is not cls:
        raise ValueError(
            f"A method named {spec.name!r} is already registered ({registered.__name__}); "
            "choose another name or unregister_method it first."
        )
    taken = {c.__name__: n for n, c in _REGISTRY.items() if n != spec.name}
    if cls.__name__ in taken:
        raise ValueError(
            f"The class name {cls.__name__} is already registered as method "
            f"{taken[cls.__name__]!r}; model files name classes, so they must differ."
        )
    _REGISTRY[spec.name] = cls
    return cls


def unregister_method(name: str) -> None:
    """Remove the method registered as ``name`` (for tests and plug-ins).

    Parameters
    ----------
    name : str
        A method name; one that is not registered is ignored.
    """
    _REGISTRY.pop(name, None)


def registered_methods() -> dict[str, type]:
    """The registered estimator classes by method name, in registration order.

    Returns
    -------
    dict of str to type
        A copy: changing it changes nothing registered.
    """
    return dict(_REGISTRY)


def method_names() -> list[str]:
    """The registered method names, sorted.

    Returns
    -------
    list of str
        The names ``deepclust cluster --method`` accepts.
    """
    return sorted(_REGISTRY)


def get_method(name: str) -> type:
    """The estimator class registered as method ``name``, by method or class name.

    Parameters
    ----------
    name : str
        A method name (``'scan'``) or the name of a registered class
        (``'SCANClusterer'``).

    Returns
    -------
    type
        The registered estimator class.

    Raises
    ------
    ValueError
        When no registered method has that name.
    """
    if name in _REGISTRY:
        return _REGISTRY[name]
    for cls in _REGISTRY.values():
        if cls.__name__ == name:
            return cls
    raise ValueError(f"Unknown method {name!r}; the registered ones are {method_names()}.")


def method_spec(estimator) -> MethodSpec:
    """The :class:`MethodSpec` of a registered estimator (an instance or its class).

    Parameters
    ----------
    estimator : estimator or type
        An instance of a registered estimator class, or the class.

    Returns
    -------
    MethodSpec
        The ``method_spec`` its class declares.

    Raises
    ------
    TypeError
        When the class is not registered (a subclass of a registered class is not,
        unless it is registered itself).
    """
    cls = estimator if isinstance(estimator, type) else type(estimator)
    spec = vars(cls).get("method_spec")
    if spec is None or _REGISTRY.get(spec.name) is not cls:
        raise TypeError(f"{cls.__name__} is not a registered deepclust method.")
    return spec
