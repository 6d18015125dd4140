r"""Per-output, per-dtype tolerances from a first-order rounding-error model of each output.

Model.  An output's reference (:mod:`~bilevel_ref.crosscheck.reference`)
comes with three numbers computed from the case's own data: κ, the largest
condition number of the linear systems / eigenproblems it goes through; c,
the cancellation ratio of its defining sum Σᵢ tᵢ,
``max_k Σᵢ|tᵢ|_k / max_k |Σᵢ tᵢ|_k``; and the coupling κ·c when the
cancelling terms are second derivatives at inner solutions *and* those
derivatives vary with y (otherwise 0).  The first-order relative error of a
backward-stable implementation in precision ε (unit roundoff u = ε/2) is

.. math::

    e \lesssim \varepsilon A,\qquad A = \kappa + \tfrac12\,(c + \mathrm{coupling}) :

* κε: a stable solve has backward error of a few u, amplified by κ;
* cε/2 = u·c: each term tᵢ is rounded at least once (relative error ≤ u), and
  these errors do not cancel, so the sum carries u·Σ|tᵢ| = u·c·|Σ tᵢ| —
  for the penalty gradient G = ∇ₓf + λ(∇ₓg(y) − ∇ₓg(w)) the terms are
  λ∇ₓg(y) and λ∇ₓg(w), both ~λ‖∇ₓg‖ while ‖G‖ = O(1) at the inner minimisers,
  for the penalty Hessian S₁ and λS₂ (both O(λ), H → ∇²φ = O(1));
* coupling·ε/2 = u·κ·c: the computed inner solutions carry a relative error
  ~κu, which moves the O(λ) terms by κu relative when their second
  derivatives depend on y (logistic); for quadratics they are data.

The previous model counted c at weight 1 (the bound for an error of ε per term)
and had to be 3× above the measurements; u·c is the actual first-order bound.

Tolerances: rtol = SAFETY·ε·A (two significant digits), atol = 0, SAFETY = 20.
Calibration (``tests/test_crosscheck_jax.py``, an independent JAX
re-implementation in float64 and float32 on every case): the measured error is
at most :data:`WORST` = 2·ε·A (1.9: ``cubic-pd-6/s``, A = 2.8; median far
below), so an honest implementation sits below rtol/10 everywhere.  Where A is
large the rounding of the cancelling terms dominates and the model is a bound:
for A ≥ 100 the measured error is at most 0.7·ε·A.

float32.  The tolerance is capped at :data:`FLOAT32_MAX_RTOL` = 1e-4 so that
a 1 % error fails everywhere.  An output is supported in float32 when its
first-order bound ε₃₂·A is at most 1e-4/:data:`FLOAT32_MARGIN` (= 3.3e-5): its
honest error (≤ 0.7·ε₃₂·A in that regime, A ≈ 280) then stays below 1e-4/4.  Otherwise
the manifest records ``rtol: null``, the bound, the cancellation ratio and the
float32 error measured on the JAX re-implementation (:data:`MEASURED_FLOAT32`)
as the reason, and :func:`~bilevel_ref.crosscheck.check` reports it ``n/a``
for float32 candidates.  This happens exactly for the exact-minimiser penalty
quantities at large λ: G(y*_λ, y*) → ∇φ and H → ∇²φ stay O(1) while their
terms grow like λ, so c ≈ λ‖∇ₓg‖/‖∇φ‖ (resp. λ‖S₂‖/‖∇²φ‖) and u·c reaches
1e-4/3 at c ≈ 560 — λ ≈ 10³ here.  The estimator versions at inexact (y, w)
with ‖y − w‖ = O(0.1) have G = O(λ) and keep float32 tolerances at λ = 10⁴.
"""
from __future__ import annotations

import math

import numpy as np

__all__ = ["EPS", "SAFETY", "WORST", "FLOAT32_MAX_RTOL", "FLOAT32_MARGIN", "MEASURED_FLOAT32", "amplification",
           "tolerance", "tolerances", "TOLERANCE_MODEL"]

EPS = {"float64": float(np.finfo(np.float64).eps), "float32": float(np.finfo(np.float32).eps)}
#: multiplier on ε·A (calibrated on the JAX re-implementation, see the module docstring)
SAFETY = 20.0
#: the largest observed ratio of an honest implementation's relative error to ε·A (float64 and float32)
WORST = 2.0
#: largest float32 rtol we accept; beyond it the float32 tolerance is declared unsupported
FLOAT32_MAX_RTOL = 1e-4
#: float32 is supported when the first-order bound ε₃₂·A ≤ FLOAT32_MAX_RTOL / FLOAT32_MARGIN
FLOAT32_MARGIN = 3.0

