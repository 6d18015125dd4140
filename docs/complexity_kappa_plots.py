"""κ-sweep figures and the fitted-vs-theory table of docs/complexity.rst ("κ-sweeps").

Run from the repository root (about 20 s on 2 cores)::

    python docs/complexity_kappa_plots.py     # writes docs/images/complexity_kappa_*.png, prints the table

Each sweep is also one command line (printed with its table); the docs build
does not run this script.  Every option is explicit, so the figures measure
these configurations and not defaults derived from a tolerance.
"""
from __future__ import annotations

import os

from bilevel_ref import complexity as C

HERE = os.path.dirname(os.path.abspath(__file__))
KAPPAS = [10.0, 30.0, 100.0, 300.0, 1000.0]

#: (figure, method, problem, ε, options, quantities, extra sweep keywords, command line)
SWEEPS = [
    ("complexity_kappa_aid_chain.png", "aid", "hard-kappa-chain", 1e-8,
     {"linsys_steps": 100_000, "linsys_rtol": 1e-10, "inner_steps": 1, "step_x": 1.0},
     ["second_order"], {},
     "bilevel-ref complexity aid hard-kappa-chain --sweep kappa --kappas 10,30,100,300,1000 --eps 1e-8 "
     "--option linsys_steps=100000 --option linsys_rtol=1e-10 --option inner_steps=1 --option step_x=1.0 "
     "--quantity second_order"),
    ("complexity_kappa_aid_neumann_chain.png", "aid", "hard-kappa-chain", 1e-8,
     {"inner": "neumann", "linsys_steps": 10, "inner_steps": 1, "step_x": 1.0},
     ["second_order"], {"theory": 1.0, "mode": "sharp"},
     "bilevel-ref complexity aid hard-kappa-chain --sweep kappa --kappas 10,30,100,300,1000 --eps 1e-8 "
     "--option inner=neumann --option linsys_steps=10 --option inner_steps=1 --option step_x=1.0 "
     "--quantity second_order --theory 1 --mode sharp"),
    ("complexity_kappa_f2ba_chain.png", "f2ba", "hard-kappa-chain", 1e-8,
     {"inner_steps": 10, "step_x": 1.0, "lam": 10.0},
     ["first_order"], {},
     "bilevel-ref complexity f2ba hard-kappa-chain --sweep kappa --kappas 10,30,100,300,1000 --eps 1e-8 "
     "--option inner_steps=10 --option step_x=1.0 --option lam=10 --quantity first_order"),
    ("complexity_kappa_aid_quadratic.png", "aid", "quadratic", 1e-6,
     {"inner_steps": 10, "linsys_steps": 10},
     ["iterations", "first_order", "second_order"],
     {"problem_params": {"dx": 5, "dy": 5}, "kappas": [3.0, 10.0, 30.0, 100.0]},
     "bilevel-ref complexity aid quadratic --sweep kappa --kappas 3,10,30,100 --eps 1e-6 "
     "--param dx=5 --param dy=5 --option inner_steps=10 --option linsys_steps=10"),
]


def main():
    rows = []
    for png, method, problem, eps, options, quantities, extra, command in SWEEPS:
        extra = dict(extra)
        kappas = extra.pop("kappas", KAPPAS)
        res = C.kappa_sweep(method, kappas, eps, problem=problem, options=options, quantities=quantities,
                            **extra)
        print(f"$ {command}")
        print(res.table(), f"\n({res.elapsed:.1f} s)\n")
        C.plot_sweep(res, os.path.join(HERE, "images", png),
                     title=f"{method} on {problem}: κ-sweep at ε = {eps:g} ({res.regime})")
        for q in quantities:
            fit, ver = res.fits[q], res.verdicts[q]
            rows.append((method, problem, q, fit.slope, res.theory[q], res.bounds[q], ver.get("text")))
    print(f"{'method':6} {'problem':17} {'quantity':13} {'fitted':>7} {'theory':>7} {'bound':6} verdict")
    for method, problem, q, b, th, bound, text in rows:
        th_text = "-" if th is None else f"{th:.2f}"
        print(f"{method:6} {problem:17} {q:13} {b:7.4f} {th_text:>7} {str(bound):6} {text}")


if __name__ == "__main__":
    main()
