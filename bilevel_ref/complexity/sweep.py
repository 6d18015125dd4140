r"""ε- and κ-sweeps: hitting counts on a grid, fitted exponents, theory and verdicts.

:func:`eps_sweep` runs a method (or a reference driver) to a stationarity
target for each ε of a geometric grid (:func:`eps_grid`), records the oracle
calls spent when the target is first met, fits the exponent
(:func:`~bilevel_ref.complexity.fit.fit_slope`, with a bootstrap interval over
seeds) and compares it with :data:`~bilevel_ref.complexity.theory.THEORY`.
When neither the problem nor the options depend on ε, one long run per seed
records every hitting time (``single_run``).  :func:`kappa_sweep` does the same
against the condition number κ at fixed ε (the quadratic family, the
Nesterov-chain worst case ``hard-kappa-chain`` or any catalog family with a
``kappa`` parameter), against the theory table's κ exponents and their status
(upper bound or tight).  The outcome is a :class:`SweepResult` (table, JSON).
"""
from __future__ import annotations

import functools
import math
import os
import time
from dataclasses import dataclass, field

import numpy as np

from ..oracles import COUNT_KINDS
from .._text import format_table
from .._validation import as_vector, check_choice, check_int, check_positive
from .drivers import DRIVERS, run_driver
from .parallel import check_parallel, run_tasks
from .fit import bootstrap_slope, fit_slope, median_over_seeds, verdict
from .theory import KAPPA_REGIMES, MEASURES, theory_exponent, theory_kappa_exponent
from .trace import derived_totals, hitting_times, run_trace

__all__ = ["eps_grid", "eps_sweep", "kappa_sweep", "check_kappas", "SweepResult", "KappaSweepResult"]


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
    theory exponent; ``verdicts[quantity]`` from :func:`~bilevel_ref.complexity.fit.verdict`;
    ``runs`` one record per run (seed, ε or None for a single run, nit, ρ, status, the final
    iterate ``x`` as a list, and where and how long it ran: ``pid``, ``cpu_time``, ``wall_time``).
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
        bounds = getattr(self, "bounds", None)  # κ-sweeps: status of each theory exponent
        fit_rows = []
        for q, fit in self.fits.items():
            th = self.theory.get(q)
            ver = self.verdicts.get(q, {})
            ci = "" if fit.ci is None else f"[{fit.ci[0]:.3f}, {fit.ci[1]:.3f}]"
            fit_rows.append([q, f"{fit.slope:.4f}" if np.isfinite(fit.slope) else "nan",
                             f"{fit.stderr:.4f}" if np.isfinite(fit.stderr) else "-", ci or "-",
                             fit.n_points, "-" if th is None else f"{th:.4f}"]
                            + ([bounds.get(q) or "-"] if bounds is not None else []) + [ver.get("text", "-")])
        lines.append(format_table(["quantity", "slope", "stderr", "bootstrap CI", "points", "theory"]
                                  + (["bound"] if bounds is not None else []) + ["verdict"], fit_rows))
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
              p=None, min_count=10, n_boot=1000, tol=None, n_jobs=1, parallel="loky", scheduler=None,
              progress=None):
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
    n_jobs : int, default 1
        Runs in flight at once, one task per (seed, ε-run): 1 = one after
        another in this process (no joblib), N ≥ 2 or −1 (all cores / all Dask
        workers) through joblib (:mod:`~bilevel_ref.complexity.parallel`).
        Results do not depend on it: same counts, fits and iterates.
    parallel : {"loky", "dask"}
        joblib backend: local worker processes, or an existing Dask cluster.
    scheduler : str or distributed.Client, optional
        The Dask scheduler's address (``parallel="dask"``; default: the
        current client).  Checked, like the imports, before any run starts.
    progress : bool, optional
        tqdm bar of the runs done / total on stderr (default: on a terminal only).

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

    check_parallel(n_jobs, parallel, scheduler)  # bad arguments fail before any run

    n_s, n_e = len(seeds), eps.size
    its = np.full((n_s, n_e), np.nan)
    counts = {k: np.full((n_s, n_e), np.nan) for k in COUNT_KINDS}
    batch = np.ones((n_s, n_e))
    tasks, where = [], []
    for i, seed in enumerate(seeds):
        jobs = [(None, eps[-1])] if single_run else [(j, e) for j, e in enumerate(eps)]
        for j, e in jobs:
            # options are evaluated here (an ε-dependent callable need not be picklable)
            tasks.append(_SweepTask(method_key, is_driver, problem, problem_params, float(e), seed, x0,
                                    _sweep_options(options, e), rho, measure, maxiter, statistic,
                                    eps if j is None else np.array([e]), j is None))
            where.append((i, slice(None) if j is None else slice(j, j + 1)))
    outcomes = run_tasks(_run_sweep_task, tasks, n_jobs, parallel, scheduler,
                         desc=f"{method_key} sweep", progress=progress)
    runs, d = [], None
    for (i, cols), out in zip(where, outcomes):
        its[i, cols] = out["iterations"]
        for k in COUNT_KINDS:
            counts[k][i, cols] = out["counts"].get(k, np.full(out["iterations"].size, np.nan))
        batch[i, cols] = out["batch"]
        runs.append(out["run"])
        d = out["d"]
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