#: relative float32 error of the JAX re-implementation on the outputs float32 cannot resolve
#: (``BILEVEL_REF_SLOW=1 pytest tests/test_crosscheck_jax.py`` checks these figures to a factor 3)
MEASURED_FLOAT32 = {
    ("quadratic-lam1e3-4x5", "hess_penalty"): 3.0e-5,
    ("quadratic-lam1e3-4x5", "penalty_hess_est"): 3.0e-5,
    ("quadratic-lam1e4-4x5", "grad_penalty"): 1.0e-4,
    ("quadratic-lam1e4-4x5", "hess_penalty"): 2.9e-4,
    ("quadratic-lam1e4-4x5", "penalty_hess_est"): 2.9e-4,
    ("nonconvex-y-4x5", "grad_penalty"): 2.2e-5,
    ("nonconvex-y-4x5", "hess_penalty"): 4.6e-5,
    ("nonconvex-y-4x5", "penalty_hess_est"): 4.6e-5,
}

TOLERANCE_MODEL = ("first-order rounding-error model: honest relative error <= eps * A with "
                   "A = kappa + (c + coupling)/2 (kappa: largest condition number of the systems/eigenproblems the output goes through; c: "
                   "cancellation ratio max_k sum_i |t_i|_k / max_k |sum_i t_i|_k of its defining sum, each term "
                   "rounded at unit roundoff u = eps/2; coupling = kappa * c when the cancelling terms are second "
                   "derivatives at inner solutions that vary with y, else 0). rtol = 20 * eps(dtype) * A, atol = 0, "
                   "eps(float64) = 2.22e-16, eps(float32) = 1.19e-7. float32: rtol capped at 1e-4; recorded as null "
                   "with a reason (bound, c, measured float32 error) when eps32 * A > 1e-4 / 3 (float32 cannot "
                   "resolve the output with margin; check it in float64).")


def amplification(parts):
    """A = κ + (c + coupling)/2 (≥ 1) from ``{"conditioning", "cancellation", "coupling"}``."""
    k, c, kc = (float(parts.get(key, 0.0)) for key in ("conditioning", "cancellation", "coupling"))
    if not all(math.isfinite(v) and v >= 0 for v in (k, c, kc)):
        raise ValueError(f"amplification parts must be finite numbers >= 0, got {parts!r}")
    return max(1.0, k + 0.5 * (c + kc))


def tolerance(amplification, dtype, cancellation=None, measured=None):
    """``{"dtype", "rtol", "atol"}`` for one output (``rtol`` None + ``reason`` if the dtype cannot resolve it).

    ``cancellation`` and ``measured`` (the float32 error of the JAX re-implementation) only enter the reason.
    """
    if not (amplification >= 1 and math.isfinite(amplification)):
        raise ValueError(f"amplification must be a finite number >= 1, got {amplification!r}")
    if dtype not in EPS:
        raise ValueError(f"dtype must be one of {sorted(EPS)}, got {dtype!r}")
    rtol = float(f"{SAFETY * amplification * EPS[dtype]:.2g}")   # two significant digits
    if dtype == "float32":
        bound = amplification * EPS[dtype]
        if bound > FLOAT32_MAX_RTOL / FLOAT32_MARGIN:
            why = (f" (a difference of terms {cancellation:.3g} times larger than the result: rounding them "
                   f"alone costs up to u*c = {0.5 * EPS[dtype] * cancellation:.1e})" if cancellation else "")
            seen = f"; measured float32 error of an honest (JAX) implementation {measured:.1e}" if measured else ""
            return {"dtype": dtype, "rtol": None,
                    "reason": f"float32 cannot resolve this output to {FLOAT32_MAX_RTOL:.0e} with margin: first-order "
                              f"error bound eps32*A = {bound:.1e} > {FLOAT32_MAX_RTOL:.0e}/{FLOAT32_MARGIN:g}"
                              f"{why}{seen}; check it in float64"}
        rtol = min(rtol, FLOAT32_MAX_RTOL)
    return {"dtype": dtype, "rtol": rtol, "atol": 0.0}


def tolerances(parts, case=None):
    """The manifest's ``tolerances`` object from ``{output: {"conditioning", "cancellation", "coupling"}}``
    (a bare number is taken as A itself); ``case`` names the case for :data:`MEASURED_FLOAT32`."""
    out = {}
    for name, p in sorted(parts.items()):
        if isinstance(p, dict):
            a = float(f"{amplification(p):.3g}")
            entry = {"amplification": a, **{k: float(f"{float(p.get(k, 0.0)):.3g}")
                                             for k in ("conditioning", "cancellation", "coupling")}}
            c = entry["cancellation"]
        else:
            a, c = float(f"{max(1.0, float(p)):.3g}"), None
            entry = {"amplification": a}
        entry["float64"] = tolerance(a, "float64")
        entry["float32"] = tolerance(a, "float32", c, MEASURED_FLOAT32.get((case, name)))
        out[name] = entry
    return out
