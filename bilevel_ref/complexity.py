r"""Verifying complexity claims: ε-sweeps, hitting times, fitted exponents, verdicts.

For a method and a problem family, run to a stationarity target for several ε,
record the oracle calls spent when the target is first met (the *hitting
time*), fit

.. math::

    \log N(\varepsilon) = a + b \log(1/\varepsilon)

by least squares on the grid points with :math:`N \ge 10`, and compare the
slope b with the theory exponent from :data:`THEORY` (spec ``complexity.md``):

* benign problems: the bound must hold, :math:`b \le b_{theory} + 0.15`;
* worst-case instances (:mod:`bilevel_ref.problems.hard`): it should be attained,
  :math:`|b - b_{theory}| \le 0.1`.

Stationarity measures (``measure``): ``"norm"`` ‖∇φ(x)‖ ≤ ε; ``"sq"``
‖∇φ(x)‖² ≤ ε; ``"sosp"`` ‖∇φ‖ ≤ ε and :math:`\lambda_{\min}(\nabla^2\varphi) \ge -\sqrt{\rho\varepsilon}`;
``"minimax"`` the same on :math:`P(x) = \max_y f(x, y)`.  A bound
:math:`O(\varepsilon^{-a})` in ``"sq"`` is :math:`O(\varepsilon^{-2a})` in ``"norm"``.
The truth is always the exact ∇φ/∇²φ when the problem has closed forms, else ∇φ
from an accurate lower-level solve (‖∇_y g‖ ≤ 1e-12) and a dense linear solve —
never the method's own estimate; these evaluations are not counted.

Derived totals (§2): first-order calls = grad_f + grad_g (times the batch size
with ``count_samples=True``); second-order calls = hess_* + hvp_* + cross_*;
cost = Σ count × unit cost (:data:`DEFAULT_COST`: gradient 1, HVP/JVP 2, dense
Hessian d = dx + dy, value 1).

Log factors (Õ) bias fitted slopes on short grids upwards; the tolerances above
absorb that only partly, so prefer grids of ≥ 2 decades.

Reference drivers ``"gd"`` and ``"cubic_newton"`` (gradient descent with step
1/L and cubic-regularised Newton with constant M on φ itself, exact
derivatives, counted as one gradient (+ one Hessian) per iteration) give the
single-level rows of the theory table and validate the hard instances.
"""
from __future__ import annotations

import argparse
import ast
import json
import math
import numbers
import sys
import time
from dataclasses import dataclass, field

import numpy as np

from ._validation import as_vector, check_choice, check_int, check_positive
from .oracles import COUNT_KINDS

__all__ = [
    "THEORY", "DEFAULT_COST", "MEASURES", "Trace", "Fit", "SweepResult",
    "theory_rows", "theory_exponent", "fit_slope", "bootstrap_slope", "verdict",
    "hitting_index", "hitting_times", "derived_totals", "true_stationarity",
    "run_trace", "gd_trace", "cubic_newton_trace", "eps_sweep", "kappa_sweep",
    "eps_grid", "plot_sweep", "main",
]

MEASURES = ("norm", "sq", "sosp", "minimax")
#: Reference drivers (single-level methods on φ with exact derivatives).
DRIVERS = ("gd", "cubic_newton")
QUANTITIES = ("iterations", "first_order", "second_order", "cost") + COUNT_KINDS

