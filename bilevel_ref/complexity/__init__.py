r"""Verifying complexity claims: ε-sweeps, hitting times, fitted exponents, verdicts.

For a method and a problem family, run to a stationarity target for several ε,
record the oracle calls spent when the target is first met (the *hitting
time*), fit

.. math::

    \log N(\varepsilon) = a + b \log(1/\varepsilon)

by least squares on the grid points with :math:`N \ge 10`, and compare the
slope b with the exponent the papers state
(:data:`~bilevel_ref.complexity.theory.THEORY`):

* benign problems: the bound must hold, :math:`b \le b_{theory} + 0.15`;
* worst-case instances (:mod:`bilevel_ref.problems.hard`): it should be attained,
  :math:`|b - b_{theory}| \le 0.1`.

The truth is always the exact ∇φ/∇²φ when the problem has closed forms, else ∇φ
from an accurate lower-level solve and a dense linear solve — never the
method's own estimate; these evaluations are not counted.

Modules, one concept each (their main names are importable from ``bilevel_ref.complexity`` too):

* :mod:`~bilevel_ref.complexity.theory` — the theory table, stationarity measures, exponent conversion;
* :mod:`~bilevel_ref.complexity.fit` — slope fits, bootstrap over seeds, verdicts;
* :mod:`~bilevel_ref.complexity.trace` — true stationarity along a run, hitting times, derived totals;
* :mod:`~bilevel_ref.complexity.drivers` — reference GD and cubic-Newton drivers on φ;
* :mod:`~bilevel_ref.complexity.sweep` — ε- and κ-sweeps and their result;
* :mod:`~bilevel_ref.complexity.parallel` — running a sweep's runs in parallel (joblib: loky, Dask);
* :mod:`~bilevel_ref.complexity.dimension` — the d-sweep of LFSBA vs FSBA (the √d claim);
* :mod:`~bilevel_ref.complexity.plot` — the log–log figure;
* :mod:`~bilevel_ref.complexity.cli` — ``bilevel-ref complexity``.
"""
from __future__ import annotations

from .cli import main
from .drivers import DRIVERS, cubic_newton_trace, gd_trace
from .fit import Fit, bootstrap_slope, fit_slope, verdict
from .plot import plot_sweep
from .sweep import KappaSweepResult, SweepResult, eps_grid, eps_sweep, kappa_sweep
from .dimension import DimSweepResult, dim_sweep, plot_dim_sweep
from .parallel import run_tasks
from .theory import MEASURES, QUANTITIES, THEORY, theory_exponent, theory_kappa_exponent, theory_rows
from .trace import (DEFAULT_COST, Trace, derived_totals, hitting_index, hitting_times, run_trace,
                    true_stationarity)

__all__ = [
    "THEORY", "DEFAULT_COST", "MEASURES", "QUANTITIES", "DRIVERS", "Trace", "Fit", "SweepResult",
    "theory_rows", "theory_exponent", "fit_slope", "bootstrap_slope", "verdict",
    "hitting_index", "hitting_times", "derived_totals", "true_stationarity",
    "run_trace", "gd_trace", "cubic_newton_trace", "eps_sweep", "kappa_sweep", "KappaSweepResult",
    "theory_kappa_exponent",
    "eps_grid", "plot_sweep", "main", "dim_sweep", "DimSweepResult", "plot_dim_sweep", "run_tasks",
]
