r"""Method hot loops compiled over a problem's compiled oracles (``backend="numba"``).

Each kernel is the NumPy reference it names, written once more with the
oracles of :class:`~bilevel_ref._kernels.oracles.CompiledOracles` (same steps,
same order, same early exits, same returned counts):

``penalty_step``
    One penalty iteration, :func:`bilevel_ref.hypergrad.penalty.penalty_iteration`:
    the inner loops (K AGD steps on :math:`f + \lambda g` from y and K on
    :math:`g` from w, with the optional gradient-norm early exit; or F2BA's GD
    loops), :math:`G = \nabla_x f(x, y) + \lambda(\nabla_x g(x, y) - \nabla_x g(x, w))`
    and, for FSBA/LFSBA refreshes, the Schur-complement Hessian estimate
    (Cholesky by LAPACK as in the reference, triangular solves written out; a
    failed factorisation or non-finite block is reported, not raised, and
    the caller reruns the NumPy reference for its error).
``minimax_inner``, ``minimax_step``
    MCN's AGD on :math:`-f(x, \cdot)`, :math:`G = \nabla_x f`, and on refresh
    iterations the Schur-complement Hessian of P.
``aid``, ``itd``
    AID's lower-level GD steps + CG (or Neumann) + :math:`\nabla_x f - Jv`,
    the CG arithmetic being the reference's own :func:`~bilevel_ref.linalg.cg.cg_start`,
    :func:`~bilevel_ref.linalg.cg.cg_running` and :func:`~bilevel_ref.linalg.cg.cg_step`
    (compiled, called by name); ITD's forward steps and reverse pass.
``driver_trace``
    The reference drivers of :mod:`bilevel_ref.complexity.drivers` (GD; cubic
    Newton with eigh and the compiled secular solve of
    :mod:`bilevel_ref.linalg.cubic._core`) on ``grad_phi``/``hess_phi``.

Every kernel is built by a factory per :class:`CompiledOracles` (oracles bound
as compile-time constants, see :mod:`bilevel_ref._kernels.oracles`) and
memoised.  The Python wrappers below count the kernel's calls through
:meth:`bilevel_ref.OracleCounter.count` and return None when the caller must
run the NumPy reference instead (budget too small for the whole kernel,
non-finite results, failed factorisation).
"""
from __future__ import annotations

import math

import numpy as np

from .. import _jit
from ..linalg.cg import cg_running, cg_start, cg_step
from ..linalg.cubic import _core

__all__ = ["penalty_step", "minimax_inner", "minimax_step", "aid", "itd", "driver_trace", "count_calls",
           "cholesky_quadratic_form"]

_KERNELS = {}


def _kernel(name, oracles, fields, build):
    """The kernel ``name`` over the oracle ``fields`` of ``oracles`` (built once per function set)."""
    funcs = tuple(getattr(oracles, f) for f in fields)
    key = (name, funcs)
    if key not in _KERNELS:
        _KERNELS[key] = build(*funcs)
    return _KERNELS[key]


def count_calls(problem, calls):
    """Report ``{kind: n}`` through ``problem.count`` (a no-op on a bare, uncounted problem)."""
    count = getattr(problem, "count", None)
    if count is not None:
        for kind, n in calls.items():
            if n:
                count(kind, n)


def _fits(problem, calls):
    fits = getattr(problem, "fits_budget", None)
    return True if fits is None else fits(calls)


def _finite(*arrays):
    return all(math.isfinite(float(np.add.reduce(a, axis=None))) for a in arrays)


# ---------------------------------------------------------------------------
# shared compiled pieces
# ---------------------------------------------------------------------------
@_jit.jit
def cholesky_quadratic_form(B, D):
    """(B D⁻¹ Bᵀ, ok) by a Cholesky factorisation D = LLᵀ (lower triangle of D read);
    ok is False when D is not positive definite or B, D hold non-finite values."""
    n = D.shape[0]
    m = B.shape[0]
    out = np.zeros((m, m))
    if not (np.isfinite(D).all() and np.isfinite(B).all()):
        return out, False
    # LAPACK's potrf, as scipy.linalg.cholesky (lower) in the reference; it reads D's lower triangle
    Dl = np.tril(D)
    Dl = Dl + np.tril(Dl, -1).T
    try:
        L = np.linalg.cholesky(Dl)
    except Exception:  # noqa: BLE001 -- not positive definite
        return out, False
    # W = L⁻¹ Bᵀ (n × m), forward substitution column by column
    W = np.empty((n, m))
    for c in range(m):
        for i in range(n):
            t = B[c, i]
            for k in range(i):
                t -= L[i, k] * W[k, c]
            W[i, c] = t / L[i, i]
    WT = np.ascontiguousarray(W.T)
    out = WT @ W
    return 0.5 * (out + out.T), True