# ---------------------------------------------------------------------------
# §3: the stated bounds, as data
# ---------------------------------------------------------------------------
#: One row per method and setting (spec complexity.md §3).  ``first_order`` /
#: ``second_order`` / ``iterations`` are exponents a of ε^{-a} *in the row's
#: measure*; None = not applicable / not stated.  ``kappa_*`` are κ exponents
#: where stated; ``sharp`` marks bounds attained by a known worst case.
THEORY = (
    dict(method="gd", setting="L-smooth, single level", measure="norm", iterations=2.0,
         first_order=2.0, second_order=None, sharp=True, source="Nesterov 2004; CGT 2010"),
    dict(method="cubic_newton", setting="Hessian-Lipschitz, single level", measure="norm",
         iterations=1.5, first_order=1.5, second_order=1.5, sharp=True, source="NP06; CGT 2010"),
    dict(method="aid", setting="deterministic", measure="sq", iterations=1.0, first_order=1.0,
         second_order=1.0, kappa_first_order=4.0, kappa_second_order=3.5, log_kappa=True,
         source="Ji, Yang, Liang ICML 2021 (AID-BiO)"),
    dict(method="itd", setting="deterministic", measure="sq", iterations=1.0, first_order=1.0,
         second_order=1.0, kappa_first_order=4.0, kappa_second_order=4.0, log_kappa=True,
         source="Ji, Yang, Liang ICML 2021 (ITD-BiO)"),
    dict(method="amigo_gd", setting="deterministic", measure="sq", iterations=1.0, first_order=1.0,
         second_order=1.0, kappa_first_order=4.0, kappa_second_order=4.0, log_kappa=True,
         source="Arbel, Mairal ICLR 2022"),
    dict(method="nbo_gd", setting="deterministic", measure="sq", iterations=1.0, first_order=1.0,
         second_order=1.0, kappa_first_order=3.0, kappa_second_order=4.0, source="NBO"),
    dict(method="nbo_cg", setting="deterministic", measure="sq", iterations=1.0, first_order=1.0,
         second_order=1.0, kappa_first_order=3.0, kappa_second_order=3.5, source="NBO"),
    dict(method="f2ba", setting="deterministic, first-order only", measure="norm", iterations=2.0,
         first_order=2.0, second_order=None, log_eps=True, source="Chen, Ma, Zhang 2023"),
    dict(method="accf2ba", setting="+ second-order smooth", measure="norm", iterations=1.75,
         first_order=1.75, second_order=None, log_eps=True, source="Chen, Ma, Zhang 2023"),
    dict(method="perturbed_f2ba", setting="SOSP", measure="sosp", iterations=2.0, first_order=2.0,
         second_order=None, log_eps=True, source="Chen, Ma, Zhang 2023"),
    dict(method="fsba", setting="SOSP", measure="sosp", iterations=1.5, first_order=1.5,
         second_order=1.5, kappa_first_order=3.0, log_eps=True, source="second_order spec §7 (inf.)"),
    dict(method="lfsba", setting="SOSP", measure="sosp", iterations=1.5, first_order=1.5,
         second_order=1.5, hessian_ratio="1/m", log_eps=True,
         source="second_order spec §7; second-order calls ≈ iterations/m"),
    dict(method="ifsba", setting="SOSP, w.h.p.", measure="sosp", iterations=1.5, first_order=1.5,
         second_order=2.0, log_eps=True, source="second_order spec §7 (HVPs)"),
    dict(method="mcn", setting="minimax SOSP", measure="minimax", iterations=1.5, first_order=1.5,
         second_order=1.5, kappa_first_order=2.0, kappa_second_order=1.5, log_eps=True, source="MCN"),
    dict(method="lmcn", setting="minimax SOSP", measure="minimax", iterations=1.5, first_order=1.5,
         second_order=1.5, hessian_ratio="1/m", log_eps=True, source="LMCN (inf.)"),
    dict(method="stocbio", setting="stochastic", measure="norm", iterations=4.0, first_order=4.0,
         second_order=4.0, kappa_first_order=9.0, log_eps=True, source="as cited by F2SA-p"),
    dict(method="soba", setting="stochastic", measure="sq", iterations=2.0, first_order=2.0,
         second_order=2.0, source="Dagréou et al. 2022"),
    dict(method="ma_soba", setting="stochastic", measure="sq", iterations=2.0, first_order=2.0,
         second_order=2.0, source="Chen, Xu, Zhang 2023"),
    dict(method="saba", setting="finite sum", measure="sq", iterations=1.0, first_order=1.0,
         second_order=1.0, source="Dagréou et al. 2022 ((n+m)^{2/3})"),
    dict(method="srba", setting="finite sum", measure="sq", iterations=1.0, first_order=1.0,
         second_order=1.0, source="Dagréou et al. 2023 ((n+m)^{1/2})"),
    dict(method="mrbo", setting="stochastic, mean-squared smooth", measure="norm", iterations=3.0,
         first_order=3.0, second_order=3.0, log_eps=True, source="Yang, Ji, Liang 2021 (measure inf.)"),
    dict(method="vrbo", setting="stochastic, mean-squared smooth", measure="norm", iterations=3.0,
         first_order=3.0, second_order=3.0, log_eps=True, source="Yang, Ji, Liang 2021 (measure inf.)"),
    dict(method="amigo", setting="stochastic", measure="sq", iterations=2.0, first_order=2.0,
         second_order=2.0, kappa_first_order=9.0, log_kappa=True, source="Arbel, Mairal ICLR 2022"),
    dict(method="nsbo_sgd", setting="stochastic", measure="sq", iterations=2.0, first_order=2.0,
         second_order=2.0, kappa_first_order=9.0, source="NBO"),
    dict(method="so_lazy_bio", setting="stochastic, momentum", measure="sq", iterations=2.0,
         first_order=2.0, second_order=2.0, hessian_ratio="1/N", source="SO-Lazy-BiO (O(N ε^-2) grads)"),
    dict(method="f2sa", setting="stochastic, first-order only", measure="norm", iterations=7.0,
         first_order=7.0, second_order=None, log_eps=True,
         source="Kwon et al. ICML 2023 (ε^-7); ε^-6 in later analyses"),
    dict(method="f2sa_p", setting="stochastic, p-th order smooth", measure="norm", iterations="4+2/p",
         first_order="4+2/p", second_order=None, log_eps=True, source="F2SA-p paper"),
    dict(method="lower_bound_stochastic", setting="stochastic bilevel", measure="norm",
         first_order=4.0, second_order=None, bound="lower", source="F2SA-p Thm 4.1"),
    dict(method="lower_bound_first_order", setting="deterministic first-order, L-smooth", measure="norm",
         first_order=2.0, second_order=None, bound="lower", source="CDHS Part II"),
    dict(method="lower_bound_p_order", setting="p-th order methods", measure="norm",
         first_order="(p+1)/p", second_order=None, bound="lower", source="CDHS Part I"),
)


