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

Options: N = ``period``, α = ``step_x``, β = ``step_y``, γ = ``step_v``,
μ = 1 − ``momentum`` (``momentum=0``: base SOBA; the default 0.2 is MA-SOBA's θ = 0.8).

Per iteration: ``grad_g`` 1, ``grad_f`` 1 (one joint call gives
:math:`\nabla_x f` and :math:`\nabla_y f`), plus, every N iterations,
``hvp_yy_g`` 1 and ``cross_g`` 1 (mode ``"hvp+jvp"``), or ``hvp_yy_g`` 1 every N
and ``cross_g`` 1 every iteration (mode ``"hvp"``, what the public script does).
Over T iterations: :math:`\lceil T/N\rceil` HVPs, and :math:`\lceil T/N\rceil`
(``"hvp+jvp"``) or T (``"hvp"``) JVPs.

``jvp_after_update=True`` applies J to the freshly updated z at a refresh (the
public script); the default uses the old z, as SOBA does, so that ``period=1``
and ``momentum=0`` with the same options dict reproduce ``soba`` bit for bit (the same engine,
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

from .._solver import register
from .. import options as vocab
from ..options import Option
from .single_loop import SingleLoop

__all__ = ["SOLazyBiO"]


@register
class SOLazyBiO(SingleLoop):
    """SO-Lazy-BiO: SOBA / MA-SOBA refreshing Hessian (and Jacobian) products every N iterations."""

    name = "so_lazy_bio"
    aliases = ("lazy_bio", "solazybio")
    options = {
        "period": vocab.period(5, "N"),
        "mode": Option.choice("hvp", ("hvp", "hvp+jvp"),
                              "'hvp': lazy H z and z-step, J z every iteration; 'hvp+jvp': both every "
                              "period iterations, the last J z reused."),
        "momentum": vocab.momentum(0.2, "1 − μ, μ = 0.8: base MA-SOBA",
                                   "h̄ ← (1 − momentum)·h + momentum·h̄; 0: base SOBA"),
        "jvp_after_update": Option.boolean(False, "At a refresh apply J to the updated z (the public "
                                                  "script) instead of the old z (SOBA)."),
        "refresh_batch_size": Option.integer(None, "Inner minibatch size at refresh iterations "
                                                   "(default batch_size).", low=1, allow_none=True),
    }
    renamed = {"alpha": "step_x", "beta": "step_y", "gamma": "step_v", "N": "period",
               "mu": "momentum (= 1 - mu)", "base": "momentum (0: SOBA base, > 0: MA-SOBA base)"}

    @classmethod
    def check_options(cls, values):
        if values["refresh_batch_size"] is not None and values["batch_size"] is None:
            raise ValueError("options['refresh_batch_size'] needs options['batch_size'] (stochastic mode)")

    def setup(self):
        o = self.opts
        self.configure(period=o.period, mode=o.mode, jvp_after_update=o.jvp_after_update,
                       refresh_batch_size=o.refresh_batch_size)
