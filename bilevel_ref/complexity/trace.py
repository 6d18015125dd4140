r"""What a run records: the true stationarity at every iterate and the oracle calls spent to reach it.

A :class:`Trace` holds, for the iterates :math:`x_0, x_1, \dots` of one run,
:math:`\|\nabla\varphi(x_t)\|`, :math:`\lambda_{\min}(\nabla^2\varphi(x_t))` and the
cumulative counts by oracle kind.  The truth is the exact ``grad_phi`` /
``hess_phi`` when the problem has closed forms, else ∇φ from an accurate
lower-level solve (:math:`\|\nabla_y g\| \le 10^{-12}`) and a dense
implicit-function solve (:func:`true_stationarity`) — never the method's own
estimate, and never counted.

The *hitting time* of ε (:func:`hitting_index`, :func:`hitting_times`) is the
first iterate meeting the target in a stationarity measure
(:data:`~bilevel_ref.complexity.theory.MEASURES`).  :func:`derived_totals`
turns counts by kind into first-order calls (``grad_f + grad_g``, times the
batch size with ``count_samples=True``), second-order calls
(``hess_* + hvp_* + cross_*``) and a cost (:data:`DEFAULT_COST`: gradient 1,
HVP/JVP 2, dense Hessian block d = dx + dy, value 1).

:func:`run_trace` runs a registered method with a callback recording the truth
at every iterate.
"""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field

import numpy as np

from ..oracles import COUNT_KINDS
from .._validation import as_vector, check_choice
from .theory import MEASURES

__all__ = ["Trace", "hitting_index", "hitting_times", "target_met", "target_met_at", "DEFAULT_COST",
           "derived_totals", "true_stationarity", "run_trace"]


@dataclass
class Trace:
    """Truth at every iterate of one run, with the cumulative oracle counts spent to reach it.

    ``grad_norm[t]`` = ‖∇φ(x_t)‖, ``min_eig[t]`` = λ_min(∇²φ(x_t)) (NaN if not
    computed), ``counts[kind][t]`` = calls made before x_t was produced,
    ``iterations[t]`` = t.
    """

    grad_norm: np.ndarray
    min_eig: np.ndarray
    counts: dict
    iterations: np.ndarray
    batch: int = 1
    info: dict = field(default_factory=dict)


def hitting_index(trace, eps, measure="norm", rho=None, statistic="first"):
    """Index t of the first iterate meeting the target (−1 if never).

    Parameters
    ----------
    trace : Trace
    eps : float
    measure : {"norm", "sq", "sosp", "minimax"}
    rho : float, optional
        Curvature tolerance δ = √(ρ ε) for ``"sosp"``/``"minimax"`` (required there).
    statistic : {"first", "stay"}
        ``"first"``: first t with the target met (equivalently the hitting time
        of min_{s≤t}‖∇φ(x_s)‖); ``"stay"``: first t after which it stays met.
    """
    ok = target_met(trace, eps, measure, rho)
    check_choice(statistic, "statistic", ("first", "stay"))
    if statistic == "first":
        idx = np.flatnonzero(ok)
        return int(idx[0]) if idx.size else -1
    if not ok[-1]:
        return -1
    bad = np.flatnonzero(~ok)
    return 0 if bad.size == 0 else int(bad[-1] + 1)


def target_met(trace, eps, measure, rho):
    """Boolean array: does each iterate of ``trace`` meet the target ε in ``measure``?"""
    check_choice(measure, "measure", MEASURES)
    gn = trace.grad_norm
    if measure == "sq":
        return gn**2 <= eps
    ok = gn <= eps
    if measure in ("sosp", "minimax"):
        if rho is None:
            raise ValueError(f"rho is required for measure={measure!r} (δ = sqrt(rho*eps))")
        with np.errstate(invalid="ignore"):
            ok = ok & (trace.min_eig >= -math.sqrt(rho * eps))
    return ok


def target_met_at(grad_norm, min_eig, eps, measure, rho):
    """:func:`target_met` for one iterate (‖∇φ‖ = ``grad_norm``, λ_min = ``min_eig``)."""
    one = Trace(np.array([grad_norm]), np.array([min_eig]), {}, np.array([0]))
    return bool(target_met(one, eps, measure, rho)[0])


