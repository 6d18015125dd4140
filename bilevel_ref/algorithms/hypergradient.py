r"""Hypergradient (HVP-based) methods: AID, ITD, stocBiO, AmIGO, MRBO, VRBO.

Notation: :math:`H = \nabla^2_{yy} g`, :math:`J = \nabla^2_{xy} g` (dx×dy);
capital letters :math:`F, G` are minibatch versions of f, g (fresh draws from the
run's generator); with ``batch_size=None`` every oracle is the full objective
(deterministic mode) and the same code runs.

**AID** (approximate implicit differentiation), per outer iteration k:

.. math::

    y &\leftarrow y - \beta_y \nabla_y G(x_k, y) \quad (T \text{ times, warm start})\\
    v &\approx [\nabla^2_{yy} G(x_k, y)]^{-1}\nabla_y F(x_k, y) \quad (K \text{ CG or Neumann steps, warm start})\\
    x_{k+1} &= x_k - \beta\,(\nabla_x F(x_k, y) - \nabla^2_{xy} G(x_k, y)\, v)

In stochastic mode the inner steps draw a fresh lower minibatch each; the
linear system uses one lower minibatch (CG needs a fixed operator) and f one
upper minibatch.

**ITD** (iterative differentiation): the exact derivative of
:math:`x \mapsto f(x, y_T(x))` through T gradient steps from ``y0`` by reverse
mode (:mod:`bilevel_ref.hypergrad.itd`), then :math:`x_{k+1} = x_k - \beta d_k`.
It costs T ``grad_g``, T ``cross_g`` and **T − 1** ``hvp_yy_g``: the backward
recursion's last product :math:`v_0 = v_1 - \alpha H(x, y_0) v_1` is never used,
so it is not computed (the usual count of T products includes it).  Stochastic mode: one
lower and one upper minibatch per outer iteration (the unrolled map is then
deterministic, so reverse mode stays exact for it).

**stocBiO** (Ji, Yang, Liang 2021): D SGD steps on y, then the minibatch Neumann
estimator (:func:`stocbio_hypergradient`)

.. math::

    v = \eta \sum_{q=0}^{Q} \prod_{i=1}^{q} (I - \eta H_{B_i})\, \nabla_y F,\qquad
    \hat\nabla\varphi = \nabla_x F - J_{B_0} v,\qquad x \leftarrow x - \beta\hat\nabla\varphi,

computed as :math:`r = s = \nabla_y F`; Q times :math:`r \leftarrow r - \eta H_{B_q} r`,
:math:`s \leftarrow s + r`; :math:`v = \eta s`.

**AmIGO** (Arbel, Mairal 2022, Algorithm 1, with SGD as both inner solvers):
T SGD steps on y (warm start); one upper batch B_f gives
:math:`(\nabla_x F, \nabla_y F)`; T SGD steps on the amortised (warm-started)
:math:`v \leftarrow v - \eta (H_B v - \nabla_y F)` with that *fixed* right-hand side
(Algorithm 1 evaluates :math:`\nabla_y f` once per outer iteration and hands it to the
linear-system solver; the
official code, ``MichaelArbel/AmIGO`` ``core/linear_solvers.py``, keeps ``b_vector``
fixed, and benchopt does the same), then :math:`x \leftarrow x - \gamma(\nabla_x F - J_B v)`.
``fixed_rhs=False`` (not the paper's) draws a fresh upper batch for
:math:`\nabla_y F` at every v step and another for :math:`\nabla_x F`.

**MRBO** (Yang, Ji, Liang 2021, Algorithm 1), single loop with STORM momentum.
The box, step by step, with this library's names (u: the paper's :math:`v_k`,
the y-direction; h: the paper's :math:`u_k`, the hypergradient direction):

* draw :math:`B_y` (lower), then :math:`B_x = \{B_F, B_1..B_Q, B_G\}`: :math:`B_F`
  upper, :math:`B_1..B_Q` lower (Hessian products), :math:`B_G` lower (Jacobian),
  in that order;
* :math:`k = 0`: :math:`u_0 = \nabla_y G(x_0, y_0; B_y)`,
  :math:`h_0 = \hat\nabla\varphi(x_0, y_0; B_x)` (stocBiO's estimator,
  :func:`stocbio_hypergradient`);
* :math:`k \ge 1`, the same batches at the new and the previous point:

  .. math::

      u_k &= \nabla_y G(x_k, y_k; B_y) + (1 - \beta_k)\,(u_{k-1} - \nabla_y G(x_{k-1}, y_{k-1}; B_y))\\
      h_k &= \hat\nabla\varphi(x_k, y_k; B_x) + (1 - \alpha_k)\,(h_{k-1} - \hat\nabla\varphi(x_{k-1}, y_{k-1}; B_x))

* :math:`y_{k+1} = y_k - \lambda\eta_k u_k`, :math:`x_{k+1} = x_k - \gamma\eta_k h_k`,

with :math:`\eta_k = c/(k + m_0)^{1/3}`, :math:`\alpha_k = c_1\eta_k^2`,
:math:`\beta_k = c_2\eta_k^2` (clipped to 1).  Options: ``step_y`` = λ,
``step_x`` = γ, ``eta_scale`` = c, ``m0`` = :math:`m_0`, ``momentum_scale_x`` =
:math:`c_1`, ``momentum_scale_y`` = :math:`c_2`, ``step_v`` = the Neumann step η.
Defaults are benchopt's numbers written in the paper's form: λ = γ = 0.1, c = 1,
:math:`m_0 = 1`, :math:`c_1 = c_2 = 0.5`, Q = 10 (benchopt: steps
:math:`0.1/(k+1)^{1/3}` on both variables, momentum weight :math:`0.5/(k+1)^{2/3}`).
``variant="benchopt"`` follows benchopt's ``solvers/mrbo.py`` where it differs
from the box: the recursions also run at :math:`k = 0`, from an old point
:math:`(x_{-1}, y_{-1}) = (0, 0)` and old directions 0, and the Jacobian product
uses :math:`B_y` (one lower batch fewer per iteration).  Before 0.1.0 this
library kept the y step constant (λ, no :math:`\eta_k`), following a wrong
team spec; the authors' code (``JunjieYang97/MRVRBO``, ``mnist_exp.py``) and
benchopt both scale it by :math:`\eta_k`.

**VRBO** (Yang, Ji, Liang 2021, Algorithm 2), SPIDER/SARAH double loop: every
``period`` outer iterations :math:`u, h` are recomputed at :math:`(x_k, y_k)` on a
large batch (default: the full objectives); then :math:`x_{k+1} = x_k - \alpha h` and
``inner_steps`` recursive steps

.. math::

    y \leftarrow y - \beta u,\quad
    u \leftarrow u + \nabla_y G(x_{k+1}, y; B) - \nabla_y G(x^-, y^-; B),\quad
    h \leftarrow h + \hat\nabla\varphi(x_{k+1}, y; B') - \hat\nabla\varphi(x^-, y^-; B'),\quad
    (x^-, y^-) \leftarrow (x_{k+1}, y),

where :math:`(x^-, y^-)` is the previous evaluation point (at the first inner step
:math:`(x_k, y_k)`, so the x step is accounted for).  In deterministic mode the
recursions telescope: :math:`u, h` are the plain estimates at the current point.
Constant steps (``step_x`` = α, ``step_y`` = β, ``step_v`` = the Neumann η).  Two
public codes organise the inner loop differently: the authors' code
(``JunjieYang97/MRVRBO``, ``mnist_exp.py``) first corrects u, h for the x step at
:math:`y_k`, then takes ``inner_steps + 1`` y steps with corrections at fixed
:math:`x_{k+1}`; benchopt's ``solvers/vrbo.py`` evaluates both points of every
correction at the current x, so the x step never enters u, h.  Here the first
correction spans the x and the y step, so u, h always refer to the last
evaluation point.

**Defaults from** ``tol`` (:mod:`bilevel_ref.algorithms._tol`).  AID and ITD stop when
:math:`\|d_k\| \le tol/2` (``gtol`` defaults to ``tol``), then the certificate checks
:math:`\|\nabla\varphi(x)\| \le tol`.

* AID: with warm starts the estimator is exact at the fixed point, so no accuracy
  parameter depends on tol; :math:`T = \lceil\kappa\rceil` GD steps on y and
  :math:`K = \lceil\sqrt\kappa\ln(4\sqrt\kappa)\rceil` CG steps (Neumann:
  :math:`\lceil\kappa\ln(4\kappa)\rceil`) per outer step — Ji, Yang, Liang 2021, Thm 1:
  :math:`D = \Theta(\kappa)`, :math:`N = \Theta(\sqrt\kappa)` (CG's
  :math:`2\sqrt\kappa\,\theta^K` factor brought below 1/2);
  :math:`\beta = 1/L_\varphi`.
* ITD (fixed start :math:`y_0`): bias
  :math:`\|\nabla\varphi_T(x) - \nabla\varphi(x)\| \le C_T(1 + T)q^T`,
  :math:`q = \max(1 - \alpha\mu_g, \alpha L_g - 1)` (Grazzi et al. 2020, Thm 2.1; Ji, Yang,
  Liang 2021, Prop. 2; exact for a quadratic lower level without the (1 + T)); T is the
  smallest integer with :math:`C_T(1 + T)q^T \le tol/4`, :math:`C_T` measured at
  :math:`x_0` with :math:`T_0 = \lceil\kappa\rceil` (``res.constants['C_itd']``).
  An explicit ``inner_steps`` whose bound exceeds tol/2 keeps its meaning; a run that stops
  on the biased estimate says so with the bound.
* stocBiO, AmIGO, MRBO, VRBO: stochastic, no derivation (gtol = 0, status COMPLETED).

References
----------
F. Pedregosa, "Hyperparameter optimization with approximate gradient", ICML 2016.
R. Grazzi, L. Franceschi, M. Pontil, S. Salzo, "On the iteration complexity of
hypergradient computation", ICML 2020.
K. Ji, J. Yang, Y. Liang, "Bilevel optimization: convergence analysis and
enhanced design", ICML 2021 (stocBiO).
M. Arbel, J. Mairal, "Amortized implicit differentiation for stochastic bilevel
optimization", ICLR 2022 (AmIGO).
J. Yang, K. Ji, Y. Liang, "Provably faster algorithms for bilevel optimization",
NeurIPS 2021 (MRBO, VRBO).
benchopt/benchmark_bilevel, ``solvers/{stocbio,amigo,mrbo,vrbo}.py`` (default schedules;
the variants they differ in are options, see above).
"""
from __future__ import annotations

