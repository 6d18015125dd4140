r"""Convergence tests, cost measures and the reference value :math:`f_L` of the profiles.

A run's history gives, at every iteration :math:`k`, the cumulative oracle
counts by kind and the objective.  A run *solves* a problem at tolerance
:math:`\tau \in (0, 1)` at the first iteration passing the convergence test
of the chosen *measure* (:data:`MEASURES`):

``"phi"`` — Moré & Wild's function-value test (their eq. 2.2)

.. math::

   f(x_0) - f(x_k) \;\ge\; (1 - \tau)\,\bigl(f(x_0) - f_L\bigr),

with :math:`f = \varphi` (the closed form when the problem has one, else
the estimate :math:`f(x_k, y_k)`) and :math:`f_L` the closed-form minimum
:math:`\varphi^*` when known (:func:`closed_form_minimum`), else the
smallest value any method reached on that problem instance.

``"grad_norm"`` — relative stationarity (closed-form :math:`\nabla\varphi` only)

.. math::

   \|\nabla\varphi(x_k)\| \;\le\; \tau\,\|\nabla\varphi(x_0)\|.

Its *cost* is the cumulative count of the chosen oracle kinds at that
iteration (:data:`COSTS`): ``total`` (every oracle, samples excluded — the
budget unit of ``bilevel-ref compare``), ``first_order`` (``grad_f`` +
``grad_g``), ``second_order`` (Hessian blocks, Hessian- and Jacobian-vector
products) or one kind of :data:`bilevel_ref.oracles.COUNT_KINDS`.

References
----------
J. J. Moré and S. M. Wild, "Benchmarking derivative-free optimization
algorithms", SIAM J. Optim. 20 (2009), 172–191.
"""
from __future__ import annotations

import math
import numbers

import numpy as np

from ..oracles import COUNT_KINDS

__all__ = ["MEASURES", "COSTS", "check_measure", "check_cost", "check_taus", "passes", "first_hit",
           "cost_of", "closed_form_minimum"]

#: Convergence tests (module docstring).
MEASURES = ("phi", "grad_norm")

_ORACLES = tuple(k for k in COUNT_KINDS if k != "samples")
#: Cost measure -> the oracle kinds it sums.
COSTS = {
    "total": _ORACLES,
    "first_order": ("grad_f", "grad_g"),
    "second_order": tuple(k for k in _ORACLES if k.startswith(("hess_", "hvp_", "cross"))),
    **{k: (k,) for k in COUNT_KINDS},
}


def _normalise(value):
    return value.strip().lower().replace("-", "_") if isinstance(value, str) else value


def check_measure(measure):
    """``measure`` if it is one of :data:`MEASURES`, else a ValueError listing them."""
    m = _normalise(measure)
    if not isinstance(m, str) or m not in MEASURES:
        raise ValueError(f"measure must be one of {list(MEASURES)}, got {measure!r}")
    return m


def check_cost(cost):
    """``cost`` (dashes read as underscores) if it is a key of :data:`COSTS`, else a ValueError listing them."""
    c = _normalise(cost)
    if not isinstance(c, str) or c not in COSTS:
        raise ValueError(f"cost must be one of {list(COSTS)}, got {cost!r}")
    return c


def check_taus(taus):
    """``taus`` as a tuple of floats, each in the open interval (0, 1); a ValueError otherwise."""
    if isinstance(taus, numbers.Real) and not isinstance(taus, bool):
        taus = (taus,)
    try:
        values = tuple(taus)
    except TypeError:
        raise TypeError(f"tau must be a number or a sequence of numbers, got {type(taus).__name__}") from None
    if not values:
        raise ValueError("tau must hold at least one value in (0, 1)")
    out = []
    for t in values:
        if isinstance(t, bool) or not isinstance(t, numbers.Real):
            raise TypeError(f"tau values must be real numbers, got {t!r}")
        if not (0.0 < float(t) < 1.0):
            raise ValueError(f"tau must lie in the open interval (0, 1), got {t!r}")
        out.append(float(t))
    if len(set(out)) != len(out):
        raise ValueError(f"tau values must be distinct, got {list(values)}")
    return tuple(out)


def passes(measure, tau, values, f_L=None):
    """Boolean array: which iterations pass the convergence test (module docstring).

    Parameters
    ----------
    measure : {"phi", "grad_norm"}
    tau : float in (0, 1)
    values : array_like
        The objective (``"phi"``) or ‖∇φ‖ (``"grad_norm"``) along the run;
        entry 0 is the starting point.  NaN never passes.
    f_L : float
        Reference value of the ``"phi"`` test.
    """
    measure = check_measure(measure)
    tau = check_taus(tau)[0]
    v = np.asarray(values, dtype=np.float64)
    if v.size == 0:
        return np.zeros(0, dtype=bool)
    with np.errstate(invalid="ignore"):
        if measure == "phi":
            if f_L is None or not math.isfinite(f_L):
                raise ValueError(f"the 'phi' test needs a finite f_L, got {f_L!r}")
            return (v[0] - v) >= (1.0 - tau) * (v[0] - f_L)
        return v <= tau * v[0]


def first_hit(mask):
    """Index of the first True entry of ``mask``, or ``None``."""
    idx = np.flatnonzero(np.asarray(mask, dtype=bool))
    return int(idx[0]) if idx.size else None


def cost_of(counts, cost, index=None):
    """The ``cost`` measure of cumulative ``counts`` (``{kind: array}``), at ``index`` or along the run."""
    kinds = COSTS[check_cost(cost)]
    total = sum(np.asarray(counts[k], dtype=np.int64) for k in kinds)
    return total if index is None else int(total[index])


def closed_form_minimum(problem):
    r"""The minimum :math:`\varphi^* = \min_x \varphi(x)` when it is known in closed form, else ``None``.

    Known: a problem attribute ``phi_star`` (a number, or a method returning
    one), and the quadratic bilevel problem
    (:class:`~bilevel_ref.problems.quadratic.QuadraticBilevel`) with positive
    definite :math:`H = \nabla^2\varphi` (constant), whose minimiser is one
    Newton step from anywhere, :math:`x^* = -H^{-1}\nabla\varphi(0)`.  A
    nonconvex quadratic (:math:`\varphi` unbounded below) gives ``None``.
    """
    star = getattr(problem, "phi_star", None)
    if star is not None:
        value = float(star() if callable(star) else star)
        return value if math.isfinite(value) else None
    from ..problems.quadratic import QuadraticBilevel

    if isinstance(problem, QuadraticBilevel):
        zero = np.zeros(problem.dx)
        hess = problem.hess_phi(zero)
        eig = np.linalg.eigvalsh(hess)
        if eig[0] <= 1e-12 * max(1.0, abs(eig[-1])):
            return None
        x_star = -np.linalg.solve(hess, problem.grad_phi(zero))
        return float(problem.phi(x_star))
    return None