def hitting_times(trace, eps, measure="norm", rho=None, statistic="first"):
    """Iterations and counts by kind at the hitting time of each ε (NaN if not reached).

    Returns ``(iterations, counts)`` with ``iterations`` of shape (n_eps,) and
    ``counts[kind]`` of shape (n_eps,).
    """
    eps = np.atleast_1d(np.asarray(eps, dtype=float))
    its = np.full(eps.size, np.nan)
    counts = {k: np.full(eps.size, np.nan) for k in trace.counts}
    for j, e in enumerate(eps):
        t = hitting_index(trace, e, measure, rho, statistic)
        if t >= 0:
            its[j] = trace.iterations[t]
            for k, arr in trace.counts.items():
                counts[k][j] = arr[t]
    return its, counts


#: Unit cost of one call by kind; ``"d"`` stands for d = dx + dy (a dense Hessian block).
DEFAULT_COST = {"f": 1.0, "g": 1.0, "grad_f": 1.0, "grad_g": 1.0,
                "hvp_yy_f": 2.0, "hvp_yy_g": 2.0, "hvp_xx_f": 2.0, "hvp_xx_g": 2.0,
                "cross_f": 2.0, "cross_g": 2.0, "cross_t_f": 2.0, "cross_t_g": 2.0,
                "hess_f": "d", "hess_g": "d", "samples": 0.0}


def derived_totals(counts, d, batch=1, cost_model=None, count_samples=False):
    """First-order calls, second-order calls and cost from counts by kind.

    Parameters
    ----------
    counts : dict kind -> array
    d : int
        dx + dy (unit cost of a dense Hessian block).
    batch : int
        Batch size multiplying first-order calls when ``count_samples``.
    cost_model : dict, optional
        Unit cost overrides by kind (numbers, or ``"d"``).
    """
    units = dict(DEFAULT_COST)
    for kind, unit in (cost_model or {}).items():
        if kind not in units:
            raise ValueError(f"cost_model has unknown kind {kind!r}; known: {sorted(units)}")
        units[kind] = unit
    zero = np.zeros_like(np.asarray(next(iter(counts.values())), dtype=float)) if counts else 0.0

    def get(kind):
        return np.asarray(counts.get(kind, zero), dtype=float)

    first = (get("grad_f") + get("grad_g")) * (batch if count_samples else 1)
    second = sum((get(k) for k in counts if k.startswith(("hess_", "hvp_", "cross_"))), zero)
    cost = sum((get(k) * (d if units[k] == "d" else float(units[k])) for k in counts if k in units), zero)
    return {"first_order": first, "second_order": second, "cost": cost}


def _lower_solve(problem, x, y0, tol=1e-12):
    """Accurate y*(x), uncounted: damped Newton on g(x, ·) (dense ``hess_g``), else AGD.

    Newton uses Armijo backtracking on g, so it converges from any warm start;
    AGD needs ``L_g``/``mu_g`` in ``constants()``.  Stops at ‖∇_y g‖ ≤ ``tol`` or
    when rounding prevents further decrease.
    """
    if problem.provides("hess_g"):
        y = np.array(y0, dtype=float)
        for _ in range(200):
            gy = problem.grad_g(x, y)[1]
            if np.linalg.norm(gy) <= tol:
                break
            step = np.linalg.solve(problem.hess_g(x, y)[2], gy)
            g0, t = problem.g(x, y), 1.0
            while problem.g(x, y - t * step) > g0 - 1e-4 * t * float(gy @ step) and t > 1e-10:
                t *= 0.5
            if t <= 1e-10:  # no decrease representable any more: y is accurate to rounding
                break
            y = y - t * step
        return y
    from ..linalg.agd import agd

    known = problem.constants()
    if "L_g" not in known or "mu_g" not in known:
        raise ValueError(f"problem {problem.name!r} has no grad_phi, no hess_g and no L_g/mu_g in "
                         "constants(): cannot compute the true hypergradient")
    return agd(lambda v: problem.grad_g(x, v)[1], y0, known["L_g"], known["mu_g"], 200_000, tol=tol).y


