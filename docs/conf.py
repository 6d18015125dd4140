"""Sphinx configuration for bilevel_ref (build: ``sphinx-build -W -b html docs docs/_build``)."""
import bilevel_ref

project = "bilevel_ref"
author = "bilevel_ref developers"
release = version = bilevel_ref.__version__
extensions = ["sphinx.ext.autodoc", "sphinx.ext.mathjax", "numpydoc"]
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
autodoc_member_order = "bysource"
exclude_patterns = ["_build"]
html_theme = "alabaster"