import math

import numpy as np

from .._solver import register
from .. import options as vocab
from ..options import Option
from ..hypergrad import Hypergradient, aid_cg, aid_neumann, itd_hypergradient
from ._common import MinibatchSolver
from .._kernels.oracles import resolve_backend

#: Compiled oracles (bilevel_ref._kernels.oracles) of AID's and ITD's kernels.
HVP_KERNEL_ORACLES = ("grad_x_f", "grad_y_f", "grad_y_g", "hvp_yy_g", "cross_g")
from . import _tol

__all__ = ["MinibatchSolver", "stocbio_hypergradient", "AID", "ITD", "StocBiO", "AmIGO",
           "MRBO", "VRBO"]

_STEP_X_DOC = "default 1/L_phi (option, problem.constants(), else a counted estimate at x0)"
_CONSTANT_OPTIONS = {key: vocab.constant(key) for key in ("L_g", "mu_g", "L_phi")}
#: Step options of the benchopt-style stochastic methods (stocBiO, AmIGO, MRBO, VRBO):
#: benchopt's base step c = 0.1 for y and v, and c/r = 0.1 for x.
_BENCHOPT_STEPS = {
    "step_y": vocab.step_y(0.1, "α", "benchopt's base step c"),
    "step_v": vocab.step_v(None, "η", "default step_y; should be <= 1/L_g"),
    "step_x": vocab.step_x(0.1, "β", "benchopt's c/r with r = 1"),
}


