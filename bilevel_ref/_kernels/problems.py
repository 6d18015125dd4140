r"""Compiled oracles of the catalog's small problems (convention: :mod:`bilevel_ref._kernels.oracles`).

Each function computes what the NumPy oracle of its family computes, with the
same operations in the same order (the tests compare them to 1e-12 relative
and with finite differences).  ``build_*`` functions assemble the ``data``
tuple from a problem's public attributes and return the
:class:`~bilevel_ref._kernels.oracles.CompiledOracles`; the problem classes call
them from ``compiled_oracles()``.

Families
--------
* quadratic bilevel (:class:`~bilevel_ref.problems.quadratic.QuadraticBilevel`):
  ``data = (P, R, RT, S, p, q, A, C, CT, E, a, b, K, KT, k0)`` (the oracles multiply by ``R.T``
  where NumPy does, not by the contiguous copy ``RT``: the same BLAS call, bit-identical results);
* quartic–quadratic (:class:`~bilevel_ref.problems.quadratic.QuarticQuadraticBilevel`):
  ``data = (A, C, CT, c, K, KT)``;
* quadratic minimax (:class:`~bilevel_ref.problems.quadratic.QuadraticMinimax`):
  ``data = (P, B, BT, D, p, q)``;
* double-well minimax (:class:`~bilevel_ref.problems.minimax.DoubleWellMinimax`):
  ``data = (B, BT, mu)``;
* shift-lifted worst cases (:class:`~bilevel_ref.problems.hard.ShiftLiftedBilevel`:
  hard-cubic, hard-gd, hard-ramp, hard-chain):
  ``data = (K, KT, A, a, KTA, KTAK, upper)`` with ``KTA = -KᵀA``, ``KTAK = KᵀAK`` and
  ``upper = (kind, nodes, slopes, jumps, steps, c)``: kind 0 is
  h(x) = h₁(x₁) + (c/2)‖x_{2:}‖² with the piecewise-Hermite h₁ of those arrays,
  kind 1 the Carmon–Duchi–Hinder–Sidford chain;
* lifted minimax (:class:`~bilevel_ref.problems.hard.LiftedMinimax`):
  ``data = (mu, dy, upper)``.
"""
from __future__ import annotations

import math

import numpy as np

from .. import _jit
from .oracles import CompiledOracles

__all__ = ["build_quadratic", "build_quartic_quadratic", "build_quadratic_minimax", "build_double_well",
           "build_shift_lifted", "build_lifted_minimax", "hermite_deriv", "hermite_deriv2", "upper_data"]


def _c(a):
    return np.ascontiguousarray(a, dtype=np.float64)


# ---------------------------------------------------------------------------
# quadratic bilevel
# ---------------------------------------------------------------------------
@_jit.jit
def quad_grad_x_f(x, y, d):
    P, R, RT, S, p, q, A, C, CT, E, a, b, K, KT, k0 = d
    return P @ x + R @ y + p


@_jit.jit
def quad_grad_y_f(x, y, d):
    P, R, RT, S, p, q, A, C, CT, E, a, b, K, KT, k0 = d
    return R.T @ x + S @ y + q


@_jit.jit
def quad_grad_x_g(x, y, d):
    P, R, RT, S, p, q, A, C, CT, E, a, b, K, KT, k0 = d
    return C.T @ y + E @ x + b


@_jit.jit
def quad_grad_y_g(x, y, d):
    P, R, RT, S, p, q, A, C, CT, E, a, b, K, KT, k0 = d
    return A @ y + C @ x + a


@_jit.jit
def quad_hess_f(x, y, d):
    P, R, RT, S, p, q, A, C, CT, E, a, b, K, KT, k0 = d
    return P.copy(), R.copy(), S.copy()


@_jit.jit
def quad_hess_g(x, y, d):
    P, R, RT, S, p, q, A, C, CT, E, a, b, K, KT, k0 = d
    return E.copy(), C.T.copy(), A.copy()


@_jit.jit
def quad_hvp_yy_g(x, y, v, d):
    A = d[6]
    return A @ v


@_jit.jit
def quad_cross_g(x, y, v, d):
    C = d[7]
    return C.T @ v


@_jit.jit
def quad_grad_phi(x, d):
    P, R, RT, S, p, q, A, C, CT, E, a, b, K, KT, k0 = d
    y = K @ x + k0
    gx = P @ x + R @ y + p
    gy = R.T @ x + S @ y + q
    return gx + K.T @ gy


