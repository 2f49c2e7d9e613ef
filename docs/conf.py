"""Sphinx configuration of the torchtopo documentation.

Build:  ``sphinx-build -W -b html docs docs/_build/html``  (warnings are errors)
Doctest the guides:  ``sphinx-build -W -b doctest docs docs/_build/doctest``

The API reference, the examples page and the performance page are generated at build time by
``docs/_ext/torchtopo_docs.py`` from each public module's ``__all__``, the scripts in
``examples/`` and the JSON files in ``benchmarks/``: nothing there needs editing by hand when a
public name, an example or a benchmark is added.
"""
from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
sys.path.insert(0, str(DOCS / "_ext"))
sys.path.insert(0, str(ROOT))  # the checkout's torchtopo first, even without `pip install -e`

os.environ.setdefault("OMP_NUM_THREADS", "1")  # the guides' doctests are tiny
os.environ.setdefault("MPLBACKEND", "Agg")

import torchtopo  # noqa: E402

# -- project -------------------------------------------------------------------------------
project = "torchtopo"
author = "torchtopo developers"
copyright = "2026, torchtopo developers"
release = torchtopo.__version__
version = ".".join(release.split(".")[:2])

# -- extensions ----------------------------------------------------------------------------
extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
    "sphinx-mathjax-offline",  # the package's module name has dashes
    "sphinx.ext.doctest",
    "sphinx.ext.viewcode",
    "myst_parser",
    "torchtopo_docs",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "**/_build", "Thumbs.db", ".DS_Store", "**/*.inc.rst", "api/intro/*"]
templates_path = []

# -- autodoc / napoleon --------------------------------------------------------------------
# members / undoc-members / show-inheritance are set per class by torchtopo_docs (no
# "Bases: object" on plain classes).
autodoc_default_options = {
    "member-order": "bysource",
    "exclude-members": "extra_repr, forward_pre_hook, training, dump_patches, call_super_init",
}
autodoc_typehints = "description"
autodoc_typehints_description_target = "documented"
autodoc_typehints_format = "short"
# Short names for the library's type aliases (a Grid or an (H, W) tuple; a number or a
# callable of the step) instead of their expanded Unions.
autodoc_type_aliases = {"GridLike": "GridLike", "Strength": "Strength"}
try:  # inside Optional[...] Sphinx 9 prints the alias's repr: print its name instead
    from sphinx.util.inspect import TypeAliasForwardRef

    TypeAliasForwardRef.__repr__ = lambda self: self.name
except ImportError:  # pragma: no cover - other Sphinx versions
    pass
autodoc_preserve_defaults = True
autodoc_inherit_docstrings = False  # a method without its own docstring shows none, not torch's
autosummary_generate = False  # tables only; the pages are written by torchtopo_docs
napoleon_google_docstring = True
napoleon_numpy_docstring = True
napoleon_use_rtype = False
napoleon_use_ivar = True
napoleon_attr_annotations = True
python_maximum_signature_line_length = 88
add_module_names = False
toc_object_entries_show_parents = "hide"

# Optional dependencies that some modules import at module level: mock them only where absent,
# so the docs build in the ``docs`` extra alone (torch, numpy, sphinx, furo, myst, matplotlib).
autodoc_mock_imports = [
    m for m in ("triton", "torchvision", "scipy", "mlxtend", "tqdm", "skimage")
    if importlib.util.find_spec(m) is None
]

# -- doctest -------------------------------------------------------------------------------
# Only the explicit ``testcode`` / ``doctest`` directives of the guides run: the ``>>>``
# examples inside docstrings are illustrations (they often use a ``model`` defined elsewhere).
doctest_test_doctest_blocks = ""
doctest_global_setup = """
def _one_thread_seeded():
    import os
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch
    torch.set_num_threads(1)
    torch.manual_seed(0)
_one_thread_seeded()
del _one_thread_seeded
import importlib.util as _util
HAS_TORCHVISION = _util.find_spec("torchvision") is not None  # for ``:skipif:``
del _util
"""
# Nothing else is imported for the pages' code: each page's first block imports what it uses.
trim_doctest_flags = True

# -- math ----------------------------------------------------------------------------------
# MathJax 3 ships with the site (the ``sphinx-mathjax-offline`` package of the ``docs`` extra
# copies it into ``_static/mathjax``): the maths renders without the network, and no page loads
# a script or a style from another host (``tests/test_docs.py`` checks it).

# -- html ----------------------------------------------------------------------------------
html_theme = "furo"
html_title = f"torchtopo {release}"
html_static_path = ["_static"]
html_css_files = ["custom.css"]
html_show_sourcelink = False
html_copy_source = False
html_theme_options = {
    "sidebar_hide_name": False,
    "navigation_with_keys": True,
    "light_css_variables": {
        "color-brand-primary": "#2f6f5e",
        "color-brand-content": "#2f6f5e",
    },
    "dark_css_variables": {
        "color-brand-primary": "#7cc7a8",
        "color-brand-content": "#7cc7a8",
    },
}
pygments_style = "friendly"
pygments_dark_style = "monokai"

# MyST: only used to include the Markdown reports the examples write.
myst_enable_extensions = ["dollarmath"]
myst_heading_anchors = 3
# The examples' reports are included as their scripts write them: heading levels and links to
# files of the run (results.json, checkpoints) are theirs, not the site's.
suppress_warnings = ["myst.header", "myst.xref_missing"]

# -- the front page's figure ---------------------------------------------------------------
# Committed (docs/_static/topomap.png, made by docs/scripts/make_topomap.py with the library).
# Rebuilt here only when missing, with a shorter run to keep the build fast, or on request
# with TORCHTOPO_DOCS_REGEN=1 (the script's full defaults, ~1.5 min on one CPU thread).
if os.environ.get("TORCHTOPO_DOCS_REGEN") or not (DOCS / "_static" / "topomap.png").exists():
    import subprocess

    _args = [] if os.environ.get("TORCHTOPO_DOCS_REGEN") else ["--steps", "150"]
    subprocess.run([sys.executable, str(DOCS / "scripts" / "make_topomap.py"), *_args], check=True)
