r"""numba conjugate gradient for H v = b with a jitted Hessian–vector product.

The loop of the NumPy reference :func:`bilevel_ref.linalg.cg.cg` around the
same arithmetic, :func:`~bilevel_ref.linalg.cg.cg_start`,
:func:`~bilevel_ref.linalg.cg.cg_running` and :func:`~bilevel_ref.linalg.cg.cg_step`
(compiled from their source), with ``hvp_fn(y, v, params)`` from the
jitted-oracle convention of :mod:`bilevel_ref._kernels.agd` (H = ∇²_yy g(x, y))
as the matvec: same iterates, same counts (one product per iteration plus one
for the initial residual when ``x0`` is given), same stopping rule.

Compiled under the policy of :mod:`bilevel_ref._jit` (no fastmath, no parallel
reductions); ``_cg`` takes a jitted oracle as an argument and is not cached on disk.
No method calls this kernel (the methods' compiled CG is the AID kernel of
:mod:`bilevel_ref._kernels.loops`); it serves problems written to the
``numba_lower_oracles`` convention (docs: "Bring your own problem").
"""
from __future__ import annotations

import math

import numpy as np

from .. import _jit
from ..linalg.cg import CGResult, cg_running, cg_start, cg_step
from .._validation import as_vector, check_int, check_nonnegative

__all__ = ["cg"]


# cache=False: a kernel taking a jitted oracle as an argument is keyed by that dispatcher's
# identity, so numba's on-disk cache never hits in a new process (it only piles up files).
@_jit.jit(cache=False)
def _cg(hvp_fn, y, params, b, x0, use_x0, maxiter, rtol, atol):
    n_matvec = 0
    if use_x0:
        x = x0.copy()
        r = b - hvp_fn(y, x, params)
        n_matvec += 1
    else:
        x = np.zeros_like(b)
        r = b.copy()
    p, rr, threshold = cg_start(b, r, rtol, atol)
    k = 0
    while cg_running(k, maxiter, rr, threshold):
        hp = hvp_fn(y, p, params)
        n_matvec += 1
        x, r, p, rr, ok = cg_step(x, r, p, rr, hp)
        if not ok:
            break
        k += 1
    return x, n_matvec, k, math.sqrt(rr), threshold


def cg(hvp_fn, y, params, b, x0=None, maxiter=None, rtol=1e-10, atol=0.0):
    """numba twin of :func:`bilevel_ref.linalg.cg.cg` with matvec v ↦ ``hvp_fn(y, v, params)``.

    Returns
    -------
    CGResult
        Same fields and values as the reference.
    """
    b = as_vector(b, "b")
    y = as_vector(y, "y")
    maxiter = b.shape[0] if maxiter is None else check_int(maxiter, "maxiter", minimum=0)
    rtol = check_nonnegative(rtol, "rtol")
    atol = check_nonnegative(atol, "atol")
    use_x0 = x0 is not None
    x0 = as_vector(x0, "x0", b.shape[0]) if use_x0 else np.zeros_like(b)
    x, n_matvec, k, res, threshold = _cg(hvp_fn, y, params, b, x0, use_x0, maxiter, rtol, atol)
    return CGResult(x, int(n_matvec), int(k), float(res), bool(res <= threshold))