def stocbio_hypergradient(problem, x, y, eta, batch_f, hess_batches, batch_j):
    r"""stocBiO's minibatch Neumann hypergradient.

    :math:`v = \eta\sum_{q=0}^{Q}\prod_{i\le q}(I - \eta H_{B_i})\nabla_y F(x, y; B_f)`,
    :math:`d = \nabla_x F(x, y; B_f) - J(x, y; B_j) v`, with Q = ``len(hess_batches)``
    Hessian-vector products, one on each batch (all None: the deterministic
    Neumann series, equal to :func:`~bilevel_ref.hypergrad.aid_neumann` from
    :math:`v = \eta\nabla_y f`).  Cost: 1 ``grad_f``, Q ``hvp_yy_g``, 1 ``cross_g``.
    Passing the same batches at two points gives MRBO/VRBO's correlated differences.
    """
    gx, r = problem.grad_f(x, y, batch=batch_f)
    s = r
    for batch in hess_batches:
        r = r - eta * problem.hvp_yy_g(x, y, r, batch=batch)
        s = s + r
    v = eta * s
    return Hypergradient(d=gx - problem.cross_g(x, y, v, batch=batch_j), v=v, y=y,
                         info={"n_hvp": len(hess_batches)})


@register
class AID(MinibatchSolver):
    """AID: inner GD on y, CG or Neumann for v = H⁻¹∇_y f, then a step on ∇_x f − J v."""

    name = "aid"
    requires = ("grad_f", "grad_g", "hvp_yy_g", "cross_g")
    default_maxiter = 1000
    options = {
        "inner": Option.choice("cg", ("cg", "neumann"), "Linear-system solver for v."),
        "inner_steps": vocab.inner_steps(None, "T", "default ⌈κ⌉ (Ji, Yang, Liang 2021, Thm 1: "
                                         "D = Θ(κ) with warm starts)", low=0),
        "linsys_steps": vocab.linsys_steps(None, "K CG iterations or Q Neumann terms", "default "
                                           "⌈√κ·ln(4√κ)⌉ (CG) or ⌈κ·ln(4κ)⌉ (Neumann), warm-started"),
        "step_y": vocab.step_y(None, "β_y", "default 1/L_g"),
        "step_v": vocab.step_v(None, "η, Neumann only", "default 1/L_g"),
        "step_x": vocab.step_x(None, "β", _STEP_X_DOC),
        "warm_v": Option.boolean(True, "Warm-start v from the previous outer iteration."),
        "linsys_rtol": vocab.linsys_rtol(1e-10, None, "CG only"),
        "backend": vocab.backend(),
        **_CONSTANT_OPTIONS,
    }

    def setup(self):
        o = self.opts
        self.backend = resolve_backend(self.problem, o.backend, HVP_KERNEL_ORACLES, what=self.name,
                                       deterministic=o.batch_size is None)
        if o.inner_steps is None:
            self.derive("inner_steps", _tol.ceil(_tol.kappa(self)))
        if o.linsys_steps is None:
            k = _tol.kappa(self)
            self.derive("linsys_steps", _tol.ceil(math.sqrt(k) * math.log(4 * math.sqrt(k)))
                        if o.inner == "cg" else _tol.ceil(k * math.log(4 * k)))
        if o.step_x is None:
            self.derive("step_x", 1.0 / self.constant("L_phi"))
        self.step_y = o.step_y if o.step_y is not None else 1.0 / self.constant("L_g")
        self.step_v = o.step_v if o.step_v is not None else (
            1.0 / self.constant("L_g") if o.inner == "neumann" else None)
        self.step_x = o.step_x
        self.v = None

    def step(self, k):
        p, o, x = self.problem, self.opts, self.x
        v0 = self.v if o.warm_v else None
        if self.backend == "numba":  # the whole iteration in one kernel (same steps, same counts)
            from .._kernels import loops

            out = loops.aid(p, p.compiled_oracles(), x, self.y, v0, self.step_y, o.inner_steps, o.linsys_steps,
                            o.linsys_rtol, o.inner == "neumann", self.step_v)
            if out is not None:
                self.y, self.v, d = out
                self.x = x - self.step_x * d
                return {"grad_est": float(np.linalg.norm(d))}
        self.y = self.lower_sgd(x, self.y, self.step_y, o.inner_steps)
        batch_f, batch_g = self.draw("upper"), self.draw("lower")
        if o.inner == "cg":
            est = aid_cg(p, x, self.y, o.linsys_steps, v0=v0, rtol=o.linsys_rtol, batch_f=batch_f, batch_g=batch_g)
        else:
            est = aid_neumann(p, x, self.y, o.linsys_steps, self.step_v, v0=v0, batch_f=batch_f,
                              batch_g=batch_g)
        self.v = est.v
        self.x = x - self.step_x * est.d
        return {"grad_est": float(np.linalg.norm(est.d))}


