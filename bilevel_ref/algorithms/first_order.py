r"""Fully first-order bilevel methods: F2SA-p, F2SA and F2BA (gradients of f and g only).

**F2SA-p** (Chen, Li, Chayti, Zhang 2026).  Perturbed lower levels
:math:`g + j\nu f` for every offset j of the order-p stencil
(:mod:`bilevel_ref.hypergrad.finite_difference`); per outer iteration t:

.. math::

    y^j &\leftarrow y^j - \eta_y\big(j\nu\,\nabla_y F(x_t, y^j; \xi) + \nabla_y G(x_t, y^j; \zeta)\big)
          \quad (K \text{ steps per offset, fresh } \xi, \zeta \text{ each, warm start})\\
    \Phi_t &= \frac1S\sum_{i=1}^{S}\sum_j \alpha_j\Big(j\,\nabla_x F(x_t, y^j; \xi_i)
              + \frac{\nabla_x G(x_t, y^j; \zeta_i)}{\nu}\Big)\\
    x_{t+1} &= x_t - \eta_x\,\Phi_t / (\|\Phi_t\| + \epsilon) \qquad (\text{or } x_t - \eta_x\Phi_t
              \text{ with } \texttt{normalize=False})

Deterministic mode (``batch_size=None``): full gradients, GD (or AGD with
``inner="agd"``) in the inner loops, S = 1.  Per iteration with n offsets of
which n' are non-zero: ``grad_g`` n·K + n·S, ``grad_f`` n'·K + n'·S.

**F2SA** (Kwon, Kwon, Wright, Nowak 2023), penalty :math:`f + \lambda(g - g^*)`
with y penalised and z plain, both warm-started; per outer iteration k:

.. math::

    z &\leftarrow z - \gamma_k \nabla_y G(x_k, z; \zeta) \quad (T \text{ times})\\
    y &\leftarrow y - \alpha_k\big(\nabla_y F(x_k, y; \xi) + \lambda_k\nabla_y G(x_k, y; \zeta')\big) \quad (T \text{ times})\\
    x_{k+1} &= x_k - \xi_k\big(\nabla_x F(x_k, y; \xi) + \lambda_k(\nabla_x G(x_k, y; \zeta_1) - \nabla_x G(x_k, z; \zeta_2))\big)\\
    \lambda_{k+1} &= \lambda_k + \delta_k

with benchopt's schedule :math:`\alpha_k = c/(k+1)^{5/7}`, :math:`\gamma_k = c/(k+1)^{4/7}`,
:math:`\xi_k = (c/r)/(k+1)^{4/7}`, :math:`\delta_k = \delta/(k+1)^{1/7}` (the z and y
loops are independent, so they run one after the other).  Per iteration:
``grad_f`` T + 1, ``grad_g`` 2T + 2.

**F2BA** (Chen, Ma, Zhang 2023), deterministic, fixed λ:

.. math::

    y &\leftarrow y - \tau\big(\nabla_y f(x_t, y)/\lambda + \nabla_y g(x_t, y)\big),\qquad
    z \leftarrow z - \tau\nabla_y g(x_t, z) \quad (K \text{ times each, warm start})\\
    x_{t+1} &= x_t - \eta\big(\nabla_x f(x_t, y) + \lambda(\nabla_x g(x_t, y) - \nabla_x g(x_t, z))\big)

(``inner="agd"``: both inner loops by Nesterov AGD,
:func:`~bilevel_ref.hypergrad.penalty.penalty_inner_solve`, which assumes the
strong convexity λμ/2 of f + λg, i.e. λ ≥ 2L_f/μ_g).  Per iteration: ``grad_f``
K + 1, ``grad_g`` 2K + 2.

**AccF2BA** (same paper): AGD inner loops and Nesterov momentum on x with
restarts, in the reference code's (PyTorch SGD) form with momentum θ:

.. math::

    m \leftarrow \theta m + \Phi_t,\qquad x_{t+1} = x_t - \eta(\Phi_t + \theta m);
    \quad c \leftarrow c + 1,\ S \leftarrow S + \|x_{t+1} - x_t\|^2;
    \quad \text{if } cS > \max(B, B_0)^2:\ m, c, S \leftarrow 0,\ B \leftarrow 0.99B.

Same counts as F2BA.

**Defaults from** ``tol`` (deterministic runs; :mod:`bilevel_ref.algorithms._tol`).  The run
stops when :math:`\|\Phi_t\| \le tol/2`; the parameters left at None bound the estimator's
bias by :math:`tol/4`:

* F2BA / AccF2BA: :math:`\|\nabla L^*_\lambda(x) - \nabla\varphi(x)\| \le C_\lambda/\lambda`
  for :math:`\lambda \ge 2L_f/\mu_g` (Kwon et al. 2023, Lemma 3.1; Chen, Ma, Zhang 2023,
  Lemma 4.1, whose :math:`\lambda \asymp \ell\kappa^3/\epsilon` this makes concrete), so
  :math:`\lambda = \max(2L_f/\mu_g,\ C_\lambda/(tol/4))`, capped at 1e9 (float64
  cancellation in :math:`\lambda(\nabla_x g(y) - \nabla_x g(z))`; the message says when
  the cap binds).  :math:`C_\lambda` is measured at :math:`x_0` (``res.constants['C_lam']``).
  Inner steps :math:`K = \lceil\kappa\ln(\lambda\kappa)\rceil` (GD) or
  :math:`\lceil\sqrt{2\kappa}\ln(\lambda\kappa)\rceil` (AGD; :math:`f + \lambda g` has
  condition number ≈ 2κ): the warm-started inner error contracts by
  :math:`(1 - 1/\kappa)^K` and enters :math:`\Phi` amplified by ≈ λκ (Chen, Ma, Zhang
  2023, Thm 4.1: :math:`K = O(\kappa\log(\ell\kappa/\epsilon))`, AGD
  :math:`O(\sqrt\kappa\log(\ell\kappa/\epsilon))`).  Outer step :math:`\eta = 1/L_\varphi`
  (the paper's :math:`\eta \asymp 1/(\ell\kappa^3)` is the order of :math:`1/L_\varphi`).
* F2SA-p (deterministic mode): bias :math:`\|\Phi_\nu - \nabla\varphi\| \le C_\nu\nu^p`
  (Chen, Li, Chayti, Zhang 2026, Lemma 3.1), so
  :math:`\nu = \min(\nu_{\max}, (tol/(4C_\nu))^{1/p})` with
  :math:`\nu_{\max} = \mu_g/(10\,\max|j|\,L_f)` (keeps :math:`g + j\nu f` at least
  0.9μ_g-strongly convex); :math:`K = \lceil\kappa_\nu\ln(\kappa/\nu)\rceil`,
  :math:`\kappa_\nu = (L_g + \max|j|\nu L_f)/(\mu_g - \max|j|\nu L_f)` (warm-started GD
  must beat the :math:`1/\nu` amplification of the inner error; Theorem 3.1's
  :math:`K \asymp \log(RL_1\kappa/(\nu\epsilon))` with σ = 0, times GD's κ);
  ``normalize=False`` and :math:`\eta_x = 1/L_\varphi` (a normalised step of fixed length
  cannot reach tol: its length :math:`\asymp tol/L_\varphi` would need
  :math:`\Delta L_\varphi/tol^2` iterations).  p stays 2 (not derived): in deterministic
  mode the cost :math:`p\,\kappa\ln(\kappa/\nu)` grows with p, and the theory's
  :math:`p \asymp \log(\kappa/\epsilon)/\log\log(\kappa/\epsilon)` is a stochastic-rate
  choice.  Stochastic mode keeps the reference code's ν = 0.1, K = 10, normalised
  :math:`\eta_x = 0.1` and gtol = 0 (status COMPLETED; the message says tol is not certified).
* F2SA: stochastic, no derivation (gtol = 0).

An explicit ``lam`` whose bound :math:`C_\lambda/\lambda` exceeds tol/2 keeps its meaning;
when its run stops on a biased estimate the message gives that bound (measured at the final x).

References
----------
L. Chen, J. Li, E. M. Chayti, J. Zhang, "Faster gradient methods for highly-smooth
stochastic bilevel optimization", ICLR 2026, arXiv 2509.02937, Algorithms 1–2.
J. Kwon, D. Kwon, S. Wright, R. Nowak, "A fully first-order method for stochastic
bilevel optimization", ICML 2023; benchopt/benchmark_bilevel ``solvers/f2sa.py``.
L. Chen, Y. Ma, J. Zhang, "Near-optimal fully first-order algorithms for finding
stationary points in bilevel optimization", arXiv 2306.14853.
Y. Nesterov, *Introductory Lectures on Convex Optimization*, 2004, §1.2.3 (step 1/L).
"""
from __future__ import annotations

