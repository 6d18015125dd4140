"""The figures of docs/profiles.rst: ``bilevel-ref profiles`` with the documented command.

Run from the repository root (about a minute on 2 cores)::

    python docs/profiles_plots.py        # writes docs/images/profiles_{performance,data,ecdf}.png

It runs exactly :data:`ARGV` (the command shown in the docs) into a
temporary directory, prints the command's table and copies the three PNGs
to ``docs/images``.  The docs build does not run it.
"""
from __future__ import annotations

import os
import shutil
import sys
import tempfile

from bilevel_ref.profiles.cli import main

HERE = os.path.dirname(os.path.abspath(__file__))
IMAGES = os.path.join(HERE, "images")

#: The command of docs/profiles.rst (after ``bilevel-ref profiles``).
ARGV = ["--methods", "aid,itd,f2ba,f2sa_p,fsba,lfsba,nbo",
        "--problems", "quadratic[dx=5;dy=5],quartic-quadratic,hard-gd,hard-ramp,hard-cubic",
        "--seeds", "0-2", "--tau", "1e-1,1e-3", "--budget", "2000", "--n-jobs", "2"]


def run():
    with tempfile.TemporaryDirectory() as out:
        status = main(ARGV + ["--out", out, "--no-progress"])
        if status != 0:
            return status
        for name in ("performance", "data", "ecdf"):
            dest = os.path.join(IMAGES, f"profiles_{name}.png")
            shutil.copyfile(os.path.join(out, f"profiles-{name}.png"), dest)
            print(f"copied to {dest}")
    return 0


if __name__ == "__main__":
    sys.exit(run())