def theory_rows():
    """The theory table (:data:`THEORY`) as a list of dicts (copies)."""
    return [dict(row) for row in THEORY]


def _measure_factor(stated, target):
    """Exponent multiplier from the stated measure to the target one (sq → norm: ×2)."""
    stated_sq, target_sq = stated == "sq", target == "sq"
    if stated_sq == target_sq:
        return 1.0
    return 2.0 if stated_sq else 0.5


def theory_exponent(method, quantity="iterations", measure=None, p=None):
    """Theory exponent b of ε^{-b} for ``method``'s ``quantity`` in ``measure``.

    Parameters
    ----------
    method : str
        A row of :data:`THEORY` (registered method names, ``"gd"``, ``"cubic_newton"``).
    quantity : str
        ``"iterations"``, ``"first_order"``, ``"second_order"``, ``"cost"`` or
        an oracle kind (grad_* → first-order exponent, hess_*/hvp_*/cross_* →
        second-order exponent, ``cost`` → the larger of the two).
    measure : str, optional
        Target measure (default: the row's own); ``"sq"`` ⇄ ``"norm"`` converts.
    p : int, optional
        Smoothness order for ``f2sa_p`` (exponent 4 + 2/p).

    Returns
    -------
    float or None
        None when the table has no entry.
    """
    key = str(method).strip().lower().replace("-", "_")
    rows = [r for r in THEORY if r["method"] == key]
    if not rows:
        raise ValueError(f"no theory row for method {method!r}; known: {[r['method'] for r in THEORY]}")
    row = rows[0]
    if measure is not None:
        check_choice(measure, "measure", MEASURES)
    if quantity.startswith("grad_") or quantity in ("f", "g", "samples"):
        quantity = "first_order"
    elif quantity.startswith(("hess_", "hvp_", "cross_")):
        quantity = "second_order"
    if quantity == "cost":
        values = [theory_exponent(method, q, measure, p) for q in ("first_order", "second_order")]
        values = [v for v in values if v is not None]
        return max(values) if values else None
    if quantity not in ("iterations", "first_order", "second_order"):
        raise ValueError(f"quantity must be one of {list(QUANTITIES)}, got {quantity!r}")
    value = row.get(quantity)
    if value is None:
        return None
    if isinstance(value, str):
        if p is None:
            raise ValueError(f"method {method!r}: exponent {value!r} needs p")
        p = check_int(p, "p", minimum=1)
        value = {"4+2/p": 4 + 2 / p, "(p+1)/p": (p + 1) / p}[value]
    return float(value) * _measure_factor(row["measure"], measure or row["measure"])


# ---------------------------------------------------------------------------
# fitting
# ---------------------------------------------------------------------------
@dataclass
class Fit:
    """Least-squares fit log N = a + b log(1/ε) (``slope`` = b)."""

    slope: float
    stderr: float
    intercept: float
    n_points: int
    eps: np.ndarray = field(repr=False)
    counts: np.ndarray = field(repr=False)
    ci: tuple = None

    def predict(self, eps):
        """Fitted N at ``eps``."""
        return np.exp(self.intercept + self.slope * np.log(1.0 / np.asarray(eps, dtype=float)))

    def to_dict(self):
        return {"slope": self.slope, "stderr": self.stderr, "intercept": self.intercept,
                "n_points": self.n_points, "ci": None if self.ci is None else list(self.ci),
                "eps": self.eps.tolist(), "counts": self.counts.tolist()}