import math

import numpy as np

from .._solver import Solver, register
from .. import options as vocab
from ..options import Option
from ..hypergrad.finite_difference import finite_difference_hypergradient, stencil_float
from ..hypergrad.penalty import PENALTY_KERNEL_ORACLES, penalty_gradient, penalty_iteration
from .._kernels.oracles import resolve_backend
from ..linalg.agd import agd, gd
from ._common import MinibatchSolver
from . import _tol
from ..constants import tight_solve as _tight_solve

__all__ = ["F2SAp", "F2SA", "F2BA", "AccF2BA"]

_CONSTANT_OPTIONS = {key: vocab.constant(key) for key in ("L_g", "mu_g", "L_f")}


def _optional_bool(name, value):
    if value is None or isinstance(value, (bool, np.bool_)):
        return None if value is None else bool(value)
    raise TypeError(f"{name} must be True, False or None, got {value!r}")


@register
class F2SAp(MinibatchSolver):
    """F2SA-p: order-p finite differences of perturbed lower-level solutions (fully first order)."""

    name = "f2sa_p"
    aliases = ("f2sa-p",)
    requires = ("grad_f", "grad_g")
    default_maxiter = 1000
    default_gtol = "deterministic"
    options = {
        "p": Option.integer(2, "Stencil order p >= 1 (p even: offsets ±1..±p/2; odd: −(p−1)/2..(p+1)/2).",
                            low=1),
        "inner_steps": vocab.inner_steps(None, "K", "per stencil offset; default: derived from tol "
                                         "(deterministic mode), 10 (stochastic mode)"),
        "nu": Option.real(None, "Perturbation size ν of the lower levels g + jνf (default: derived "
                          "from tol in deterministic mode, 0.1 in stochastic mode).", low=0, allow_none=True),
        "step_y": vocab.step_y(None, "η_y", "default 1/L_g"),
        "step_x": vocab.step_x(None, "η_x", "a step length when normalize=True; default 0.1 "
                               "(normalised), 1/L_phi (plain)"),
        "normalize": Option.any(None, "Normalised outer step x − η_x Φ/(‖Φ‖ + norm_eps) (True); False: "
                                "x − η_x Φ; default: False in deterministic mode, True in stochastic mode.",
                                _optional_bool),
        "norm_eps": Option.real(1e-6, "ε of the normalised step.", low=0, strict=False),
        "hyper_batches": Option.integer(1, "Minibatch pairs S averaged in Φ (stochastic mode only).", low=1),
        "inner": Option.choice("gd", ("gd", "agd"), "Inner solver: (S)GD, or AGD (deterministic mode "
                               "only; needs L_f and mu_g)."),
        "avg_warm_start": Option.boolean(
            False, "Reference-code heuristic: before the inner loops, replace the positive-offset "
            "iterates by their mean and the non-positive ones by theirs."),
        **_CONSTANT_OPTIONS,
    }

    @classmethod
    def check_options(cls, values):
        if values["inner"] == "agd" and values["batch_size"] is not None:
            raise ValueError("options['inner']='agd' is deterministic: it needs options['batch_size']=None")

    def derive_parameters(self):
        """Parameters left at None, from ``tol`` (class docstring of :class:`F2SAp`)."""
        o = self.opts
        det = o.batch_size is None
        if o.normalize is None:
            self.derive("normalize", not det)
        if o.step_x is None:
            if o.normalize:
                self.derive("step_x", 0.1)
            else:
                _tol.step_from_L_phi(self, 0.1)
        if not det:
            for name, value in (("nu", 0.1), ("inner_steps", 10)):
                if o[name] is None:
                    self.derive(name, value)
            self.notes.append("stochastic mode: no stopping test (gtol = 0) and the reference code's "
                              "nu, inner_steps and steps, so tol is not certified")
            return
        if o.nu is None:
            _tol.derive_or(self, "nu", self._derive_nu, 0.1)
        if o.inner_steps is None:
            _tol.derive_or(self, "inner_steps", self._derive_inner_steps, 10)

    def _perturbed_constants(self, nu):
        """(L, μ) of g + jνf for the largest |j| of the stencil."""
        jmax = float(np.max(np.abs(stencil_float(self.opts.p)[0])))
        L_g, mu_g, L_f = self.constant("L_g"), self.constant("mu_g"), self.constant("L_f")
        return max(L_g, mu_g) + jmax * nu * L_f, mu_g - jmax * nu * L_f

    def _derive_nu(self):
        p, o, x = self.problem, self.opts, self.x
        offsets = stencil_float(o.p)[0]
        jmax = float(np.max(np.abs(offsets)))
        nu_max = self.constant("mu_g") / (10.0 * jmax * self.constant("L_f"))

        def estimate(nu):
            L, mu = self._perturbed_constants(nu)
            ys = [_tight_solve(lambda v, j=j: p.grad_y_g(x, v) + (j * nu) * p.grad_y_f(x, v), self.y, L, mu)
                  for j in offsets]
            return finite_difference_hypergradient(p, x, ys, nu, o.p).d

        C = _tol.fd_bias_constant(self, o.p, nu_max, estimate)
        nu = nu_max if C == 0 else min(nu_max, (_tol.BIAS_SHARE * o.tol / C) ** (1.0 / o.p))
        return nu

    def _derive_inner_steps(self):
        L, mu = self._perturbed_constants(self.opts.nu)
        kappa_nu = L / mu
        return int(math.ceil(kappa_nu * math.log(max(_tol.kappa(self) / self.opts.nu, math.e))))

    def setup(self):
        o = self.opts
        self.derive_parameters()
        self.offsets, self.weights = stencil_float(o.p)
        self.step_y = o.step_y if o.step_y is not None else 1.0 / self.constant("L_g")
        if o.inner == "agd":
            L_g, mu_g, L_f = self.constant("L_g"), self.constant("mu_g"), self.constant("L_f")
            self.agd_constants = {}
            for j in self.offsets:
                mu_j = mu_g - abs(j) * o.nu * L_f
                if mu_j <= 0:
                    raise ValueError(
                        f"options['nu']={o.nu} is too large for inner='agd': g + {j}νf may not be "
                        f"strongly convex (mu_g - |j|·nu·L_f = {mu_j:.3g} <= 0)")
                self.agd_constants[j] = (L_g + abs(j) * o.nu * L_f, mu_j)
        self.ys = [self.y.copy() for _ in self.offsets]
        self.hyper_batches = o.hyper_batches if o.batch_size is not None else 1

    def _perturbed_gradient(self, x, j):
        """y ↦ jν∇_y F(x, y; ξ) + ∇_y G(x, y; ζ), fresh minibatches per call (no f term at j = 0)."""
        p, scale = self.problem, j * self.opts.nu
        if j == 0:
            return lambda y: p.grad_y_g(x, y, batch=self.draw("lower"))
        return lambda y: (p.grad_y_g(x, y, batch=self.draw("lower"))
                          + scale * p.grad_f(x, y, batch=self.draw("upper"))[1])

    def _lower_iterate(self):
        """The reported y: the j = 0 iterate (odd p), else the mean of the j = ±1 iterates."""
        where = {int(j): i for i, j in enumerate(self.offsets)}
        if 0 in where:
            return self.ys[where[0]].copy()
        return 0.5 * (self.ys[where[1]] + self.ys[where[-1]])

    def step(self, t):
        o, x = self.opts, self.x
        if o.avg_warm_start:
            for side in (self.offsets > 0, self.offsets <= 0):
                if side.any():
                    mean = np.mean([y for y, s in zip(self.ys, side) if s], axis=0)
                    self.ys = [mean.copy() if s else y for y, s in zip(self.ys, side)]
        for i, j in enumerate(self.offsets):
            grad = self._perturbed_gradient(x, j)
            if o.inner == "agd":
                self.ys[i] = agd(grad, self.ys[i], *self.agd_constants[j], o.inner_steps).y
            else:
                self.ys[i] = gd(grad, self.ys[i], self.step_y, o.inner_steps).y
        phi = finite_difference_hypergradient(self.problem, x, self.ys, o.nu, o.p,
                                              batch_f=self.draw("upper"), batch_g=self.draw("lower")).d
        for _ in range(self.hyper_batches - 1):
            phi = phi + finite_difference_hypergradient(self.problem, x, self.ys, o.nu, o.p,
                                                        batch_f=self.draw("upper"),
                                                        batch_g=self.draw("lower")).d
        phi = phi / self.hyper_batches
        norm = float(np.linalg.norm(phi))
        direction = phi / (norm + o.norm_eps) if o.normalize else phi
        self.x = x - o.step_x * direction
        self.y = self._lower_iterate()
        return {"grad_est": norm}