@register
class ITD(MinibatchSolver):
    """ITD: reverse-mode differentiation through T inner gradient steps."""

    name = "itd"
    requires = ("grad_f", "grad_g", "hvp_yy_g", "cross_g")
    default_maxiter = 1000
    options = {
        "inner_steps": vocab.inner_steps(None, "T", "the steps differentiated through; default: "
                                         "smallest T with C_itd (1 + T) q^T <= tol/4 (class docstring)"),
        "step_y": vocab.step_y(None, "α", "default 1/L_g"),
        "step_x": vocab.step_x(None, "β", _STEP_X_DOC),
        "warm_start": Option.boolean(False, "Start each inner loop from the previous y_T instead of y0."),
        "truncate": Option.integer(None, "Back-propagate through the last K steps only.", low=1,
                                   allow_none=True),
        "backend": vocab.backend(),
        **_CONSTANT_OPTIONS,
    }

    def setup(self):
        o = self.opts
        self.backend = resolve_backend(self.problem, o.backend, HVP_KERNEL_ORACLES, what=self.name,
                                       deterministic=o.batch_size is None)
        self.step_y = o.step_y if o.step_y is not None else 1.0 / self.constant("L_g")
        if o.step_x is None:
            self.derive("step_x", 1.0 / self.constant("L_phi"))
        self.step_x = o.step_x
        self.y_start = self.y.copy()
        if o.inner_steps is None:
            C = _tol.itd_bias_constant(self, self.y_start, self.step_y)
            self.derive("inner_steps", _tol.itd_steps(self, o.tol, self.step_y, C))

    def bias_note(self):
        o = self.opts
        if "inner_steps" in self.derived or o.warm_start:
            return None
        C = _tol.itd_bias_constant(self, self.y_start, self.step_y)
        bound = _tol.itd_bias(self, o.inner_steps, self.step_y, C)
        if bound > 0.5 * o.tol:
            return (f"explicit inner_steps = {o.inner_steps} limits the accuracy: the ITD bias bound "
                    f"C_itd (1 + T) q^T = {bound:.2e} > tol/2 = {0.5 * o.tol:.1e} (C_itd measured at "
                    f"the final x); leave inner_steps unset to derive it from tol "
                    f"(T = {_tol.itd_steps(self, o.tol, self.step_y, C)})")
        return None

    def step(self, k):
        o = self.opts
        start = self.y if o.warm_start else self.y_start
        batch_f, batch_g = self.draw("upper"), self.draw("lower")
        est = itd_hypergradient(self.problem, self.x, start, o.inner_steps, self.step_y,
                                truncate=o.truncate, batch_f=batch_f, batch_g=batch_g, backend=self.backend)
        self.y = est.y
        self.x = self.x - self.step_x * est.d
        return {"grad_est": float(np.linalg.norm(est.d))}


