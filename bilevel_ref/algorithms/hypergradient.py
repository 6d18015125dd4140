r"""Hypergradient (HVP-based) methods: AID and ITD.

**AID** (approximate implicit differentiation), per outer iteration k:

.. math::

    y &\leftarrow y - \beta_y \nabla_y g(x_k, y) \quad (T \text{ times, warm start})\\
    v &\approx [\nabla^2_{yy} g(x_k, y)]^{-1}\nabla_y f(x_k, y) \quad (K \text{ CG or Neumann steps, warm start})\\
    x_{k+1} &= x_k - \beta\,(\nabla_x f(x_k, y) - \nabla^2_{xy} g(x_k, y)\, v)

**ITD** (iterative differentiation): the exact derivative of
:math:`x \mapsto f(x, y_T(x))` through T gradient steps from ``y0`` by reverse
mode (:mod:`bilevel_ref.hypergrad.itd`), then :math:`x_{k+1} = x_k - \beta d_k`.

References
----------
F. Pedregosa, "Hyperparameter optimization with approximate gradient", ICML 2016.
R. Grazzi, L. Franceschi, M. Pontil, S. Salzo, "On the iteration complexity of
hypergradient computation", ICML 2020.
K. Ji, J. Yang, Y. Liang, "Bilevel optimization: convergence analysis and
enhanced design", ICML 2021.
"""
from __future__ import annotations

import numpy as np

from .._api import Option, Solver, register
from ..hypergrad import aid_cg, aid_neumann, itd_hypergradient
from ._common import problem_constant

_STEP_X_DOC = ("Upper-level step β (default 1/L_phi when the problem reports L_phi in "
               "constants(), else 0.01).")
_CONSTANT_OPTIONS = {
    "L_g": Option.real(None, "Smoothness of g in y (default: problem.constants()).", low=0, allow_none=True),
    "mu_g": Option.real(None, "Strong convexity of g in y (default: problem.constants()).", low=0,
                        allow_none=True),
}


def upper_step(problem, opts):
    """The upper-level step: the option, else 1/L_phi, else 0.01."""
    if opts.step_x is not None:
        return opts.step_x
    known = problem.constants()
    return 1.0 / known["L_phi"] if "L_phi" in known else 0.01


@register
class AID(Solver):
    """AID: inner GD on y, CG or Neumann for v = H⁻¹∇_y f, then a step on ∇_x f − J v."""

    name = "aid"
    requires = ("grad_f", "grad_g", "hvp_yy_g", "cross_g")
    default_maxiter = 1000
    options = {
        "inner": Option.choice("cg", ("cg", "neumann"), "Linear-system solver for v."),
        "inner_steps": Option.integer(10, "Gradient steps T on y per outer iteration.", low=0),
        "hvp_steps": Option.integer(10, "CG iterations K or Neumann terms Q per outer iteration.", low=0),
        "step_y": Option.real(None, "Inner step β_y (default 1/L_g).", low=0, allow_none=True),
        "step_v": Option.real(None, "Neumann step η (default 1/L_g).", low=0, allow_none=True),
        "step_x": Option.real(None, _STEP_X_DOC, low=0, allow_none=True),
        "warm_v": Option.boolean(True, "Warm-start v from the previous outer iteration."),
        "cg_rtol": Option.real(1e-10, "Relative residual tolerance of CG.", low=0, strict=False),
        **_CONSTANT_OPTIONS,
    }

    def setup(self):
        o = self.opts
        L_g = problem_constant(self.problem, o, "L_g", "L_g", what="smoothness of g in y")
        self.step_y = o.step_y if o.step_y is not None else 1.0 / L_g
        self.step_v = o.step_v if o.step_v is not None else 1.0 / L_g
        self.step_x = upper_step(self.problem, o)
        self.v = None

    def step(self, k):
        p, o, x = self.problem, self.opts, self.x
        for _ in range(o.inner_steps):
            self.y = self.y - self.step_y * p.grad_g(x, self.y)[1]
        v0 = self.v if o.warm_v else None
        if o.inner == "cg":
            est = aid_cg(p, x, self.y, o.hvp_steps, v0=v0, rtol=o.cg_rtol)
        else:
            est = aid_neumann(p, x, self.y, o.hvp_steps, self.step_v, v0=v0)
        self.v = est.v
        self.x = x - self.step_x * est.d
        return {"grad_est": float(np.linalg.norm(est.d))}


@register
class ITD(Solver):
    """ITD: reverse-mode differentiation through T inner gradient steps."""

    name = "itd"
    requires = ("grad_f", "grad_g", "hvp_yy_g", "cross_g")
    default_maxiter = 1000
    options = {
        "inner_steps": Option.integer(10, "Inner gradient steps T differentiated through.", low=1),
        "step_y": Option.real(None, "Inner step α (default 1/L_g).", low=0, allow_none=True),
        "step_x": Option.real(None, _STEP_X_DOC, low=0, allow_none=True),
        "warm_start": Option.boolean(False, "Start each inner loop from the previous y_T instead of y0."),
        "truncate": Option.integer(None, "Back-propagate through the last K steps only.", low=1,
                                   allow_none=True),
        **_CONSTANT_OPTIONS,
    }

    def setup(self):
        o = self.opts
        self.step_y = o.step_y if o.step_y is not None else 1.0 / problem_constant(
            self.problem, o, "L_g", "L_g", what="smoothness of g in y")
        self.step_x = upper_step(self.problem, o)
        self.y_start = self.y.copy()

    def step(self, k):
        o = self.opts
        start = self.y if o.warm_start else self.y_start
        est = itd_hypergradient(self.problem, self.x, start, o.inner_steps, self.step_y, truncate=o.truncate)
        self.y = est.y
        self.x = self.x - self.step_x * est.d
        return {"grad_est": float(np.linalg.norm(est.d))}
