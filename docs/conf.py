"""
Sphinx configuration for Flocker's documentation.
"""

import os
import sys

sys.path.insert(0, os.path.abspath(".."))

from flocker import __version__  # noqa: E402

project = "Flocker"
author = "Flocker developers"
copyright = "2026, Flocker developers"
version = release = __version__
extensions = ["sphinx.ext.autodoc", "sphinx.ext.viewcode"]
autodoc_member_order = "bysource"
exclude_patterns = ["_build"]
html_theme = "alabaster"
nitpicky = False