def fit_slope(eps, counts, min_count=10):
    """Fit log N = a + b·log(1/ε) on the points with finite N ≥ ``min_count``.

    Parameters
    ----------
    eps, counts : array_like, same length
        Targets and hitting counts (NaN / inf = never reached: ignored).
    min_count : float, default 10
        Points with fewer calls are dominated by O(1) terms and ignored.

    Returns
    -------
    Fit
        ``slope`` b, its standard error (NaN with fewer than 3 points),
        ``intercept`` a, the number of points used.  With fewer than 2 usable
        points the slope is NaN.
    """
    eps = as_vector(eps, "eps")
    counts = np.asarray(counts, dtype=float).reshape(-1)
    if counts.size != eps.size:
        raise ValueError(f"counts must have the length of eps ({eps.size}), got {counts.size}")
    if np.any(eps <= 0):
        raise ValueError("eps must be > 0")
    keep = np.isfinite(counts) & (counts >= min_count)
    e, n = eps[keep], counts[keep]
    if e.size < 2:
        return Fit(math.nan, math.nan, math.nan, int(e.size), e, n)
    xs, ys = np.log(1.0 / e), np.log(n)
    design = np.column_stack([np.ones_like(xs), xs])
    coef, *_ = np.linalg.lstsq(design, ys, rcond=None)
    stderr = math.nan
    if e.size > 2:
        resid = ys - design @ coef
        sigma2 = float(resid @ resid) / (e.size - 2)
        stderr = math.sqrt(sigma2 / float(np.sum((xs - xs.mean()) ** 2)))
    return Fit(float(coef[1]), stderr, float(coef[0]), int(e.size), e, n)


def bootstrap_slope(eps, counts_by_seed, n_boot=1000, rng=0, level=0.95, min_count=10):
    """Bootstrap interval of the slope over seeds (median hitting count per ε).

    Parameters
    ----------
    eps : (n_eps,) array_like
    counts_by_seed : (n_seeds, n_eps) array_like
        Hitting counts of each seed (NaN = never reached).
    n_boot : int
        Resamples of the seeds (with replacement).
    rng : numpy.random.Generator or int
        Source of the resampling (no global state).
    level : float in (0, 1)

    Returns
    -------
    (Fit, (lo, hi), samples)
        The fit of the per-ε medians, the percentile interval and the
        bootstrap slopes.
    """
    from ._validation import check_rng

    rng = check_rng(rng)
    counts = np.asarray(counts_by_seed, dtype=float)
    if counts.ndim != 2:
        raise ValueError(f"counts_by_seed must be 2-D (n_seeds, n_eps), got shape {counts.shape}")
    n_boot = check_int(n_boot, "n_boot", minimum=1)
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level!r}")
    base = fit_slope(eps, _nanmedian(counts), min_count)
    slopes = np.empty(n_boot)
    for i in range(n_boot):
        rows = rng.integers(0, counts.shape[0], counts.shape[0])
        slopes[i] = fit_slope(eps, _nanmedian(counts[rows]), min_count).slope
    finite = slopes[np.isfinite(slopes)]
    alpha = (1 - level) / 2
    ci = ((float(np.quantile(finite, alpha)), float(np.quantile(finite, 1 - alpha)))
          if finite.size else (math.nan, math.nan))
    base.ci = ci
    return base, ci, slopes


def _nanmedian(counts):
    # a target missed by more than half of the seeds has no median hitting time
    counts = np.asarray(counts, dtype=float)
    missed = np.mean(~np.isfinite(counts), axis=0) > 0.5
    with np.errstate(all="ignore"):
        med = np.median(np.where(np.isfinite(counts), counts, np.inf), axis=0)
    return np.where(missed, np.nan, med)


def verdict(slope, b_theory, mode="upper", tol=None):
    """Compare a fitted slope with the theory exponent.

    ``mode="upper"`` (benign problems): pass iff b ≤ b_theory + tol (tol 0.15);
    ``mode="sharp"`` (worst-case instances): pass iff ``abs(b - b_theory) <= tol`` (tol 0.1).
    Returns ``{"pass": bool | None, "mode", "tol", "slope", "theory", "text"}``
    (``pass`` is None when the slope or the theory is missing).
    """
    check_choice(mode, "mode", ("upper", "sharp"))
    tol = (0.15 if mode == "upper" else 0.1) if tol is None else check_positive(tol, "tol")
    out = {"mode": mode, "tol": tol, "slope": slope, "theory": b_theory}
    if b_theory is None or slope is None or not np.isfinite(slope):
        out.update({"pass": None, "text": "no verdict (missing slope or theory exponent)"})
        return out
    ok = slope <= b_theory + tol if mode == "upper" else abs(slope - b_theory) <= tol
    if mode == "upper":
        what = f"b = {slope:.4f} {'<=' if ok else '>'} {b_theory:.4f} + {tol:g}"
    else:
        what = f"|b - {b_theory:.4f}| = {abs(slope - b_theory):.4f} {'<=' if ok else '>'} {tol:g}"
    out.update({"pass": bool(ok), "text": ("PASS: " if ok else "FAIL: ") + what})
    return out