def build_quadratic(problem):
    """:class:`CompiledOracles` of a :class:`~bilevel_ref.problems.quadratic.QuadraticBilevel`."""
    pr = problem
    data = (_c(pr.P), _c(pr.R), _c(pr.R.T), _c(pr.S), _c(pr.p), _c(pr.q), _c(pr.A), _c(pr.C), _c(pr.C.T),
            _c(pr.E), _c(pr.a), _c(pr.b), _c(pr.K), _c(pr.K.T), _c(pr._k0))
    return CompiledOracles(data, quad_grad_x_f, quad_grad_y_f, quad_hess_f, quad_grad_x_g, quad_grad_y_g,
                           quad_hess_g, quad_hvp_yy_g, quad_cross_g, quad_grad_phi, None)


# ---------------------------------------------------------------------------
# quartic–quadratic bilevel
# ---------------------------------------------------------------------------
@_jit.jit
def quartic_grad_x_f(x, y, d):
    return x ** 3.0 - x


@_jit.jit
def quartic_grad_y_f(x, y, d):
    return y - d[3]


@_jit.jit
def quartic_grad_x_g(x, y, d):
    return -d[1].T @ y


@_jit.jit
def quartic_grad_y_g(x, y, d):
    return d[0] @ y - d[1] @ x


@_jit.jit
def quartic_hess_f(x, y, d):
    dx, dy = x.shape[0], y.shape[0]
    return np.diag(3 * x * x - 1), np.zeros((dx, dy)), np.eye(dy)


@_jit.jit
def quartic_hess_g(x, y, d):
    dx = x.shape[0]
    return np.zeros((dx, dx)), -d[1].T.copy(), d[0].copy()


@_jit.jit
def quartic_hvp_yy_g(x, y, v, d):
    return d[0] @ v


@_jit.jit
def quartic_cross_g(x, y, v, d):
    return -d[1].T @ v


@_jit.jit
def quartic_grad_phi(x, d):
    K, c = d[4], d[3]
    return x ** 3.0 - x + K.T @ (K @ x - c)


@_jit.jit
def quartic_hess_phi(x, d):
    K = d[4]
    return np.diag(3 * x * x - 1) + K.T @ K


def build_quartic_quadratic(problem):
    """:class:`CompiledOracles` of a :class:`~bilevel_ref.problems.quadratic.QuarticQuadraticBilevel`."""
    pr = problem
    data = (_c(pr.A), _c(pr.C), _c(pr.C.T), _c(pr.c), _c(pr.K), _c(pr.K.T))
    return CompiledOracles(data, quartic_grad_x_f, quartic_grad_y_f, quartic_hess_f, quartic_grad_x_g,
                           quartic_grad_y_g, quartic_hess_g, quartic_hvp_yy_g, quartic_cross_g,
                           quartic_grad_phi, quartic_hess_phi)


# ---------------------------------------------------------------------------
# quadratic minimax and double-well minimax (f only)
# ---------------------------------------------------------------------------
@_jit.jit
def qmm_grad_x_f(x, y, d):
    P, B, BT, D, p, q = d
    return P @ x + B @ y + p


@_jit.jit
def qmm_grad_y_f(x, y, d):
    P, B, BT, D, p, q = d
    return B.T @ x - D @ y - q


@_jit.jit
def qmm_hess_f(x, y, d):
    P, B, BT, D, p, q = d
    return P.copy(), B.copy(), -D


def build_quadratic_minimax(problem):
    """:class:`CompiledOracles` of a :class:`~bilevel_ref.problems.quadratic.QuadraticMinimax`."""
    pr = problem
    data = (_c(pr.P), _c(pr.B), _c(pr.B.T), _c(pr.D), _c(pr.p), _c(pr.q))
    return CompiledOracles(data, qmm_grad_x_f, qmm_grad_y_f, qmm_hess_f)


@_jit.jit
def dw_grad_x_f(x, y, d):
    return x ** 3.0 - x + d[0] @ y


@_jit.jit
def dw_grad_y_f(x, y, d):
    return d[0].T @ x - d[2] * y


@_jit.jit
def dw_hess_f(x, y, d):
    return np.diag(3 * x * x - 1), d[0].copy(), -d[2] * np.eye(y.shape[0])


def build_double_well(problem):
    """:class:`CompiledOracles` of a :class:`~bilevel_ref.problems.minimax.DoubleWellMinimax`."""
    return CompiledOracles((_c(problem.B), _c(problem.B.T), float(problem.mu)),
                           dw_grad_x_f, dw_grad_y_f, dw_hess_f)


# ---------------------------------------------------------------------------
# worst-case upper levels: piecewise Hermite h1 (separable lift) and the CDHS chain
# ---------------------------------------------------------------------------
@_jit.jit
def _hermite_locate(x, nodes, steps):
    k = np.searchsorted(nodes, x, side="right") - 1
    k = min(max(k, 0), steps.shape[0] - 1)
    return k, (x - nodes[k]) / steps[k]


