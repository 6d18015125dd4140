r"""The runs behind the profiles: every method on every problem instance, with full histories.

One run is :func:`bilevel_ref.minimize` of one method on one (problem,
seed) instance, to a budget of ``total`` oracle calls (samples excluded),
with the method options of ``bilevel-ref compare``
(:data:`bilevel_ref.compare.DEFAULT_OPTIONS`, ``--option [METHOD:]KEY=VALUE``,
method specs ``NAME[KEY=VALUE;...]``; :func:`bilevel_ref.compare.parse_method_spec`).
Unlike a comparison, which keeps about 200 budget checkpoints, a profile
keeps every iteration (``history_every=1``): the cumulative counts of every
oracle kind from the run's :class:`~bilevel_ref.result.History`, and, from
an uncounted callback, the objective (closed-form :math:`\varphi(x_k)`, else
:math:`f(x_k, y_k)`) and the closed-form :math:`\|\nabla\varphi(x_k)\|`
when the problem has it.  So the cost at which a run first passes a
convergence test is exact, not rounded to a checkpoint.

A method that cannot run on a problem (missing oracles, wrong problem type,
an option the instance rejects) gives a run with status ``"skipped"`` and
no history: a failure in every profile, as in Dolan & Moré.

Runs are independent tasks, run in order or in parallel through
:func:`bilevel_ref.complexity.parallel.run_tasks` (``n_jobs``; joblib only
for ``n_jobs != 1``); the results come back in task order and every column
but wall time is the same for any ``n_jobs``.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from .._text import parse_assignments
from ..oracles import COUNT_KINDS
from .targets import closed_form_minimum

__all__ = ["Run", "ProblemSpec", "parse_problem_spec", "run_profiles"]


@dataclasses.dataclass(frozen=True)
class ProblemSpec:
    """A catalog problem with parameters: ``label`` as written, ``name``, ``params``."""

    label: str
    name: str
    params: dict


def parse_problem_spec(spec):
    """``"quadratic[dx=5;kappa=100]"`` -> ``ProblemSpec("quadratic[dx=5;kappa=100]", "quadratic", {...})``.

    Parameters are those of the catalog builder (``bilevel-ref list``);
    :data:`bilevel_ref.compare.DEFAULT_PARAMS` fill in the others.
    """
    if isinstance(spec, ProblemSpec):
        return spec
    if not isinstance(spec, str) or not spec.strip():
        raise TypeError(f"a problem spec must be a non-empty string NAME[KEY=VALUE;...], got {spec!r}")
    spec = spec.strip()
    name, bracket, rest = spec.partition("[")
    if not bracket:
        return ProblemSpec(spec, spec, {})
    if not rest.endswith("]"):
        raise ValueError(f"problem spec {spec!r} must look like NAME[KEY=VALUE;KEY=VALUE]")
    items = [a for a in rest[:-1].split(";") if a.strip()]
    return ProblemSpec(spec, name.strip(), parse_assignments(items, "problem parameter"))


@dataclasses.dataclass
class Run:
    r"""One method on one problem instance (module docstring).

    Attributes
    ----------
    method, problem : str
        Labels (the specs as written).
    seed : int
        Seed of the instance and of the method.
    dx : int
        Upper-level dimension :math:`n_p` (Moré–Wild's unit :math:`n_p + 1`).
    status, message : str
        :class:`~bilevel_ref.result.Status` label and message, or ``"skipped"`` and why.
    nit, time : ndarray
        Iteration numbers and wall time (seconds, callback excluded) of the records.
    counts : dict
        ``{kind: cumulative count array}`` for every kind of :data:`~bilevel_ref.oracles.COUNT_KINDS`.
    objective : ndarray
        :math:`\varphi(x_k)` (closed form) or :math:`f(x_k, y_k)`, see ``objective_source``.
    objective_source : {"phi", "f"}
    grad_norm : ndarray or None
        Closed-form :math:`\|\nabla\varphi(x_k)\|`, when the problem has it.
    phi_star : float or None
        Closed-form minimum of φ (:func:`~bilevel_ref.profiles.targets.closed_form_minimum`).
    """

    method: str
    problem: str
    seed: int
    dx: int
    status: str
    message: str
    nit: np.ndarray
    time: np.ndarray
    counts: dict
    objective: np.ndarray
    objective_source: str
    grad_norm: np.ndarray | None
    phi_star: float | None

    @property
    def ran(self):
        """False for a skipped run (no history)."""
        return self.status != "skipped"


class _Trace:
    """Uncounted per-iteration objective and ‖∇φ‖ (a :func:`~bilevel_ref.minimize` callback)."""

    def __init__(self, problem):
        self.problem = problem
        self.use_phi = problem.provides("phi")
        self.use_grad = problem.provides("grad_phi")
        self.rows = {}

    def values(self, x, y):
        with np.errstate(all="ignore"):
            obj = float(self.problem.phi(x)) if self.use_phi else float(self.problem.f(x, y))
            gn = float(np.linalg.norm(self.problem.grad_phi(x))) if self.use_grad else np.nan
        return obj, gn

    def __call__(self, intermediate):
        self.rows[int(intermediate.nit)] = self.values(intermediate.x, intermediate.y)
        return False


def _skipped(method, problem, seed, dx, why, phi_star=None, source="phi"):
    empty_i, empty_f = np.zeros(0, dtype=np.int64), np.zeros(0)
    return Run(method, problem, seed, dx, "skipped", why, empty_i, empty_f,
               {k: empty_i for k in COUNT_KINDS}, empty_f, source, None, phi_star)


def _run_task(task):
    """One run (a module-level function: the parallel workers pickle it)."""
    from .._minimize import minimize
    from .._solver import get_method
    from ..compare import DEFAULT_PARAMS, method_options, parse_method_spec
    from ..problems.catalog import build_problem
    from ..result import Status

    method_spec, pspec, seed, budget, maxiter, user_options = task
    label, name, spec_options = parse_method_spec(method_spec)
    params = dict(DEFAULT_PARAMS.get(pspec.name, {}))
    params.update(pspec.params)
    problem, x0 = build_problem(pspec.name, seed=seed, **params)
    cls = get_method(name)
    label = cls.name if not spec_options else label
    phi_star = closed_form_minimum(problem) if problem.provides("phi") else None
    trace = _Trace(problem)
    source = "phi" if trace.use_phi else "f"
    opts = method_options(pspec.name, cls, user_options)
    opts.update(spec_options)
    user_budget = dict(opts.get("budget") or {})
    user_budget.setdefault("total", int(budget))
    opts.update(budget=user_budget, progress=False, record_exact=False, history_every=1)
    opts.setdefault("maxiter", int(maxiter))
    y0 = opts.get("y0")
    y0 = np.zeros(problem.dy) if y0 is None else np.asarray(y0, dtype=float)
    trace.rows[0] = trace.values(np.asarray(x0, dtype=float), y0)
    try:
        res = minimize(problem, cls.name, x0, seed=seed, options=opts, callback=trace)
    except (ValueError, TypeError, NotImplementedError) as exc:
        return _skipped(label, pspec.label, seed, problem.dx, f"{type(exc).__name__}: {exc}", phi_star, source)
    hist = res.history
    nit = np.asarray(hist["nit"], dtype=np.int64)
    rows = [trace.rows.get(int(n), (np.nan, np.nan)) for n in nit]
    objective = np.array([r[0] for r in rows])
    grad = np.array([r[1] for r in rows]) if trace.use_grad else None
    counts = {k: np.asarray(v, dtype=np.int64) for k, v in hist.counts.items()}
    return Run(label, pspec.label, int(seed), problem.dx, Status(res.status).label, str(res.message), nit,
               np.asarray(hist["time"], dtype=np.float64), counts, objective, source, grad, phi_star)


def _check_specs(methods, problems, seeds, options):
    """Validate everything before any run: unknown methods and problems, global options, seeds."""
    from .._solver import get_method
    from .._solver import methods as registered
    from .._validation import check_int
    from ..compare import DEFAULT_PARAMS, check_global_options, parse_method_spec
    from ..problems.catalog import build_problem, problem_names

    if isinstance(methods, str) or isinstance(problems, str):
        raise TypeError("methods and problems must be sequences of specs (split a comma-separated string "
                        "with bilevel_ref.compare.split_methods)")
    methods, problems = list(methods), [parse_problem_spec(p) for p in problems]
    if not methods:
        raise ValueError("methods must name at least one method")
    if not problems:
        raise ValueError("problems must name at least one problem")
    available = set(registered())
    parsed = [parse_method_spec(m) for m in methods]
    unknown = [label for label, name, _ in parsed if name not in available]
    if unknown:
        raise ValueError(f"unknown method(s) {unknown} in methods; available: {sorted(available)}")
    labels = [get_method(name).name if not opts else label for label, name, opts in parsed]
    if len(set(labels)) != len(labels):
        raise ValueError(f"methods must be distinct, got {labels}")
    names = problem_names()
    bad = [p.label for p in problems if p.name not in names]
    if bad:
        raise ValueError(f"unknown problem(s) {bad} in problems; available: {names}")
    if len({p.label for p in problems}) != len(problems):
        raise ValueError(f"problems must be distinct, got {[p.label for p in problems]}")
    if isinstance(seeds, (int, np.integer)) and not isinstance(seeds, bool):
        seeds = (seeds,)
    seeds = [check_int(s, "seeds", minimum=0) for s in seeds]
    if not seeds or len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds must be a non-empty list of distinct integers >= 0, got {seeds}")
    for p in problems:  # unknown or bad parameters: an error now, not in the middle of the runs
        build_problem(p.name, seed=seeds[0], **{**DEFAULT_PARAMS.get(p.name, {}), **p.params})
    options = {(k.strip().lower().replace("-", "_") if k != "*" else k): dict(v)
               for k, v in (options or {}).items()}
    check_global_options(options.get("*", {}), [get_method(n) for _, n, _ in parsed], lambda _text: None)
    return methods, problems, seeds, options


def run_profiles(methods, problems, seeds=(0,), *, budget=2000, maxiter=10**6, options=None, n_jobs=1,
                 parallel="loky", scheduler=None, progress=None):
    """Run every method on every (problem, seed) instance; the data of the profiles.

    Parameters
    ----------
    methods : sequence of str
        Method specs: ``"aid"``, ``"nbo[inner=cg;T=5]"`` (the spec is then the label).
    problems : sequence of str or ProblemSpec
        Problem specs: ``"quadratic"``, ``"quadratic[dx=5;kappa=100]"``.
    seeds : sequence of int
        Each seed builds one instance of each problem and seeds its runs.
    budget : int
        Oracle calls per run (counter ``total``, samples excluded).
    maxiter : int
        Outer-iteration cap per run.
    options : dict, optional
        ``{method: {option: value}}``; key ``"*"`` for every method having
        the option (as in :func:`bilevel_ref.compare.run_comparison`).
    n_jobs, parallel, scheduler
        Parallel execution (:func:`bilevel_ref.complexity.parallel.run_tasks`);
        ``n_jobs=1`` runs in this process and needs no joblib.
    progress : bool, optional
        tqdm bar of runs done (default: only on a terminal).

    Returns
    -------
    list of Run
        Ordered problem, seed, method (the order of the arguments), whatever ``n_jobs``.

    Raises
    ------
    ValueError
        Unknown method or problem, repeated labels, bad seeds, an option no
        selected method has, ``budget < 1``.
    """
    from .._validation import check_int
    from ..complexity.parallel import check_parallel, run_tasks

    methods, problems, seeds, options = _check_specs(methods, problems, seeds, options)
    budget = check_int(budget, "budget", minimum=1)
    maxiter = check_int(maxiter, "maxiter", minimum=1)
    check_parallel(n_jobs, parallel, scheduler)
    tasks = [(m, p, s, budget, maxiter, options) for p in problems for s in seeds for m in methods]
    return run_tasks(_run_task, tasks, n_jobs=n_jobs, parallel=parallel, scheduler=scheduler,
                     desc="profiles", progress=progress)
