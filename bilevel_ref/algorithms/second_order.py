r"""Second-order bilevel methods: FSBA, LFSBA, IFSBA (cubic-regularised Newton on L*_λ).

All three minimise the penalty hyper-objective
:math:`L^*_\lambda(x) = \min_y f(x, y) + \lambda(g(x, y) - \min_z g(x, z))`, which
is :math:`O(1/\lambda)`-close to :math:`\varphi` with its gradient and Hessian
(:mod:`bilevel_ref.hypergrad.penalty`).  Per outer iteration t:

.. math::

    y_t &= \mathrm{AGD}(f(x_t,\cdot) + \lambda g(x_t,\cdot),\ y_{t-1}, K)
        \quad(\approx y^*_\lambda(x_t))\\
    w_t &= \mathrm{AGD}(g(x_t,\cdot),\ w_{t-1}, K) \quad(\approx y^*(x_t))\\
    G_t &= \nabla_x f(x_t, y_t) + \lambda(\nabla_x g(x_t, y_t) - \nabla_x g(x_t, w_t))\\
    H_t &= H(x_t; y_t, w_t) \quad\text{(Schur-complement Hessian estimate)}\\
    s_t &= \arg\min_s \langle G_t, s\rangle + \tfrac12 s^\top H_t s + \tfrac{M}{6}\|s\|^3\\
    x_{t+1} &= x_t + s_t

* **FSBA**: a fresh dense :math:`H_t` and an exact cubic step (``solve_cubic``,
  eigh by default) every iteration.
* **LFSBA** (lazy Hessians, Doikov et al. Alg. 1): :math:`H` is recomputed only
  when :math:`t \bmod m = 0` (snapshot at :math:`x_{\pi(t)}`,
  :math:`\pi(t) = m\lfloor t/m\rfloor`) and factorised once
  (:class:`~bilevel_ref.linalg.lazy.LazyCubic`); each step then costs
  :math:`O(d_x^2)`.  ``m = 1`` is FSBA bit for bit.
* **IFSBA** (inexact, paper's Algorithm 3): never forms :math:`H`; the
  operator :math:`C_t: v \mapsto H(x_t; y_t, w_t)v` uses Hessian-vector and
  Jacobian-vector products with inner CG solves, and the step is
  Tripuraneni et al.'s perturbed-GD Cubic-Subsolver; when its model decrease
  :math:`\Delta_t \ge -\tfrac{1}{128}\sqrt{\varepsilon^3/M}` the
  Cubic-Finalsolver's step is taken and the method stops.

Per-iteration oracle counts of this implementation (with ``inner_tol=None``): FSBA
``grad_f`` K+1, ``grad_g`` 2K+2, ``hess_f`` 1, ``hess_g`` 2; LFSBA the same
gradients and ``hess_f`` 1, ``hess_g`` 2 only when :math:`t \bmod m = 0`
(:math:`\lceil T/m\rceil` Hessian estimates in T iterations).

Stopping rules (option ``stop_rule``; the guarantees quoted for ``"step"`` follow
from Nesterov & Polyak 2006's bounds for an exact cubic step): ``"step"`` — after step t when
:math:`\|s_t\| \le \sqrt{\varepsilon/M}` (exact cubic steps with M ≥ the
Hessian-Lipschitz constant then give :math:`\|\nabla L^*_\lambda(x_{t+1})\| \le \varepsilon`,
:math:`\lambda_{\min} \ge -\tfrac32\sqrt{M\varepsilon}`); ``"estimate"`` —
:math:`\|G_t\| \le \varepsilon` and :math:`\lambda_{\min}(H_t) \ge -\delta` with a
fresh :math:`H_t` (x_t is returned, no step); ``"exact"`` — :math:`x_{t+1}` is an
:math:`(\varepsilon, \delta)`-SOSP of φ by the problem's closed forms (uncounted);
``"model"`` (IFSBA) — the :math:`\Delta_t` test above.  δ = ``sosp_delta``,
default :math:`\sqrt{M\varepsilon}`.

**Defaults from** ``tol`` (:mod:`bilevel_ref.algorithms._tol`): ``eps`` defaults to
``tol``; :math:`\lambda = \max(2L_f/\mu_g,\ C_\lambda/(tol/4))` (capped at 1e9) from the
penalty bias :math:`\|\nabla L^*_\lambda - \nabla\varphi\| \le C_\lambda/\lambda`
(Kwon et al. 2023, Lemma 3.1; Chen, Ma, Zhang 2023, Lemma 4.1; the spec's
:math:`\lambda = \Theta(\mathrm{poly}(\kappa)/\epsilon)`), :math:`C_\lambda` measured at
:math:`x_0`; inner AGD steps :math:`K = \lceil\sqrt{2\kappa}\ln(\lambda\kappa)\rceil`
(the :math:`\tilde O(\sqrt\kappa)` of the paper, with the log factor that beats the
λ-amplification of the inner error).  An explicit ``lam`` keeps its meaning; when the run
stops on a biased estimate its message gives :math:`C_\lambda/\lambda`.  IFSBA's
perturbation constant c' defaults to 0.01 (T18 asks for a small absolute constant; with
c' = 1 the perturbation :math:`\sigma = c'\sqrt{\varepsilon M}/L` is as large as
:math:`\|G\|` near a minimum at ε = 1e-6 and the model rule fired at
:math:`\|\nabla L^*_\lambda\| \approx 2\cdot10^{-4}` on the README quadratic).

References
----------
S. Yang, C. Liu, L. Chen, J. C. S. Lui, "Second-order bilevel optimization
with accelerated convergence rates", arXiv 2605.06431 (2026) — FSBA, LFSBA, IFSBA.
J. Kwon, D. Kwon, S. Wright, R. Nowak, "A fully first-order method for stochastic
bilevel optimization", ICML 2023 — Lemma 3.1, the O(1/λ) penalty bias.
L. Chen, Y. Ma, J. Zhang, "Near-optimal fully first-order algorithms for
finding stationary points in bilevel optimization", arXiv 2306.14853 — the
penalty gradient and inner AGD loops.
N. Doikov, E. M. Chayti, M. Jaggi, "Second-order optimization with lazy
Hessians", ICML 2023, arXiv 2212.00781 — lazy Hessian snapshots.
Y. Nesterov, B. Polyak, "Cubic regularization of Newton method and its global
performance", Math. Prog. 108 (2006).
N. Tripuraneni, M. Stern, C. Jin, J. Regier, M. I. Jordan, "Stochastic cubic
regularization for fast nonconvex optimization", NeurIPS 2018 — Cubic-Subsolver.
"""
from __future__ import annotations

