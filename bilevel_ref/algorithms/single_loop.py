r"""Single-loop stochastic bilevel methods: SOBA, SABA, MA-SOBA.

With :math:`z \approx -[\nabla^2_{yy} g]^{-1}\nabla_y f` (SOBA's sign; the library's
:math:`u = -z`), inner minibatch :math:`i` and outer minibatch :math:`j`, one
iteration at :math:`(x_t, y_t, z_t)` is

.. math::

    y_{t+1} &= y_t - \rho_t\, \nabla_y G_i(x_t, y_t)\\
    z_{t+1} &= z_t - \rho_t\, \big(H_i(x_t, y_t)\, z_t + \nabla_y F_j(x_t, y_t)\big)\\
    h_t &= \nabla_x F_j(x_t, y_t) + J_i(x_t, y_t)\, z_t\\
    x_{t+1} &= x_t - \gamma_t\, \bar h_t

with :math:`H = \nabla^2_{yy} g`, :math:`J = \nabla^2_{xy} g` (all three from one
:meth:`fused_g` call), all updates simultaneous.

* **SOBA**: :math:`\bar h_t = h_t`; steps ``step_y`` (ρ on y), ``step_v`` (ρ on
  z) and ``step_x`` (γ), constant or, with ``schedule="sqrt"``, divided by
  :math:`\sqrt{t+1}` (benchopt's form). Per iteration: ``grad_g`` 1,
  ``hvp_yy_g`` 1, ``cross_g`` 1, ``grad_f`` 1.
* **MA-SOBA**: the same y, z steps and a moving average of the hypergradient
  estimate, :math:`\bar h_t = \theta h_t + (1-\theta)\bar h_{t-1}`,
  :math:`\bar h_0 = h_0`, where θ is the paper's weight on the new estimate and
  ``momentum`` = 1 − θ (momentum 0: SOBA).
* **SABA**: SOBA with SAGA estimators of the five quantities
  :math:`\nabla_y G, Hz, Jz, \nabla_y F, \nabla_x F`. The samples are cut into
  fixed contiguous minibatches (benchopt's sampler); per minibatch id a memory
  is kept, and for the drawn id :math:`b` of weight :math:`w_b = |B_b|/n`
  among :math:`n_b` minibatches

  .. math::

      \hat q = n_b w_b\,(q_b - m_b) + \textstyle\sum_{b'} w_{b'} m_{b'},\qquad m_b \leftarrow q_b,

  which is unbiased for the full mean also when the last minibatch is short.
  Constant steps.

The same :class:`SingleLoop` engine runs SO-Lazy-BiO
(:mod:`bilevel_ref.algorithms.lazy`), which refreshes :math:`H z` (and
optionally :math:`J z`) only every N = ``period`` iterations; SOBA is its
N = 1 case, with the same options.

Defaults shared by the family: ``step_y = step_v = 1/L_g`` (resolved by the
constants policy: option, ``problem.constants()``, else a counted estimate),
``step_x = 0.01``, ``schedule="constant"``.

Deterministic mode (``batch_size=None``): every oracle on the full objective.

References
----------
M. Dagréou, P. Ablin, S. Vaiter, T. Moreau, "A framework for bilevel
optimization that enables stochastic and global variance reduction
algorithms", NeurIPS 2022 (SOBA, SABA); benchopt/benchmark_bilevel
``solvers/soba.py``, ``solvers/saba.py``.
X. Chen, T. Xiao, K. Balasubramanian, "Optimal algorithms for stochastic
bilevel optimization under relaxed smoothness conditions", JMLR 2024 (MA-SOBA).
"""
from __future__ import annotations

import math

import numpy as np

from .._solver import register
from .. import options as vocab
from ..options import Option
from ._common import MinibatchSolver

__all__ = ["SingleLoop", "SOBA", "SABA", "MASOBA"]

#: Options of every method on the single-loop engine (SOBA, SABA, MA-SOBA, SO-Lazy-BiO).
SINGLE_LOOP_OPTIONS = {
    "step_y": vocab.step_y(None, "ρ", "default 1/L_g"),
    "step_v": vocab.step_v(None, "ρ on z = −v", "default 1/L_g"),
    "step_x": vocab.step_x(0.01, "γ"),
    "schedule": vocab.schedule("constant"),
    "momentum": vocab.momentum(0.0, "1 − θ of MA-SOBA", "h̄ ← (1 − momentum)·h + momentum·h̄"),
    "L_g": vocab.constant("L_g"),
}


