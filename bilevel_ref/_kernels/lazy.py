"""numba twin of the eigen-space secular solve (LazyCubic and ``eigh`` with backend="numba").

Same steps, same order and same tolerances as
:func:`bilevel_ref.linalg.cubic.secular_eig` (spec §3 steps 3–7), written as
scalar loops: O(d) per Newton iteration, no temporaries.  Sums are sequential
here and pairwise in NumPy, so the two agree to rounding (≈1e-15 relative), not
bitwise.  Compiled lazily on first call (``cache=True``; no fastmath, no
parallel reductions).
"""
from __future__ import annotations

import math

import numba
import numpy as np

__all__ = ["secular_eig"]

_EPS = 2.220446049250313e-16


@numba.njit(cache=True)
def secular_eig(lam_i, c, sigma, tol_hard, maxiter):
    """Return ``(shat, lam, n_iter, hard_case, converged)``; see ``linalg.cubic.secular_eig``."""
    d = lam_i.shape[0]
    lam1 = lam_i[0]
    norm_H = max(abs(lam1), abs(lam_i[d - 1]))
    delta = np.empty(d)
    if lam1 < 0.0:
        lam_low = -lam1
        for i in range(d):
            delta[i] = lam_i[i] - lam1
    else:
        lam_low = 0.0
        for i in range(d):
            delta[i] = lam_i[i]
    c2 = 0.0
    for i in range(d):
        c2 += c[i] * c[i]
    c_norm = math.sqrt(c2)
    shat = np.zeros(d)

    if c_norm == 0.0:
        if lam1 >= 0.0:
            return shat, 0.0, 0, False, True
        shat[0] = lam_low / sigma
        return shat, lam_low, 0, True, True

    if lam1 < 0.0:
        cb2 = 0.0
        for i in range(d):
            if delta[i] <= 1e-12 * norm_H:
                cb2 += c[i] * c[i]
        if math.sqrt(cb2) <= tol_hard * c_norm:
            r2 = 0.0
            for i in range(d):
                if delta[i] > 1e-12 * norm_H:
                    shat[i] = -c[i] / delta[i]
                    r2 += shat[i] * shat[i]
            rest_norm = math.sqrt(r2)
            radius = lam_low / sigma
            if rest_norm <= radius:
                shat[0] = math.sqrt((radius - rest_norm) * (radius + rest_norm))
                return shat, lam_low, 0, True, True
            shat[:] = 0.0

    a1 = abs(lam1)
    t_up = 2.0 * sigma * c_norm / (a1 + math.sqrt(a1 * a1 + 4.0 * sigma * c_norm))
    lo = 0.0
    hi = t_up * (1.0 + 8.0 * _EPS)
    t = min(max(1e-14, 1e-8 * t_up), 0.5 * t_up)
    n_iter = 0
    converged = False
    while True:
        s2 = 0.0
        w2 = 0.0
        for i in range(d):
            r = c[i] / (delta[i] + t)
            s2 += r * r
            w2 += r * r / (delta[i] + t)
        s_norm = math.sqrt(s2)
        lam = lam_low + t
        phi = 1.0 / s_norm - sigma / lam
        if phi < 0.0:
            lo = t
        else:
            hi = t
        if abs(phi) <= 8.0 * _EPS * sigma / lam:
            converged = True
            break
        if n_iter >= maxiter:
            break
        n_iter += 1
        t_new = math.nan
        if math.isfinite(s_norm) and math.isfinite(w2):
            t_new = t - phi / (w2 / s_norm**3 + sigma / lam**2)
        if not (lo < t_new < hi):
            t_new = 0.5 * (lo + hi)
        if abs(t_new - t) <= 4.0 * _EPS * t:
            t = t_new
            converged = True
            break
        t = t_new
    for i in range(d):
        shat[i] = -c[i] / (delta[i] + t)
    return shat, lam_low + t, n_iter, False, converged