import math

import numpy as np

from .._solver import Solver, register
from .. import options as vocab
from ..exceptions import warn
from ..options import Option
from .._validation import as_vector
from ..hypergrad.penalty import (PENALTY_KERNEL_ORACLES, PenaltyHessianOperator, penalty_gradient, penalty_inner_solve,
                                 penalty_iteration)
from ..linalg.cubic import cubic_finalsolver, cubic_subsolver, solve_cubic
from ..linalg.lazy import LazyCubic
from .._kernels.oracles import resolve_backend
from . import _tol

__all__ = ["FSBA", "LFSBA", "IFSBA", "spectral_norm_estimate", "CubicNewtonMixin", "CUBIC_OPTIONS", "BACKEND_OPTION"]


# ---------------------------------------------------------------------------
# shared helpers
# ---------------------------------------------------------------------------
def spectral_norm_estimate(matvec, d, rng, iters=20):
    """‖H‖₂ estimated by ``iters`` power iterations from a random unit vector.

    Each iteration costs one ``matvec`` (the caller's counted product).  The
    estimate approaches ‖H‖₂ from below.
    """
    v = rng.standard_normal(d)
    v /= np.linalg.norm(v)
    norm = 0.0
    for _ in range(iters):
        hv = matvec(v)
        norm = float(np.linalg.norm(hv))
        if norm == 0.0:
            break
        v = hv / norm
    return norm