class SingleLoop(MinibatchSolver):
    """Engine of the SOBA family: one code path for SOBA, MA-SOBA, SABA and SO-Lazy-BiO.

    Subclasses call :meth:`configure` in ``setup``.  The iteration follows
    SO-Lazy-BiO's refresh form, of which SOBA is ``N = 1``:

    1. at refresh (``t mod N == 0``): ``z ← z − ρ_z (H z + ∇_y F)`` and
       ``Jz ← J z`` (old z, as SOBA; new z when ``jvp_after_update``);
       otherwise ``Jz ← J z`` in mode ``"hvp"``, cached ``Jz`` in mode ``"hvp+jvp"``;
    2. ``h = ∇_x F + Jz``; ``h̄ = h`` or ``(1 − momentum) h + momentum h̄``;
    3. ``y ← y − ρ_y ∇_y G``;  ``x ← x − γ h̄``.
    """

    requires = ("grad_f", "grad_g", "hvp_yy_g", "cross_g")
    default_maxiter = 1000
    default_gtol = 0.0
    options = dict(SINGLE_LOOP_OPTIONS)
    renamed = {"step_size": "step_y and step_v (base step c)",
               "outer_ratio": "step_x (= c / outer_ratio)", "beta": "step_y"}

    def configure(self, *, period=1, mode="hvp+jvp", jvp_after_update=False, refresh_batch_size=None):
        """Set the engine's parameters from the validated options (no checks here)."""
        o = self.opts
        self.step_y = o.step_y if o.step_y is not None else 1.0 / self.constant("L_g")
        self.step_z = o.step_v if o.step_v is not None else 1.0 / self.constant("L_g")
        self.step_x = o.step_x
        self.decay = 0.5 if o.schedule == "sqrt" else 0.0
        self.N, self.mode, self.momentum = period, mode, o.momentum
        self.jvp_after_update = jvp_after_update
        self.batch_size = o.batch_size
        self.refresh_batch_size = o.batch_size if refresh_batch_size is None else refresh_batch_size
        self.z = np.zeros_like(self.y)
        self.jz = None
        self.h_bar = None

    # -- hooks (SABA overrides them) ---------------------------------------
    def draw_pair(self, t, refresh):
        """Inner and outer minibatches of iteration t (None: full objectives)."""
        if self.batch_size is None:
            return None, None
        size = self.refresh_batch_size if refresh else self.batch_size
        return self.sample_or_full("lower", size), self.sample_or_full("upper", self.batch_size)

    def estimates(self, x, y, z, refresh, batch_g, batch_f):
        """``(∇_x F, ∇_y F, ∇_y G, Hz, Jz)`` at (x, y, z); Hz, Jz are None when not due."""
        p = self.problem
        gx_f, gy_f = p.grad_f(x, y, batch=batch_f)
        hz = jz = None
        if refresh and not self.jvp_after_update:
            gy_g, hz, jz = p.fused_g(x, y, z, batch=batch_g)
        else:
            gy_g = p.grad_y_g(x, y, batch=batch_g)
            if refresh:
                hz = p.hvp_yy_g(x, y, z, batch=batch_g)
            elif self.mode == "hvp":
                jz = p.cross_g(x, y, z, batch=batch_g)
        return gx_f, gy_f, gy_g, hz, jz

    # -- one iteration -------------------------------------------------------
    def step(self, t):
        x, y, z = self.x, self.y, self.z
        refresh = t % self.N == 0
        batch_g, batch_f = self.draw_pair(t, refresh)
        gx_f, gy_f, gy_g, hz, jz = self.estimates(x, y, z, refresh, batch_g, batch_f)
        scale = (t + 1.0) ** -self.decay if self.decay else 1.0
        if refresh:
            self.z = z - (scale * self.step_z) * (hz + gy_f)
            if self.jvp_after_update:
                # the public SO-Lazy-BiO script applies J to the freshly updated z
                jz = self.problem.cross_g(x, y, self.z, batch=batch_g)
        if jz is not None:
            self.jz = jz
        h = gx_f + self.jz
        if self.h_bar is None or self.momentum == 0.0:
            self.h_bar = h
        else:
            self.h_bar = (1.0 - self.momentum) * h + self.momentum * self.h_bar
        self.y = y - (scale * self.step_y) * gy_g
        self.x = x - (scale * self.step_x) * self.h_bar
        # sqrt of the dot product: what np.linalg.norm computes for a 1-D array, without its overhead
        return {"grad_est": math.sqrt(float(self.h_bar @ self.h_bar))}


