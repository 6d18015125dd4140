"""Comparison plots and second-order-call ratios for docs/curvature_lazy.rst.

Run from the repository root (about a minute on 2 cores)::

    python docs/curvature_lazy_plots.py            # writes docs/images/*.png, prints the tables

``bilevel-ref compare`` plots every method against the *total* oracle count;
the NBO / SO-Lazy-BiO claims are about gradient calls versus Hessian- and
Jacobian-vector products separately, and the logistic problem has no closed
form ∇φ, so this script reads the per-kind cumulative counts from each run's
history and evaluates the exact ‖∇φ‖ (accurate inner Newton solve + dense
implicit-function solve, uncounted) in a callback.

Wall time with costly second-order products: :class:`~bilevel_ref.problems.wrappers.SecondOrderCost`
wraps a problem and performs each HVP/JVP ``c`` times (real work, so the
measured time reflects it; counts are unchanged).
"""
from __future__ import annotations

import os
import sys
import time

import numpy as np
import scipy.linalg as sla

import bilevel_ref as br
from bilevel_ref.problems.quadratic import quadratic_bilevel
from bilevel_ref.problems.regularization import make_logistic_regularization
from bilevel_ref.problems.wrappers import SecondOrderCost

HERE = os.path.dirname(os.path.abspath(__file__))
IMAGES = os.path.join(HERE, "images")


# ---------------------------------------------------------------------------
# truth and the costly-HVP wrapper
# ---------------------------------------------------------------------------
def exact_grad_phi(problem, x, tol=1e-12):
    """∇φ(x): Newton on g(x, ·) to ‖∇_y g‖ ≤ tol, then the implicit-function formula (dense)."""
    y = np.zeros(problem.dy)
    for _ in range(100):
        gy = problem.grad_g(x, y)[1]
        if np.linalg.norm(gy) <= tol:
            break
        y = y - sla.cho_solve(sla.cho_factor(problem.hess_g(x, y)[2]), gy)
    gx, gy = problem.grad_f(x, y)
    _, hxy, hyy = problem.hess_g(x, y)
    return gx - hxy @ sla.cho_solve(sla.cho_factor(hyy), gy)


def run_curve(problem, method, x0, options, seed=0, every=10, truth=None):
    """Exact ‖∇φ‖ every ``every`` iterations with cumulative counts and solver time."""
    truth = truth or (lambda x: exact_grad_phi(problem, x))
    rows = [(0, 0, 0, 0.0, float(np.linalg.norm(truth(x0))))]
    clock = {"t": 0.0, "last": None}

    def callback(r):
        now = time.perf_counter()
        clock["t"] += now - clock["last"]
        if r.nit % every == 0:
            c = r.oracle_calls
            rows.append((r.nit, c["grad_f"] + c["grad_g"], c["hvp_yy_g"] + c["cross_g"], clock["t"],
                         float(np.linalg.norm(truth(r.x)))))
        clock["last"] = time.perf_counter()
        return False

    clock["last"] = time.perf_counter()
    br.minimize(problem, method, x0, seed=seed, options={**options, "record_exact": False,
                                                          "history_every": 10**9}, callback=callback)
    return np.array(rows)  # columns: nit, gradient calls, second-order calls, time, ‖∇φ‖


def first_reach(curve, tol):
    """The first row with ‖∇φ‖ ≤ tol (None if never)."""
    idx = np.flatnonzero(curve[:, 4] <= tol)
    return None if idx.size == 0 else curve[idx[0]]