#: Options of every cubic-Newton method (bilevel and minimax).
CUBIC_OPTIONS = {
    "M": Option.real(10.0, "Cubic regularisation constant M > 0 ((M/6)‖s‖³); theory: ≍ the "
                     "Hessian-Lipschitz constant of the hyper-objective (Θ(ℓ̄κ⁵) for L*_λ).", low=0),
    "eps": Option.real(None, "Target accuracy ε of the stopping rule (default: tol).", low=0,
                       allow_none=True),
    "sosp_delta": Option.real(None, "Curvature tolerance δ of the SOSP test (default √(M·eps)).",
                              low=0, allow_none=True),
    "inner_steps": vocab.inner_steps(50, "K", "AGD steps per inner problem; theory Õ(√κ)", low=0),
    "inner_tol": Option.real(None, "Stop an inner AGD early when its gradient norm is <= inner_tol "
                             "(default None: exactly inner_steps, so counts are fixed).",
                             low=0, strict=False, allow_none=True),
}

#: The ``backend`` option (shared vocabulary) of the methods whose hot loops have kernels; with
#: numba the cubic solvers' secular equations are compiled too.
BACKEND_OPTION = {"backend": vocab.backend()}


class CubicNewtonMixin:
    """Fresh or lazy cubic-regularised Newton steps and the ``stop_rule`` tests (module docstring).

    Used by FSBA, LFSBA (here) and MCN, LMCN (:mod:`.minimax`).  A subclass
    sets ``self.m`` (Hessian period), ``self.lazy`` (use
    :class:`~bilevel_ref.linalg.lazy.LazyCubic`) and ``self.M_eff`` in
    ``setup`` and calls :meth:`cubic_step` and :meth:`stop_test` in ``step``.
    """

    lazy = False
    m = 1
    backend = "numpy"  # resolved from options['backend'] in setup by the methods that have it

    def setup_cubic(self, m=1, lazy=False):
        o = self.opts
        self.m, self.lazy = m, lazy
        self.M_eff = o.M * m if o.get("M_scale_with_m") else o.M
        self.delta = o.sosp_delta if o.sosp_delta is not None else math.sqrt(self.M_eff * o.eps)
        self._model = None
        if o.stop_rule == "exact" and not (self.problem.provides("grad_phi") and self.problem.provides("hess_phi")):
            raise ValueError(f"options['stop_rule'] = 'exact' needs the closed forms grad_phi and hess_phi, "
                             f"which problem {self.problem.name!r} does not provide")

    def cubic_newton_update(self, k, G, hessian):
        """Steps 4–7 shared by FSBA, LFSBA, MCN and LMCN: the (lazy) cubic step from
        gradient ``G`` (``hessian()`` builds H when a refresh is due), the move
        x ← x + s and the stopping rule; returns the iteration's info dict."""
        res, fresh = self.cubic_step(k, G, hessian)
        x = self.x
        G_norm, s_norm = float(np.linalg.norm(G)), float(np.linalg.norm(res.s))
        x_new = x + res.s
        stop, message, move = self.stop_test(G_norm, s_norm, fresh, x_new)
        if move:
            self.x = x_new
        info = {"grad_est": G_norm, "step_norm": s_norm, "hess_fresh": float(fresh)}
        if self.min_eig is not None:
            info["min_eig_est"] = self.min_eig
        if stop:
            info.update(converged=True, message=message)
        return info

    def cubic_step(self, k, G, hessian):
        """s_t for gradient G; ``hessian()`` builds H when ``k mod m == 0``.

        Returns ``(CubicResult, fresh)``.  Sets ``self.min_eig`` to λ_min of
        the current Hessian estimate (snapshot) when it is known.
        """
        fresh = k % self.m == 0
        if fresh:
            self._model = None  # release the old snapshot (and its eigenvectors) before building the new one
            H = hessian()
            if self.lazy:
                self._model = LazyCubic(H, self.M_eff, backend=self.backend)
            else:
                self._model = H
        if self.lazy:
            res = self._model.solve(G)
        else:
            res = solve_cubic(G, self._model, self.M_eff, method=self.opts.cubic_solver,
                              backend=self.backend,
                              rng=self.rng if self.opts.cubic_solver == "gd" else None)  # CD19 perturbation
        if fresh:
            min_eig = res.min_eig
            if min_eig is None and self.opts.stop_rule == "estimate":
                # gd solver: no eigenvalue for free; the estimate rule needs it
                min_eig = float(np.linalg.eigvalsh(self._model)[0])
            self.min_eig = None if min_eig is None else float(min_eig)
        return res, fresh

    def stop_test(self, G_norm, s_norm, fresh, x_new):
        """The ``stop_rule`` test for iteration t (after the step has been computed).

        Returns ``(stop, message, move)``: ``move`` is False when x_t itself is
        returned (``"estimate"``), True when x_{t+1} = x_t + s_t is taken.
        """
        o = self.opts
        if o.stop_rule == "estimate":
            if fresh and self.min_eig is not None and G_norm <= o.eps and self.min_eig >= -self.delta:
                return True, (f"estimate: |G| = {G_norm:.3e} <= eps and lambda_min(H) = "
                              f"{self.min_eig:.3e} >= -delta"), False
        elif o.stop_rule == "step":
            if s_norm <= math.sqrt(o.eps / self.M_eff):
                return True, f"step: |s| = {s_norm:.3e} <= sqrt(eps/M)", True
        elif o.stop_rule == "exact":
            exact = self.problem.exact
            grad = float(np.linalg.norm(exact.grad_phi(x_new)))
            lam_min = float(np.linalg.eigvalsh(exact.hess_phi(x_new))[0])
            if grad <= o.eps and lam_min >= -self.delta:
                return True, f"exact: x is an (eps, delta)-SOSP (|grad| = {grad:.3e}, lambda_min = {lam_min:.3e})", True
        return False, "", True


