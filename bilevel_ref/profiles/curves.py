r"""The three profile curves, from a table of costs: pure NumPy, no runs.

Costs are oracle counts at which a run first passed its convergence test
(:mod:`bilevel_ref.profiles.targets`); a run that never passed it has cost
:math:`+\infty` (NaN is read as :math:`+\infty` too).

**Performance profile** (Dolan & Moré 2002).  For problems :math:`p \in P`
and solvers :math:`s \in S` with costs :math:`t_{p,s}`, the performance
ratio is

.. math::

   r_{p,s} = \frac{t_{p,s}}{\min_{s'} t_{p,s'}}, \qquad
   \rho_s(\alpha) = \frac{|\{p \in P : r_{p,s} \le \alpha\}|}{|P|},

with :math:`r_{p,s} = \infty` for a failure.  Zero costs (e.g. the
second-order calls of a first-order method) follow :math:`0/0 = 1` and
:math:`t/0 = \infty` for :math:`t > 0`: a solver that needs none of the
counted oracles is the best, any positive count is infinitely worse.
:math:`\rho_s(1)` is the fraction of problems on which :math:`s` is (one of)
the cheapest; :math:`\lim_{\alpha\to\infty}\rho_s(\alpha)` the fraction it
solves at all.

**Data profile** (Moré & Wild 2009).  With a per-problem unit
:math:`u_p > 0` (Moré & Wild: :math:`u_p = n_p + 1`, the cost of one
simplex gradient; here :math:`n_p = d_x`, or :math:`u_p = 1` for raw
counts),

.. math::

   d_s(\kappa) = \frac{|\{p \in P : t_{p,s} / u_p \le \kappa\}|}{|P|}.

**Runtime ECDF** (COCO, Hansen et al. 2021).  For one solver, the fraction
of (problem, target) pairs whose count of evaluations to reach the target
is at most :math:`b`, as a function of the budget :math:`b` (counted in
evaluations, never seconds); failures stay out of reach:

.. math::

   F_s(b) = \frac{|\{(p, \tau) : t_{p,s}(\tau) \le b\}|}{|P|\,|T|}.

References
----------
E. D. Dolan and J. J. Moré, "Benchmarking optimization software with
performance profiles", Math. Program. 91 (2002), 201–213.

J. J. Moré and S. M. Wild, "Benchmarking derivative-free optimization
algorithms", SIAM J. Optim. 20 (2009), 172–191.

N. Hansen, A. Auger, R. Ros, O. Mersmann, T. Tušar and D. Brockhoff, "COCO:
a platform for comparing continuous optimizers in a black-box setting",
Optim. Methods Softw. 36 (2021), 114–144.
"""
from __future__ import annotations

import numpy as np

__all__ = ["performance_ratios", "performance_profile", "data_profile", "ecdf"]


def _costs(costs, name="costs"):
    """``costs`` as a float array of shape (problems, solvers); NaN -> inf; negatives rejected."""
    arr = np.array(costs, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError(f"{name} must be a non-empty 2-D array (problems x solvers), got shape {arr.shape}")
    arr[np.isnan(arr)] = np.inf
    if np.any(arr < 0):
        raise ValueError(f"{name} must be >= 0 (oracle counts; inf or NaN for a failure)")
    return arr


def _grid(values, name):
    grid = np.asarray(values, dtype=np.float64)
    if grid.ndim != 1 or grid.size == 0 or not np.all(np.isfinite(grid)):
        raise ValueError(f"{name} must be a non-empty 1-D array of finite numbers")
    return grid


def performance_ratios(costs):
    r"""Dolan–Moré ratios :math:`r_{p,s} = t_{p,s} / \min_{s'} t_{p,s'}` (module docstring).

    Parameters
    ----------
    costs : array_like, shape (n_problems, n_solvers)
        Oracle counts; ``inf`` or NaN for a failure.

    Returns
    -------
    ndarray, shape (n_problems, n_solvers)
        Ratios ≥ 1, ``inf`` for failures (and for every solver on a problem
        none of them solved).
    """
    t = _costs(costs)
    best = t.min(axis=1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        r = t / best
    r[(t == 0) & (best == 0)] = 1.0
    r[~np.isfinite(t)] = np.inf
    return r


def performance_profile(costs, alphas=None):
    r"""Dolan–Moré performance profile :math:`\rho_s(\alpha)` (module docstring).

    Parameters
    ----------
    costs : array_like, shape (n_problems, n_solvers)
        Oracle counts; ``inf`` or NaN for a failure.
    alphas : array_like, optional
        Where to evaluate; default: every finite ratio and 1 (the step
        function's breakpoints, so the curve is exact there).

    Returns
    -------
    alphas : ndarray, shape (n,)
    rho : ndarray, shape (n_solvers, n)
        Fraction of problems with :math:`r_{p,s} \le \alpha`.
    """
    r = performance_ratios(costs)
    if alphas is None:
        finite = r[np.isfinite(r)]
        alphas = np.unique(np.concatenate([[1.0], finite]))
    alphas = _grid(alphas, "alphas")
    rho = (r.T[:, :, None] <= alphas[None, None, :]).mean(axis=1)
    return alphas, rho


def data_profile(costs, kappas=None, units=None):
    r"""Moré–Wild data profile :math:`d_s(\kappa)` (module docstring).

    Parameters
    ----------
    costs : array_like, shape (n_problems, n_solvers)
        Oracle counts; ``inf`` or NaN for a failure.
    kappas : array_like, optional
        Where to evaluate; default: every finite normalised cost (the
        breakpoints).
    units : array_like, shape (n_problems,), optional
        :math:`u_p > 0` per problem (default 1: raw counts).

    Returns
    -------
    kappas : ndarray, shape (n,)
    d : ndarray, shape (n_solvers, n)
        Fraction of problems with :math:`t_{p,s}/u_p \le \kappa`.
    """
    t = _costs(costs)
    if units is None:
        units = np.ones(t.shape[0])
    units = np.asarray(units, dtype=np.float64)
    if units.shape != (t.shape[0],) or not np.all(np.isfinite(units)) or np.any(units <= 0):
        raise ValueError(f"units must hold one finite number > 0 per problem ({t.shape[0]}), got {units!r}")
    scaled = t / units[:, None]
    if kappas is None:
        finite = scaled[np.isfinite(scaled)]
        kappas = np.unique(finite) if finite.size else np.array([0.0])
    kappas = _grid(kappas, "kappas")
    d = (scaled.T[:, :, None] <= kappas[None, None, :]).mean(axis=1)
    return kappas, d


def ecdf(samples, grid=None):
    r"""Empirical distribution :math:`F(b) = |\{i : t_i \le b\}| / n` of runtimes (module docstring).

    Parameters
    ----------
    samples : array_like, shape (n,)
        Evaluations to reach each target; ``inf`` or NaN for a target not
        reached (it counts in :math:`n`, so :math:`F` may stay below 1).
    grid : array_like, optional
        Budgets :math:`b`; default: the distinct finite samples.

    Returns
    -------
    grid : ndarray, shape (m,)
    fraction : ndarray, shape (m,)
        Non-decreasing in ``grid`` order when ``grid`` is sorted.
    """
    t = _costs(np.reshape(samples, (-1, 1)), "samples")[:, 0]
    if grid is None:
        finite = t[np.isfinite(t)]
        grid = np.unique(finite) if finite.size else np.array([0.0])
    grid = _grid(grid, "grid")
    return grid, (t[:, None] <= grid[None, :]).mean(axis=0)