# ---------------------------------------------------------------------------
# penalty loops (FSBA, LFSBA, F2BA with AGD, AccF2BA)
# ---------------------------------------------------------------------------
@_jit.jit
def _agd_update(y, z, g, eta, theta):
    """In place: y_next = z − ηg, z ← y_next + θ(y_next − y), y ← y_next (linalg.agd's step)."""
    for i in range(y.shape[0]):
        y_next = z[i] - eta * g[i]
        z[i] = y_next + theta * (y_next - y[i])
        y[i] = y_next


def _build_penalty_hessian(hess_f, hess_g):
    @_jit.jit(cache="closure")
    def kernel(x, y, w, lam, data):
        A_f, B_f, D_f = hess_f(x, y, data)
        A_g, B_g, D_g = hess_g(x, y, data)
        A_g2, B_g2, D_g2 = hess_g(x, w, data)
        B_h = B_f + lam * B_g
        Q1, ok1 = cholesky_quadratic_form(B_h, D_f + lam * D_g)
        S1 = (A_f + lam * A_g) - Q1
        Q2, ok2 = cholesky_quadratic_form(B_g2, D_g2)
        S2 = A_g2 - Q2
        H = S1 - lam * S2
        return 0.5 * (H + H.T), ok1 and ok2

    return kernel


def _build_penalty_first_order(grad_x_f, grad_y_f, grad_x_g, grad_y_g):
    @_jit.jit(cache="closure")
    def kernel(x, y0, w0, lam, data, agd, eta_y, theta_y, eta_w, theta_w, steps, tol):
        has_tol = tol == tol
        y = y0.copy()
        w = w0.copy()
        n_y = steps
        n_w = steps
        if agd:  # penalty_inner_solve; the AGD updates elementwise in place (the same arithmetic)
            z = y.copy()
            for k in range(steps):
                gf = grad_y_f(x, z, data)
                gg = grad_y_g(x, z, data)
                for i in range(gf.shape[0]):
                    gf[i] = gf[i] + lam * gg[i]
                if has_tol and math.sqrt(np.dot(gf, gf)) <= tol:
                    y[:] = z
                    n_y = k + 1
                    break
                _agd_update(y, z, gf, eta_y, theta_y)
            z = w.copy()
            for k in range(steps):
                gz = grad_y_g(x, z, data)
                if has_tol and math.sqrt(np.dot(gz, gz)) <= tol:
                    w[:] = z
                    n_w = k + 1
                    break
                _agd_update(w, z, gz, eta_w, theta_w)
        else:  # penalty_inner_gd (step eta_y on f/λ + g and on g)
            for _ in range(steps):
                y = y - eta_y * (grad_y_f(x, y, data) / lam + grad_y_g(x, y, data))
            for _ in range(steps):
                w = w - eta_y * grad_y_g(x, w, data)
        G = grad_x_f(x, y, data) + lam * (grad_x_g(x, y, data) - grad_x_g(x, w, data))
        return y, w, G, n_y, n_w

    return kernel


def _build_penalty_second_order(grad_x_f, grad_y_f, grad_x_g, grad_y_g, hess_f, hess_g):
    first = _build_penalty_first_order(grad_x_f, grad_y_f, grad_x_g, grad_y_g)
    hessian = _build_penalty_hessian(hess_f, hess_g)

    @_jit.jit(cache="closure")
    def kernel(x, y0, w0, lam, data, eta_y, theta_y, eta_w, theta_w, steps, tol):
        y, w, G, n_y, n_w = first(x, y0, w0, lam, data, True, eta_y, theta_y, eta_w, theta_w, steps, tol)
        H, ok = hessian(x, y, w, lam, data)
        return y, w, G, H, n_y, n_w, ok

    return kernel


