"""``minimize``: the outer loop shared by every method.

Everything that is the same for all methods lives here, once: the counted
problem, the random generator, the iteration loop, budgets, divergence
detection, callbacks, histories and the result.  The methods themselves are
:class:`~bilevel_ref._solver.Solver` subclasses.
"""
from __future__ import annotations

import math
import numbers
import sys
import time
import warnings

import numpy as np

from ._solver import Solver, get_method
from ._validation import as_vector
from .exceptions import NonFiniteError
from .oracles import BudgetExhausted, OracleCounter
from .problems.base import BilevelProblem, MinimaxProblem
from .result import BilevelResult, History, Status

__all__ = ["minimize"]


# ---------------------------------------------------------------------------
# the outer loop
# ---------------------------------------------------------------------------
def _exact_metrics(problem, x, names):
    with np.errstate(over="ignore", invalid="ignore"):
        return _exact_metrics_unguarded(problem, x, names)


def _exact_metrics_unguarded(problem, x, names):
    out = {}
    if "phi" in names and problem.provides("phi"):
        out["phi"] = float(problem.phi(x))
    if "grad_norm" in names and problem.provides("grad_phi"):
        out["grad_norm"] = float(np.linalg.norm(problem.grad_phi(x)))
    if "min_eig" in names and problem.provides("hess_phi"):
        out["min_eig_exact"] = float(np.linalg.eigvalsh(problem.hess_phi(x))[0])
    return out


def _scalar_metrics(info):
    """The numeric entries of a step's info dict, as floats (history columns)."""
    return {key: float(v) for key, v in info.items()
            if isinstance(v, (float, int, np.floating, np.integer)) and not isinstance(v, bool)}


def _all_finite(arrays, scalars):
    # One reduction per array (NaN and inf propagate through a sum); an
    # overflowing sum of finite entries (|x| ~ 1e308) counts as divergence too.
    return all(math.isfinite(a.sum()) for a in arrays) and all(math.isfinite(s) for s in scalars)


def _certify(solver, target, message):
    """(certified norm, status, message) of a run whose stopping test was met."""
    from .certificate import CERTIFICATE_ORACLES, certified_gradient_norm

    try:
        with np.errstate(all="ignore"):
            norm = certified_gradient_norm(solver)
    except (BudgetExhausted, NonFiniteError, np.linalg.LinAlgError, ValueError) as exc:
        return np.nan, Status.BIASED, f"{message}; not certified ({exc})"
    if norm is None:
        need = ", ".join(CERTIFICATE_ORACLES[solver.problem_type])
        return np.nan, Status.BIASED, (f"{message}; not certified: the certificate needs the oracles "
                                       f"{need}, which problem {solver.problem.name!r} does not all provide")
    if norm <= target:
        return norm, Status.CONVERGED, f"{message}; certified ‖∇φ(x)‖ = {norm:.3e} <= {target:.1e}"
    return norm, Status.BIASED, (f"{message}, but the certified ‖∇φ(x)‖ = {norm:.3e} > {target:.1e}: "
                                 "the method's estimate is biased beyond the tolerance (tighten its "
                                 "inner accuracy: lam, inner_steps, linsys_steps)")


def _with_notes(solver, status, message):
    """``message`` followed by the solver's notes on reaching ``tol`` and, for a run whose
    stopping test was met on a biased estimate, the bias bound of the user's explicit
    settings (counted oracle calls at the final x)."""
    notes = list(solver.notes)
    if status == Status.BIASED:
        try:
            with np.errstate(all="ignore"):
                note = solver.bias_note()
        except (BudgetExhausted, NonFiniteError, np.linalg.LinAlgError, ValueError) as exc:
            note = f"the bias bound of the explicit settings could not be computed ({exc})"
        if note:
            notes.append(note)
    return "; ".join([message] + notes)