# ---------------------------------------------------------------------------
# traces and hitting times
# ---------------------------------------------------------------------------
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
    ok = _target_met(trace, eps, measure, rho)
    check_choice(statistic, "statistic", ("first", "stay"))
    if statistic == "first":
        idx = np.flatnonzero(ok)
        return int(idx[0]) if idx.size else -1
    if not ok[-1]:
        return -1
    bad = np.flatnonzero(~ok)
    return 0 if bad.size == 0 else int(bad[-1] + 1)


def _target_met(trace, eps, measure, rho):
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


#: Unit costs (§2); ``"hess"`` is a placeholder for d = dx + dy.
DEFAULT_COST = {"f": 1.0, "g": 1.0, "grad_f": 1.0, "grad_g": 1.0,
                "hvp_yy_f": 2.0, "hvp_yy_g": 2.0, "hvp_xx_f": 2.0, "hvp_xx_g": 2.0,
                "cross_f": 2.0, "cross_g": 2.0, "cross_t_f": 2.0, "cross_t_g": 2.0,
                "hess_f": "d", "hess_g": "d", "samples": 0.0}


def derived_totals(counts, d, batch=1, cost_model=None, count_samples=False):
    """First-order calls, second-order calls and cost from counts by kind (§2).

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


# ---------------------------------------------------------------------------
# truth and runs
# ---------------------------------------------------------------------------
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
    from .linalg.agd import agd

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
        from .hypergrad.exact import exact_hypergradient

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
        ``info`` holds the run's status, message and final ``nit``.
    """
    from ._api import get_method, minimize

    cls = get_method(method)
    opts = {"gtol": 0.0, "maxiter": maxiter, "record_exact": False, "history_every": max(1, maxiter)}
    opts.update(options or {})
    need_hess = measure in ("sosp", "minimax")
    rec = _Recorder(problem, need_hess)
    x0 = as_vector(x0, "x0", problem.dx)
    rec.add(0, x0, {})

    def callback(inter):
        gn, lam = rec.add(inter.nit, inter.x, inter.oracle_calls)
        if stop_eps is None:
            return False
        tr = Trace(np.array([gn]), np.array([lam]), {}, np.array([inter.nit]))
        return bool(_target_met(tr, stop_eps, measure, rho)[0])

    res = minimize(problem, cls.name, x0, seed=seed, options=opts, callback=callback)
    if res.nit > rec.its[-1]:
        rec.add(res.nit, res.x, res.oracle_calls)
    batch = res.options.get("batch_size") or 1
    return rec.trace(batch if isinstance(batch, numbers.Integral) else 1,
                     {"status": int(res.status), "message": res.message, "nit": int(res.nit),
                      "success": bool(res.success)})


def _derivative_access(fun):
    """(grad, hess, dim, scalar_fast) for a function object or a problem with closed forms."""
    if hasattr(fun, "derivs_scalar"):
        return None, None, 1, fun.derivs_scalar
    if hasattr(fun, "grad_phi"):
        return fun.grad_phi, fun.hess_phi, fun.dx, None
    if hasattr(fun, "grad") and hasattr(fun, "hess"):
        return fun.grad, fun.hess, fun.dx, None
    raise TypeError("fun must be a PiecewiseHermite, an object with grad/hess, or a problem with "
                    f"grad_phi/hess_phi; got {type(fun).__name__}")


def _cubic_step_1d(g, h, M):
    # Global minimiser of g s + h s²/2 + (M/6)|s|³: s = −sign(g) r, (M/2)r² + h r − |g| = 0,
    # r = 2|g|/(h + √(h² + 2M|g|)) (rationalised; stable for h > 0); hard case g = 0, h < 0.
    if g == 0.0:
        return -2.0 * h / M if h < 0 else 0.0
    r = 2.0 * abs(g) / (h + math.sqrt(h * h + 2.0 * M * abs(g))) if h >= 0 else \
        (-h + math.sqrt(h * h + 2.0 * M * abs(g))) / M
    return -math.copysign(r, g)