class _BenchoptSteps(MinibatchSolver):
    """Steps c (y, v) and c/r (x) of the benchopt-style stochastic methods."""

    requires = ("grad_f", "grad_g", "hvp_yy_g", "cross_g")
    default_maxiter = 1000
    default_gtol = 0.0
    options = dict(_BENCHOPT_STEPS)

    renamed = {"step_size": "step_y and step_v (base step c)", "outer_ratio": "step_x (= c / outer_ratio)"}

    def setup(self):
        o = self.opts
        self.step_y = o.step_y
        self.step_v = o.step_y if o.step_v is None else o.step_v
        self.step_x = o.step_x


@register
class StocBiO(_BenchoptSteps):
    """stocBiO: SGD on y, then a minibatch Neumann-series hypergradient step on x."""

    name = "stocbio"
    options = {
        "inner_steps": vocab.inner_steps(10, "D", "SGD steps, warm start", low=0),
        "linsys_steps": vocab.linsys_steps(10, "Q Neumann terms"),
    }

    def step(self, k):
        p, o, x = self.problem, self.opts, self.x
        self.y = self.lower_sgd(x, self.y, self.step_y, o.inner_steps)
        est = stocbio_hypergradient(p, x, self.y, self.step_v, self.draw("upper"),
                                    self.draws("lower", o.linsys_steps), self.draw("lower"))
        self.x = x - self.step_x * est.d
        return {"grad_est": float(np.linalg.norm(est.d))}