def deterministic_figure(plt):
    problem = quadratic_bilevel(20, 20, kappa=10.0, seed=0)
    x0 = np.ones(20)
    step = 0.5 / problem.constants()["L_phi"]
    L_g = problem.L_g
    methods = {
        "NBO-GD (T=1)": ("nbo", {"inner": "gd", "linsys_steps": 1, "step_x": step}),
        "NBO-GD (T=5)": ("nbo", {"inner": "gd", "linsys_steps": 5, "step_x": step}),
        "NBO-CG (T=5)": ("nbo", {"inner": "cg", "linsys_steps": 5, "step_x": step}),
        "AID-CG (10 GD, 5 CG)": ("aid", {"linsys_steps": 5, "step_x": step, "gtol": 0.0}),
        # benchopt's c = 1/L_g and r = c/step: x step c/r
        "AmIGO (T=10)": ("amigo", {"step_y": 1.0 / L_g, "step_v": 1.0 / L_g,
                                   "step_x": (1.0 / L_g) / ((1.0 / L_g) / step)}),
        "SOBA": ("soba", {"schedule": "constant", "step_y": 1.0 / L_g, "step_v": 1.0 / L_g, "step_x": step}),
    }
    truth = problem.grad_phi
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    table = []
    for label, (method, opts) in methods.items():
        curve = run_curve(problem, method, x0, {**opts, "maxiter": 1500}, every=1, truth=truth)
        axes[0].semilogy(curve[:, 1], curve[:, 4], label=label)
        axes[1].semilogy(curve[:, 2], curve[:, 4], label=label)
        hit = first_reach(curve, 1e-6)
        table.append((label, *(("-",) * 3 if hit is None else (int(hit[0]), int(hit[1]), int(hit[2])))))
    axes[0].set_xlabel("gradient calls (grad_f + grad_g)")
    axes[1].set_xlabel("Hessian- and Jacobian-vector products")
    for ax in axes:
        ax.set_ylabel("exact ‖∇φ(x)‖")
        ax.set_xlim(0, 3000)
        ax.set_ylim(1e-10, None)
        ax.grid(True, which="both", alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle("Deterministic quadratic (dx = dy = 20, κ = 10), same outer step 0.5/L_φ")
    fig.tight_layout()
    fig.savefig(os.path.join(IMAGES, "nbo_deterministic.png"), dpi=110)
    print("\nDeterministic quadratic: first iterate with ‖∇φ‖ ≤ 1e-6")
    print(f"{'method':24s} {'iters':>6s} {'grad':>6s} {'hvp+jvp':>8s}")
    for row in table:
        print(f"{row[0]:24s} {row[1]!s:>6s} {row[2]!s:>6s} {row[3]!s:>8s}")


def lazy_figure(plt, c=10, seeds=5):
    base = make_logistic_regularization(200, 200, 10, seed=0)
    problem = SecondOrderCost(base, c)
    x0 = np.zeros(10)
    g0 = np.linalg.norm(exact_grad_phi(base, x0))
    inv_L = 1.0 / base.constants()["L_g"]
    common = {"batch_size": 64, "maxiter": 3000}
    methods = {
        "SOBA": ("soba", {"schedule": "constant", "step_y": inv_L, "step_v": inv_L, "step_x": 2.0}),
        "MA-SOBA": ("ma_soba", {"step_y": inv_L, "step_v": inv_L, "step_x": 2.0}),
        "SO-Lazy-BiO N=5 (hvp)": ("so_lazy_bio", {"period": 5, "step_x": 2.0}),
        "SO-Lazy-BiO N=5 (hvp+jvp)": ("so_lazy_bio", {"period": 5, "mode": "hvp+jvp", "step_x": 2.0}),
        "SO-Lazy-BiO N=10 (hvp+jvp)": ("so_lazy_bio", {"period": 10, "mode": "hvp+jvp", "step_x": 2.0}),
        "SO-Lazy-BiO N=20 (hvp+jvp)": ("so_lazy_bio", {"period": 20, "mode": "hvp+jvp", "step_x": 2.0}),
    }
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    table = []
    for label, (method, opts) in methods.items():
        curves = [run_curve(problem, method, x0, {**opts, **common}, seed=s, every=10) for s in range(seeds)]
        med = np.median(np.stack(curves), axis=0)  # same checkpoints in every seed
        for ax, col in zip(axes, (2, 0, 3)):
            ax.semilogy(med[:, col], med[:, 4] / g0, label=label)
        hits = [first_reach(cv, 0.1 * g0) for cv in curves]
        if any(h is None for h in hits):
            table.append((label, "-", "-", "-"))
        else:
            table.append((label, float(np.median([h[0] for h in hits])), float(np.median([h[2] for h in hits])),
                          float(np.median([h[3] for h in hits]))))
    axes[0].set_xlabel("Hessian- and Jacobian-vector products")
    axes[1].set_xlabel("iterations (= grad_g calls = grad_f calls)")
    axes[2].set_xlabel(f"solver wall time [s], one HVP/JVP = {c}× its own cost")
    for ax in axes:
        ax.set_ylabel("exact ‖∇φ(x)‖ / ‖∇φ(x₀)‖ (median of 5 seeds)")
        ax.grid(True, which="both", alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle("Stochastic learn-to-regularize (logistic, n = 200 + 200, d = 10, batch 64)")
    fig.tight_layout()
    fig.savefig(os.path.join(IMAGES, "lazy_stochastic.png"), dpi=110)
    print("\nStochastic logistic: first checkpoint with ‖∇φ‖ ≤ 0.1‖∇φ(x0)‖ (median of 5 seeds)")
    soba_so = table[0][2]
    print(f"{'method':28s} {'iters':>7s} {'hvp+jvp':>8s} {'ratio vs SOBA':>14s} {'time [s]':>9s}")
    for label, it, so, t in table:
        ratio = "-" if so == "-" else f"{so / soba_so:.3f}"
        print(f"{label:28s} {it!s:>7s} {so!s:>8s} {ratio:>14s} {t if t == '-' else f'{t:.3f}':>9s}")


def main():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    os.makedirs(IMAGES, exist_ok=True)
    deterministic_figure(plt)
    lazy_figure(plt)
    return 0


if __name__ == "__main__":
    sys.exit(main())
