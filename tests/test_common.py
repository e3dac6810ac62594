"""Every estimator through scikit-learn's common estimator checks."""

from __future__ import annotations

from sklearn.utils.estimator_checks import parametrize_with_checks

from deepclust._testing import expected_failed_checks, fast_instances


@parametrize_with_checks(fast_instances(), expected_failed_checks=expected_failed_checks)
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)