@register
class F2SA(MinibatchSolver):
    """F2SA: stochastic penalty method with an increasing multiplier λ_k and decaying steps."""

    name = "f2sa"
    requires = ("grad_f", "grad_g")
    default_maxiter = 1000
    default_gtol = 0.0
    options = {
        "inner_steps": vocab.inner_steps(10, "T", "SGD steps on y and on z"),
        "step_y": vocab.step_y(0.01, "c", "α_k = c/(k+1)^(5/7) on y, γ_k = c/(k+1)^(4/7) on z"),
        "step_x": vocab.step_x(0.01, "ξ_0", "ξ_k = ξ_0/(k+1)^(4/7)"),
        "lam": Option.real(1.0, "Initial multiplier λ_0.", low=0),
        "delta": Option.real(0.1, "Multiplier increment scale δ: λ_{k+1} = λ_k + δ/(k+1)^(1/7).", low=0,
                             strict=False),
    }

    renamed = {"step_size": "step_y (base step c)", "outer_ratio": "step_x (= c / outer_ratio)"}

    def setup(self):
        self.z = self.y.copy()       # plain lower iterate (reported as y, as benchopt does)
        self.y_pen = self.y.copy()   # penalised iterate ≈ argmin f + λg
        self.lam = self.opts.lam

    def step(self, k):
        p, o, x, lam = self.problem, self.opts, self.x, self.lam
        alpha = o.step_y / (k + 1.0) ** (5.0 / 7.0)
        gamma = o.step_y / (k + 1.0) ** (4.0 / 7.0)
        xi = o.step_x / (k + 1.0) ** (4.0 / 7.0)
        self.z = gd(lambda z: p.grad_y_g(x, z, batch=self.draw("lower")), self.z, gamma, o.inner_steps).y
        self.y_pen = gd(lambda y: (p.grad_y_f(x, y, batch=self.draw("upper"))
                                   + lam * p.grad_y_g(x, y, batch=self.draw("lower"))),
                        self.y_pen, alpha, o.inner_steps).y
        # independent samples ζ1, ζ2 for the two ∇_x G terms (F2SA's x-update, Kwon et al. 2023)
        d = penalty_gradient(p, x, self.y_pen, self.z, lam, batch_f=self.draw("upper"),
                             batch_g=self.draw("lower"), batch_w=self.draw("lower")).d
        self.x = x - xi * d
        self.lam = lam + o.delta / (k + 1.0) ** (1.0 / 7.0)
        self.y = self.z
        return {"grad_est": float(np.linalg.norm(d)), "lam": lam}