@_jit.jit
def hermite_deriv(x, nodes, slopes, jumps, steps):
    """f'(x) of :class:`~bilevel_ref.problems.hard.PiecewiseHermite` (scalar x)."""
    k, t = _hermite_locate(x, nodes, steps)
    tc = min(max(t, 0.0), 1.0)
    return slopes[k] + jumps[k] * (3 * (tc * tc) - 2 * tc ** 3.0)


@_jit.jit
def hermite_deriv2(x, nodes, slopes, jumps, steps):
    """f''(x) (0 outside the nodes)."""
    k, t = _hermite_locate(x, nodes, steps)
    if t >= 0 and t <= 1:
        return jumps[k] * 6 * t * (1 - t) / steps[k]
    return 0.0


_SQRT_E = math.sqrt(math.e)
_PHI_SCALE = math.sqrt(math.e) * math.sqrt(math.pi / 2)
_PSI_1 = math.exp(1.0 - 1.0 / (2 * 1.0 - 1) ** 2)


@_jit.jit
def _psi(t):
    if t > 0.5:
        u = 2 * t - 1
        return math.exp(1.0 - 1.0 / (u * u))
    return 0.0


@_jit.jit
def _dpsi(t):
    if t > 0.5:
        u = 2 * t - 1
        return math.exp(1.0 - 1.0 / (u * u)) * 4.0 / u ** 3.0
    return 0.0


@_jit.jit
def _d2psi(t):
    if t > 0.5:
        u = 2 * t - 1
        return math.exp(1.0 - 1.0 / (u * u)) * (16.0 / u ** 6.0 - 24.0 / u ** 4.0)
    return 0.0


@_jit.jit
def _phi(t):
    return _PHI_SCALE * (1 + math.erf(t / math.sqrt(2)))


@_jit.jit
def _dphi(t):
    return _SQRT_E * math.exp(-(t * t) / 2)


@_jit.jit
def _d2phi(t):
    return -t * _dphi(t)


@_jit.jit
def chain_grad(x):
    """∇f̄_T(x) of :class:`~bilevel_ref.problems.hard.CDHSChain`."""
    T = x.shape[0]
    out = np.zeros(T)
    out[0] = -_PSI_1 * _dphi(x[0])
    for i in range(1, T):
        prev, cur = x[i - 1], x[i]
        out[i] += -_psi(-prev) * _dphi(-cur) - _psi(prev) * _dphi(cur)
    for i in range(T - 1):
        prev, cur = x[i], x[i + 1]
        out[i] += -_dpsi(-prev) * _phi(-cur) - _dpsi(prev) * _phi(cur)
    return out


@_jit.jit
def chain_hess(x):
    """∇²f̄_T(x) (tridiagonal, dense)."""
    T = x.shape[0]
    diag = np.zeros(T)
    diag[0] = -_PSI_1 * _d2phi(x[0])
    for i in range(1, T):
        prev, cur = x[i - 1], x[i]
        diag[i] += _psi(-prev) * _d2phi(-cur) - _psi(prev) * _d2phi(cur)
    for i in range(T - 1):
        prev, cur = x[i], x[i + 1]
        diag[i] += _d2psi(-prev) * _phi(-cur) - _d2psi(prev) * _phi(cur)
    out = np.diag(diag)
    for i in range(T - 1):
        prev, cur = x[i], x[i + 1]
        off = _dpsi(-prev) * _dphi(-cur) - _dpsi(prev) * _dphi(cur)
        out[i, i + 1] = off
        out[i + 1, i] = off
    return out


@_jit.jit
def upper_grad(x, u):
    """∇h(x) for ``u = (kind, nodes, slopes, jumps, steps, c)`` (see the module docstring)."""
    kind, nodes, slopes, jumps, steps, c = u
    if kind == 1:
        return chain_grad(x)
    out = c * x.copy()
    out[0] = hermite_deriv(x[0], nodes, slopes, jumps, steps)
    return out


@_jit.jit
def upper_hess(x, u):
    """∇²h(x)."""
    kind, nodes, slopes, jumps, steps, c = u
    if kind == 1:
        return chain_hess(x)
    out = c * np.eye(x.shape[0])
    out[0, 0] = hermite_deriv2(x[0], nodes, slopes, jumps, steps)
    return out


def upper_data(upper):
    """``upper`` tuple of a :class:`~bilevel_ref.problems.hard.SeparableUpper` (piecewise-Hermite h₁)
    or a :class:`~bilevel_ref.problems.hard.CDHSChain`; None for anything else."""
    from ..problems.hard import CDHSChain, PiecewiseHermite, SeparableUpper

    empty = np.zeros(1)
    if type(upper) is CDHSChain:
        return (1, empty, empty, empty, empty, 1.0)
    if type(upper) is SeparableUpper and type(upper.h1) is PiecewiseHermite:
        h1 = upper.h1
        return (0, _c(h1.nodes), _c(h1.slopes), _c(h1.jumps), _c(h1.steps), float(upper.c))
    return None


