"""Sphinx configuration of the groove_sc documentation.

Build: ``sphinx-build -W --keep-going -b html docs docs/_build/html`` (``make docs``).
The tutorials are rendered from the outputs stored in ``tutorials/*.ipynb`` (never executed
here); they are copied into ``docs/tutorials/`` at the start of each build.
"""

from __future__ import annotations

import shutil
import sys
from datetime import date
from importlib.metadata import version as _version
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT / "src"))  # also builds from a source tree without installing

# -- the tutorials: copy the stored notebooks next to the sources ---------------------------
_tutorial_dir = HERE / "tutorials"
if _tutorial_dir.exists():
    shutil.rmtree(_tutorial_dir)
_tutorial_dir.mkdir()
for _nb in sorted((ROOT / "tutorials").glob("*.ipynb")):
    shutil.copy2(_nb, _tutorial_dir / _nb.name)

# -- project ----------------------------------------------------------------------------------
project = "groove_sc"
author = "groove_sc developers"
copyright = f"{date.today().year}, {author}"
try:
    release = _version("groove-sc")
except Exception:  # pragma: no cover - not installed
    release = "0.0.0"
version = ".".join(release.split(".")[:2])

# -- general ----------------------------------------------------------------------------------
extensions = [
    "myst_nb",
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "sphinx_copybutton",
]
templates_path = ["_templates"]
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store", "**.ipynb_checkpoints", "jupyter_execute"]
source_suffix = {".rst": "restructuredtext", ".md": "myst-nb", ".ipynb": "myst-nb"}
master_doc = "index"
default_role = "literal"
nitpicky = False

# -- autodoc / autosummary / napoleon ---------------------------------------------------------
autosummary_generate = True
autosummary_ignore_module_all = False  # document what each module's __all__ lists
autodoc_member_order = "bysource"
autodoc_typehints = "none"  # the numpy docstrings describe every parameter
autodoc_default_options = {"members": True, "show-inheritance": True}
autoclass_content = "class"
napoleon_google_docstring = False
napoleon_numpy_docstring = True
napoleon_use_rtype = False
napoleon_use_param = True
napoleon_custom_sections = [("Metrics", "params_style")]

# -- MyST / myst-nb ---------------------------------------------------------------------------
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence", "deflist"]
myst_heading_anchors = 3
nb_execution_mode = "off"  # render the outputs stored in the notebooks
nb_output_stderr = "remove"  # warnings and progress bars are not part of the tutorial
nb_merge_streams = True

# -- HTML -------------------------------------------------------------------------------------
html_theme = "furo"
html_title = f"groove_sc {release}"
html_theme_options = {"sidebar_hide_name": False}


def _skip_namedtuple_fields(app, what, name, obj, skip, options):
    """Skip the fields of NamedTuples: the class docstring's Attributes section documents them."""
    doc = getattr(obj, "__doc__", None) or ""
    if what == "class" and doc.startswith("Alias for field number"):
        return True
    return None


def setup(app):
    app.connect("autodoc-skip-member", _skip_namedtuple_fields)