@register
class F2BA(Solver):
    """F2BA: deterministic penalty method with fixed λ and warm-started inner loops."""

    name = "f2ba"
    requires = ("grad_f", "grad_g")
    default_maxiter = 1000
    options = {
        "inner_steps": vocab.inner_steps(None, "K", "on y_λ and on z each; default derived from λ "
                                         "and κ (class docstring)"),
        "lam": Option.real(None, "Penalty multiplier λ (bias of ∇L*_λ − ∇φ is C_lam/λ); default "
                           "C_lam/(tol/4) (class docstring).", low=0, allow_none=True),
        "step_y": vocab.step_y(None, "τ", "GD on y_λ and z; default 1/L_g"),
        "step_x": vocab.step_x(None, "η", "default 1/L_phi"),
        "z_reset": Option.boolean(False, "Reset z to y at the start of every outer iteration "
                                  "(reference code)."),
        "inner": Option.choice("gd", ("gd", "agd"), "Inner solver: GD (F2BA) or Nesterov AGD "
                               "(AccF2BA's inner loop; needs mu_g, L_f and λ >= 2 L_f/mu_g)."),
        "backend": vocab.backend(),
        **_CONSTANT_OPTIONS,
    }

    #: λ when it cannot be derived (no L_f / mu_g): the pre-0.1 default
    legacy_lam = 10.0

    def derive_parameters(self):
        """λ, K and η left at None, from ``tol`` (class docstring)."""
        o = self.opts
        if o.lam is None:
            _tol.derive_or(self, "lam", lambda: _tol.derive_lam(self, o.tol), self.legacy_lam)
        if o.inner_steps is None:
            _tol.derive_or(self, "inner_steps", self._derive_inner_steps, 10)
        if o.step_x is None:
            _tol.step_from_L_phi(self, 0.01)

    def _derive_inner_steps(self):
        kappa, lam = _tol.kappa(self), self.opts.lam
        rate = 2.0 * kappa if self.opts.inner == "agd" else kappa   # κ_h ≈ 2κ for f + λg
        factor = math.sqrt(rate) if self.opts.inner == "agd" else rate
        return int(math.ceil(factor * math.log(max(lam * kappa, math.e))))

    def bias_note(self):
        if "lam" in self.derived:
            return None
        return _tol.penalty_bias_note(self, self.opts.lam, self.opts.tol)

    def setup(self):
        o = self.opts
        self.derive_parameters()
        self.backend = resolve_backend(self.problem, o.backend, PENALTY_KERNEL_ORACLES, what=self.name)
        if o.inner == "agd":
            self.L_g, self.mu_g, self.L_f = self.constant("L_g"), self.constant("mu_g"), self.constant("L_f")
            if o.lam < 2.0 * self.L_f / self.mu_g:
                raise ValueError(
                    f"options['lam']={o.lam} is too small for inner='agd': AGD on f + λg assumes "
                    f"strong convexity λμ_g/2, which needs lam >= 2·L_f/mu_g = {2 * self.L_f / self.mu_g:.4g}")
        self.step_y = o.step_y if o.step_y is not None else 1.0 / self.constant("L_g")
        self.y_lam = self.y.copy()   # ≈ y*_λ(x), minimiser of f/λ + g
        self.z = self.y.copy()       # ≈ y*(x), reported as y

    def penalty_step(self, x):
        """Warm-started inner loops at x, then Φ = ∇_x f(x, y_λ) + λ(∇_x g(x, y_λ) − ∇_x g(x, z))."""
        p, o, lam = self.problem, self.opts, self.opts.lam
        if o.z_reset:
            self.z = self.y_lam.copy()
        agd = o.inner == "agd"
        self.y_lam, self.z, d, _ = penalty_iteration(p, x, self.y_lam, self.z, lam, o.inner_steps,
                                                     *((self.L_g, self.mu_g, self.L_f) if agd else ()),
                                                     inner=o.inner, step=self.step_y, backend=self.backend)
        self.y = self.z
        return d

    def step(self, t):
        d = self.penalty_step(self.x)
        self.x = self.x - self.opts.step_x * d
        return {"grad_est": float(np.linalg.norm(d))}


