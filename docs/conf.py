"""Sphinx configuration of the deepclust documentation.

Build with ``sphinx-build -W --keep-going -b html docs docs/_build/html`` from the
repository root (``tox -e docs``). The example gallery in ``examples/`` is executed on
every build by sphinx-gallery.
"""

from __future__ import annotations

import os
import sys
from datetime import date

# The package is imported from the repository root when it is not installed.
sys.path.insert(0, os.path.abspath(".."))
sys.path.insert(0, os.path.abspath("sphinxext"))

import deepclust  # noqa: E402

project = "deepclust"
author = "The deepclust developers"
copyright = f"{date.today().year}, {author}"
release = deepclust.__version__
version = release

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
    "deepclust_docs",  # sphinxext/deepclust_docs.py
]

templates_path = ["_templates"]
exclude_patterns = ["_build", "**.ipynb_checkpoints", "_bench/*.rst.inc"]
source_suffix = {".rst": "restructuredtext"}
root_doc = "index"
default_role = "literal"
add_module_names = False
toc_object_entries_show_parents = "hide"  # "fit()" rather than "SelfLabelClusterer.fit()"
pygments_style = "sphinx"

# -- autodoc / autosummary / numpydoc ------------------------------------------------
autosummary_generate = True
autodoc_default_options = {"member-order": "bysource"}
autodoc_typehints = "none"  # numpydoc's parameter sections carry the types
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_attributes_as_param_list = True
numpydoc_xref_param_type = False

# -- HTML ----------------------------------------------------------------------------
html_theme = "pydata_sphinx_theme"
html_title = f"deepclust {release}"
html_static_path = ["_static"]
html_css_files = ["custom.css"]
html_show_sourcelink = False
html_theme_options = {
    "logo": {"text": "deepclust"},
    "navbar_align": "left",
    "show_toc_level": 2,
    "navigation_with_keys": False,
    "secondary_sidebar_items": ["page-toc"],
    "footer_start": ["copyright"],
    "footer_end": ["sphinx-version"],
}
html_sidebars = {"index": [], "getting_started": [], "changelog": []}

# -- sphinx-gallery ------------------------------------------------------------------
sphinx_gallery_conf = {
    "examples_dirs": ["../examples"],
    "gallery_dirs": ["auto_examples"],
    "filename_pattern": r"/plot_",
    "ignore_pattern": r"__init__\.py",
    "within_subsection_order": "deepclust_docs.ExampleOrder",
    "reset_modules": ("matplotlib", "deepclust_docs.reset_torch"),
    "doc_module": ("deepclust",),
    "backreferences_dir": os.path.join("generated", "backreferences"),
    "reference_url": {"deepclust": None},
    "remove_config_comments": True,
    "min_reported_time": 1,
    "show_memory": False,
    "abort_on_example_error": False,
    "only_warn_on_example_error": False,
    "matplotlib_animations": False,
    "image_scrapers": ("matplotlib",),
    "plot_gallery": "True",
    "download_all_examples": False,
    "show_signature": False,
}