@register
class AmIGO(_BenchoptSteps):
    """AmIGO: SGD on y and on the amortised linear-system variable v, then a step on x."""

    name = "amigo"
    options = {
        "inner_steps": vocab.inner_steps(10, "T", "SGD steps on y", low=0),
        "linsys_steps": vocab.linsys_steps(10, "T", "SGD steps on the amortised v"),
        "fixed_rhs": Option.boolean(
            True, "Evaluate ∇F once per outer iteration (one upper batch for ∇_y F, the "
            "linear system's right-hand side, and for ∇_x F), as in the paper's Algorithm 1, the "
            "official code and benchopt; False: a fresh upper batch for ∇_y F at every v step and "
            "another for ∇_x F (this library's default before 0.1.0)."),
    }

    def setup(self):
        super().setup()
        self.v = np.zeros_like(self.y)

    def step(self, k):
        p, o, x = self.problem, self.opts, self.x
        y, v, eta = self.y, self.v, self.step_v
        y = self.lower_sgd(x, y, self.step_y, o.inner_steps)
        if o.fixed_rhs:
            gx_f, gy_f = p.grad_f(x, y, batch=self.draw("upper"))
        for _ in range(o.linsys_steps):
            hv = p.hvp_yy_g(x, y, v, batch=self.draw("lower"))
            if not o.fixed_rhs:
                gy_f = p.grad_y_f(x, y, batch=self.draw("upper"))
            v = v - eta * (hv - gy_f)
        if not o.fixed_rhs:
            gx_f = p.grad_x_f(x, y, batch=self.draw("upper"))
        d = gx_f - p.cross_g(x, y, v, batch=self.draw("lower"))
        self.y, self.v = y, v
        self.x = x - self.step_x * d
        return {"grad_est": float(np.linalg.norm(d))}


@register
class MRBO(_BenchoptSteps):
    """MRBO: single loop with STORM momentum on the y-gradient and on stocBiO's hypergradient."""

    name = "mrbo"
    options = {
        "linsys_steps": vocab.linsys_steps(10, "Q Neumann terms of each hypergradient estimate"),
        "step_y": vocab.step_y(0.1, "λ", "base y step: y ← y − λ·η_k·u_k (benchopt's c)"),
        "step_x": vocab.step_x(0.1, "γ", "base x step: x ← x − γ·η_k·h_k (benchopt's c/r)"),
        "eta_scale": Option.real(1.0, "Scale c of the decay η_k = c/(k + m0)^(1/3) applied to both "
                                 "steps (the paper's η_k; benchopt: 1).", low=0),
        "m0": Option.real(1.0, "Offset m₀ of η_k = c/(k + m0)^(1/3) (benchopt: 1, i.e. "
                          "(k + 1)^(1/3)).", low=0),
        "momentum_scale_x": Option.real(
            0.5, "c₁ of the hypergradient's STORM weight α_k = min(1, c₁η_k²) (benchopt's eta).",
            low=0),
        "momentum_scale_y": Option.real(
            0.5, "c₂ of the y-gradient's STORM weight β_k = min(1, c₂η_k²) (benchopt's eta).",
            low=0),
        "variant": Option.choice(
            "paper", ("paper", "benchopt"),
            "'paper' (Algorithm 1): plain estimates at k = 0 and a Jacobian batch B_G of its own; "
            "'benchopt' (solvers/mrbo.py): the recursions run from k = 0 with an old point and old "
            "directions of zero, and J uses the y-gradient's batch B_y."),
    }
    renamed = {"eta": "momentum_scale_x and momentum_scale_y (c₁ = c₂ = eta with eta_scale = 1)"}

    def setup(self):
        super().setup()
        self.u = self.h = self.prev = None

    def step(self, k):
        p, o, x, y = self.problem, self.opts, self.x, self.y
        eta = o.eta_scale / (k + o.m0) ** (1.0 / 3.0)                         # η_k
        batch_y = self.draw("lower")                                          # B_y
        batch_f = self.draw("upper")                                          # B_x: B_F,
        hess = self.draws("lower", o.linsys_steps)                            #   B_1 .. B_Q,
        batch_j = batch_y if o.variant == "benchopt" else self.draw("lower")  #   B_G
        grad_new = p.grad_y_g(x, y, batch=batch_y)
        hyper_new = stocbio_hypergradient(p, x, y, self.step_v, batch_f, hess, batch_j).d
        if self.prev is None and o.variant == "paper":
            self.u, self.h = grad_new, hyper_new                              # k = 0
        else:
            if self.prev is None:                                             # benchopt's memory
                self.prev = (np.zeros_like(x), np.zeros_like(y))
                self.u, self.h = np.zeros_like(y), np.zeros_like(x)
            x_old, y_old = self.prev
            keep_y = 1.0 - min(1.0, o.momentum_scale_y * eta ** 2)           # 1 − β_k
            keep_x = 1.0 - min(1.0, o.momentum_scale_x * eta ** 2)           # 1 − α_k
            grad_old = p.grad_y_g(x_old, y_old, batch=batch_y)
            hyper_old = stocbio_hypergradient(p, x_old, y_old, self.step_v, batch_f, hess, batch_j).d
            self.u = grad_new + keep_y * (self.u - grad_old)
            self.h = hyper_new + keep_x * (self.h - hyper_old)
        self.prev = (x, y)
        self.y = y - (o.step_y * eta) * self.u
        self.x = x - (o.step_x * eta) * self.h
        return {"grad_est": float(np.linalg.norm(self.h))}