@register
class SOBA(SingleLoop):
    """SOBA: simultaneous SGD steps on y, on the linear-system variable z and on x."""

    name = "soba"

    def setup(self):
        self.configure()


@register
class MASOBA(SingleLoop):
    """MA-SOBA: SOBA with a moving average of the hypergradient estimate."""

    name = "ma_soba"
    aliases = ("masoba",)
    options = {
        "momentum": vocab.momentum(0.2, "1 − θ, θ = 0.8", "h̄ ← (1 − momentum)·h + momentum·h̄"),
    }

    def setup(self):
        self.configure()


class _SagaMemory:
    """SAGA memory of one quantity over fixed minibatches with weights ``w_b = |B_b|/n``."""

    def __init__(self, weights, dim):
        self.scale = len(weights) * weights  # n_b w_b
        self.weights = weights
        self.table = np.zeros((len(weights), dim))
        self.mean = np.zeros(dim)             # Σ_b w_b m_b

    def fill(self, b, value):
        self.mean += self.weights[b] * (value - self.table[b])
        self.table[b] = value

    def estimate(self, b, new):
        est = self.scale[b] * (new - self.table[b]) + self.mean
        self.fill(b, new)
        return est


def _contiguous_batches(n, size):
    if n is None:
        return [None]
    return [np.arange(s, min(s + size, n)) for s in range(0, n, size)]


@register
class SABA(SingleLoop):
    """SABA: SOBA with SAGA variance reduction of its five oracle quantities."""

    name = "saba"
    options = {
        "memory_init": Option.choice("zero", ("zero", "full"),
                                     "SAGA memory start: zeros, or every minibatch evaluated at the "
                                     "starting point (counted calls)."),
    }

    def setup(self):
        o, p = self.opts, self.problem
        self.configure()
        size = o.batch_size if o.batch_size is not None else 1
        n_in = p.n_lower if o.batch_size is not None else None
        n_out = p.n_upper if o.batch_size is not None else None
        self.batches_g = _contiguous_batches(n_in, size)
        self.batches_f = _contiguous_batches(n_out, size)
        w_g = np.array([1.0 if b is None else len(b) / n_in for b in self.batches_g])
        w_f = np.array([1.0 if b is None else len(b) / n_out for b in self.batches_f])
        self.memory = [_SagaMemory(w_f, p.dx), _SagaMemory(w_f, p.dy),      # ∇_x F, ∇_y F
                       _SagaMemory(w_g, p.dy), _SagaMemory(w_g, p.dy),      # ∇_y G, Hz
                       _SagaMemory(w_g, p.dx)]                              # Jz
        self.ids = None
        if o.memory_init == "full":
            for b, batch in enumerate(self.batches_f):
                gx_f, gy_f = p.grad_f(self.x, self.y, batch=batch)
                self.memory[0].fill(b, gx_f)
                self.memory[1].fill(b, gy_f)
            for b, batch in enumerate(self.batches_g):
                for mem, value in zip(self.memory[2:], p.fused_g(self.x, self.y, self.z, batch=batch)):
                    mem.fill(b, value)

    def draw_pair(self, t, refresh):
        # one minibatch id per level, uniformly (benchopt's sampler)
        b_g = int(self.rng.integers(len(self.batches_g)))
        b_f = int(self.rng.integers(len(self.batches_f)))
        self.ids = (b_f, b_f, b_g, b_g, b_g)
        batch_g, batch_f = self.batches_g[b_g], self.batches_f[b_f]
        if batch_g is not None:  # deterministic mode: one "minibatch", the full objectives
            self.problem.count_samples(len(batch_g) + len(batch_f))
        return batch_g, batch_f

    def estimates(self, x, y, z, refresh, batch_g, batch_f):
        fresh = super().estimates(x, y, z, refresh, batch_g, batch_f)
        return tuple(mem.estimate(b, q) for mem, b, q in zip(self.memory, self.ids, fresh))