def _driver_trace(fun, x0, step_fn, stop_eps, maxiter, kinds, measure, rho):
    grad, hess, dim, scalar = _derivative_access(fun)
    need_hess = measure in ("sosp", "minimax")
    gns, lams = [], []
    if scalar is not None:
        x = float(np.asarray(x0, dtype=float).reshape(-1)[0])
        for _ in range(maxiter + 1):
            g, h = scalar(x)
            gns.append(abs(g))
            lams.append(h)
            if stop_eps is not None and _met_scalar(abs(g), h, stop_eps, measure, rho):
                break
            if len(gns) > maxiter:
                break
            x = x + step_fn(g, h)
        x_final = np.array([x])
    else:
        x = as_vector(x0, "x0", dim)
        for _ in range(maxiter + 1):
            g = grad(x)
            gn = float(np.linalg.norm(g))
            H = hess(x) if (need_hess or "hess" in kinds) else None
            lam = float(np.linalg.eigvalsh(H)[0]) if H is not None else math.nan
            gns.append(gn)
            lams.append(lam)
            if stop_eps is not None and _met_scalar(gn, lam, stop_eps, measure, rho):
                break
            if len(gns) > maxiter:
                break
            x = x + step_fn(g, H)
        x_final = x
    t = np.arange(len(gns), dtype=np.int64)
    counts = {k: np.zeros(len(gns), dtype=np.int64) for k in COUNT_KINDS}
    counts["grad_f"] = t.copy()
    if "hess" in kinds:
        counts["hess_f"] = t.copy()
    return Trace(np.array(gns), np.array(lams), counts, t, 1, {"x": x_final, "nit": int(t[-1])})


def _met_scalar(gn, lam, eps, measure, rho):
    tr = Trace(np.array([gn]), np.array([lam]), {}, np.array([0]))
    return bool(_target_met(tr, eps, measure, rho)[0])


def gd_trace(fun, x0, step, *, stop_eps=None, maxiter=10**7, measure="norm", rho=None):
    """Gradient descent x ← x − step·∇φ(x) on a function with exact derivatives.

    ``fun``: a :class:`~bilevel_ref.problems.hard.PiecewiseHermite` (fast scalar
    loop), an object with ``grad``/``hess``/``dx``, or a problem with
    ``grad_phi``.  One ``grad_f`` per iteration.
    """
    step = check_positive(step, "step")
    return _driver_trace(fun, x0, lambda g, h: -step * g, stop_eps, maxiter, ("grad",), measure, rho)


def cubic_newton_trace(fun, x0, M, *, stop_eps=None, maxiter=10**7, measure="norm", rho=None):
    r"""Cubic-regularised Newton (Nesterov–Polyak) with constant M on exact derivatives.

    :math:`x \leftarrow x + \arg\min_s \langle g, s\rangle + \tfrac12 s^\top H s + \tfrac M6\|s\|^3`
    (closed form in 1-D, :func:`bilevel_ref.linalg.cubic.solve_cubic` (eigh)
    otherwise).  One ``grad_f`` and one ``hess_f`` per iteration.
    """
    M = check_positive(M, "M")
    grad, hess, dim, scalar = _derivative_access(fun)
    if scalar is not None:
        step_fn = lambda g, h: _cubic_step_1d(g, h, M)  # noqa: E731
    else:
        from .linalg.cubic import solve_cubic

        step_fn = lambda g, H: solve_cubic(g, H, M, method="eigh").s  # noqa: E731
    return _driver_trace(fun, x0, step_fn, stop_eps, maxiter, ("grad", "hess"), measure, rho)


def _driver_default(fun, key):
    known = fun.constants() if hasattr(fun, "constants") else {}
    if key == "step":
        if "L_phi" in known:
            return 1.0 / known["L_phi"]
        if hasattr(fun, "lipschitz_grad"):
            return 1.0 / fun.lipschitz_grad()
    if key == "M":
        for k in ("M", "rho_phi"):
            if k in known:
                return float(known[k])
        if hasattr(fun, "lipschitz_hess"):
            return fun.lipschitz_hess()
    raise ValueError(f"options[{key!r}] is required: cannot derive it from {type(fun).__name__}")


def _run_driver(method, fun, x0, options, stop_eps, measure, rho, maxiter):
    options = dict(options or {})
    if method == "gd":
        step = options.pop("step", None) or _driver_default(fun, "step")
        tr = gd_trace(fun, x0, step, stop_eps=stop_eps, maxiter=maxiter, measure=measure, rho=rho)
    else:
        M = options.pop("M", None) or _driver_default(fun, "M")
        tr = cubic_newton_trace(fun, x0, M, stop_eps=stop_eps, maxiter=maxiter, measure=measure, rho=rho)
    if options:
        raise ValueError(f"unknown option(s) {sorted(options)} for driver {method!r}")
    return tr