# ---------------------------------------------------------------------------
# bilevel: penalty-based second-order methods
# ---------------------------------------------------------------------------
_PENALTY_OPTIONS = {
    "lam": Option.real(None, "Penalty λ > 0 (theory: Θ(poly(κ)/ε); must be >= 2ℓ/μ_g when the "
                       "problem reports 'ell' and 'mu_g' in constants()); default C_lam/(tol/4), "
                       "the bias bound C_lam/λ <= tol/4 (module docstring).", low=0, allow_none=True),
    "inner_steps": vocab.inner_steps(None, "K", "AGD steps per inner problem; default "
                                     "⌈√(2κ)·ln(λκ)⌉ (theory Õ(√κ))", low=0),
    **{key: vocab.constant(key) for key in ("L_g", "mu_g", "L_f")},
    "w0": Option.vector("Starting w ≈ y*(x0) (default: y0)."),
}


class _PenaltySecondOrder(Solver):
    """Shared state of FSBA / LFSBA / IFSBA: y ≈ y*_λ, w ≈ y*, step-size constants, G_t."""

    default_maxiter = 200
    default_gtol = 0.0  # stop by the second-order rule, never by ‖G‖ alone (saddles have G = 0)
    stopping_rule = True
    exact_metrics = ("phi", "grad_norm", "min_eig")
    options = {**CUBIC_OPTIONS, **_PENALTY_OPTIONS}

    def derive_parameters(self):
        """λ and K left at None, from ``tol`` (module docstring, "Defaults from tol")."""
        o = self.opts
        if o.lam is None:
            _tol.derive_or(self, "lam", lambda: _tol.derive_lam(self, o.tol), 100.0)
        if o.inner_steps is None:
            _tol.derive_or(self, "inner_steps", lambda: _tol.ceil(
                math.sqrt(2.0 * _tol.kappa(self)) * math.log(max(o.lam * _tol.kappa(self), math.e))), 50)

    def bias_note(self):
        if "lam" in self.derived:
            return None
        return _tol.penalty_bias_note(self, self.opts.lam, self.opts.tol)

    def setup(self):
        p, o = self.problem, self.opts
        self.derive_parameters()
        known = p.constants()
        mu = known.get("mu_g")
        if "ell" in known and mu is not None and o.lam < 2 * known["ell"] / mu:
            raise ValueError(f"options['lam'] must be >= 2*ell/mu = {2 * known['ell'] / mu:.6g} for problem "
                             f"{p.name!r} (L_lambda strongly convex in y), got {o.lam!r}")
        self.w = self.y.copy() if o.w0 is None else as_vector(o.w0, "options['w0']", p.dy)
        self.mu_g = self.constant("mu_g")
        self.L_g = self.constant("L_g")
        self.L_f = self.constant("L_f")
        # the penalised inner problem f + λg needs L_f + λL_g >= λμ/2 > 0 (always, as L_g >= μ)
        self.L_g = max(self.L_g, self.mu_g)

    def penalty_gradient_step(self):
        """Steps 1–3: warm-started y_t, w_t and G_t = G(x_t; y_t, w_t)."""
        p, o = self.problem, self.opts
        self.y, self.w = penalty_inner_solve(p, self.x, self.y, self.w, o.lam, o.inner_steps,
                                             self.L_g, self.mu_g, self.L_f, tol=o.inner_tol)
        return penalty_gradient(p, self.x, self.y, self.w, o.lam).d


