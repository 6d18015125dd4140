r"""ε- and κ-sweeps: hitting counts on a grid, fitted exponents, theory and verdicts.

:func:`eps_sweep` runs a method (or a reference driver) to a stationarity
target for each ε of a geometric grid (:func:`eps_grid`), records the oracle
calls spent when the target is first met, fits the exponent
(:func:`~bilevel_ref.complexity.fit.fit_slope`, with a bootstrap interval over
seeds) and compares it with :data:`~bilevel_ref.complexity.theory.THEORY`.
When neither the problem nor the options depend on ε, one long run per seed
records every hitting time (``single_run``).  :func:`kappa_sweep` does the same
against the condition number κ on the quadratic family at fixed ε.  The
outcome is a :class:`SweepResult` (table, JSON).
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np

from ..oracles import COUNT_KINDS
from .._text import format_table
from .._validation import as_vector, check_choice, check_int, check_positive
from .drivers import DRIVERS, run_driver
from .fit import bootstrap_slope, fit_slope, median_over_seeds, verdict
from .theory import MEASURES, THEORY, theory_exponent
from .trace import derived_totals, hitting_times, run_trace

__all__ = ["eps_grid", "eps_sweep", "kappa_sweep", "SweepResult"]


def eps_grid(eps_max=1e-1, eps_min=1e-4, per_decade=2):
    """Geometric grid ε_max, ε_max·10^{-1/per_decade}, …, ε_min (default 10^{-1} … 10^{-4}, two per decade)."""
    eps_max, eps_min = check_positive(eps_max, "eps_max"), check_positive(eps_min, "eps_min")
    per_decade = check_int(per_decade, "per_decade", minimum=1)
    if eps_min > eps_max:
        raise ValueError(f"eps_min must be <= eps_max, got {eps_min} > {eps_max}")
    n = int(round(math.log10(eps_max / eps_min) * per_decade))
    return eps_max * 10.0 ** (-np.arange(n + 1) / per_decade)


@dataclass
class SweepResult:
    """Outcome of :func:`eps_sweep` / :func:`kappa_sweep`.

    ``iterations`` (n_seeds, n_points) and ``counts[kind]`` / ``totals[name]``
    (same shape) hold hitting values (NaN = not reached); ``fits[quantity]``
    the fitted :class:`~bilevel_ref.complexity.fit.Fit` (of the per-point medians over seeds, with a
    bootstrap interval when there are ≥ 2 seeds); ``theory[quantity]`` the
    theory exponent; ``verdicts[quantity]`` from :func:`~bilevel_ref.complexity.fit.verdict`.
    """

    method: str
    problem: str
    variable: str
    grid: np.ndarray
    seeds: list
    measure: str
    iterations: np.ndarray
    counts: dict
    totals: dict
    fits: dict
    theory: dict
    verdicts: dict
    options: dict
    single_run: bool
    elapsed: float
    runs: list = field(default_factory=list, repr=False)

    def quantity(self, name):
        """Hitting values of ``name`` (iterations, a derived total or a kind), shape (n_seeds, n_points)."""
        if name == "iterations":
            return self.iterations
        if name in self.totals:
            return self.totals[name]
        if name in self.counts:
            return self.counts[name]
        raise ValueError(f"unknown quantity {name!r}; known: {['iterations'] + list(self.totals) + list(self.counts)}")

    def table(self):
        """Plain-text table: one row per grid point (medians over seeds)."""
        names = ["iterations", "first_order", "second_order", "cost"] + [
            k for k in self.counts if np.nanmax(np.nan_to_num(self.counts[k], nan=0.0), initial=0) > 0]
        headers = [self.variable] + names
        rows = []
        for j, v in enumerate(self.grid):
            row = [float(v)]
            for n in names:
                val = median_over_seeds(self.quantity(n)[:, [j]])[0]
                row.append(int(val) if np.isfinite(val) else "-")
            rows.append(row)
        lines = [format_table(headers, rows), ""]
        fit_rows = []
        for q, fit in self.fits.items():
            th = self.theory.get(q)
            ver = self.verdicts.get(q, {})
            ci = "" if fit.ci is None else f"[{fit.ci[0]:.3f}, {fit.ci[1]:.3f}]"
            fit_rows.append([q, f"{fit.slope:.4f}" if np.isfinite(fit.slope) else "nan",
                             f"{fit.stderr:.4f}" if np.isfinite(fit.stderr) else "-", ci or "-",
                             fit.n_points, "-" if th is None else f"{th:.4f}", ver.get("text", "-")])
        lines.append(format_table(["quantity", "slope", "stderr", "bootstrap CI", "points", "theory",
                                   "verdict"], fit_rows))
        return "\n".join(lines)

    def to_json(self):
        """JSON-ready dict: raw hitting values, counts by kind, fits, theory, verdicts, seeds, options."""
        def arr(a):
            return [[None if not np.isfinite(v) else float(v) for v in row] for row in np.asarray(a, float)]

        return {
            "method": self.method, "problem": self.problem, "variable": self.variable,
            "grid": self.grid.tolist(), "seeds": list(self.seeds), "measure": self.measure,
            "single_run": self.single_run, "elapsed": self.elapsed,
            "iterations": arr(self.iterations),
            "counts": {k: arr(v) for k, v in self.counts.items()},
            "totals": {k: arr(v) for k, v in self.totals.items()},
            "fits": {k: f.to_dict() for k, f in self.fits.items()},
            "theory": self.theory, "verdicts": self.verdicts,
            "options": _jsonable(self.options), "runs": self.runs,
        }


def _jsonable(obj):
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, (np.floating, np.integer)):
        return obj.item()
    if callable(obj):
        return getattr(obj, "__name__", repr(obj))
    return obj


def _resolve_problem(problem, problem_params, eps, seed, x0):
    """(problem, x0, name, eps_dependent) from an instance, a callable or a catalog name."""
    if isinstance(problem, str):
        from ..problems.catalog import build_problem, describe_problems

        params = dict(problem_params or {})
        takes_eps = any(name == problem and "eps" in defaults for name, _, defaults in describe_problems())
        if takes_eps and eps is not None:
            params["eps"] = float(eps)
        prob, start = build_problem(problem, seed=seed, **params)
        return prob, start if x0 is None else x0, problem, takes_eps
    if callable(problem) and not hasattr(problem, "dx"):
        prob, start = problem(eps, seed)
        return prob, start if x0 is None else x0, getattr(prob, "name", "problem"), True
    if x0 is None:
        x0 = np.zeros(getattr(problem, "dx", 1))
    return problem, x0, getattr(problem, "name", type(problem).__name__), False


def _sweep_options(options, value):
    return dict(options(value)) if callable(options) else dict(options or {})


def eps_sweep(method, problem, eps=None, *, x0=None, seeds=(0,), options=None, problem_params=None,
              measure="norm", rho=None, single_run=None, maxiter=100_000, statistic="first",
              count_samples=False, cost_model=None, quantities=None, mode="upper", theory=None,
              p=None, min_count=10, n_boot=1000, tol=None):
    """ε-sweep: hitting counts for each ε, fitted exponents, theory and verdicts.

    Parameters
    ----------
    method : str
        A registered method (:func:`bilevel_ref.methods`) or a reference driver
        ``"gd"`` / ``"cubic_newton"`` (options ``step`` / ``M``).
    problem : problem, callable or str
        A problem instance; a callable ``(eps, seed) -> (problem, x0)`` for
        ε-dependent families; or a catalog name (:mod:`bilevel_ref.problems.catalog`,
        parameters ``problem_params``; builders with an ``eps`` parameter, e.g.
        ``"hard-ramp"``, are rebuilt per ε).  The drivers also accept a
        :class:`~bilevel_ref.problems.hard.PiecewiseHermite` function.
    eps : array_like, optional
        Targets (default :func:`eps_grid` 10^{-1} … 10^{-4}, two per decade).
    x0 : array_like, optional
        Start (default: the builder's, else zeros).
    seeds : sequence of int
        One run per seed (and per ε unless ``single_run``).
    options : dict or callable eps -> dict
        Method options; a callable makes the options ε-dependent.
    measure : {"norm", "sq", "sosp", "minimax"}
    rho : float, optional
        δ = √(ρε) for the second-order measures (default: ``M`` or ``rho_phi``
        from the options / ``problem.constants()``).
    single_run : bool, optional
        One long run per seed with all hitting times recorded (default: True
        unless the problem or the options depend on ε).
    maxiter : int
        Iteration cap of every run.
    statistic : {"first", "stay"}
        See :func:`~bilevel_ref.complexity.trace.hitting_index`.
    count_samples, cost_model
        See :func:`~bilevel_ref.complexity.trace.derived_totals`.
    quantities : sequence of str, optional
        What to fit (default: iterations and the non-zero derived totals).
    mode : {"upper", "sharp"}
        Verdict type (:func:`~bilevel_ref.complexity.fit.verdict`).
    theory : float or dict, optional
        Override the theory exponent (one value for every quantity, or by quantity).
    p : int, optional
        For ``f2sa_p``'s exponent.
    min_count : float
        Fit only points with at least this many calls (of that quantity).
    n_boot : int
        Bootstrap resamples (with ≥ 2 seeds).
    tol : float, optional
        Verdict tolerance (default 0.15 upper / 0.1 sharp).

    Returns
    -------
    SweepResult
    """
    t_start = time.perf_counter()
    eps = eps_grid() if eps is None else np.sort(as_vector(eps, "eps"))[::-1].copy()
    if np.any(eps <= 0):
        raise ValueError("eps must be > 0")
    check_choice(measure, "measure", MEASURES)
    seeds = [check_int(s, "seeds[i]", minimum=0) for s in (seeds if np.ndim(seeds) else [seeds])]
    if not seeds:
        raise ValueError("seeds must not be empty")
    maxiter = check_int(maxiter, "maxiter", minimum=1)
    method_key = str(method).strip().lower().replace("-", "_")
    is_driver = method_key in DRIVERS
    if not is_driver:
        from .._solver import get_method

        method_key = get_method(method).name
    _, _, pname, eps_dep = _resolve_problem(problem, problem_params, eps[0], seeds[0], x0)
    if single_run is None:
        single_run = not eps_dep and not callable(options)
    elif single_run and (eps_dep or callable(options)):
        raise ValueError("single_run=True needs a problem and options that do not depend on eps")

    n_s, n_e = len(seeds), eps.size
    its = np.full((n_s, n_e), np.nan)
    counts = {k: np.full((n_s, n_e), np.nan) for k in COUNT_KINDS}
    batch = np.ones((n_s, n_e))
    runs, d = [], None
    for i, seed in enumerate(seeds):
        jobs = [(None, eps[-1])] if single_run else [(j, e) for j, e in enumerate(eps)]
        for j, e in jobs:
            prob, start, _, _ = _resolve_problem(problem, problem_params, e, seed, x0)
            d = getattr(prob, "dx", 1) + getattr(prob, "dy", 0)
            opts = _sweep_options(options, e)
            r = rho if rho is not None else _default_rho(prob, opts, measure)
            if is_driver:
                tr = run_driver(method_key, prob, start, opts, e, measure, r, maxiter)
            else:
                tr = run_trace(method_key, prob, start, seed=seed, options=opts, stop_eps=e,
                               measure=measure, rho=r, maxiter=maxiter)
            targets = eps if j is None else np.array([e])
            cols = slice(None) if j is None else slice(j, j + 1)
            it, cnt = hitting_times(tr, targets, measure, r, statistic)
            its[i, cols] = it
            for k in COUNT_KINDS:
                counts[k][i, cols] = cnt.get(k, np.full(targets.size, np.nan))
            batch[i, cols] = tr.batch
            runs.append({"seed": seed, "eps": None if j is None else float(e),
                         "nit": int(tr.iterations[-1]), "rho": r,
                         **{k: v for k, v in tr.info.items() if k != "x"}})
    counts = {k: v for k, v in counts.items() if np.nanmax(np.nan_to_num(v, nan=0.0), initial=0) > 0
              or k in ("grad_f", "grad_g")}
    totals = derived_totals(counts, d, batch=batch, cost_model=cost_model, count_samples=count_samples)
    # keep the NaN pattern of unreached targets in the totals
    for k in totals:
        totals[k] = np.where(np.isnan(its), np.nan, totals[k])
    if quantities is None:
        quantities = ["iterations"] + [k for k, v in totals.items() if np.nanmax(np.nan_to_num(v), initial=0) > 0]
    result = SweepResult(method_key, pname, "eps", eps, seeds, measure, its, counts, totals, {}, {}, {},
                         _jsonable(options if not callable(options) else {"eps-dependent": options}),
                         bool(single_run), 0.0, runs)
    for q in quantities:
        vals = result.quantity(q)
        if n_s >= 2:
            fit, _, _ = bootstrap_slope(eps, vals, n_boot=n_boot, rng=0, min_count=min_count)
        else:
            fit = fit_slope(eps, vals[0], min_count)
        result.fits[q] = fit
        th = theory.get(q) if isinstance(theory, dict) else theory
        if th is None and not isinstance(theory, dict):
            try:
                th = theory_exponent(method_key, q, measure, p)
            except ValueError:
                th = None
        result.theory[q] = th
        result.verdicts[q] = verdict(fit.slope, th, mode, tol)
    result.elapsed = time.perf_counter() - t_start
    return result


def _default_rho(problem, opts, measure):
    if measure not in ("sosp", "minimax"):
        return None
    if "M" in opts:
        return float(opts["M"])
    known = problem.constants() if hasattr(problem, "constants") else {}
    for key in ("rho_phi", "M"):
        if key in known:
            return float(known[key])
    raise ValueError(f"measure={measure!r} needs rho (δ = sqrt(rho*eps)); give rho= or options['M']")


def kappa_sweep(method, kappas, eps, *, dx=10, dy=10, seeds=(0,), options=None, measure="norm",
                maxiter=100_000, quantities=None, theory=None, mode="upper", min_count=10):
    """κ-sweep on the quadratic family (L = 1, μ = 1/κ) at fixed ε: fit log N vs log κ.

    ``theory`` defaults to the table's κ exponent (``kappa_first_order`` /
    ``kappa_second_order``) when stated.  The fitted "slope" is the exponent of
    κ (the same :class:`~bilevel_ref.complexity.fit.Fit`, with 1/ε replaced by κ).
    """
    from ..problems.quadratic import quadratic_bilevel

    kappas = as_vector(kappas, "kappas")
    eps = check_positive(eps, "eps")
    results = []
    for kappa in kappas:
        def build(_eps, seed, kappa=float(kappa)):
            return quadratic_bilevel(dx, dy, kappa=kappa, seed=seed), np.zeros(dx)

        results.append(eps_sweep(method, build, [eps], seeds=seeds, options=options, measure=measure,
                                 maxiter=maxiter, quantities=[], single_run=False))
    base = results[0]
    its = np.concatenate([r.iterations for r in results], axis=1)
    totals = {k: np.concatenate([r.totals[k] for r in results], axis=1) for k in base.totals}
    counts = {k: np.concatenate([r.counts.get(k, np.full_like(r.iterations, np.nan)) for r in results], axis=1)
              for k in base.counts}
    out = SweepResult(base.method, "quadratic", "kappa", kappas, list(seeds), measure, its, counts, totals,
                      {}, {}, {}, _jsonable(options or {}), False, sum(r.elapsed for r in results))
    row = [r for r in THEORY if r["method"] == base.method]
    for q in quantities or ["iterations", "first_order", "second_order"]:
        vals = median_over_seeds(out.quantity(q))
        # log N = a + b log κ: reuse the ε fitter with 1/κ in place of ε
        fit = fit_slope(1.0 / kappas, vals, min_count)
        out.fits[q] = fit
        th = theory.get(q) if isinstance(theory, dict) else theory
        if th is None and row and q in ("first_order", "second_order"):
            th = row[0].get(f"kappa_{q}")
        out.theory[q] = th
        out.verdicts[q] = verdict(fit.slope, th, mode)
    return out