@dataclass
class _SweepTask:
    """One (seed, ε-run) of :func:`eps_sweep`: everything a worker needs, picklable."""

    method: str
    is_driver: bool
    problem: object
    problem_params: dict
    eps: float
    seed: int
    x0: object
    options: dict
    rho: float
    measure: str
    maxiter: int
    statistic: str
    targets: np.ndarray
    single_run: bool


def _run_sweep_task(task):
    """Run one task: build the problem, run to ``task.eps``, return the hitting values of its targets.

    The run record also holds the task's CPU and wall seconds and the process id
    (where it ran: :mod:`~bilevel_ref.complexity.parallel` workers).
    """
    cpu0, wall0 = time.process_time(), time.perf_counter()
    prob, start, _, _ = _resolve_problem(task.problem, task.problem_params, task.eps, task.seed, task.x0)
    opts = dict(task.options)
    r = task.rho if task.rho is not None else _default_rho(prob, opts, task.measure)
    if task.is_driver:
        tr = run_driver(task.method, prob, start, opts, task.eps, task.measure, r, task.maxiter)
    else:
        tr = run_trace(task.method, prob, start, seed=task.seed, options=opts, stop_eps=task.eps,
                       measure=task.measure, rho=r, maxiter=task.maxiter)
    it, cnt = hitting_times(tr, task.targets, task.measure, r, task.statistic)
    x = tr.info.get("x")
    return {"iterations": it, "counts": cnt, "batch": tr.batch,
            "d": getattr(prob, "dx", 1) + getattr(prob, "dy", 0),
            "run": {"seed": task.seed, "eps": None if task.single_run else task.eps,
                    "nit": int(tr.iterations[-1]), "rho": r,
                    **{k: v for k, v in tr.info.items() if k != "x"},
                    "x": None if x is None else np.asarray(x, dtype=float).tolist(),
                    "cpu_time": time.process_time() - cpu0, "wall_time": time.perf_counter() - wall0,
                    "pid": os.getpid()}}


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


@dataclass
class KappaSweepResult(SweepResult):
    """Outcome of :func:`kappa_sweep`: a :class:`SweepResult` over κ (``variable="kappa"``) plus
    ``regime`` (``"total"`` or ``"inner"``), ``bounds[quantity]`` (status of the theory exponent:
    ``"upper"``, ``"tight"``, ``"lower"``, ``"given"`` for an override, or None; shown in
    :meth:`~SweepResult.table`), the fixed ``eps`` and
    the ``problem_params`` shared by every κ."""

    regime: str = "total"
    bounds: dict = field(default_factory=dict)
    eps: float = None
    problem_params: dict = field(default_factory=dict)

    def to_json(self):
        """:meth:`SweepResult.to_json` plus ``regime``, ``bounds``, ``eps`` and ``problem_params``."""
        out = super().to_json()
        out.update({"regime": self.regime, "bounds": dict(self.bounds), "eps": self.eps,
                    "problem_params": _jsonable(self.problem_params)})
        return out


def check_kappas(kappas, name="kappas"):
    """Sorted float array of condition numbers: finite, all > 1, at least two distinct values."""
    kappas = as_vector(kappas, name)
    if not np.all(np.isfinite(kappas)):
        raise ValueError(f"{name} must be finite, got {kappas.tolist()}")
    if np.any(kappas <= 1):
        raise ValueError(f"{name} must all be > 1 (a condition number L/mu), got {kappas.tolist()}")
    kappas = np.unique(kappas)
    if kappas.size < 2:
        raise ValueError(f"{name} needs at least two distinct values to fit an exponent, got {kappas.tolist()}")
    return kappas


