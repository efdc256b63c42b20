"""Sphinx configuration of statesock's documentation site (``make docs``).

The site builds offline: no intersphinx fetch (the standard library's and OpenTelemetry's
names resolve through the hand-kept inventories in ``_inventories/``), no remote image, font
or script. Every warning is an error in ``make docs`` (``-W --keep-going -n``). Tables that
describe the code (the options, the reconnect policy, the machine's rules, the metrics) are
generated from it by ``_ext/statesock_docs.py``, which also holds the docstring hooks.
"""

from __future__ import annotations

import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
sys.path[:0] = [str(DOCS / "_ext"), str(ROOT)]

import statesock  # noqa: E402  (after the path is set: the checkout's own package)

project = "statesock"
author = "the statesock authors"
copyright = "the statesock authors, MIT licence"
release = statesock.__version__
version = release

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.intersphinx",
    "sphinx.ext.viewcode",
    "statesock_docs",
]

source_suffix = {".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "_ext", "_inventories"]
templates_path: list[str] = []

# -- MyST -----------------------------------------------------------------------------------
myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 3

# -- autodoc --------------------------------------------------------------------------------
autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_preserve_defaults = True
autodoc_class_signature = "separated"
autodoc_default_options = {"members": True, "undoc-members": True, "show-inheritance": True}
python_use_unqualified_type_names = True
add_module_names = False

# -- cross-references, offline ----------------------------------------------------------------
# No network: the standard library's (and OpenTelemetry's) names resolve through
# _inventories/*.inv, hand-kept inventories (Sphinx's plain-text version 1 format) of the
# names statesock's signatures use, linking to docs.python.org (and OpenTelemetry's docs);
# nothing is fetched. A new stdlib name in a signature is a build error until it is added.
intersphinx_mapping = {
    "python": ("https://docs.python.org/3", str(DOCS / "_inventories" / "python.inv")),
    "opentelemetry": (
        "https://opentelemetry-python.readthedocs.io/en/latest/",
        str(DOCS / "_inventories" / "opentelemetry.inv"),
    ),
}
intersphinx_timeout = 1

nitpicky = True
nitpick_ignore_regex = [
    # Type variables and typing_extensions.TypeForm in the overloads of events() and on().
    ("py:(class|obj)", r"(statesock\.\w+\.)?T\d?"),
    ("py:(class|obj)", r"TypeForm"),
    # Private names in signatures and docstrings (_Buffered, _Guards): not documented.
    ("py:.*", r"(.*\.)?_[A-Za-z]\w*"),
]
# Docstring references to private names, which the reference does not document.
nitpick_ignore = [
    ("py:meth", "Shell._step"),
]

viewcode_follow_imported_members = False

# -- HTML -----------------------------------------------------------------------------------
html_theme = "furo"
html_title = f"statesock {release}"
html_static_path = ["_static"]
html_css_files = ["statesock.css"]
html_show_sourcelink = False
html_theme_options = {"navigation_with_keys": True}
