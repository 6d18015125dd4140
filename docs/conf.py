"""Sphinx configuration for bilevel_ref (build: ``sphinx-build -W -b html docs docs/_build``)."""
import os
import subprocess
import sys
from pathlib import Path

import bilevel_ref

project = "bilevel_ref"
author = "bilevel_ref developers"
release = version = bilevel_ref.__version__
extensions = ["sphinx.ext.autodoc", "sphinx.ext.mathjax", "numpydoc"]
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
autodoc_member_order = "bysource"
exclude_patterns = ["_build", "examples"]
html_theme = "alabaster"

# ---------------------------------------------------------------------------
# Executed examples: every docs/examples/*.py runs at the start of each build;
# its stdout goes to docs/examples/_output/<name>.txt (included by the pages
# next to the script), and a failing or hanging script fails the build.
# ---------------------------------------------------------------------------
EXAMPLES = Path(__file__).resolve().parent / "examples"
EXAMPLE_TIMEOUT = 120  # seconds per script


def run_examples(app):
    out_dir = EXAMPLES / "_output"
    out_dir.mkdir(exist_ok=True)
    env = dict(os.environ, MPLBACKEND="Agg", PYTHONHASHSEED="0", PYTHONIOENCODING="utf-8")
    failures = []
    for script in sorted(EXAMPLES.glob("*.py")):
        try:
            proc = subprocess.run([sys.executable, script.name], cwd=EXAMPLES, env=env,
                                  capture_output=True, encoding="utf-8", timeout=EXAMPLE_TIMEOUT)
        except subprocess.TimeoutExpired:
            failures.append(f"{script.name} did not finish in {EXAMPLE_TIMEOUT} s")
            continue
        if proc.returncode != 0:
            failures.append(f"{script.name} exited with status {proc.returncode}:\n"
                            f"{proc.stderr.strip()[-3000:]}")
            continue
        out = out_dir / f"{script.stem}.txt"
        # rewrite only on change, so an unchanged output does not force a re-read of the pages
        if not out.exists() or out.read_text(encoding="utf-8") != proc.stdout:
            out.write_text(proc.stdout, encoding="utf-8")
    if failures:
        raise RuntimeError("docs examples failed:\n\n" + "\n\n".join(failures))


def setup(app):
    app.connect("builder-inited", run_examples)