def true_stationarity(problem, x, need_hess=False, y_warm=None):
    """Uncounted truth ``(‖∇φ(x)‖, λ_min(∇²φ(x)) or NaN, y)`` at x.

    Uses ``grad_phi``/``hess_phi`` when the problem has them; otherwise solves
    the lower level accurately (:func:`_lower_solve`: damped Newton or AGD to
    ‖∇_y g‖ ≤ 1e-12, warm start ``y_warm``) and takes the implicit-function
    hypergradient with a dense Cholesky solve.
    """
    if problem.provides("grad_phi"):
        gn = float(np.linalg.norm(problem.grad_phi(x)))
        y = None
    else:
        from ..hypergrad.exact import exact_hypergradient

        y0 = np.zeros(problem.dy) if y_warm is None or not np.all(np.isfinite(y_warm)) else y_warm
        try:
            with np.errstate(over="ignore", invalid="ignore"):
                y = _lower_solve(problem, x, y0)
                gn = float(np.linalg.norm(exact_hypergradient(problem, x, y).d))
        except (ValueError, np.linalg.LinAlgError):
            # a diverging run (overflow in the lower level): the target is not met here
            y, gn = None, math.inf
        if not np.isfinite(gn):
            y, gn = None, math.inf
    lam = math.nan
    if need_hess:
        if not problem.provides("hess_phi"):
            raise ValueError(f"problem {problem.name!r} has no hess_phi: the second-order measures "
                             "need the exact Hessian of φ")
        lam = float(np.linalg.eigvalsh(problem.hess_phi(x))[0])
    return gn, lam, y


class _Recorder:
    """Accumulates the truth and the counts of the iterates of one run (for :class:`Trace`)."""

    def __init__(self, problem, need_hess):
        self.problem, self.need_hess = problem, need_hess
        self.gn, self.lam, self.its = [], [], []
        self.counts = {k: [] for k in COUNT_KINDS}
        self.y = None

    def add(self, nit, x, counts):
        gn, lam, self.y = true_stationarity(self.problem, x, self.need_hess, self.y)
        self.gn.append(gn)
        self.lam.append(lam)
        self.its.append(nit)
        for k in COUNT_KINDS:
            self.counts[k].append(counts.get(k, 0))
        return gn, lam

    def trace(self, batch=1, info=None):
        return Trace(np.array(self.gn), np.array(self.lam),
                     {k: np.array(v, dtype=np.int64) for k, v in self.counts.items()},
                     np.array(self.its, dtype=np.int64), batch, info or {})


def run_trace(method, problem, x0, *, seed=0, options=None, stop_eps=None, measure="norm", rho=None,
              maxiter=100_000):
    """Run a registered method and record the truth at every iterate.

    The method runs with ``gtol = 0`` (unless given) and stops when the target
    for ``stop_eps`` is met, at ``maxiter`` or on its own stopping rule.

    Returns
    -------
    Trace
        ``info`` holds the run's status, message, final ``nit`` and final iterate ``x``.
    """
    from .._minimize import minimize
    from .._solver import get_method

    cls = get_method(method)
    opts = {"gtol": 0.0, "maxiter": maxiter, "record_exact": False, "history_every": max(1, maxiter)}
    opts.update(options or {})
    need_hess = measure in ("sosp", "minimax")
    rec = _Recorder(problem, need_hess)
    x0 = as_vector(x0, "x0", problem.dx)
    rec.add(0, x0, {})

    def callback(inter):
        # called after every iteration, the last one included: the trace ends at res.nit
        gn, lam = rec.add(inter.nit, inter.x, inter.oracle_calls)
        return stop_eps is not None and target_met_at(gn, lam, stop_eps, measure, rho)

    res = minimize(problem, cls.name, x0, seed=seed, options=opts, callback=callback)
    batch = res.options.get("batch_size") or 1
    return rec.trace(batch if isinstance(batch, numbers.Integral) else 1,
                     {"status": int(res.status), "message": res.message, "nit": int(res.nit),
                      "success": bool(res.success), "x": np.array(res.x, dtype=float)})