def penalty_step(problem, oracles, x, y, w, lam, steps, eta_y, theta_y, eta_w, theta_w, tol, *, agd=True,
                 hessian=False):
    """Fused penalty iteration: the inner loops (AGD as :func:`penalty_inner`, or GD with step
    ``eta_y`` as :func:`penalty_inner_gd`), G, and with ``hessian`` H (FSBA, LFSBA; F2BA,
    AccF2BA without).  Returns ``(y, w, G, H or None)``, or None for the NumPy path."""
    calls = {"grad_f": steps + 1, "grad_g": 2 * steps + 2}
    if hessian:
        calls.update(hess_f=1, hess_g=2)
    if not _fits(problem, calls):
        return None
    tol = math.nan if tol is None else float(tol)
    if hessian:
        kernel = _kernel("penalty_second_order", oracles, ("grad_x_f", "grad_y_f", "grad_x_g", "grad_y_g",
                                                           "hess_f", "hess_g"), _build_penalty_second_order)
        y, w, G, H, n_y, n_w, ok = kernel(x, y, w, float(lam), oracles.data, float(eta_y), float(theta_y),
                                          float(eta_w), float(theta_w), int(steps), tol)
        if not ok or not _finite(y, w, G, H):
            return None
    else:
        kernel = _kernel("penalty_first_order", oracles, ("grad_x_f", "grad_y_f", "grad_x_g", "grad_y_g"),
                         _build_penalty_first_order)
        y, w, G, n_y, n_w = kernel(x, y, w, float(lam), oracles.data, bool(agd), float(eta_y), float(theta_y),
                                   float(eta_w), float(theta_w), int(steps), tol)
        H = None
        if not _finite(y, w, G):
            return None
    calls = {"grad_f": n_y + 1, "grad_g": n_y + n_w + 2}
    if hessian:
        calls.update(hess_f=1, hess_g=2)
    count_calls(problem, calls)
    return y, w, G, H


# ---------------------------------------------------------------------------
# minimax (MCN, LMCN)
# ---------------------------------------------------------------------------
def _build_minimax_inner(grad_x_f, grad_y_f):
    @_jit.jit(cache="closure")
    def kernel(x, y0, data, eta, theta, steps, tol):
        has_tol = tol == tol
        y = y0.copy()
        z = y.copy()
        n = steps
        for k in range(steps):
            gz = -grad_y_f(x, z, data)
            if has_tol and math.sqrt(np.dot(gz, gz)) <= tol:
                y[:] = z
                n = k + 1
                break
            _agd_update(y, z, gz, eta, theta)
        return y, n, grad_x_f(x, y, data)

    return kernel


def minimax_inner(problem, oracles, x, y, steps, eta, theta, tol):
    """Compiled MCN steps 1–2: AGD on −f(x, ·) from y, then G = ∇_x f(x, y); ``(y, G)`` or None."""
    if not _fits(problem, {"grad_f": steps + 1}):
        return None
    kernel = _kernel("minimax_inner", oracles, ("grad_x_f", "grad_y_f"), _build_minimax_inner)
    y, n, G = kernel(x, y, oracles.data, eta, theta, int(steps), math.nan if tol is None else float(tol))
    if not _finite(y, G):
        return None
    count_calls(problem, {"grad_f": n + 1})
    return y, G


def _build_minimax_hessian(hess_f):
    @_jit.jit(cache="closure")
    def kernel(x, y, data):
        A, B, D = hess_f(x, y, data)
        Q, ok = cholesky_quadratic_form(B, -D)
        H = A + Q
        return 0.5 * (H + H.T), ok

    return kernel


def _build_minimax_step(grad_x_f, grad_y_f, hess_f):
    inner = _build_minimax_inner(grad_x_f, grad_y_f)
    hessian = _build_minimax_hessian(hess_f)

    @_jit.jit(cache="closure")
    def kernel(x, y0, data, eta, theta, steps, tol):
        y, n, G = inner(x, y0, data, eta, theta, steps, tol)
        H, ok = hessian(x, y, data)
        return y, n, G, H, ok

    return kernel


def minimax_step(problem, oracles, x, y, steps, eta, theta, tol, hessian):
    """Fused MCN iteration: :func:`minimax_inner` and, with ``hessian``, :func:`minimax_hessian`;
    ``(y, G, H or None)`` or None for the NumPy path."""
    if not hessian:
        out = minimax_inner(problem, oracles, x, y, steps, eta, theta, tol)
        return None if out is None else (out[0], out[1], None)
    if not _fits(problem, {"grad_f": steps + 1, "hess_f": 1}):
        return None
    kernel = _kernel("minimax_step", oracles, ("grad_x_f", "grad_y_f", "hess_f"), _build_minimax_step)
    y, n, G, H, ok = kernel(x, y, oracles.data, eta, theta, int(steps), math.nan if tol is None else float(tol))
    if not ok or not _finite(y, G, H):
        return None
    count_calls(problem, {"grad_f": n + 1, "hess_f": 1})
    return y, G, H