class _PenaltyCubicNewton(CubicNewtonMixin, _PenaltySecondOrder):
    """FSBA / LFSBA iteration: gradient, (lazy) dense Hessian estimate, exact cubic step."""

    requires = ("grad_f", "grad_g", "hess_f", "hess_g")
    options = BACKEND_OPTION

    def setup(self):
        super().setup()
        self.backend = resolve_backend(self.problem, self.opts.backend,
                                       PENALTY_KERNEL_ORACLES + ("hess_f", "hess_g"), what=self.name)

    def step(self, k):
        p, o = self.problem, self.opts
        # steps 1–3 and, when the snapshot is refreshed (t mod m = 0), H_t: one kernel with numba
        self.y, self.w, G, H = penalty_iteration(p, self.x, self.y, self.w, o.lam, o.inner_steps, self.L_g,
                                                 self.mu_g, self.L_f, tol=o.inner_tol, hessian=k % self.m == 0,
                                                 backend=self.backend)
        return self.cubic_newton_update(k, G, lambda: H)


_STOP_RULES = ("step", "estimate", "exact")


#: the ``cubic_solver`` option of the methods with a fresh dense Hessian every iteration
FRESH_CUBIC_SOLVER_OPTION = Option.choice(
    "eigh", ("eigh", "lanczos", "gd"),
    "Cubic subproblem solver on the dense H_t (solve_cubic method); min_eig is exact with eigh, "
    "the smallest Ritz value with lanczos, None with gd (computed by eigvalsh only for "
    "stop_rule='estimate').")


@register
class FSBA(_PenaltyCubicNewton):
    """FSBA: penalty gradient + dense Schur-complement Hessian, exact cubic step every iteration."""

    name = "fsba"
    options = {
        "stop_rule": Option.choice("step", _STOP_RULES, "Stopping rule: 'step' (|s_t| <= "
                                   "sqrt(eps/M)), 'estimate' (|G| <= eps, lambda_min(H) >= -delta) or "
                                   "'exact' (closed-form SOSP test)."),
        "cubic_solver": FRESH_CUBIC_SOLVER_OPTION,
    }

    def setup(self):
        super().setup()
        self.setup_cubic(m=1, lazy=False)


@register
class LFSBA(_PenaltyCubicNewton):
    """LFSBA: FSBA with the Hessian estimate refreshed every m iterations (LazyCubic steps)."""

    name = "lfsba"
    options = {
        "stop_rule": FSBA.options["stop_rule"],
        "period": vocab.period(None, "m", "default dx, Doikov et al.'s optimal m = d; "
                           "m = 1 is FSBA)."),
        "M_scale_with_m": Option.boolean(False, "Use M·m as the cubic constant (theory: M ∝ m·L_H)."),
    }

    def setup(self):
        super().setup()
        self.setup_cubic(m=self.problem.dx if self.opts.period is None else self.opts.period, lazy=True)