def _kappa_problem(problem, params, kappa):
    """A picklable ε-sweep problem for one κ: (catalog name or instance, its parameters)."""
    if isinstance(problem, str):
        return problem, {**params, "kappa": float(kappa)}
    return functools.partial(_at_kappa, problem, float(kappa)), None


def _at_kappa(problem, kappa, _eps, seed):
    """``problem(kappa, seed)`` as an ε-sweep builder ``(eps, seed) -> (problem, x0)``."""
    return problem(kappa, seed)


def _kappa_point(task):
    """One (κ, seed) run of a κ-sweep (a worker's call): :func:`eps_sweep` at the one ε."""
    method, prob, prob_params, eps, seed, opts, measure, maxiter = task
    return eps_sweep(method, prob, [eps], problem_params=prob_params, seeds=[seed], options=opts,
                     measure=measure, maxiter=maxiter, quantities=[], single_run=False)


@dataclass
class _SeedStack:
    """The per-seed :func:`eps_sweep` results of one κ, stacked (rows = seeds)."""

    method: str
    iterations: np.ndarray
    counts: dict
    totals: dict
    runs: list

    @classmethod
    def of(cls, parts):
        def stack(field_):
            keys = list(dict.fromkeys(k for r in parts for k in getattr(r, field_)))
            return {k: np.concatenate([getattr(r, field_).get(k, np.full_like(r.iterations, np.nan))
                                       for r in parts], axis=0) for k in keys}

        return cls(parts[0].method, np.concatenate([r.iterations for r in parts], axis=0), stack("counts"),
                   stack("totals"), [run for r in parts for run in r.runs])


