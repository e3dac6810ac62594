"""Bridges from a fitted deepclust estimator to other libraries.

- :mod:`deepclust.integrations.skorch`: :func:`~deepclust.integrations.skorch.to_classifier`
  turns a fitted estimator's network into a `skorch <https://skorch.readthedocs.io>`_
  classifier to fine-tune on a few labels (``pip install "deepclust[skorch]"``).

The submodules import their library on import; this package imports none of them.
"""
