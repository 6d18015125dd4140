"""Figures and tables of the d-sweep (LFSBA vs FSBA) and the IFSBA ε-sweep in docs/complexity.rst.

Run from the repository root (a few minutes of CPU on 2 cores; ``--n-jobs 2``
runs the independent runs in parallel, with the same results)::

    python docs/complexity_sweep_plots.py [--n-jobs 2]

writes ``docs/images/complexity_dim_lfsba.png`` and
``docs/images/complexity_ifsba_hvp.png`` and prints both tables.  The docs
build does not run it: the figures are committed.
"""
from __future__ import annotations

import argparse
import os

from bilevel_ref import complexity as C
from bilevel_ref.complexity.dimension import dim_sweep, plot_dim_sweep

HERE = os.path.dirname(os.path.abspath(__file__))

#: IFSBA on hard-cubic: ε-dependent options (the method's target ε sets its Cubic-Subsolver steps),
#: the closed-form SOSP stopping test, M = 1 (the instance's M), κ = 2 lift.
IFSBA_OPTIONS = {"M": 1.0, "lam": 100.0, "inner_steps": 10, "linsys_steps": 10, "stop_rule": "exact"}
IFSBA_EPS = C.eps_grid(1e-1, 1e-2, 2)


def ifsba_sweep(eps=IFSBA_EPS, n_jobs=1):
    """The IFSBA ε-sweep: HVP / cross-product counts at the hitting times, fitted against theory 2."""
    return C.eps_sweep("ifsba", "hard-cubic", eps, options=lambda e: {**IFSBA_OPTIONS, "eps": float(e)},
                       problem_params={"eps_min": 1e-3, "kappa": 2.0}, measure="sosp", rho=1.0,
                       maxiter=50_000, quantities=["iterations", "second_order", "hvp_yy_g"], n_jobs=n_jobs)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n-jobs", type=int, default=1)
    args = ap.parse_args(argv)
    res = dim_sweep((16, 64, 256), 1e-2, n_jobs=args.n_jobs, maxiter=20_000)
    print(res.table())
    plot_dim_sweep(res, os.path.join(HERE, "images", "complexity_dim_lfsba.png"))
    sweep = ifsba_sweep(n_jobs=args.n_jobs)
    print(sweep.table())
    C.plot_sweep(sweep, os.path.join(HERE, "images", "complexity_ifsba_hvp.png"),
                 quantities=["iterations", "second_order"],
                 title="IFSBA on hard-cubic (sosp): iterations and second-order products")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