def kappa_sweep(method, kappas, eps, *, problem="quadratic", problem_params=None, dx=None, dy=None,
                seeds=(0,), options=None, measure="norm", maxiter=100_000, quantities=None, theory=None,
                mode=None, regime=None, min_count=10, tol=None, n_boot=1000, n_jobs=1, parallel="loky",
                scheduler=None, progress=None):
    r"""κ-sweep at fixed ε: hitting counts for each condition number, fitted κ exponents, theory, verdicts.

    For every κ the problem is built with that condition number, the method
    runs to the target ε (:func:`eps_sweep` with one ε) and the oracle calls
    at the hitting time are recorded; then

    .. math::

        \log N(\kappa) = a + b\log\kappa

    is fitted by least squares on the points with N ≥ ``min_count`` (median
    over seeds, bootstrap interval with ≥ 2 seeds), and b is compared with the
    theory table's κ exponent (:func:`~bilevel_ref.complexity.theory.theory_kappa_exponent`).

    Parameters
    ----------
    method : str
        A registered method or a reference driver.
    kappas : array_like
        Condition numbers, each > 1, at least two distinct (sorted ascending).
    eps : float
        The fixed stationarity target.
    problem : str or callable, default "quadratic"
        A catalog name whose builder takes ``kappa`` (``"quadratic"``:
        L = 1, μ = 1/κ; ``"hard-kappa-chain"``: Nesterov's chain,
        :mod:`bilevel_ref.problems.hard_kappa`), or a callable
        ``(kappa, seed) -> (problem, x0)``.
    problem_params : dict, optional
        Other builder parameters, the same for every κ; ``dx`` / ``dy`` are
        shorthands (the quadratic family's dimensions).
    options : dict or callable kappa -> dict
        Method options; a callable makes them κ-dependent (e.g. a penalty λ ∝ κ).
    regime : {"total", "inner"}, optional
        Which κ exponents to compare with (module docstring of
        :mod:`~bilevel_ref.complexity.theory`): the paper's total bound, or
        one inner solve at fixed accuracy.  Default: the problem's
        ``kappa_regime`` attribute (``"inner"`` for ``hard-kappa-chain``,
        where φ does not depend on κ), else ``"total"``.
    theory : float or dict, optional
        Override the theory exponent (one value, or by quantity).
    mode : {"upper", "sharp"}, optional
        Verdict type; default per quantity: ``"sharp"`` when the theory
        exponent is tight, else ``"upper"``.
    tol : float, optional
        Verdict tolerance (default 0.15 upper / 0.1 sharp).
    seeds, measure, maxiter, quantities, min_count, n_boot
        As in :func:`eps_sweep` (default quantities: iterations, first- and
        second-order calls).
    n_jobs, parallel, scheduler, progress
        As in :func:`eps_sweep`: one task per (κ, seed)
        (:mod:`~bilevel_ref.complexity.parallel`); the results do not depend
        on them.  With ``n_jobs != 1`` a callable ``problem`` or ``options``
        must be picklable by cloudpickle (module-level functions, partials,
        closures; not objects holding locks or open files).

    Returns
    -------
    KappaSweepResult

    Raises
    ------
    ValueError
        ``kappas`` with a value ≤ 1, a non-finite value or fewer than two
        distinct values; ``eps`` ≤ 0; an unknown ``regime`` or ``mode``; a
        catalog problem without a ``kappa`` parameter.
    """
    t_start = time.perf_counter()
    kappas = check_kappas(kappas)
    eps = check_positive(eps, "eps")
    if regime is not None:
        check_choice(regime, "regime", KAPPA_REGIMES)
    if mode is not None:
        check_choice(mode, "mode", ("upper", "sharp"))
    seeds = [check_int(s, "seeds[i]", minimum=0) for s in (seeds if np.ndim(seeds) else [seeds])]
    params = dict(problem_params or {})
    for key, value in (("dx", dx), ("dy", dy)):
        if value is not None:
            params[key] = value
    if isinstance(problem, str):
        from ..problems.catalog import build_problem, describe_problems

        known = {name: defaults for name, _, defaults in describe_problems()}
        if problem in known and "kappa" not in known[problem]:
            raise ValueError(f"problem {problem!r} has no 'kappa' parameter; κ-sweeps need one of "
                             f"{sorted(n for n, d in known.items() if 'kappa' in d)} "
                             "or a callable (kappa, seed) -> (problem, x0)")
        probe = build_problem(problem, seed=seeds[0], **{**params, "kappa": float(kappas[0])})[0]
        pname = problem
    elif callable(problem):
        probe = problem(float(kappas[0]), seeds[0])[0]
        pname = getattr(probe, "name", "problem")
    else:
        raise TypeError(f"problem must be a catalog name or a callable (kappa, seed) -> (problem, x0), "
                        f"got {type(problem).__name__}")
    regime = regime or getattr(probe, "kappa_regime", "total")

    check_parallel(n_jobs, parallel, scheduler)
    tasks = []
    for kappa in kappas:
        prob, prob_params = _kappa_problem(problem, params, kappa)
        opts = _sweep_options(options, float(kappa))
        tasks.extend((method, prob, prob_params, eps, seed, opts, measure, maxiter) for seed in seeds)
    points = run_tasks(_kappa_point, tasks, n_jobs, parallel, scheduler, desc="kappa sweep", progress=progress)
    results = [_SeedStack.of(points[j * len(seeds):(j + 1) * len(seeds)]) for j in range(len(kappas))]
    base = results[0]
    its = np.concatenate([r.iterations for r in results], axis=1)
    kinds = [k for k in COUNT_KINDS if any(k in r.counts for r in results)]
    counts = {k: np.concatenate([r.counts.get(k, np.full_like(r.iterations, np.nan)) for r in results], axis=1)
              for k in kinds}
    names = [k for k in base.totals]
    totals = {k: np.concatenate([r.totals.get(k, np.full_like(r.iterations, np.nan)) for r in results], axis=1)
              for k in names}
    opts_record = ({str(k): _jsonable(_sweep_options(options, float(k))) for k in kappas} if callable(options)
                   else _jsonable(options or {}))
    out = KappaSweepResult(base.method, pname, "kappa", kappas, list(seeds), measure, its, counts, totals,
                           {}, {}, {}, opts_record, False, 0.0,
                           [dict(run, kappa=float(k)) for k, r in zip(kappas, results) for run in r.runs],
                           regime=regime, eps=float(eps), problem_params=params)
    for q in quantities or ["iterations", "first_order", "second_order"]:
        vals = out.quantity(q)
        # log N = a + b log κ: the ε fitter with 1/κ in place of ε
        if len(seeds) >= 2:
            fit, _, _ = bootstrap_slope(1.0 / kappas, vals, n_boot=n_boot, rng=0, min_count=min_count)
        else:
            fit = fit_slope(1.0 / kappas, vals[0], min_count)
        out.fits[q] = fit
        th = theory.get(q) if isinstance(theory, dict) else theory
        status = "given" if th is not None else None
        if th is None and not isinstance(theory, dict):
            try:
                th, status = theory_kappa_exponent(base.method, q, regime)
            except ValueError:  # a driver or a method without a theory row
                th, status = None, None
        out.theory[q] = th
        out.bounds[q] = status
        q_mode = mode or ("sharp" if status == "tight" else "upper")
        out.verdicts[q] = verdict(fit.slope, th, q_mode, tol)
    out.elapsed = time.perf_counter() - t_start
    return out

