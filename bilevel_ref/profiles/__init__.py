r"""Profiles in oracle units: Dolan–Moré performance profiles, Moré–Wild data profiles, COCO runtime ECDFs.

Run several methods on several problem instances, find where each run
first passes a convergence test at tolerance τ, and compare the costs — in
oracle calls, total or by kind, never seconds::

    from bilevel_ref import profiles

    pset = profiles.profile(["aid", "itd", "f2ba", "f2sa_p", "fsba", "lfsba"],
                            ["quadratic[dx=5;dy=5]", "quartic-quadratic", "hard-gd", "hard-ramp",
                             "hard-cubic"], seeds=[0, 1], tau=[1e-1, 1e-3])
    alphas, rho = pset.performance(1e-3)      # ρ_s(α), one row per method
    kappas, d = pset.data(1e-3)               # d_s(κ)
    curves = pset.ecdf("hvp_yy_g")            # {method: (budgets, fraction)}

or ``bilevel-ref profiles --methods ... --problems ... --seeds ... --tau ...``
(:mod:`bilevel_ref.profiles.cli`), which writes the PNGs and CSVs.

Modules: :mod:`~bilevel_ref.profiles.curves` (the three curves from a
cost table), :mod:`~bilevel_ref.profiles.targets` (convergence tests, cost
measures, closed-form minima), :mod:`~bilevel_ref.profiles.runs` (the
runs), :mod:`~bilevel_ref.profiles.analysis` (runs to profiles),
:mod:`~bilevel_ref.profiles.export` (CSV, benchopt table),
:mod:`~bilevel_ref.profiles.plot` (PNG).
"""
from __future__ import annotations

from .analysis import DATA_UNITS, ProfileSet, check_data_unit, compute_profiles, reference_values
from .curves import data_profile, ecdf, performance_profile, performance_ratios
from .export import BENCHOPT_COLUMNS, benchopt_rows, write_benchopt_csv, write_curves_csv, write_hits_csv
from .runs import ProblemSpec, Run, parse_problem_spec, run_profiles
from .targets import COSTS, MEASURES, check_cost, check_measure, check_taus, closed_form_minimum

__all__ = [
    "profile", "run_profiles", "compute_profiles", "ProfileSet", "Run", "ProblemSpec", "parse_problem_spec",
    "performance_ratios", "performance_profile", "data_profile", "ecdf", "reference_values",
    "closed_form_minimum", "MEASURES", "COSTS", "DATA_UNITS", "BENCHOPT_COLUMNS", "benchopt_rows",
    "write_benchopt_csv", "write_curves_csv", "write_hits_csv",
]


def profile(methods, problems, seeds=(0,), tau=(1e-1, 1e-3), *, measure="phi", cost="total", data_unit="dim",
            budget=2000, maxiter=10**6, options=None, n_jobs=1, parallel="loky", scheduler=None,
            progress=None):
    """Run ``methods`` on ``problems`` × ``seeds`` and compute their profiles.

    :func:`run_profiles` then :func:`compute_profiles`; ``measure``,
    ``cost``, ``tau`` and ``data_unit`` are checked before any run.

    Parameters
    ----------
    methods, problems, seeds, budget, maxiter, options, n_jobs, parallel, scheduler, progress
        See :func:`run_profiles`.
    tau, measure, cost, data_unit
        See :func:`compute_profiles`.

    Returns
    -------
    ProfileSet
    """
    check_taus(tau)
    check_measure(measure)
    check_cost(cost)
    check_data_unit(data_unit)
    runs = run_profiles(methods, problems, seeds, budget=budget, maxiter=maxiter, options=options,
                        n_jobs=n_jobs, parallel=parallel, scheduler=scheduler, progress=progress)
    return compute_profiles(runs, tau, measure=measure, cost=cost, data_unit=data_unit)
