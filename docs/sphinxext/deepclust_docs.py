"""Helpers of the documentation build (kept out of conf.py so the config pickles)."""

from __future__ import annotations

import re

_SHAPE_NAME = re.compile(r"(\w)_([,)])")


def reset_torch(gallery_conf, fname):
    """Run every gallery example from the same state: 2 CPU threads, fixed seeds."""
    import numpy as np
    import torch

    torch.set_num_threads(2)
    torch.manual_seed(0)
    np.random.seed(0)  # noqa: NPY002 - legacy global state some libraries read


def escape_shape_names(app, what, name, obj, options, lines):
    """Escape fitted-attribute names such as ``n_components_`` in "of shape (...)" types.

    A bare ``word_`` is a reST reference; numpydoc copies parameter types verbatim, so
    ``(n_components_, n_features)`` would be an unknown link target.
    """
    for i, line in enumerate(lines):
        if "of shape (" in line and "``" not in line:
            lines[i] = _SHAPE_NAME.sub(r"\1\\_\2", line)


#: Order of the gallery: the quick start first, then the methods, then the tools.
EXAMPLE_ORDER = [
    "plot_quickstart.py",
    "plot_grid_search_n_clusters.py",
    "plot_scan_stages.py",
    "plot_deepcluster_nmi.py",
    "plot_clusterfit_linear_probe.py",
    "plot_to_classifier.py",
    "plot_sinkhorn_balanced.py",
    "plot_feature_view.py",
]


class ExampleOrder:
    """sphinx-gallery ``within_subsection_order`` key following :data:`EXAMPLE_ORDER`."""

    def __init__(self, src_dir):
        self.src_dir = src_dir

    def __call__(self, filename):
        if filename in EXAMPLE_ORDER:
            return (EXAMPLE_ORDER.index(filename), filename)
        return (len(EXAMPLE_ORDER), filename)


def setup(app):
    app.connect("autodoc-process-docstring", escape_shape_names, priority=400)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