# ---------------------------------------------------------------------------
# sweeps
# ---------------------------------------------------------------------------
def eps_grid(eps_max=1e-1, eps_min=1e-4, per_decade=2):
    """Geometric grid ε_max, ε_max·10^{-1/per_decade}, …, ε_min (spec default 10^{-1} … 10^{-4})."""
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
    the fitted :class:`Fit` (of the per-point medians over seeds, with a
    bootstrap interval when there are ≥ 2 seeds); ``theory[quantity]`` the
    theory exponent; ``verdicts[quantity]`` from :func:`verdict`.
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
        from .cli import format_table

        names = ["iterations", "first_order", "second_order", "cost"] + [
            k for k in self.counts if np.nanmax(np.nan_to_num(self.counts[k], nan=0.0), initial=0) > 0]
        headers = [self.variable] + names
        rows = []
        for j, v in enumerate(self.grid):
            row = [float(v)]
            for n in names:
                val = _nanmedian(self.quantity(n)[:, [j]])[0]
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
        from .problems.catalog import build_problem, describe_problems

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
        See :func:`hitting_index`.
    count_samples, cost_model
        See :func:`derived_totals`.
    quantities : sequence of str, optional
        What to fit (default: iterations and the non-zero derived totals).
    mode : {"upper", "sharp"}
        Verdict type (:func:`verdict`).
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
        from ._api import get_method

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
                tr = _run_driver(method_key, prob, start, opts, e, measure, r, maxiter)
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
    """κ-sweep (§4.3) on the quadratic family (L = 1, μ = 1/κ) at fixed ε: fit log N vs log κ.

    ``theory`` defaults to the table's κ exponent (``kappa_first_order`` /
    ``kappa_second_order``) when stated.  The fitted "slope" is the exponent of
    κ (the same :class:`Fit`, with 1/ε replaced by κ).
    """
    from .problems.quadratic import quadratic_bilevel

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
        vals = _nanmedian(out.quantity(q))
        # log N = a + b log κ: reuse the ε fitter with 1/κ in place of ε
        fit = fit_slope(1.0 / kappas, vals, min_count)
        out.fits[q] = fit
        th = theory.get(q) if isinstance(theory, dict) else theory
        if th is None and row and q in ("first_order", "second_order"):
            th = row[0].get(f"kappa_{q}")
        out.theory[q] = th
        out.verdicts[q] = verdict(fit.slope, th, mode)
    return out


# ---------------------------------------------------------------------------
# plots
# ---------------------------------------------------------------------------
def plot_sweep(result, path=None, quantities=None, ax=None, title=None):
    """Log-log plot of hitting counts vs 1/ε (or κ) with the fitted and theoretical lines.

    The theory line has the table's slope and passes through the fitted line
    at the geometric centre of the fitted points.  Returns the matplotlib Figure;
    saves it to ``path`` when given.
    """
    import matplotlib
    from matplotlib.figure import Figure

    quantities = list(quantities or result.fits)
    if ax is None:
        # a bare Figure: no pyplot state, works with any backend (and none)
        fig = Figure(figsize=(6.0, 4.2))
        ax = fig.subplots()
    else:
        fig = ax.figure
    xs = 1.0 / result.grid if result.variable == "eps" else result.grid
    colors = matplotlib.rcParams["axes.prop_cycle"].by_key()["color"]
    for n, q in enumerate(quantities):
        c = colors[n % len(colors)]
        vals = result.quantity(q)
        for row in vals:
            ax.plot(xs, row, "o", color=c, alpha=0.25 if vals.shape[0] > 1 else 1.0, ms=4)
        fit = result.fits.get(q)
        if fit is None or not np.isfinite(fit.slope):
            continue
        fx = 1.0 / fit.eps
        line = np.geomspace(fx.min(), fx.max(), 50)
        ax.plot(line, np.exp(fit.intercept) * line**fit.slope, "-", color=c,
                label=f"{q}: fitted b = {fit.slope:.3f}")
        th = result.theory.get(q)
        if th is not None:
            x_mid = math.sqrt(fx.min() * fx.max())
            y_mid = np.exp(fit.intercept) * x_mid**fit.slope
            ax.plot(line, y_mid * (line / x_mid) ** th, "--", color=c, alpha=0.7, label=f"{q}: theory {th:g}")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("1/ε" if result.variable == "eps" else "κ")
    ax.set_ylabel("calls at hitting time")
    ax.set_title(title or f"{result.method} on {result.problem} ({result.measure})")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    if path is not None:
        fig.tight_layout()
        fig.savefig(path, dpi=110)
    return fig


# ---------------------------------------------------------------------------
# command line
# ---------------------------------------------------------------------------
_EXPR_NAMES = {"eps": None, "sqrt": math.sqrt, "log": math.log, "ceil": math.ceil, "floor": math.floor}
_EXPR_NODES = (ast.Expression, ast.BinOp, ast.UnaryOp, ast.Constant, ast.Name, ast.Load, ast.Call,
               ast.Add, ast.Sub, ast.Mult, ast.Div, ast.Pow, ast.USub, ast.UAdd, ast.FloorDiv)


