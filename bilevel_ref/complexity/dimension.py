r"""d-sweep: LFSBA's advantage over FSBA as the dimension grows (the paper's √d claim).

Yang, Liu, Chen and Lui prove that LFSBA, reusing one Hessian estimate for
m = d iterations, has a computational complexity √d times smaller than
FSBA's, under the cost model of Doikov, Chayti and Jaggi (one Hessian = d
gradients).  The bound arithmetic: FSBA needs :math:`T = O(\sqrt{M}\varepsilon^{-3/2})`
iterations with one Hessian each, cost :math:`\approx T(G + h d)`; LFSBA with
:math:`M_m = mM` (theory: M ∝ m × Hessian-Lipschitz constant) needs
:math:`\sqrt m\,T` iterations and :math:`\sqrt m\,T/m` Hessians, cost
:math:`\approx \sqrt m\,T(G + h d/m)`.  With m = d the ratio is

.. math::

    R(d) = \frac{\text{cost}_\text{FSBA}}{\text{cost}_\text{LFSBA}}
         = \frac{G + h d}{\sqrt d\,(G + h)} \;\sim\; \frac{h}{G + h}\sqrt d ,

G = gradient calls and h = Hessian blocks per iteration: the exponent of d
is 1/2 once the Hessians dominate (h d ≫ G); its local value is
:math:`h d/(G + h d) - 1/2` (:func:`predicted_exponent`).

:func:`dim_sweep` measures R(d) on a worst case where the iteration bound is
attained: the ε-ramp of :func:`bilevel_ref.problems.hard.ramp_function`
(cubic order, Hessian-Lipschitz constant exactly M) lifted to
:math:`d_x = d` (:func:`~bilevel_ref.problems.hard.lift_bilevel`; the trailing
coordinates start at 0 and stay there, but every Hessian is d × d), where
cubic Newton needs :math:`\Delta\sqrt M/(4\varepsilon^{3/2}) + O(1)` steps.  It
runs FSBA (M) and LFSBA (m = d, M·m) to ε, counts the calls at the hitting
time, prices them with ``cost_model`` (default: gradient 1, Hessian block d)
and fits :math:`\log R = a + b\log d`.

References
----------
S. Yang, C. Liu, L. Chen, J. C. S. Lui, "Second-Order Bilevel Optimization
with Accelerated Convergence Rates", arXiv 2605.06431, 2026.
N. Doikov, E. M. Chayti, M. Jaggi, "Second-order optimization with lazy
Hessians", ICML 2023, arXiv 2212.00781.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, field

import numpy as np

from .._text import format_table
from .._validation import check_int, check_positive
from .fit import fit_slope, verdict
from .parallel import check_parallel, run_tasks
from .sweep import _SweepTask, _jsonable, _run_sweep_task
from .trace import derived_totals

__all__ = ["BASE_OPTIONS", "DimSweepResult", "dim_sweep", "ramp_lift", "predicted_exponent", "plot_dim_sweep"]

#: FSBA options of :func:`dim_sweep` (LFSBA: the same plus period m = d and M scaled by m).
BASE_OPTIONS = {"M": 1.0, "lam": 100.0, "inner_steps": 10}


def ramp_lift(eps, seed, d, dy=2, M=1.0, kappa=2.0):
    r"""(problem, x0 = 0): the cubic ε-ramp lifted to dx = d with a d-independent coupling.

    As :func:`~bilevel_ref.problems.hard.lift_bilevel` (shift coupling, φ = h
    exactly, spec(A) = geomspace(1/κ, 1)) but with :math:`K = Z/\sqrt d`, Z
    standard normal (dy × d), so that ‖K‖ = O(1) for every d: the conditioning
    of the penalised inner problems and of the Schur-complement Hessian
    estimate, hence the iterations, do not change with d — only the price of a
    Hessian does.
    """
    from ..problems.hard import ShiftLiftedBilevel, SeparableUpper, _hard_constants, ramp_function

    h1 = ramp_function(eps, "cubic", M=M)
    rng = np.random.default_rng(seed)
    q, r = np.linalg.qr(rng.standard_normal((dy, dy)))
    q = q * np.sign(np.diag(r))
    A = (q * np.geomspace(1.0 / kappa, 1.0, dy)) @ q.T
    A = 0.5 * (A + A.T)
    K = rng.standard_normal((dy, d)) / np.sqrt(d)
    a = rng.standard_normal(dy)
    known = _hard_constants(h1, 1.0, "cubic", M)
    known["L_f"] = known["L_phi"] + (1.0 + float(np.linalg.norm(K, 2))) ** 2
    return ShiftLiftedBilevel(SeparableUpper(h1, d), K, A, a, constants=known, name="ramp-lift"), np.zeros(d)


def predicted_exponent(grads, hessians, d):
    r"""Local exponent :math:`\mathrm d\log R/\mathrm d\log d = hd/(G + hd) - 1/2` of the cost-model ratio.

    ``grads`` (G) and ``hessians`` (h) are per-iteration counts of FSBA; at
    m = d and with one Hessian = d gradients.
    """
    d = np.asarray(d, dtype=float)
    return hessians * d / (grads + hessians * d) - 0.5


@dataclass
class DimSweepResult:
    """Outcome of :func:`dim_sweep`.

    ``cost[method]``, ``iterations[method]``, ``hessians[method]``: (n_seeds, n_dims)
    values at the hitting time of ε (NaN = not reached); ``ratio`` the per-d
    median of cost_FSBA / cost_LFSBA; ``fit`` the fit of log ratio against
    log d (:class:`~bilevel_ref.complexity.fit.Fit`, "slope" = exponent of d);
    ``predicted`` the local exponent :func:`predicted_exponent` at the largest
    d; ``verdict`` the comparison with ``theory`` = 0.5.
    """

    dims: np.ndarray
    eps: float
    seeds: list
    cost: dict
    iterations: dict
    hessians: dict
    grads: dict
    ratio: np.ndarray
    fit: object
    theory: float
    predicted: float
    verdict: dict
    options: dict
    runs: list = field(default_factory=list, repr=False)

    def table(self):
        """Per-d medians (iterations, Hessian blocks, cost, ratio) and the fitted exponent."""
        rows = []
        for j, d in enumerate(self.dims):
            med = {k: {m: float(np.nanmedian(v[m][:, j])) for m in v}
                   for k, v in (("it", self.iterations), ("h", self.hessians), ("c", self.cost))}
            rows.append([int(d), int(med["it"]["fsba"]), int(med["it"]["lfsba"]), int(med["h"]["fsba"]),
                         int(med["h"]["lfsba"]), int(med["c"]["fsba"]), int(med["c"]["lfsba"]),
                         f"{self.ratio[j]:.3f}", f"{np.sqrt(d):.2f}"])
        head = ["d", "iter FSBA", "iter LFSBA", "Hess FSBA", "Hess LFSBA", "cost FSBA", "cost LFSBA",
                "ratio", "sqrt(d)"]
        se = "-" if not np.isfinite(self.fit.stderr) else f"{self.fit.stderr:.4f}"
        local = ", ".join(f"{int(a)}→{int(b)}: {v:.3f}" for a, b, v in
                          zip(self.dims[:-1], self.dims[1:], self.local_exponents()))
        return "\n".join([format_table(head, rows), "",
                          f"exponent of d in the cost ratio: b = {self.fit.slope:.4f} (stderr {se}); "
                          f"theory {self.theory:g}; cost-model prediction at d = {int(self.dims[-1])}: "
                          f"{self.predicted:.4f}; {self.verdict['text']}",
                          f"local exponents (successive d): {local}"])

    def local_exponents(self):
        """Slopes of log ratio between successive d (they approach 1/2 as h·d outgrows G)."""
        return np.diff(np.log(self.ratio)) / np.diff(np.log(self.dims))

    def to_json(self):
        """JSON-ready dict (NaN as None)."""
        def arr(a):
            return [[None if not np.isfinite(v) else float(v) for v in row] for row in np.asarray(a, float)]

        return {"dims": self.dims.tolist(), "eps": self.eps, "seeds": list(self.seeds),
                "cost": {m: arr(v) for m, v in self.cost.items()},
                "iterations": {m: arr(v) for m, v in self.iterations.items()},
                "hessians": {m: arr(v) for m, v in self.hessians.items()},
                "grads": {m: arr(v) for m, v in self.grads.items()},
                "ratio": [None if not np.isfinite(v) else float(v) for v in self.ratio],
                "fit": self.fit.to_dict(), "theory": self.theory, "predicted": self.predicted,
                "local_exponents": self.local_exponents().tolist(),
                "verdict": self.verdict, "options": _jsonable(self.options), "runs": self.runs}


def dim_sweep(dims=(16, 64, 256), eps=1e-2, *, seeds=(0,), options=None, problem=None, cost_model=None,
              measure="sosp", rho=None, maxiter=200_000, tol=0.1, n_jobs=1, parallel="loky",
              scheduler=None, progress=None):
    r"""Cost of FSBA vs LFSBA (m = d, M·m) to ε for each d; exponent of the ratio in d vs 1/2.

    Parameters
    ----------
    dims : sequence of int
        Dimensions d (= dx, the dimension of the cubic steps; ≥ 2 values).
    eps : float
        Target: the hitting time of ‖∇φ‖ ≤ ε (and λ_min ≥ −√(ρε) with ``measure="sosp"``).
    seeds : sequence of int
    options : dict, optional
        FSBA options (default :data:`BASE_OPTIONS`: M = 1 = the ramp's
        Hessian-Lipschitz constant, λ = 100, ten inner AGD steps per loop, warm
        started).  LFSBA gets the same plus ``period=d``, ``M_scale_with_m=True``.
    problem : callable ``(eps, seed, d) -> (problem, x0)``, optional
        Default :func:`ramp_lift` (picklable: a module-level function or a partial of one).
    cost_model : dict, optional
        Unit costs; default: gradient 1, every Hessian block ``hess_f``/``hess_g`` = d
        (the paper's model), HVPs 2.
    measure, rho : see :func:`~bilevel_ref.complexity.sweep.eps_sweep` (ρ default: ``options["M"]``).
    maxiter : int
    tol : float
        Verdict tolerance on ``abs(b - 0.5)``.
    n_jobs, parallel, scheduler, progress
        As in :func:`~bilevel_ref.complexity.sweep.eps_sweep`: one task per (d, method, seed).

    Returns
    -------
    DimSweepResult
    """
    dims = np.array([check_int(d, "dims[i]", minimum=1) for d in dims])
    if dims.size < 2:
        raise ValueError("dims needs at least two dimensions to fit an exponent")
    eps = check_positive(eps, "eps")
    seeds = [check_int(s, "seeds[i]", minimum=0) for s in seeds]
    if not seeds:
        raise ValueError("seeds must not be empty")
    check_parallel(n_jobs, parallel, scheduler)
    base = dict(BASE_OPTIONS if options is None else options)
    rho = float(base.get("M", 10.0)) if rho is None else check_positive(rho, "rho")
    builder = problem or ramp_lift
    methods = ("fsba", "lfsba")
    tasks, where = [], []
    for j, d in enumerate(dims):
        build = functools.partial(_with_dim, builder, int(d))
        for method in methods:
            opts = dict(base) if method == "fsba" else {**base, "period": int(d), "M_scale_with_m": True}
            for i, seed in enumerate(seeds):
                tasks.append(_SweepTask(method, False, build, None, eps, seed, None, opts, rho, measure,
                                        maxiter, "first", np.array([eps]), False))
                where.append((method, i, j))
    outcomes = run_tasks(_run_sweep_task, tasks, n_jobs, parallel, scheduler, desc="dim sweep",
                         progress=progress)
    shape = (len(seeds), dims.size)
    cost = {m: np.full(shape, np.nan) for m in methods}
    its = {m: np.full(shape, np.nan) for m in methods}
    hess = {m: np.full(shape, np.nan) for m in methods}
    grads = {m: np.full(shape, np.nan) for m in methods}
    runs = []
    for (method, i, j), out in zip(where, outcomes):
        d = int(dims[j])
        units = {"hess_f": d, "hess_g": d, **(cost_model or {})}
        counts = {k: np.nan_to_num(v, nan=0.0) for k, v in out["counts"].items()}
        if not np.isfinite(out["iterations"][0]):
            counts = {k: np.full(1, np.nan) for k in counts}
        tot = derived_totals(counts, d, cost_model=units)
        cost[method][i, j] = tot["cost"][0]
        its[method][i, j] = out["iterations"][0]
        hess[method][i, j] = counts.get("hess_f", np.zeros(1))[0] + counts.get("hess_g", np.zeros(1))[0]
        grads[method][i, j] = tot["first_order"][0]
        runs.append({"method": method, "d": d, **out["run"]})
    with np.errstate(invalid="ignore"):
        ratio = np.nanmedian(cost["fsba"] / cost["lfsba"], axis=0)
    fit = fit_slope(1.0 / dims, ratio, min_count=0.0)  # log R = a + b log d
    g_per, h_per = (float(np.nanmedian(grads["fsba"][:, -1] / its["fsba"][:, -1])),
                    float(np.nanmedian(hess["fsba"][:, -1] / its["fsba"][:, -1])))
    predicted = float(predicted_exponent(g_per, h_per, dims[-1]))
    return DimSweepResult(dims, eps, seeds, cost, its, hess, grads, ratio, fit, 0.5, predicted,
                          verdict(fit.slope, 0.5, "sharp", tol), {"fsba": base, "measure": measure, "rho": rho},
                          runs)


def _with_dim(builder, d, eps, seed):
    return builder(eps, seed, d)


def plot_dim_sweep(result, path=None):
    """Log–log figure: cost of both methods and their ratio against d, with the fitted and √d lines."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import NullFormatter

    fig = Figure(figsize=(9.0, 3.8))
    ax1, ax2 = fig.subplots(1, 2)
    d = result.dims
    for m, mark in (("fsba", "o-"), ("lfsba", "s-")):
        ax1.plot(d, np.nanmedian(result.cost[m], axis=0), mark, label=m.upper())
    ax1.set_ylabel("cost to ε (gradient = 1, Hessian = d)")
    ax2.plot(d, result.ratio, "o", label="measured cost ratio")
    line = np.geomspace(d.min(), d.max(), 50)
    f = result.fit
    ax2.plot(line, np.exp(f.intercept) * line ** f.slope, "-", label=f"fitted b = {f.slope:.3f}")
    mid = np.sqrt(d.min() * d.max())
    ax2.plot(line, np.exp(f.intercept) * mid ** f.slope * (line / mid) ** 0.5, "--", label="√d (theory 0.5)")
    ax2.set_ylabel("cost FSBA / cost LFSBA")
    for ax in (ax1, ax2):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("d")
        ax.legend(fontsize=8)
        ax.grid(True, which="both", alpha=0.3)
        # label the measured d only (log axes crowd the minor labels)
        ax.set_xticks(d)
        ax.set_xticklabels([str(int(v)) for v in d])
        ax.xaxis.set_minor_formatter(NullFormatter())
    fig.suptitle(f"LFSBA (m = d, M·m) vs FSBA on the cubic ramp lifted to d, ε = {result.eps:g}")
    if path is not None:
        fig.tight_layout()
        fig.savefig(path, dpi=110)
    return fig
