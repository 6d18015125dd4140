r"""SO-Lazy-BiO: single-loop bilevel optimisation with period-N second-order refresh.

A SOBA-type base method (SOBA, or MA-SOBA with momentum) whose second-order
information is evaluated only at iterations :math:`t \equiv 0 \pmod N`;
first-order gradients are fresh every iteration. With :math:`H = \nabla^2_{yy} g`,
:math:`J = \nabla^2_{xy} g` and :math:`z \approx -H^{-1}\nabla_y f`:

.. math::

    \text{if } t \bmod N = 0:&\quad Jz \leftarrow J(x_t, y_t)\, z,\quad
        z \leftarrow z - \gamma\big(H(x_t, y_t)\, z + \nabla_y f(x_t, y_t)\big)\\
    \text{else, mode "hvp"}:&\quad Jz \leftarrow J(x_t, y_t)\, z
        \quad(\text{mode "hvp+jvp": } Jz \text{ kept from the last refresh})\\
    h_t &= \nabla_x f(x_t, y_t) + Jz\\
    y_{t+1} &= y_t - \beta\, \nabla_y g(x_t, y_t)\\
    \bar h_t &= \mu h_t + (1 - \mu)\bar h_{t-1} \quad(\bar h_0 = h_0;\ \bar h_t = h_t \text{ without momentum})\\
    x_{t+1} &= x_t - \alpha\, \bar h_t

Per iteration: ``grad_g`` 1, ``grad_f`` 1 (one joint call gives
:math:`\nabla_x f` and :math:`\nabla_y f`), plus, every N iterations,
``hvp_yy_g`` 1 and ``cross_g`` 1 (mode ``"hvp+jvp"``), or ``hvp_yy_g`` 1 every N
and ``cross_g`` 1 every iteration (mode ``"hvp"``, what the public script does).
Over T iterations: :math:`\lceil T/N\rceil` HVPs, and :math:`\lceil T/N\rceil`
(``"hvp+jvp"``) or T (``"hvp"``) JVPs.

``jvp_after_update=True`` applies J to the freshly updated z at a refresh (the
public script); the default uses the old z, as SOBA does, so that ``N = 1``
without momentum reproduces ``soba`` bit for bit (the same engine,
:class:`~bilevel_ref.algorithms.single_loop.SingleLoop`, runs both).

Inferred where the sources are silent: the exact form of mode ``"hvp+jvp"``
(the last JVP is reused), :math:`\bar h_0 = h_0`, and ``refresh_batch_size``
applying to the inner minibatch of refresh iterations (the SGD variant needs
batches Θ(ε⁻¹) and Θ(Nε⁻¹) at refresh).

References
----------
"SO-Lazy-BiO: Accelerating bilevel optimization with reduced second-order
information computation", ICLR 2026 submission 15198 (OpenReview 9Yfslej5rC);
earlier "LazyBLO", ICLR 2025 submission (rVD4lasVp4).
M. Dagréou et al., NeurIPS 2022 (SOBA); X. Chen, T. Xiao, K. Balasubramanian,
JMLR 2024 (MA-SOBA).
"""
from __future__ import annotations

import numpy as np

from .._solver import register
from ..options import Option
from ._common import problem_constant
from .single_loop import SingleLoop, schedule_option

__all__ = ["SOLazyBiO"]


def _optional_bool(name, value):
    if value is not None and not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True, False or None, got {value!r}")
    return None if value is None else bool(value)


@register
class SOLazyBiO(SingleLoop):
    """SO-Lazy-BiO: SOBA / MA-SOBA refreshing Hessian (and Jacobian) products every N iterations."""

    name = "so_lazy_bio"
    aliases = ("lazy_bio", "solazybio")
    options = {
        "base": Option.choice("ma_soba", ("soba", "ma_soba"),
                              "Base single-loop method: 'soba' (no momentum) or 'ma_soba' (moving "
                              "average of the hypergradient estimate)."),
        "N": Option.integer(5, "Refresh period N of the second-order information.", low=1),
        "mode": Option.choice("hvp", ("hvp", "hvp+jvp"),
                              "'hvp': lazy H z and z-step, J z every iteration; 'hvp+jvp': both every "
                              "N iterations, the last J z reused."),
        "momentum": Option.any(None, "Moving average of the hypergradient estimate (None: True for "
                               "base 'ma_soba', False for 'soba'; must agree with base).", _optional_bool),
        "mu": Option.real(0.8, "Weight μ of the new estimate in the moving average.", low=0, high=1),
        "alpha": Option.real(0.01, "Upper-level step α.", low=0),
        "beta": Option.real(None, "Lower-level step β (default 1/L_g).", low=0, allow_none=True),
        "gamma": Option.real(None, "Step γ of the linear-system variable z (default 1/L_g).", low=0,
                             allow_none=True),
        "schedule": schedule_option("constant"),
        "jvp_after_update": Option.boolean(False, "At a refresh apply J to the updated z (the public "
                                                  "script) instead of the old z (SOBA)."),
        "refresh_batch_size": Option.integer(None, "Inner minibatch size at refresh iterations "
                                                   "(default batch_size).", low=1, allow_none=True),
        "L_g": Option.real(None, "Smoothness of g in y (default: problem.constants()).", low=0,
                           allow_none=True),
    }

    @classmethod
    def check_options(cls, values):
        momentum = values["momentum"]
        if momentum is not None and momentum != (values["base"] == "ma_soba"):
            raise ValueError(f"options['momentum']={momentum} contradicts options['base']="
                             f"{values['base']!r} (ma_soba has momentum, soba has none)")
        if values["refresh_batch_size"] is not None and values["batch_size"] is None:
            raise ValueError("options['refresh_batch_size'] needs options['batch_size'] (stochastic mode)")

    def setup(self):
        o = self.opts
        if o.beta is None or o.gamma is None:
            L_g = problem_constant(self.problem, o, "L_g", "L_g", what="smoothness of g in y")
        self.configure(step_y=1.0 / L_g if o.beta is None else o.beta,
                       step_z=1.0 / L_g if o.gamma is None else o.gamma,
                       step_x=o.alpha, schedule=o.schedule, N=o.N, mode=o.mode,
                       momentum=o.base == "ma_soba", mu=o.mu, jvp_after_update=o.jvp_after_update,
                       batch_size=o.batch_size, refresh_batch_size=o.refresh_batch_size)