# ---------------------------------------------------------------------------
# AID and ITD (deterministic mode)
# ---------------------------------------------------------------------------
def _build_aid(grad_x_f, grad_y_f, grad_y_g, hvp_yy_g, cross_g):
    @_jit.jit(cache="closure")
    def kernel(x, y0, v0, use_v0, data, step_y, inner_steps, linsys_steps, rtol, neumann, eta):
        y = y0.copy()
        for _ in range(inner_steps):
            y = y - step_y * grad_y_g(x, y, data)
        gx = grad_x_f(x, y, data)
        gy = grad_y_f(x, y, data)
        n_matvec = 0
        if neumann:
            v = v0.copy() if use_v0 else eta * gy
            for _ in range(linsys_steps):
                v = v - eta * hvp_yy_g(x, y, v, data) + eta * gy
            n_matvec = linsys_steps
        else:
            # CG on H v = gy: the loop of linalg.cg.cg around its cg_start / cg_running / cg_step
            if use_v0:
                v = v0.copy()
                r = gy - hvp_yy_g(x, y, v, data)
                n_matvec += 1
            else:
                v = np.zeros_like(gy)
                r = gy.copy()
            p, rr, threshold = cg_start(gy, r, rtol, 0.0)
            k = 0
            while cg_running(k, linsys_steps, rr, threshold):
                hp = hvp_yy_g(x, y, p, data)
                n_matvec += 1
                v, r, p, rr, ok = cg_step(v, r, p, rr, hp)
                if not ok:
                    break
                k += 1
        d = gx - cross_g(x, y, v, data)
        return y, v, d, n_matvec

    return kernel


def aid(problem, oracles, x, y, v0, step_y, inner_steps, linsys_steps, rtol, neumann, eta):
    """Compiled AID iteration (lower GD steps, then :func:`~bilevel_ref.hypergrad.aid_cg` or
    :func:`~bilevel_ref.hypergrad.aid_neumann`); ``(y, v, d)`` or None."""
    most = linsys_steps + (v0 is not None)
    if not _fits(problem, {"grad_g": inner_steps, "grad_f": 1, "hvp_yy_g": most, "cross_g": 1}):
        return None
    kernel = _kernel("aid", oracles, ("grad_x_f", "grad_y_f", "grad_y_g", "hvp_yy_g", "cross_g"), _build_aid)
    use_v0 = v0 is not None
    y, v, d, n_matvec = kernel(x, y, v0 if use_v0 else y, use_v0, oracles.data, float(step_y),
                               int(inner_steps), int(linsys_steps), float(rtol), bool(neumann),
                               float(eta) if neumann else 0.0)
    if not _finite(y, v, d):
        return None
    count_calls(problem, {"grad_g": inner_steps, "grad_f": 1, "hvp_yy_g": n_matvec, "cross_g": 1})
    return y, v, d


def _build_itd(grad_x_f, grad_y_f, grad_y_g, hvp_yy_g, cross_g):
    @_jit.jit(cache="closure")
    def kernel(x, y0, steps, alpha, first, data):
        ys = np.empty((steps + 1, y0.shape[0]))
        ys[0] = y0
        for t in range(steps):
            ys[t + 1] = ys[t] - alpha * grad_y_g(x, ys[t], data)
        yT = ys[steps].copy()
        d = grad_x_f(x, yT, data)
        v = grad_y_f(x, yT, data)
        for t in range(steps - 1, first - 1, -1):
            yt = ys[t].copy()
            d = d - alpha * cross_g(x, yt, v, data)
            if t > first:
                v = v - alpha * hvp_yy_g(x, yt, v, data)
        return yT, d

    return kernel


def itd(problem, oracles, x, y0, steps, alpha, truncate):
    """Compiled :func:`~bilevel_ref.hypergrad.itd_hypergradient`; ``(y_T, d)`` or None."""
    first = 0 if truncate is None else max(0, steps - truncate)
    calls = {"grad_g": steps, "grad_f": 1, "cross_g": steps - first, "hvp_yy_g": max(steps - first - 1, 0)}
    if not _fits(problem, calls):
        return None
    kernel = _kernel("itd", oracles, ("grad_x_f", "grad_y_f", "grad_y_g", "hvp_yy_g", "cross_g"), _build_itd)
    yT, d = kernel(x, np.asarray(y0, dtype=float), int(steps), float(alpha), int(first), oracles.data)
    if not _finite(yT, d):
        return None
    count_calls(problem, calls)
    return yT, d


