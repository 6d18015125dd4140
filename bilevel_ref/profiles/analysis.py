r"""From runs to profiles: the reference values, the table of costs to target, the three curves.

:func:`compute_profiles` turns a list of :class:`~bilevel_ref.profiles.runs.Run`
into a :class:`ProfileSet`:

1. per problem instance (problem, seed), the reference value :math:`f_L` of
   the ``"phi"`` test — the closed-form minimum :math:`\varphi^*` when known,
   else the smallest objective any method reached;
2. per instance, method and tolerance :math:`\tau`, the first iteration
   passing the convergence test and the cost there in every cost measure
   (:data:`~bilevel_ref.profiles.targets.COSTS`), or :math:`+\infty`
   (:meth:`ProfileSet.hits`);
3. the performance profile :math:`\rho_s(\alpha)` and the data profile
   :math:`d_s(\kappa)` per :math:`\tau` in the chosen cost, and the
   fixed-target runtime ECDF per oracle kind, aggregated over instances and
   the targets :math:`\tau` (COCO convention), see
   :mod:`bilevel_ref.profiles.curves`.
"""
from __future__ import annotations

import math

import numpy as np

from ..oracles import COUNT_KINDS
from .curves import data_profile, ecdf, performance_profile
from .targets import COSTS, check_cost, check_measure, check_taus, cost_of, first_hit, passes

__all__ = ["ProfileSet", "compute_profiles", "reference_values", "DATA_UNITS", "check_data_unit"]

#: Units of the data profile's κ: ``"dim"`` = Moré–Wild's :math:`n_p + 1` calls
#: (:math:`n_p = d_x`), ``"calls"`` = 1 call.
DATA_UNITS = ("dim", "calls")


def check_data_unit(data_unit):
    """``data_unit`` if it is one of :data:`DATA_UNITS`, else a ValueError listing them."""
    if data_unit not in DATA_UNITS:
        raise ValueError(f"data_unit must be one of {list(DATA_UNITS)}, got {data_unit!r}")
    return data_unit


def reference_values(runs):
    r"""``{(problem, seed): f_L}``: closed-form :math:`\varphi^*` when known, else the best objective reached.

    An instance where no run has a finite objective gets NaN (its ``"phi"``
    tests all fail).
    """
    best, star = {}, {}
    for run in runs:
        key = (run.problem, run.seed)
        if run.phi_star is not None and run.objective_source == "phi":
            star[key] = run.phi_star
        finite = run.objective[np.isfinite(run.objective)]
        low = float(finite.min()) if finite.size else math.inf
        best[key] = min(best.get(key, math.inf), low)
    return {key: star.get(key, best[key] if math.isfinite(best[key]) else math.nan) for key in best}