def minimize(problem, method, x0, seed=0, options=None, callback=None):
    """Minimise the hyper-objective of ``problem`` with ``method``.

    Parameters
    ----------
    problem : BilevelProblem or MinimaxProblem
        Any object implementing the protocol (see :mod:`bilevel_ref.problems.base`).
    method : str
        A name from :func:`methods` (case-insensitive, ``-`` and ``_`` alike).
    x0 : array_like, shape (dx,)
        Starting upper-level point.
    seed : int, default 0
        Seed of the run's single :class:`numpy.random.Generator`. Same seed,
        same inputs ⇒ bit-identical result (wall times aside).
    options : dict, optional
        Method options; see :func:`show_options`. Common to all methods:
        ``tol`` (default 1e-6, the target ‖∇φ‖ from which the parameters left at None
        are derived), ``maxiter``, ``gtol`` (default: ``tol`` for deterministic runs),
        ``budget``, ``history_every``, ``y0``, ``record_exact``, ``progress``.
    callback : callable, optional
        ``callback(intermediate_result)`` after every iteration, the last one
        included, before the stopping tests, with an
        :class:`~scipy.optimize.OptimizeResult` holding ``x``, ``y``, ``nit``,
        ``oracle_calls`` and the iteration's metrics; returning True (or
        raising :class:`StopIteration`) stops the run (``status=4``) unless
        the same iteration already met a stopping test. Iterations cut short
        by a budget, a linear-algebra failure or non-finite values are rolled
        back and not reported.

    Returns
    -------
    BilevelResult
        ``success`` is True only when the run's stopping test was met (its
        estimate ≤ ``gtol``/2, or the method's own rule at ``eps``) *and* a
        tight counted hypergradient at the final x certifies ‖∇φ(x)‖ ≤ the
        tolerance (:mod:`bilevel_ref.certificate`); a biased estimate gives
        status ``BIASED``, a maxiter run without an active stopping test
        ``COMPLETED``, both with ``success=False``.
    """
    cls = get_method(method)
    want = BilevelProblem if cls.problem_type == "bilevel" else MinimaxProblem
    if not isinstance(problem, want):
        raise TypeError(
            f"method {cls.name!r} needs a {want.__name__} (subclass it), got {type(problem).__name__}"
        )
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise TypeError(f"seed must be a non-negative integer, got {seed!r}")
    if callback is not None and not callable(callback):
        raise TypeError("callback must be callable")
    opts = cls.validate_options(options)
    for oracle in cls.required_oracles(opts):
        if not problem.provides(oracle):
            raise ValueError(
                f"method {cls.name!r} needs the oracle {oracle!r}, which problem "
                f"{problem.name!r} does not provide"
            )
    if cls.stochastic and not problem.provides("sample") and opts.get("batch_size") is not None:
        raise ValueError(
            f"method {cls.name!r} with a batch_size needs a stochastic problem "
            f"(n_lower/n_upper and sample()); problem {problem.name!r} has none"
        )
    # Iterates in the problem's dtype: float64 unless the problem declares float32
    # storage (not the reference mode).
    dtype = np.dtype(getattr(problem, "dtype", np.float64))
    if dtype not in (np.dtype(np.float64), np.dtype(np.float32)):
        raise TypeError(f"problem.dtype must be float64 or float32, got {dtype}")
    x0 = as_vector(x0, "x0", problem.dx, dtype=dtype)
    y0 = (np.zeros(problem.dy, dtype=dtype) if opts.y0 is None
          else as_vector(opts.y0, "options['y0']", problem.dy, dtype=dtype))

    rng = np.random.default_rng(int(seed))
    counter = OracleCounter(problem, opts.budget)
    counter.constants()  # a misspelt or invalid key is an error before any work
    setup_stop = None
    given = dict(opts)  # as validated; the solver fills the parameters left at None into opts
    try:
        solver = cls(counter, x0, y0, rng, opts)
    except (BudgetExhausted, NonFiniteError) as exc:
        # setup may call oracles (counted constant estimates): stop cleanly at x0
        solver = Solver.__new__(cls)
        solver.x, solver.y, solver.min_eig, solver.constants_used = x0, y0, None, {}
        solver.derived, solver.notes = {}, []
        budget = isinstance(exc, BudgetExhausted)
        setup_stop = (Status.BUDGET if budget else Status.NONFINITE, f"during setup: {exc}")
    exact_names = cls.exact_metrics if opts.record_exact else ()
    history = History()
    history.record(0, 0.0, counter.snapshot(), _exact_metrics(problem, solver.x, exact_names))

    bar = None
    if opts.progress and opts.maxiter > 0:
        from tqdm.auto import tqdm

        bar = tqdm(total=opts.maxiter, desc=cls.name, file=sys.stderr, leave=False)

    status, message, info, nit, elapsed = Status.MAXITER, Status.MAXITER.message, {}, 0, 0.0
    if setup_stop is not None:
        status, message = setup_stop
    # Divergence is detected below (non-finite iterates), so numpy's overflow
    # warnings on the way there are noise.
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        for k in range(0 if setup_stop else opts.maxiter):
            x_prev, y_prev = solver.x.copy(), solver.y.copy()
            t0 = time.perf_counter()
            try:
                info = solver.step(k) or {}
            except BudgetExhausted as exc:
                solver.x, solver.y = x_prev, y_prev
                status, message = Status.BUDGET, str(exc)
                break
            except NonFiniteError as exc:
                solver.x, solver.y = x_prev, y_prev
                status = Status.NONFINITE
                message = (f"{exc} at iteration {k + 1}; x and y are the last finite iterates")
                break
            except np.linalg.LinAlgError as exc:
                solver.x, solver.y = x_prev, y_prev
                status, message = Status.FAILURE, f"linear algebra failure at iteration {k + 1}: {exc}"
                break
            elapsed += time.perf_counter() - t0
            grad_est = info.get("grad_est", np.nan)
            if not _all_finite((solver.x, solver.y), [v for v in info.values() if isinstance(v, float)]):
                solver.x, solver.y = x_prev, y_prev
                status = Status.NONFINITE
                message = (f"non-finite values at iteration {k + 1}: the run diverged "
                           "(reduce the step sizes); x and y are the last finite iterates")
                break
            nit = k + 1
            if nit % opts.history_every == 0 or nit == opts.maxiter:
                metrics = _scalar_metrics(info)
                metrics.update(_exact_metrics(problem, solver.x, exact_names))
                history.record(nit, elapsed, counter.snapshot(), metrics)
            if bar is not None:
                bar.update(1)
                bar.set_postfix_str(f"|G|={grad_est:.2e}")
            # The callback sees every completed iteration, the last one included,
            # before the stopping tests (its stop request wins over a failure or
            # convergence reported at the same iteration only in the message).
            stop = False
            if callback is not None:
                intermediate = BilevelResult(x=solver.x.copy(), y=solver.y.copy(), nit=nit,
                                             oracle_calls=counter.snapshot(), **_scalar_metrics(info))
                try:
                    stop = bool(callback(intermediate))
                except StopIteration:
                    stop = True
            if "failure" in info:
                status, message = Status.FAILURE, info["failure"]
                break
            if info.get("converged"):
                status, message = Status.CONVERGED, info.get("message", "converged")
                target = opts.get("eps", opts.gtol)
                break
            # gtol/2: the other half of gtol is left for the estimate's error (certified below)
            if opts.gtol > 0 and grad_est <= 0.5 * opts.gtol:
                status, message = Status.CONVERGED, f"hypergradient estimate norm {grad_est:.3e} <= gtol/2"
                target = opts.gtol
                break
            if stop:
                status, message = Status.CALLBACK, Status.CALLBACK.message
                break
    if bar is not None:
        bar.close()
    certified = np.nan
    if status == Status.CONVERGED:
        certified, status, message = _certify(solver, target, message)
    if status == Status.MAXITER and opts.gtol == 0 and not cls.stopping_rule:
        status, message = Status.COMPLETED, Status.COMPLETED.message
    message = _with_notes(solver, status, message)
    if history["nit"][-1] != nit:
        history.record(nit, elapsed, counter.snapshot(),
                       _exact_metrics(problem, solver.x, exact_names))

    final = _exact_metrics(problem, solver.x, ("phi", "grad_norm"))
    grad_est = float(info.get("grad_est", np.nan)) if info else np.nan
    fun = final.get("phi")
    if fun is None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fun = float(problem.f(solver.x, solver.y)) if problem.provides("f") else np.nan
    return BilevelResult(
        x=solver.x, y=solver.y, fun=fun,
        grad_norm=final.get("grad_norm", grad_est), grad_norm_est=grad_est,
        grad_norm_certified=certified,
        min_eig=solver.min_eig, nit=nit, oracle_calls=counter.snapshot(), history=history,
        constants={k: v for k, (v, _) in solver.constants_used.items()},
        constant_sources={k: src for k, (_, src) in solver.constants_used.items()},
        # With gtol = 0 (stochastic methods) running to maxiter is the intended stop.
        success=status == Status.CONVERGED,
        status=int(status), message=message, method=cls.name,
        options=given, derived=dict(solver.derived), seed=int(seed),
    )