# ---------------------------------------------------------------------------
# reference drivers (complexity.drivers): GD and cubic Newton on exact ∇φ, ∇²φ
# ---------------------------------------------------------------------------
@_jit.jit
def _met(gn, lam, eps, measure, rho):
    """complexity.trace.target_met for one iterate: measure 0 norm, 1 sosp, 2 minimax, 3 sq."""
    if measure == 3:
        return gn * gn <= eps
    if measure == 0:
        return gn <= eps
    return gn <= eps and lam >= -math.sqrt(rho * eps)


def _build_driver_gd(grad_phi):
    @_jit.jit(cache="closure")
    def kernel(x0, data, step, stop_eps, has_stop, maxiter, measure, rho):
        size = min(maxiter + 1, 4096)
        gns = np.empty(size)
        x = x0.copy()
        n = 0
        for _ in range(maxiter + 1):
            g = grad_phi(x, data)
            gn = math.sqrt(np.dot(g, g))
            if n == size:  # grow the record geometrically (maxiter may be 10**7)
                size = min(2 * size, maxiter + 1)
                grown = np.empty(size)
                grown[:n] = gns
                gns = grown
            gns[n] = gn
            n += 1
            if has_stop and _met(gn, math.nan, stop_eps, measure, rho):
                break
            if n > maxiter:
                break
            x = x + (-step * g)
        return x, gns[:n].copy(), np.full(n, math.nan)

    return kernel


def _build_driver(grad_phi, hess_phi):
    @_jit.jit(cache="closure")
    def kernel(x0, data, cubic, step, M, stop_eps, has_stop, maxiter, need_hess, measure, rho,
               tol_hard, maxiter_secular):
        size = min(maxiter + 1, 4096)
        gns = np.empty(size)
        lams = np.empty(size)
        x = x0.copy()
        n = 0
        sigma = M / 2.0
        for _ in range(maxiter + 1):
            g = grad_phi(x, data)
            gn = math.sqrt(np.dot(g, g))
            lam = math.nan
            if need_hess or cubic:
                H = hess_phi(x, data)
                lam_i, Q = np.linalg.eigh(H)
                lam = lam_i[0]
            if n == size:  # grow the records geometrically (maxiter may be 10**7)
                size = min(2 * size, maxiter + 1)
                grown = np.empty(size)
                grown[:n] = gns
                gns = grown
                grown = np.empty(size)
                grown[:n] = lams
                lams = grown
            gns[n] = gn
            lams[n] = lam
            n += 1
            if has_stop and _met(gn, lam, stop_eps, measure, rho):
                break
            if n > maxiter:
                break
            if cubic:
                c = np.ascontiguousarray(Q.T) @ g
                shat, _, _, _, _ = _core.secular_eig(lam_i, c, sigma, tol_hard, maxiter_secular)
                x = x + Q @ shat
            else:
                x = x + (-step * g)
        return x, gns[:n].copy(), lams[:n].copy()

    return kernel


_MEASURES = {"norm": 0, "sosp": 1, "minimax": 2, "sq": 3}


def driver_trace(oracles, x0, *, cubic, step, M, stop_eps, maxiter, measure, rho, need_hess,
                 tol_hard=1e-12, maxiter_secular=100):
    """Compiled driver loop: ``(x, grad_norms, min_eigs)`` of the iterates x_0, x_1, ..."""
    if not (cubic or need_hess):  # gradient descent measured by |∇φ| alone: no Hessian
        kernel = _kernel("driver_gd", oracles, ("grad_phi",), _build_driver_gd)
        return kernel(np.asarray(x0, dtype=float), oracles.data, float(step), float(stop_eps or 0.0),
                      stop_eps is not None, int(maxiter), _MEASURES[measure], float(rho if rho is not None else 0.0))
    kernel = _kernel("driver", oracles, ("grad_phi", "hess_phi"), _build_driver)
    return kernel(np.asarray(x0, dtype=float), oracles.data, bool(cubic), float(step or 0.0),
                  float(M or 1.0), float(stop_eps or 0.0), stop_eps is not None, int(maxiter),
                  bool(need_hess), _MEASURES[measure], float(rho if rho is not None else 0.0),
                  float(tol_hard), int(maxiter_secular))
