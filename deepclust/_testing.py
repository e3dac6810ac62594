"""Small, fast estimator settings for tests, read from the method registry.

Used by ``tests/test_common.py`` (scikit-learn's common checks) and the other tests, like
imbalanced-learn's ``instance_generator``: every registered method's ``test_params``
(:class:`deepclust.methods.MethodSpec`) fit a few dozen samples in well under a second on a
CPU.
"""

from __future__ import annotations

from sklearn.base import clone

from deepclust.methods import registered_methods

#: The estimator classes of the methods registered when deepclust is imported.
ESTIMATORS = tuple(registered_methods().values())


def fast_params(cls) -> dict:
    """The fast test parameters of a registered estimator class.

    Parameters
    ----------
    cls : type
        A registered estimator class; its ``method_spec.test_params`` are read.
    """
    return dict(cls.method_spec.test_params)


def fast_instance(cls, **overrides):
    """An instance of ``cls`` with its fast test parameters, seeded, plus ``overrides``.

    Parameters
    ----------
    cls : type
        A registered estimator class.
    **overrides
        Estimator parameters that replace the fast ones (and ``random_state=0``).
    """
    return cls(**{**fast_params(cls), "random_state": 0, **overrides})


def fast_instances(**overrides) -> list:
    """One fast instance of every estimator in :data:`ESTIMATORS`.

    Parameters
    ----------
    **overrides
        Estimator parameters given to every instance, replacing the fast ones.
    """
    return [fast_instance(cls, **overrides) for cls in ESTIMATORS]


def cloned(estimator):
    """A fresh clone (keeps tests from sharing fitted state).

    Parameters
    ----------
    estimator : BaseDeepClusterer
        The estimator to clone: same parameters, nothing fitted.
    """
    return clone(estimator)


#: scikit-learn checks that force ``n_clusters=1`` before fitting; deepclust refuses fewer
#: than two clusters by design (a one-cluster "clustering" trains nothing and is almost
#: always a mistake), so they fail at parameter validation.
#: ``tests/test_estimators.py::test_sklearn_checks_that_force_one_cluster`` runs the same
#: properties with ``n_clusters=2``.
ONE_CLUSTER_CHECKS = (
    "check_dont_overwrite_parameters",
    "check_methods_subset_invariance",
    "check_fit2d_1sample",
    "check_fit2d_1feature",
    "check_fit2d_predict1d",
)


def expected_failed_checks(estimator) -> dict[str, str]:
    """The ``expected_failed_checks`` of :func:`~sklearn.utils.estimator_checks.\
parametrize_with_checks` for any deepclust estimator.

    Parameters
    ----------
    estimator : BaseDeepClusterer
        The estimator being checked (unused: every method fails the same checks).
    """
    reason = "forces n_clusters=1, which deepclust refuses by design (needs >= 2)"
    return {check: reason for check in ONE_CLUSTER_CHECKS}