def _eps_expression(text):
    """Compile ``"1/eps"``, ``"ceil(10*eps**-0.5)"``, … into a function of ε (whitelisted AST)."""
    tree = ast.parse(text, mode="eval")
    for node in ast.walk(tree):
        if not isinstance(node, _EXPR_NODES) or (isinstance(node, ast.Name) and node.id not in _EXPR_NAMES):
            raise SystemExit(f"bilevel-ref complexity: unsupported expression {text!r} "
                             f"(use numbers, eps, + - * / **, {sorted(set(_EXPR_NAMES) - {'eps'})})")
    code = compile(tree, "<eps-option>", "eval")

    def value(eps):
        out = eval(code, {"__builtins__": {}}, {**_EXPR_NAMES, "eps": eps})  # noqa: S307 (whitelisted AST)
        return int(out) if isinstance(out, int) else float(out)

    return value


def _parser():
    ap = argparse.ArgumentParser(prog="bilevel-ref complexity",
                                 description="ε-sweep: hitting counts, fitted exponents vs theory.")
    ap.add_argument("method", help="registered method or reference driver (gd, cubic_newton)")
    ap.add_argument("problem", help="catalog problem name (bilevel-ref list)")
    ap.add_argument("--param", action="append", default=[], metavar="NAME=VALUE", help="problem parameter")
    ap.add_argument("--option", action="append", default=[], metavar="NAME=VALUE", help="method option")
    ap.add_argument("--eps-option", action="append", default=[], metavar="NAME=EXPR",
                    help="ε-dependent option, e.g. lam=1/eps (numbers, eps, + - * / **, sqrt, log, ceil)")
    ap.add_argument("--eps", type=float, nargs="+", help="explicit ε values")
    ap.add_argument("--eps-max", type=float, default=1e-1)
    ap.add_argument("--eps-min", type=float, default=1e-3)
    ap.add_argument("--per-decade", type=int, default=2)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--measure", choices=MEASURES, default="norm")
    ap.add_argument("--rho", type=float, default=None, help="δ = sqrt(rho*eps) for sosp/minimax")
    ap.add_argument("--quantity", action="append", default=None, choices=QUANTITIES,
                    help="quantity to fit (repeat; default iterations and derived totals)")
    ap.add_argument("--mode", choices=("upper", "sharp"), default="upper")
    ap.add_argument("--theory", type=float, default=None, help="override the theory exponent")
    ap.add_argument("--p", type=int, default=None, help="p for f2sa_p's exponent")
    ap.add_argument("--maxiter", type=int, default=100_000)
    ap.add_argument("--per-eps", action="store_true", help="one run per ε even if nothing depends on ε")
    ap.add_argument("--count-samples", action="store_true")
    ap.add_argument("--json", metavar="PATH", help="write the JSON result ('-' for stdout)")
    ap.add_argument("--plot", metavar="PATH", help="save a log-log plot (PNG)")
    ap.add_argument("--strict", action="store_true", help="exit with status 1 if a verdict fails")
    return ap


def main(argv=None):
    """``bilevel-ref complexity METHOD PROBLEM [...]``; returns the exit status."""
    from .cli import parse_assignments

    args = _parser().parse_args(argv)
    params = parse_assignments(args.param, "--param")
    fixed = parse_assignments(args.option, "--option")
    dynamic = {}
    for item in args.eps_option:
        key, sep, expr = item.partition("=")
        if not sep:
            raise SystemExit(f"bilevel-ref complexity: --eps-option must look like NAME=EXPR, got {item!r}")
        dynamic[key.strip()] = _eps_expression(expr)
    if dynamic:
        def options(eps):
            return {**fixed, **{k: f(eps) for k, f in dynamic.items()}}
    else:
        options = fixed
    eps = np.array(args.eps) if args.eps else eps_grid(args.eps_max, args.eps_min, args.per_decade)
    try:
        res = eps_sweep(args.method, args.problem, eps, options=options, problem_params=params,
                        seeds=args.seeds, measure=args.measure, rho=args.rho,
                        single_run=False if args.per_eps else None, maxiter=args.maxiter,
                        count_samples=args.count_samples, quantities=args.quantity, mode=args.mode,
                        theory=args.theory, p=args.p)
    except (ValueError, TypeError) as exc:
        print(f"bilevel-ref complexity: error: {exc}", file=sys.stderr)
        return 2
    print(f"{res.method} on {res.problem}: measure={res.measure}, seeds={res.seeds}, "
          f"single_run={res.single_run}, {res.elapsed:.1f} s")
    print(res.table())
    if args.json:
        text = json.dumps(res.to_json(), indent=1)
        if args.json == "-":
            print(text)
        else:
            with open(args.json, "w") as fh:
                fh.write(text)
    if args.plot:
        plot_sweep(res, args.plot)
    failed = [q for q, v in res.verdicts.items() if v.get("pass") is False]
    return 1 if (args.strict and failed) else 0