class ProfileSet:
    """The costs to target and the profiles of a set of runs (module docstring).

    Build it with :func:`compute_profiles`.  Attributes: ``runs``, ``taus``,
    ``measure``, ``cost``, ``data_unit``, ``methods`` and ``instances``
    (``(problem, seed)`` pairs, in run order), ``f_L``
    (``{instance: value}``).
    """

    def __init__(self, runs, taus, measure, cost, data_unit):
        self.runs = list(runs)
        if not self.runs:
            raise ValueError("runs must hold at least one run")
        self.taus = check_taus(taus)
        self.measure = check_measure(measure)
        self.cost = check_cost(cost)
        self.data_unit = check_data_unit(data_unit)
        self.methods = list(dict.fromkeys(r.method for r in self.runs))
        self.instances = list(dict.fromkeys((r.problem, r.seed) for r in self.runs))
        self._dx = {(r.problem, r.seed): r.dx for r in self.runs}
        if self.measure == "grad_norm":
            lacking = sorted({r.problem for r in self.runs if r.ran and r.grad_norm is None})
            if lacking:
                raise ValueError(f"measure='grad_norm' needs a closed-form ∇φ, which problem(s) {lacking} "
                                 "do not have; use measure='phi'")
        self.f_L = reference_values(self.runs)
        self._hits = [self._hit(run, tau) for tau in self.taus for run in self.runs]

    def _hit(self, run, tau):
        row = {"problem": run.problem, "seed": run.seed, "method": run.method, "tau": tau,
               "measure": self.measure, "status": run.status, "dx": run.dx}
        f_L = self.f_L[(run.problem, run.seed)]
        row["f_L"] = f_L if self.measure == "phi" else math.nan
        k = None
        if run.ran:
            if self.measure == "phi":
                k = first_hit(passes("phi", tau, run.objective, f_L)) if math.isfinite(f_L) else None
            else:
                k = first_hit(passes("grad_norm", tau, run.grad_norm))
        row["solved"] = k is not None
        row["nit"] = int(run.nit[k]) if k is not None else -1
        for name in COSTS:
            row[f"cost_{name}"] = cost_of(run.counts, name, k) if k is not None else math.inf
        return row

    def hits(self):
        """Rows (dicts) of the cost table: instance, method, τ, solved, ``nit`` and ``cost_<measure>``."""
        return [dict(r) for r in self._hits]

    def cost_matrix(self, tau, cost=None):
        """Costs to target at ``tau`` in ``cost`` (default the set's): array (instances, methods), inf = failure."""
        cost = self.cost if cost is None else check_cost(cost)
        if tau not in self.taus:
            raise ValueError(f"tau must be one of the set's {list(self.taus)}, got {tau!r}")
        index = {(i, m): (a, b) for a, i in enumerate(self.instances) for b, m in enumerate(self.methods)}
        out = np.full((len(self.instances), len(self.methods)), np.inf)
        for r in self._hits:
            if r["tau"] == tau:
                out[index[((r["problem"], r["seed"]), r["method"])]] = r[f"cost_{cost}"]
        return out

    def units(self):
        """Data-profile unit per instance: :math:`d_x + 1` (``"dim"``) or 1 (``"calls"``)."""
        if self.data_unit == "calls":
            return np.ones(len(self.instances))
        return np.array([self._dx[i] + 1.0 for i in self.instances])

    def performance(self, tau, alphas=None):
        r"""``(alphas, rho)``: :math:`\rho_s(\alpha)` at ``tau`` (rows in ``methods`` order)."""
        return performance_profile(self.cost_matrix(tau), alphas)

    def data(self, tau, kappas=None):
        r"""``(kappas, d)``: :math:`d_s(\kappa)` at ``tau`` (rows in ``methods`` order)."""
        return data_profile(self.cost_matrix(tau), kappas, self.units())

    def ecdf_kinds(self):
        """``total`` and every single oracle kind some run counted at a target (the ECDF panels)."""
        used = [k for k in COUNT_KINDS
                if any(r["solved"] and r[f"cost_{k}"] > 0 for r in self._hits)]
        return ["total"] + used

    def ecdf(self, kind="total"):
        """``{method: (grid, fraction)}``: runtime ECDF in ``kind`` over (instance, τ) pairs, common grid."""
        kind = check_cost(kind)
        samples = {m: np.array([r[f"cost_{kind}"] for r in self._hits if r["method"] == m], dtype=float)
                   for m in self.methods}
        finite = np.concatenate([s[np.isfinite(s)] for s in samples.values()] + [np.zeros(1)])
        grid = np.unique(finite)
        return {m: ecdf(s, grid) for m, s in samples.items()}

    def curves(self):
        """Every curve as long-table rows: ``profile, tau, cost, method, x, y`` (the CSV of the plots)."""
        rows = []
        for tau in self.taus:
            for profile, (xs, ys) in (("performance", self.performance(tau)), ("data", self.data(tau))):
                for m, y in zip(self.methods, ys):
                    rows += [{"profile": profile, "tau": tau, "cost": self.cost, "method": m, "x": float(a),
                              "y": float(b)} for a, b in zip(xs, y)]
        for kind in self.ecdf_kinds():
            for m, (xs, y) in self.ecdf(kind).items():
                rows += [{"profile": "ecdf", "tau": math.nan, "cost": kind, "method": m, "x": float(a),
                          "y": float(b)} for a, b in zip(xs, y)]
        return rows

    def summary(self):
        """Rows ``method, solved (of instances × τ), rho(1) per τ`` for the terminal table."""
        out = []
        for j, m in enumerate(self.methods):
            solved = sum(r["solved"] for r in self._hits if r["method"] == m)
            best = [float(performance_profile(self.cost_matrix(t), [1.0])[1][j, 0]) for t in self.taus]
            out.append({"method": m, "solved": solved, "pairs": len(self.instances) * len(self.taus),
                        "rho1": best})
        return out


def compute_profiles(runs, tau, measure="phi", cost="total", data_unit="dim"):
    """A :class:`ProfileSet` of ``runs`` (from :func:`~bilevel_ref.profiles.runs.run_profiles`).

    Parameters
    ----------
    runs : list of Run
    tau : float or sequence of float
        Tolerances of the convergence test, each in (0, 1); they are also
        the targets of the ECDFs.
    measure : {"phi", "grad_norm"}
        Convergence test (:mod:`bilevel_ref.profiles.targets`).
    cost : str
        Cost measure of the performance and data profiles: ``"total"``,
        ``"first_order"``, ``"second_order"`` or an oracle kind.
    data_unit : {"dim", "calls"}
        Unit of κ: :math:`d_x + 1` oracle calls (Moré–Wild) or one call.

    Raises
    ------
    ValueError
        Unknown ``measure``, ``cost`` or ``data_unit`` (the message lists the
        valid values); a ``tau`` outside (0, 1); ``"grad_norm"`` on a problem
        without closed-form ∇φ.
    """
    return ProfileSet(runs, tau, measure, cost, data_unit)