@register
class AccF2BA(F2BA):
    """AccF2BA: F2BA with AGD inner loops and restarted Nesterov momentum on x."""

    name = "accf2ba"
    legacy_lam = 100.0
    options = {
        "inner": Option.choice("agd", ("gd", "agd"), "Inner solver (AccF2BA: AGD; needs mu_g, L_f and "
                               "λ >= 2 L_f/mu_g)."),
        "lam": Option.real(None, "Penalty multiplier λ (bias C_lam/λ; AGD needs λ >= 2 L_f/mu_g); "
                           "default C_lam/(tol/4).", low=0, allow_none=True),
        "momentum": vocab.momentum(0.5, "θ", "m ← θm + d on x; the reference code: 0.5 works, 0.9 "
                                   "does not"),
        "B": Option.real(10.0, "Restart threshold B: restart when c·Σ‖x_{t+1} − x_t‖² > max(B, B0)².",
                         low=0),
        "B0": Option.real(0.1, "Floor B0 of the restart threshold.", low=0),
        "B_decay": Option.real(0.99, "Factor applied to B at every restart.", low=0, high=1),
    }

    def setup(self):
        super().setup()
        self.m = np.zeros(self.problem.dx)
        self.B, self.count, self.moved = self.opts.B, 0, 0.0

    def step(self, t):
        o, x = self.opts, self.x
        d = self.penalty_step(x)
        self.m = o.momentum * self.m + d
        self.x = x - o.step_x * (d + o.momentum * self.m)
        self.count += 1
        self.moved += float(np.sum((self.x - x) ** 2))
        restart = self.count * self.moved > max(self.B, o.B0) ** 2
        if restart:
            # Li & Lin's restart: drop the momentum once the iterates have travelled far enough
            self.m = np.zeros_like(self.m)
            self.count, self.moved, self.B = 0, 0.0, o.B_decay * self.B
        return {"grad_est": float(np.linalg.norm(d)), "restart": int(restart)}