@register
class VRBO(_BenchoptSteps):
    """VRBO: SPIDER/SARAH recursive estimators of the y-gradient and hypergradient, periodic refresh."""

    name = "vrbo"
    options = {
        "linsys_steps": vocab.linsys_steps(10, "Q Neumann terms of each hypergradient estimate"),
        "step_y": vocab.step_y(0.1, "β", "benchopt's base step c"),
        "step_x": vocab.step_x(0.1, "α", "benchopt's c/r with r = 1"),
        "inner_steps": vocab.inner_steps(10, None, "recursive SARAH steps on y"),
        "period": vocab.period(None, "q", "u, h are recomputed on the large batch; default "
                               "period_frac·(n_lower + n_upper)/batch_size, 1 in deterministic mode"),
        "period_frac": Option.real(128.0, "benchopt's period factor (used when period is None).", low=0),
        "large_batch": Option.integer(None, "Batch size of the refresh (None: full objectives).", low=1,
                                      allow_none=True),
    }

    def setup(self):
        super().setup()
        o, p = self.opts, self.problem
        if o.large_batch is not None and not p.provides("sample"):
            raise ValueError(f"options['large_batch'] needs a stochastic problem (n_lower/n_upper and "
                             f"sample()); problem {p.name!r} has none")
        if o.period is not None:
            self.period = o.period
        elif o.batch_size is None:
            self.period = 1
        else:
            self.period = max(1, int(o.period_frac * ((p.n_lower or 0) + (p.n_upper or 0)) / o.batch_size))
        self.u = self.h = None

    def _large(self, level):
        return self.sample_or_full(level, self.opts.large_batch)

    def step(self, k):
        p, o = self.problem, self.opts
        if k % self.period == 0:
            batch_g, batch_f = self._large("lower"), self._large("upper")
            hess = [self._large("lower") for _ in range(o.linsys_steps)]
            self.u = p.grad_y_g(self.x, self.y, batch=batch_g)
            self.h = stocbio_hypergradient(p, self.x, self.y, self.step_v, batch_f, hess, batch_g).d
        x_old, y_old = self.x, self.y
        self.x = x = self.x - self.step_x * self.h
        for _ in range(o.inner_steps):
            self.y = y = self.y - self.step_y * self.u
            batch_g, batch_f = self.draw("lower"), self.draw("upper")
            hess = self.draws("lower", o.linsys_steps)
            self.u = self.u + p.grad_y_g(x, y, batch=batch_g) - p.grad_y_g(x_old, y_old, batch=batch_g)
            self.h = (self.h + stocbio_hypergradient(p, x, y, self.step_v, batch_f, hess, batch_g).d
                      - stocbio_hypergradient(p, x_old, y_old, self.step_v, batch_f, hess, batch_g).d)
            x_old, y_old = x, y
        return {"grad_est": float(np.linalg.norm(self.h))}