@register
class IFSBA(CubicNewtonMixin, _PenaltySecondOrder):
    """IFSBA: Hessian-vector products only; Tripuraneni's Cubic-Subsolver / Cubic-Finalsolver."""

    name = "ifsba"
    requires = ("grad_f", "grad_g", "hvp_xx_f", "hvp_xx_g", "cross_f", "cross_g",
                "cross_t_f", "cross_t_g", "hvp_yy_f", "hvp_yy_g")
    options = {
        "stop_rule": Option.choice("model", ("model", "exact"),
                                   "'model': stop with the Cubic-Finalsolver step when "
                                   "Delta_t >= -(1/128) sqrt(eps^3/M); 'exact': closed-form SOSP test."),
        "L": Option.real(None, "Bound ℓ on ‖H‖ (default: 20 counted power iterations on C_0).",
                         low=0, allow_none=True),
        "c_prime": Option.real(0.01, "Perturbation constant c' of the Cubic-Subsolver, σ = c'√(εM)/L "
                               "(T18: a small absolute constant; 0.01 here: with c' = 1 the perturbation "
                               "is as large as ‖G‖ near a minimum and the model rule stops at "
                               "‖∇L*_λ‖ ≈ 2e-4 on the README quadratic at eps = 1e-6).", low=0),
        "cubic_steps": Option.integer(None, "GD steps K of the Cubic-Subsolver (default "
                                      "⌈L/√(Mε)⌉·⌈log(dx/δ')⌉, capped at 10⁴).", low=0, allow_none=True),
        "delta_prob": Option.real(0.01, "Failure probability δ' entering K.", low=0, high=0.999999),
        "final_maxiter": Option.integer(10_000, "Cap on Cubic-Finalsolver steps.", low=0),
        "linsys_solver": Option.choice("cg", ("cg", "agd"), "Inner solver of D z = b in each H·v."),
        "linsys_steps": vocab.linsys_steps(20, "K'", "per solve in each H·v; theory Õ(√κ)"),
        "linsys_rtol": vocab.linsys_rtol(1e-10, None, "CG only"),
        "linsys_warm_start": Option.boolean(True, "Warm-start each H·v's inner solves from the previous "
                                         "product's (same outer iteration)."),
    }

    def setup(self):
        super().setup()
        o = self.opts
        self.setup_cubic()  # δ and the 'exact' rule's check; steps come from the T18 solvers
        self.L = o.L
        self.n_hvp = 0

    def step(self, k):
        p, o, x = self.problem, self.opts, self.x
        G = self.penalty_gradient_step()
        C = PenaltyHessianOperator(p, x, self.y, self.w, o.lam, steps=o.linsys_steps, tol=o.linsys_rtol,
                                   solver=o.linsys_solver, warm_start=o.linsys_warm_start,
                                   constants=(self.L_f, self.L_g, self.mu_g))
        if self.L is None:
            self.L = spectral_norm_estimate(C, p.dx, self.rng)
            if o.eps > self.L**2 / o.M:
                warn(f"IFSBA assumes eps <= L^2/M = {self.L**2 / o.M:.3e}; with eps = {o.eps:.3e} the "
                     "curvature condition holds trivially and a gradient method suffices")
        sub = cubic_subsolver(G, C, o.M, self.L, o.eps, self.rng, c_prime=o.c_prime, n_steps=o.cubic_steps,
                              delta=o.delta_prob)
        info = {"grad_est": float(np.linalg.norm(G)), "model_decrease": sub.delta_m}
        if o.stop_rule == "model" and sub.delta_m >= -math.sqrt(o.eps**3 / o.M) / 128:
            fin = cubic_finalsolver(G, C, o.M, self.L, o.eps, maxiter=o.final_maxiter)
            self.x = x + fin.s
            info.update(converged=True, message=(f"model: Delta = {sub.delta_m:.3e} >= -sqrt(eps^3/M)/128; "
                                                 f"Cubic-Finalsolver |grad m| = {fin.grad_norm:.3e}"
                                                 + ("" if fin.converged else " (final_maxiter reached)")))
            s = fin.s
        else:
            s = sub.s
            self.x = x + s
            if o.stop_rule == "exact":
                stop, message, _ = self.stop_test(info["grad_est"], 0.0, True, self.x)
                if stop:
                    info.update(converged=True, message=message)
        self.n_hvp += C.n_products
        info.update(step_norm=float(np.linalg.norm(s)), hvp_products=float(C.n_products),
                    hvp_products_total=float(self.n_hvp), inner_matvecs=float(C.n_inner))
        return info
