r"""Per-output, per-dtype tolerances from the error amplification of each output.

For an output with amplification A (:mod:`~bilevel_ref.crosscheck.reference`)
and a candidate computing in precision ε (float64: 2.2e-16, float32: 1.2e-7),

.. math::

    \mathrm{rtol} = \mathrm{SAFETY}\cdot A\cdot\varepsilon \quad(\text{float32: at most } 10^{-4}),
    \qquad \mathrm{atol} = 0 .

Calibration on an independent re-implementation in JAX, run in float64 and in
float32 on every case (``tests/test_crosscheck_jax.py``): the observed
relative error is at most :data:`WORST` ≈ 3 times ε·A (median far below), so
SAFETY = 20 leaves a margin of at least 6 in float64.  In float32 the
tolerance is capped at :data:`FLOAT32_MAX_RTOL` = 1e-4, so a 1 % error
fails everywhere; an output whose worst-case honest float32 error
WORST·ε·A exceeds that cap cannot be told apart from a 1e-4 bug in float32
(e.g. the penalty Hessian at λ ≥ 10³, whose S₁ − λS₂ loses about
log₁₀(λ·κ) of float32's seven digits): the manifest records ``rtol: null``
with the reason, and :func:`~bilevel_ref.crosscheck.check` reports that
output ``n/a`` for float32 candidates (check it in float64) instead of
accepting it with a meaningless tolerance.  Because A carries the λ-fold
cancellation and the condition numbers, the float64 tolerances grow with λ
and κ instead of being flat.
"""
from __future__ import annotations

import math

import numpy as np

__all__ = ["EPS", "SAFETY", "WORST", "FLOAT32_MAX_RTOL", "tolerance", "tolerances", "TOLERANCE_MODEL"]

EPS = {"float64": float(np.finfo(np.float64).eps), "float32": float(np.finfo(np.float32).eps)}
#: multiplier on ε·A (calibrated on the JAX re-implementation, see the module docstring)
SAFETY = 20.0
#: the largest observed ratio of an honest implementation's relative error to ε·A (float64 and float32)
WORST = 3.0
#: largest float32 rtol we accept; beyond it the float32 tolerance is declared unsupported
FLOAT32_MAX_RTOL = 1e-4

TOLERANCE_MODEL = ("rtol = SAFETY * amplification * eps(dtype), atol = 0, SAFETY = 20, eps(float64) = 2.22e-16, "
                   "eps(float32) = 1.19e-7; amplification = kappa + c >= 1 with kappa the largest condition number "
                   "of the linear systems / eigenproblems the output goes through and c its cancellation ratio "
                   "max_k sum_i |t_i|_k / max_k |sum_i t_i|_k (grows like lam for the penalty quantities). "
                   "float32: rtol is capped at 1e-4, and recorded as null with a reason when the worst honest "
                   "float32 error 3 * eps * amplification exceeds 1e-4 (float32 cannot resolve the output; "
                   "check it in float64).")


def tolerance(amplification, dtype):
    """``{"dtype", "rtol", "atol"}`` for one output (``rtol`` None + ``reason`` if the dtype cannot resolve it)."""
    if not (amplification >= 1 and math.isfinite(amplification)):
        raise ValueError(f"amplification must be a finite number >= 1, got {amplification!r}")
    rtol = float(f"{SAFETY * amplification * EPS[dtype]:.2g}")   # two significant digits
    if dtype == "float32":
        worst = WORST * amplification * EPS[dtype]
        if worst > FLOAT32_MAX_RTOL:
            return {"dtype": dtype, "rtol": None,
                    "reason": f"float32 cannot resolve this output: worst honest float32 error {worst:.1e} > "
                              f"{FLOAT32_MAX_RTOL:.0e} (amplification {amplification:.3g}); check it in float64"}
        rtol = min(rtol, FLOAT32_MAX_RTOL)
    return {"dtype": dtype, "rtol": rtol, "atol": 0.0}


def tolerances(amplification):
    """The manifest's ``tolerances`` object from ``{output: amplification}``."""
    out = {}
    for name, a in sorted(amplification.items()):
        a = float(f"{max(1.0, a):.3g}")
        out[name] = {"amplification": a, "float64": tolerance(a, "float64"), "float32": tolerance(a, "float32")}
    return out