# ---------------------------------------------------------------------------
# shift-lifted bilevel: e = y - Kx, g = ½eᵀAe, f = h(x) + aᵀe + Σ log cosh e_i
# ---------------------------------------------------------------------------
@_jit.jit
def lifted_grad_x_f(x, y, d):
    K, KT, A, a, KTA, KTAK, u = d
    dpsi = a + np.tanh(y - K @ x)
    return upper_grad(x, u) - K.T @ dpsi


@_jit.jit
def _mv(A, v):
    """A @ v by plain loops: the inner loops' tiny products without a BLAS call's overhead
    (agrees with NumPy's A @ v to rounding; the tests compare to 1e-12)."""
    m, n = A.shape
    out = np.empty(m)
    for i in range(m):
        s = 0.0
        for j in range(n):
            s += A[i, j] * v[j]
        out[i] = s
    return out


@_jit.jit
def _shift(K, x, y):
    """e = y − Kx by plain loops (one allocation)."""
    m, n = K.shape
    e = np.empty(m)
    for i in range(m):
        s = 0.0
        for j in range(n):
            s += K[i, j] * x[j]
        e[i] = y[i] - s
    return e


@_jit.jit
def lifted_grad_y_f(x, y, d):
    K, a = d[0], d[3]
    e = _shift(K, x, y)
    for i in range(e.shape[0]):
        e[i] = a[i] + math.tanh(e[i])
    return e


@_jit.jit
def lifted_grad_x_g(x, y, d):
    K, A = d[0], d[2]
    return -K.T @ (A @ (y - K @ x))


@_jit.jit
def lifted_grad_y_g(x, y, d):
    K, A = d[0], d[2]
    return _mv(A, _shift(K, x, y))


@_jit.jit
def lifted_hess_f(x, y, d):
    K, KT, A, a, KTA, KTAK, u = d
    ch = np.cosh(y - K @ x)
    d2psi = 1.0 / (ch * ch)
    dy = y.shape[0]
    scaled = np.empty_like(K)
    for i in range(dy):
        scaled[i] = d2psi[i] * K[i]
    return upper_hess(x, u) + K.T @ scaled, -K.T * d2psi, np.diag(d2psi)


@_jit.jit
def lifted_hess_g(x, y, d):
    return d[5].copy(), d[4].copy(), d[2].copy()


@_jit.jit
def lifted_hvp_yy_g(x, y, v, d):
    return d[2] @ v


@_jit.jit
def lifted_cross_g(x, y, v, d):
    return d[4] @ v


@_jit.jit
def lifted_grad_phi(x, d):
    return upper_grad(x, d[6])


@_jit.jit
def lifted_hess_phi(x, d):
    return upper_hess(x, d[6])


def build_shift_lifted(problem):
    """:class:`CompiledOracles` of a :class:`~bilevel_ref.problems.hard.ShiftLiftedBilevel`, or None
    when its upper level is neither a separable piecewise-Hermite lift nor the CDHS chain."""
    u = upper_data(problem.upper)
    if u is None:
        return None
    K, A = problem.K, problem.A
    # the same expressions as ShiftLiftedBilevel.hess_g, so that the blocks are bit-identical
    data = (_c(K), _c(K.T), _c(A), _c(problem.a), _c(-K.T @ A), _c(K.T @ A @ K), u)
    return CompiledOracles(data, lifted_grad_x_f, lifted_grad_y_f, lifted_hess_f, lifted_grad_x_g,
                           lifted_grad_y_g, lifted_hess_g, lifted_hvp_yy_g, lifted_cross_g,
                           lifted_grad_phi, lifted_hess_phi)


# ---------------------------------------------------------------------------
# lifted minimax: f = h(x) - (mu/2)‖y‖²
# ---------------------------------------------------------------------------
@_jit.jit
def lmm_grad_x_f(x, y, d):
    return upper_grad(x, d[2])


@_jit.jit
def lmm_grad_y_f(x, y, d):
    return -d[0] * y


@_jit.jit
def lmm_hess_f(x, y, d):
    dy = y.shape[0]
    return upper_hess(x, d[2]), np.zeros((x.shape[0], dy)), -d[0] * np.eye(dy)


@_jit.jit
def lmm_grad_phi(x, d):
    return upper_grad(x, d[2])


@_jit.jit
def lmm_hess_phi(x, d):
    return upper_hess(x, d[2])


def build_lifted_minimax(problem):
    """:class:`CompiledOracles` of a :class:`~bilevel_ref.problems.hard.LiftedMinimax`, or None."""
    u = upper_data(problem.upper)
    if u is None:
        return None
    return CompiledOracles((float(problem.mu), int(problem.dy), u), lmm_grad_x_f, lmm_grad_y_f, lmm_hess_f,
                           grad_phi=lmm_grad_phi, hess_phi=lmm_hess_phi)
