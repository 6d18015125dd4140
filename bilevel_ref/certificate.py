r"""Certifying a reported success: a tight, counted hypergradient at the final x.

A method stops on its own test, evaluated on its own *estimate* (a truncated
inner loop, a penalty surrogate, a finite number of unrolled steps...).  The
estimate may be biased by more than the tolerance.  So when a run's stopping
test is met, :func:`bilevel_ref.minimize` certifies it: it computes

.. math::

    \nabla\varphi(x) = \nabla_x f(x, y^*) - \nabla^2_{xy} g(x, y^*)\,[\nabla^2_{yy} g(x, y^*)]^{-1}\nabla_y f(x, y^*)

with :math:`y^*` from Nesterov's AGD on :math:`g(x, \cdot)` to
:math:`\|\nabla_y g\| \le 10^{-12}` and the linear system by CG to relative
residual :math:`10^{-12}` (for minimax, :math:`\nabla P(x) = \nabla_x f(x, y^*)`
with :math:`y^*` from AGD on :math:`-f(x, \cdot)`).  These oracle calls are
counted like any other.  ``success`` is True only if this certified norm is
at most the run's tolerance (``gtol``, or ``eps`` for the methods with their
own rule); otherwise the status is ``BIASED`` and the message gives both
numbers.  A problem without the products the certificate needs
(``hvp_yy_g`` and ``cross_g``; ``hvp_yy_f`` for minimax) cannot be certified:
its runs report ``success=False`` with a message saying so.

The certificate covers first-order stationarity; the curvature part of the
second-order methods' test (λ_min ≥ −δ) is the method's own.
"""
from __future__ import annotations

import numpy as np

__all__ = ["certified_gradient_norm", "CERTIFICATE_ORACLES"]

#: Oracles the certificate needs, by problem type.
CERTIFICATE_ORACLES = {"bilevel": ("grad_f", "grad_g", "hvp_yy_g", "cross_g"),
                       "minimax": ("grad_f", "hvp_yy_f")}


def certified_gradient_norm(solver):
    """‖∇φ(x)‖ at ``solver.x`` from a tight counted solve, or None if the problem lacks the oracles."""
    from .constants import tight_hypergradient, tight_solve

    p = solver.problem
    if not all(p.provides(o) for o in CERTIFICATE_ORACLES[solver.problem_type]):
        return None
    if solver.problem_type == "bilevel":
        d = tight_hypergradient(p, solver.x, solver.y, solver.constant("L_g"), solver.constant("mu_g"))[0]
    else:
        L_y, mu_y = solver.constant("L_y"), solver.constant("mu_y")
        y = tight_solve(lambda q: -p.grad_f(solver.x, q)[1], solver.y, max(L_y, mu_y), mu_y)
        d = p.grad_f(solver.x, y)[0]
    return float(np.linalg.norm(d))
