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

* **SOBA**: :math:`\bar h_t = h_t`; :math:`\rho_t = c/\sqrt{t+1}`,
  :math:`\gamma_t = (c/r)/\sqrt{t+1}` (benchopt; ``c = step_size``,
  ``r = outer_ratio``). Per iteration: ``grad_g`` 1, ``hvp_yy_g`` 1, ``cross_g`` 1,
  ``grad_f`` 1.
* **MA-SOBA**: the same y, z steps and a moving average of the hypergradient
  estimate, :math:`\bar h_t = \theta h_t + (1-\theta)\bar h_{t-1}`,
  :math:`\bar h_0 = h_0` (θ is the weight on the new estimate).
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
optionally :math:`J z`) only every N iterations; SOBA is its N = 1 case.

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
from ..options import Option
from ._common import MinibatchSolver

__all__ = ["SingleLoop", "SOBA", "SABA", "MASOBA", "schedule_option"]

_SOBA_STEP_OPTIONS = {
    "step_size": Option.real(0.1, "Base step c of y and z (ρ_0 = c).", low=0),
    "outer_ratio": Option.real(1.0, "Ratio r: the x step is γ_0 = c/r.", low=0),
    "step_y": Option.real(None, "Base y step ρ_0 (default: step_size).", low=0, allow_none=True),
    "step_z": Option.real(None, "Base z step (default: step_size).", low=0, allow_none=True),
    "step_x": Option.real(None, "Base x step γ_0 (default: step_size / outer_ratio).", low=0,
                          allow_none=True),
}


def schedule_option(default):
    return Option.choice(default, ("sqrt", "constant"),
                         "Step schedule: 'sqrt' multiplies every step by 1/sqrt(t+1) "
                         "(benchopt form c/(t+1)^(1/2)); 'constant' keeps them fixed.")


class SingleLoop(MinibatchSolver):
    """Engine of the SOBA family: one code path for SOBA, MA-SOBA, SABA and SO-Lazy-BiO.

    Subclasses call :meth:`configure` in ``setup``.  The iteration follows
    SO-Lazy-BiO's refresh form (spec nbo_lazy §6), of which SOBA is ``N = 1``:

    1. at refresh (``t mod N == 0``): ``z ← z − ρ_z (H z + ∇_y F)`` and
       ``Jz ← J z`` (old z, as SOBA; new z when ``jvp_after_update``);
       otherwise ``Jz ← J z`` in mode ``"hvp"``, cached ``Jz`` in mode ``"hvp+jvp"``;
    2. ``h = ∇_x F + Jz``; ``h̄ = h`` or ``μ h + (1 − μ) h̄`` (momentum);
    3. ``y ← y − ρ_y ∇_y G``;  ``x ← x − γ h̄``.
    """

    requires = ("grad_f", "grad_g", "hvp_yy_g", "cross_g")
    default_maxiter = 1000
    default_gtol = 0.0

    def configure(self, *, step_y, step_z, step_x, schedule, N=1, mode="hvp+jvp", momentum=False,
                  mu=1.0, jvp_after_update=False, batch_size=None, refresh_batch_size=None):
        """Set the engine's parameters (validated options only; no checks here)."""
        self.step_y, self.step_z, self.step_x = step_y, step_z, step_x
        self.decay = 0.5 if schedule == "sqrt" else 0.0
        self.N, self.mode, self.momentum, self.mu = N, mode, momentum, mu
        self.jvp_after_update = jvp_after_update
        self.batch_size = batch_size
        self.refresh_batch_size = batch_size if refresh_batch_size is None else refresh_batch_size
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
            gy_g = p.grad_g(x, y, batch=batch_g)[1]
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
        self.h_bar = h if (self.h_bar is None or not self.momentum) else self.mu * h + (1.0 - self.mu) * self.h_bar
        self.y = y - (scale * self.step_y) * gy_g
        self.x = x - (scale * self.step_x) * self.h_bar
        # sqrt of the dot product: what np.linalg.norm computes for a 1-D array, without its overhead
        return {"grad_est": math.sqrt(float(self.h_bar @ self.h_bar))}


class _SOBASteps(SingleLoop):
    """Step options of SOBA, SABA and MA-SOBA (c, outer_ratio, overrides)."""

    options = dict(_SOBA_STEP_OPTIONS)

    def soba_steps(self):
        o = self.opts
        return {"step_y": o.step_size if o.step_y is None else o.step_y,
                "step_z": o.step_size if o.step_z is None else o.step_z,
                "step_x": o.step_size / o.outer_ratio if o.step_x is None else o.step_x,
                "schedule": o.schedule}


@register
class SOBA(_SOBASteps):
    """SOBA: simultaneous SGD steps on y, on the linear-system variable z and on x."""

    name = "soba"
    options = {"schedule": schedule_option("sqrt")}

    def setup(self):
        self.configure(**self.soba_steps(), batch_size=self.opts.batch_size)


@register
class MASOBA(_SOBASteps):
    """MA-SOBA: SOBA with a moving average of the hypergradient estimate."""

    name = "ma_soba"
    aliases = ("masoba",)
    options = {
        "schedule": schedule_option("constant"),
        "theta": Option.real(0.8, "Weight θ of the new estimate in the moving average.", low=0, high=1),
    }

    def setup(self):
        self.configure(**self.soba_steps(), momentum=True, mu=self.opts.theta,
                       batch_size=self.opts.batch_size)


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
class SABA(_SOBASteps):
    """SABA: SOBA with SAGA variance reduction of its five oracle quantities."""

    name = "saba"
    options = {
        "schedule": schedule_option("constant"),
        "memory_init": Option.choice("zero", ("zero", "full"),
                                     "SAGA memory start: zeros, or every minibatch evaluated at the "
                                     "starting point (counted calls)."),
    }

    def setup(self):
        o, p = self.opts, self.problem
        self.configure(**self.soba_steps(), batch_size=o.batch_size)
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
