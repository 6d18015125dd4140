r"""Worst-case instances: functions on which the GD and cubic-Newton bounds are attained.

Complexity bounds are upper bounds; to see that a method's measured exponent
*equals* the theory's (and not only that it respects it) the method must be run
on an instance where the bound is sharp.  This module builds them (the data
choices are this library's, after the papers below) and lifts them to bilevel
and minimax problems so that
bilevel methods see exactly the same landscape.

**Prescribed-iterate construction** (after Cartis, Gould and Toint 2010, who
show in this way that the ε^{-2} bound of steepest descent and the ε^{-3/2}
bound of cubic regularisation are sharp).  Choose slopes :math:`g_k < 0` and steps :math:`s_k > 0` so that the
method, started at :math:`x_0 = 0`, visits :math:`x_{k+1} = x_k + s_k`; then
interpolate.  On :math:`[x_k, x_{k+1}]`, with :math:`t = (x - x_k)/s_k`,

.. math::

    f'(x) = g_k + (g_{k+1} - g_k)(3t^2 - 2t^3), \qquad
    f(x) = f_k + s_k\,[g_k t + (g_{k+1} - g_k)(t^3 - t^4/2)],

the quintic Hermite interpolant of :math:`(f, f', f'') = (f_k, g_k, 0)` and
:math:`(f_{k+1}, g_{k+1}, 0)` with :math:`f_{k+1} = f_k + s_k(g_k + g_{k+1})/2`
(trapezoid rule; it reduces to a quartic).  :math:`f'' = 0` at every node, so a
Newton-type model at :math:`x_k` is :math:`g_k s + (M/6)|s|^3`, minimised by
:math:`s_k = \sqrt{2|g_k|/M}`; GD with step :math:`1/L` moves :math:`|g_k|/L`.
Per piece :math:`\max|f''| = 1.5\,|g_{k+1} - g_k|/s_k` and
:math:`\max|f'''| = 6\,|g_{k+1} - g_k|/s_k^2`.

* cubic Newton: :math:`g_k = -(k + k_0)^{-(2/3 + \eta)}`, first
  :math:`|f'| \le \varepsilon` at :math:`k = \lceil\varepsilon^{-3/(2+3\eta)}\rceil - k_0`;
* gradient descent: :math:`g_k = -(k + k_0)^{-(1/2 + \eta)}`, first
  :math:`|f'| \le \varepsilon` at :math:`k = \lceil\varepsilon^{-2/(1+2\eta)}\rceil - k_0`.

**ε-dependent ramp** (this library's construction): slope :math:`-a = -2\varepsilon` on :math:`[0, X]`,
smooth S-shaped rise and fall of width b, same Hermite pieces with nodes
:math:`(-b, 0, X, X + b)` and slopes :math:`(0, -a, -a, 0)`; :math:`f(0) - \inf f = \Delta`
fixed, so :math:`N_{GD} = \Delta L/(4\varepsilon^2) + O(1)` and
:math:`N_{CN} = \Delta\sqrt{M}/(4\varepsilon^{3/2}) + O(1)` exactly.

**Carmon–Duchi–Hinder–Sidford chain**: :class:`CDHSChain`, the zero-chain
:math:`\bar f_T` of "Lower bounds for finding stationary points I/II".

**Lifts** (this library's construction).  With :math:`h(x) = h_1(x_1) + \tfrac12\|x_{2:}\|^2`:

* bilevel, shift coupling (:class:`ShiftLiftedBilevel`): :math:`e = y - Kx`,
  :math:`g = \tfrac12 e^\top A e`, :math:`f = h(x) + a^\top e + \sum_i \log\cosh e_i`,
  so :math:`y^*(x) = Kx`, :math:`\varphi = h`, :math:`\nabla\varphi = \nabla h`,
  :math:`\nabla^2\varphi = \nabla^2 h` and the penalty surrogate
  :math:`L^*_\lambda = h + \text{const}(\lambda)`;
* minimax (:class:`LiftedMinimax`): :math:`f = h(x) - (\mu/2)\|y\|^2`, so :math:`P = h`.

References
----------
C. Cartis, N. I. M. Gould, Ph. L. Toint, "On the complexity of steepest descent,
Newton's and regularized Newton's methods for nonconvex unconstrained
optimization problems", SIAM J. Optim. 20(6), 2010.
Ph. L. Toint, "Examples of slow convergence for adaptive regularization
optimization methods are not isolated", arXiv 2409.16047.
Y. Carmon, J. C. Duchi, O. Hinder, A. Sidford, "Lower bounds for finding
stationary points I", Math. Program. 184, 2020 (arXiv 1710.11606), and
"... II: first-order methods", Math. Program. 185, 2021 (arXiv 1711.00841).
Y. Nesterov, B. Polyak, "Cubic regularization of Newton method and its global
performance", Math. Program. 108, 2006.
"""
from __future__ import annotations

import bisect
import math

import numpy as np
import scipy.special as sps

from .._validation import as_matrix, as_vector, check_choice, check_int, check_nonnegative, check_positive
from .base import COMPILED_BILEVEL, COMPILED_MINIMAX, BilevelProblem, MinimaxProblem
from .catalog import register_problem

__all__ = [
    "PiecewiseHermite", "cgt_cubic_function", "cgt_gd_function", "ramp_function",
    "cgt_hitting_time", "ramp_hitting_time_estimate", "CDHSChain", "SeparableUpper",
    "ShiftLiftedBilevel", "LiftedMinimax", "lift_bilevel", "lift_minimax",
]


# ---------------------------------------------------------------------------
# one-dimensional hard functions
# ---------------------------------------------------------------------------
_SCALARS = (float, int, np.floating, np.integer)  # take PiecewiseHermite's pure-Python scalar path

class PiecewiseHermite:
    r"""C² piecewise-quartic function with prescribed nodes, values and slopes, f'' = 0 at nodes.

    On piece k, :math:`f' = g_k + (g_{k+1} - g_k)(3t^2 - 2t^3)`, :math:`t = (x - x_k)/s_k`;
    left of the first node f is linear with slope :math:`g_0`, right of the
    last node linear with slope :math:`g_N` (module docstring).

    Parameters
    ----------
    nodes : (N+1,) array_like
        Strictly increasing nodes :math:`x_0 < \dots < x_N`.
    slopes : (N+1,) array_like
        :math:`f'(x_k) = g_k`.
    f0 : float, default 0
        :math:`f(x_0)`; the other node values follow from the trapezoid rule.
    name : str
    """

    def __init__(self, nodes, slopes, f0=0.0, name="hermite"):
        nodes = as_vector(nodes, "nodes")
        slopes = as_vector(slopes, "slopes", nodes.size)
        if nodes.size < 2:
            raise ValueError(f"nodes must have at least 2 entries, got {nodes.size}")
        steps = np.diff(nodes)
        if not np.all(steps > 0):
            raise ValueError("nodes must be strictly increasing")
        self.nodes, self.slopes, self.steps = nodes, slopes, steps
        self.jumps = np.diff(slopes)
        # f_{k+1} = f_k + s_k (g_k + g_{k+1}) / 2: exact integral of the interpolant.
        self.values = float(f0) + np.concatenate(([0.0], np.cumsum(steps * (slopes[:-1] + slopes[1:]) / 2)))
        self.name = name
        self._node_list = self._piece_data = None

    @property
    def n_pieces(self):
        return self.steps.size

    def _locate(self, x):
        x = np.asarray(x, dtype=float)
        k = np.clip(np.searchsorted(self.nodes, x, side="right") - 1, 0, self.n_pieces - 1)
        t = (x - self.nodes[k]) / self.steps[k]
        return x, k, t

    def value(self, x):
        """f(x) (vectorised)."""
        x, k, t = self._locate(x)
        tc = np.clip(t, 0.0, 1.0)
        inside = self.values[k] + self.steps[k] * (self.slopes[k] * tc + self.jumps[k] * (tc**3 - tc**4 / 2))
        left = self.values[0] + self.slopes[0] * (x - self.nodes[0])
        right = self.values[-1] + self.slopes[-1] * (x - self.nodes[-1])
        return np.where(x < self.nodes[0], left, np.where(x > self.nodes[-1], right, inside))

    def deriv(self, x):
        """f'(x) (vectorised; a float for a scalar x)."""
        if isinstance(x, _SCALARS):
            k, t = self._locate_scalar(x)
            tc = min(max(t, 0.0), 1.0)
            gk, jump, _ = self._piece_data[k]
            return gk + jump * (3 * (tc * tc) - 2 * float(np.power(tc, 3)))  # numpy's pow, as for arrays
        _, k, t = self._locate(x)
        tc = np.clip(t, 0.0, 1.0)
        return self.slopes[k] + self.jumps[k] * (3 * tc**2 - 2 * tc**3)

    def deriv2(self, x):
        """f''(x) (vectorised, a float for a scalar x; 0 outside the nodes)."""
        if isinstance(x, _SCALARS):
            k, t = self._locate_scalar(x)
            _, jump, step = self._piece_data[k]
            return jump * 6 * t * (1 - t) / step if 0 <= t <= 1 else 0.0
        _, k, t = self._locate(x)
        inside = (t >= 0) & (t <= 1)
        return np.where(inside, self.jumps[k] * 6 * t * (1 - t) / self.steps[k], 0.0)

    def _scalar_tables(self):
        if self._node_list is None:
            self._node_list = self.nodes.tolist()
            self._piece_data = list(zip(self.slopes[:-1].tolist(), self.jumps.tolist(), self.steps.tolist()))

    def _locate_scalar(self, x):
        """``_locate`` for one float in pure Python: (piece k, t) with the same clamping of k."""
        self._scalar_tables()
        x = float(x)
        k = min(max(bisect.bisect_right(self._node_list, x) - 1, 0), len(self._piece_data) - 1)
        return k, (x - self._node_list[k]) / self._piece_data[k][2]

    def deriv3(self, x):
        """f'''(x) (vectorised, one-sided at nodes; 0 outside)."""
        _, k, t = self._locate(x)
        inside = (t >= 0) & (t <= 1)
        return np.where(inside, self.jumps[k] * (6 - 12 * t) / self.steps[k] ** 2, 0.0)

    def derivs_scalar(self, x):
        """``(f'(x), f''(x))`` for one float, in pure Python (fast scalar loops of the drivers)."""
        self._scalar_tables()
        k = bisect.bisect_right(self._node_list, x) - 1
        if k < 0:
            return self._piece_data[0][0], 0.0
        if k >= self.n_pieces:
            return float(self.slopes[-1]), 0.0
        gk, jump, step = self._piece_data[k]
        t = (x - self._node_list[k]) / step
        return gk + jump * (3 * t * t - 2 * t * t * t), jump * 6 * t * (1 - t) / step

    def lipschitz_grad(self):
        r"""Exact Lipschitz constant of f': :math:`\max_k 1.5\,|g_{k+1} - g_k|/s_k`."""
        return float(np.max(1.5 * np.abs(self.jumps) / self.steps))

    def lipschitz_hess(self):
        r"""Exact Lipschitz constant of f'': :math:`\max_k 6\,|g_{k+1} - g_k|/s_k^2`."""
        return float(np.max(6.0 * np.abs(self.jumps) / self.steps**2))

    def gap(self):
        """f(x_0) − f(x_N): the decrease available on the constructed pieces."""
        return float(self.values[0] - self.values[-1])

    def __repr__(self):
        return f"<PiecewiseHermite {self.name!r} pieces={self.n_pieces}>"


def _check_eta_k0(eta, k0):
    return check_nonnegative(eta, "eta"), check_int(k0, "k0", minimum=1)


def cgt_hitting_time(eps, order, eta=0.01, k0=2):
    r"""Iterations until :math:`|f'(x_k)| \le \varepsilon` on the instance of
    :func:`cgt_cubic_function` / :func:`cgt_gd_function`.

    ``order="cubic"``: :math:`\max(0, \lceil\varepsilon^{-3/(2+3\eta)}\rceil - k_0)`;
    ``order="gd"``: :math:`\max(0, \lceil\varepsilon^{-2/(1+2\eta)}\rceil - k_0)`.
    Exact for η > 0 (at η = 0 a grid ε = 10^{-j/2} produces ties :math:`|g_k| = \varepsilon`).
    """
    check_choice(order, "order", ("cubic", "gd"))
    eta, k0 = _check_eta_k0(eta, k0)
    p = (2.0 / 3.0 + eta) if order == "cubic" else (0.5 + eta)
    eps = np.asarray(eps, dtype=float)
    # |g_k| = (k + k0)^(-p) <= eps  <=>  k + k0 >= eps^(-1/p)
    return np.maximum(0, np.ceil(eps ** (-1.0 / p)) - k0).astype(np.int64)


def _n_nodes(order, eta, k0, eps_min, n_nodes):
    if n_nodes is not None:
        return check_int(n_nodes, "n_nodes", minimum=2)
    eps_min = check_positive(eps_min, "eps_min")
    return int(cgt_hitting_time(eps_min, order, eta, k0)) + 16


def cgt_cubic_function(M=1.0, eta=0.01, k0=2, *, eps_min=1e-4, n_nodes=None):
    r"""Cartis–Gould–Toint-type hard function for cubic regularisation (after Cartis, Gould & Toint 2010).

    :math:`g_k = -(k + k_0)^{-(2/3+\eta)}`, :math:`s_k = \sqrt{2|g_k|/M}`; cubic
    Newton with constant M from :math:`x_0 = 0` visits the nodes.  The Hessian
    Lipschitz constant is :math:`L_H \approx 0.720 M` (k0 = 2, η = 0.01), so M ≥ L_H.

    Parameters
    ----------
    M : float > 0
        Cubic constant of the method the instance is built for.
    eta : float >= 0
        Exponent offset: the hitting-time exponent is 3/(2 + 3η).
    k0 : int >= 1
        Index shift (controls the first piece, where L_H is attained).
    eps_min : float
        Smallest ε the nodes must cover (sets N when ``n_nodes`` is None).
    n_nodes : int, optional
        Number of nodes N + 1.
    """
    M = check_positive(M, "M")
    eta, k0 = _check_eta_k0(eta, k0)
    n = _n_nodes("cubic", eta, k0, eps_min, n_nodes)
    g = -((np.arange(n) + k0) ** -(2.0 / 3.0 + eta))
    s = np.sqrt(2.0 * np.abs(g[:-1]) / M)
    nodes = np.concatenate(([0.0], np.cumsum(s)))
    return PiecewiseHermite(nodes, g, name=f"cgt-cubic(M={M:g}, eta={eta:g}, k0={k0})")


def cgt_gd_function(L=1.0, eta=0.01, k0=2, *, eps_min=1e-3, n_nodes=None):
    r"""Cartis–Gould–Toint-type hard function for gradient descent (after Cartis, Gould & Toint 2010).

    :math:`g_k = -(k + k_0)^{-(1/2+\eta)}`, :math:`s_k = |g_k|/L`; GD with step
    1/L from :math:`x_0 = 0` visits the nodes.  True gradient-Lipschitz constant
    :math:`\approx 0.280 L` (k0 = 2, η = 0.01), so the step 1/L is admissible.
    Parameters as :func:`cgt_cubic_function` with L for M.
    """
    L = check_positive(L, "L")
    eta, k0 = _check_eta_k0(eta, k0)
    n = _n_nodes("gd", eta, k0, eps_min, n_nodes)
    g = -((np.arange(n) + k0) ** -(0.5 + eta))
    # GD computes x - (1/L) g; building the nodes the same way keeps the run on them.
    s = (1.0 / L) * np.abs(g[:-1])
    nodes = np.concatenate(([0.0], np.cumsum(s)))
    return PiecewiseHermite(nodes, g, name=f"cgt-gd(L={L:g}, eta={eta:g}, k0={k0})")


def ramp_function(eps, order="gd", *, L=1.0, M=1.0, delta=1.0):
    r"""ε-dependent ramp (this library's construction): slope −2ε on [0, X], f(0) − inf f = Δ.

    ``order="gd"``: transition width :math:`b = 1.5a/L` (gradient-Lipschitz
    constant exactly L); ``order="cubic"``: :math:`b = \sqrt{6a/M}` (Hessian-
    Lipschitz constant exactly M); a = 2ε, :math:`X = \Delta/a - b/2`.
    """
    eps = check_positive(eps, "eps")
    check_choice(order, "order", ("gd", "cubic"))
    delta = check_positive(delta, "delta")
    a = 2.0 * eps
    b = 1.5 * a / check_positive(L, "L") if order == "gd" else math.sqrt(6.0 * a / check_positive(M, "M"))
    X = delta / a - b / 2
    if X <= 0:
        raise ValueError(f"delta={delta} is too small for eps={eps}: the linear part would be empty")
    # f(-b) = 0 so that f(x) = -a * integral_{-b}^{x} w.
    return PiecewiseHermite([-b, 0.0, X, X + b], [0.0, -a, -a, 0.0], f0=0.0,
                            name=f"ramp-{order}(eps={eps:g})")


def ramp_hitting_time_estimate(eps, order="gd", *, L=1.0, M=1.0, delta=1.0):
    r"""Leading term of the ramp hitting time: ΔL/(4ε²) (GD), Δ√M/(4ε^{3/2}) (cubic Newton)."""
    eps = np.asarray(eps, dtype=float)
    if order == "gd":
        return delta * L / (4 * eps**2)
    return delta * math.sqrt(M) / (4 * eps**1.5)


# ---------------------------------------------------------------------------
# Carmon–Duchi–Hinder–Sidford zero-chain
# ---------------------------------------------------------------------------
class CDHSChain:
    r"""The hard function :math:`\bar f_T` of Carmon, Duchi, Hinder & Sidford 2020 ("Lower bounds I").

    .. math::

        \Psi(t) = \begin{cases}0 & t \le 1/2\\ \exp(1 - 1/(2t-1)^2) & t > 1/2\end{cases},\qquad
        \Phi(t) = \sqrt e \int_{-\infty}^t e^{-\tau^2/2}d\tau,\\
        \bar f_T(x) = -\Psi(1)\Phi(x_1) + \sum_{i=2}^T [\Psi(-x_{i-1})\Phi(-x_i) - \Psi(x_{i-1})\Phi(x_i)].

    Zero-chain: if :math:`x_j = 0` for :math:`j > i` then :math:`\partial_j \bar f_T(x) = 0`
    for :math:`j > i + 1`, so a method whose iterates lie in the span of the
    gradients seen uncovers at most one coordinate per gradient call, and
    :math:`\|\nabla\bar f_T(x)\| > 1` while :math:`x_T = 0`.  Scaled instances
    :math:`f(x) = (L\lambda^2/\ell_1)\bar f_T(x/\lambda)` give the Ω(ΔLε^{-2}) bound;
    the constant :math:`\ell_1 \approx 152` (Part I, Lemma 3) is not re-derived here,
    so methods are run on :math:`\bar f_T` itself with step 1/ℓ₁ (option ``ell1``).
    """

    def __init__(self, T, ell1=152.0):
        self.T = check_int(T, "T", minimum=1)
        #: dimension (so that the chain can be lifted like any upper-level function)
        self.dx = self.T
        self.ell1 = check_positive(ell1, "ell1")
        self.name = f"cdhs-chain(T={self.T})"

    @staticmethod
    def _psi(t):
        t = np.asarray(t, dtype=float)
        out = np.zeros_like(t)
        m = t > 0.5
        out[m] = np.exp(1.0 - 1.0 / (2 * t[m] - 1) ** 2)
        return out

    @staticmethod
    def _dpsi(t):
        t = np.asarray(t, dtype=float)
        out = np.zeros_like(t)
        m = t > 0.5
        u = 2 * t[m] - 1
        # d/dt exp(1 - u^-2) = exp(1 - u^-2) * 2 u^-3 * 2
        out[m] = np.exp(1.0 - 1.0 / u**2) * 4.0 / u**3
        return out

    @staticmethod
    def _d2psi(t):
        t = np.asarray(t, dtype=float)
        out = np.zeros_like(t)
        m = t > 0.5
        u = 2 * t[m] - 1
        # Ψ'' = Ψ (16 u^-6 − 24 u^-4)  (u = 2t − 1)
        out[m] = np.exp(1.0 - 1.0 / u**2) * (16.0 / u**6 - 24.0 / u**4)
        return out

    @staticmethod
    def _phi(t):
        return math.sqrt(math.e) * math.sqrt(math.pi / 2) * (1 + sps.erf(np.asarray(t, dtype=float) / math.sqrt(2)))

    @staticmethod
    def _dphi(t):
        return math.sqrt(math.e) * np.exp(-np.asarray(t, dtype=float) ** 2 / 2)

    def value(self, x):
        """:math:`\\bar f_T(x)`."""
        x = as_vector(x, "x", self.T, copy=False)
        prev, cur = x[:-1], x[1:]
        return float(-self._psi(np.array([1.0]))[0] * self._phi(x[0])
                     + np.sum(self._psi(-prev) * self._phi(-cur) - self._psi(prev) * self._phi(cur)))

    def grad(self, x):
        """:math:`\\nabla\\bar f_T(x)` (analytic)."""
        x = np.asarray(x, dtype=float)
        out = np.zeros(self.T)
        out[0] = -self._psi(np.array([1.0]))[0] * self._dphi(x[0])
        prev, cur = x[:-1], x[1:]
        # derivative of term i (i = 2..T) w.r.t. x_i and x_{i-1}
        out[1:] += -self._psi(-prev) * self._dphi(-cur) - self._psi(prev) * self._dphi(cur)
        out[:-1] += -self._dpsi(-prev) * self._phi(-cur) - self._dpsi(prev) * self._phi(cur)
        return out

    def hess(self, x):
        """:math:`\nabla^2\bar f_T(x)` (analytic, tridiagonal)."""
        x = np.asarray(x, dtype=float)
        d2phi = lambda t: -t * self._dphi(t)  # noqa: E731  (Φ'' = −t Φ')
        diag = np.zeros(self.T)
        diag[0] = -self._psi(np.array([1.0]))[0] * d2phi(x[0])
        prev, cur = x[:-1], x[1:]
        diag[1:] += self._psi(-prev) * d2phi(-cur) - self._psi(prev) * d2phi(cur)
        diag[:-1] += self._d2psi(-prev) * self._phi(-cur) - self._d2psi(prev) * self._phi(cur)
        off = self._dpsi(-prev) * self._dphi(-cur) - self._dpsi(prev) * self._dphi(cur)
        return np.diag(diag) + np.diag(off, 1) + np.diag(off, -1)


# ---------------------------------------------------------------------------
# lifts to bilevel and minimax problems
# ---------------------------------------------------------------------------
class SeparableUpper:
    r"""Upper-level function :math:`h(x) = h_1(x_1) + \tfrac{c}{2}\|x_{2:}\|^2` on :math:`\mathbb{R}^{d_x}`.

    Parameters
    ----------
    h1 : PiecewiseHermite
        The one-dimensional hard function (``value``, ``deriv``, ``deriv2``).
    dx : int
    c : float > 0, default 1
        Curvature of the trailing coordinates (started at 0 they stay there).
    """

    def __init__(self, h1, dx, c=1.0):
        self.h1 = h1
        self.dx = check_int(dx, "dx", minimum=1)
        self.c = check_positive(c, "c")

    def value(self, x):
        return float(self.h1.value(x[0])) + 0.5 * self.c * float(x[1:] @ x[1:])

    def grad(self, x):
        out = self.c * np.asarray(x, dtype=float)
        out[0] = self.h1.deriv(float(x[0]))
        return out

    def hess(self, x):
        out = self.c * np.eye(self.dx)
        out[0, 0] = self.h1.deriv2(float(x[0]))
        return out


class ShiftLiftedBilevel(BilevelProblem):
    r"""Bilevel lift with shift coupling (this library's construction): φ = h exactly.

    .. math::

        e = y - Kx,\quad g(x, y) = \tfrac12 e^\top A e,\quad
        f(x, y) = h(x) + a^\top e + \textstyle\sum_i \log\cosh e_i.

    :math:`y^*(x) = Kx` (so :math:`e^* = 0`, :math:`\psi(0) = 0`), :math:`\varphi = h`,
    :math:`\nabla^2_{xy} g = -K^\top\nabla^2_{yy} g`.  AID/ITD with an exact linear
    solve return :math:`\nabla h(x)` for any y.

    Parameters
    ----------
    upper : SeparableUpper
        h and its derivatives.
    K : (dy, dx) array_like
    A : (dy, dy) array_like, symmetric positive definite
    a : (dy,) array_like
    constants : dict, optional
        Extra entries for :meth:`constants` (e.g. ``L_phi``, ``rho_phi``).
    """

    name = "shift-lifted"

    def __init__(self, upper, K, A, a, constants=None, name=None):
        self.upper = upper
        self.dx = upper.dx
        self.K = as_matrix(K, "K", (None, self.dx))
        self.dy = self.K.shape[0]
        self.A = as_matrix(A, "A", (self.dy, self.dy))
        if not np.allclose(self.A, self.A.T, rtol=1e-12, atol=0):
            raise ValueError("A must be symmetric")
        eig = np.linalg.eigvalsh(self.A)
        if eig[0] <= 0:
            raise ValueError("A must be positive definite (g strongly convex in y)")
        self.mu_g, self.L_g = float(eig[0]), float(eig[-1])
        self.a = as_vector(a, "a", self.dy)
        self._constants = dict(constants or {})
        if name is not None:
            self.name = name

    def _e(self, x, y):
        return y - self.K @ x

    def _psi(self, e):
        # log cosh e = logaddexp(e, -e) - log 2 (stable for large |e|)
        return float(self.a @ e + np.sum(np.logaddexp(e, -e) - math.log(2.0)))

    def f(self, x, y, batch=None):
        return self.upper.value(x) + self._psi(self._e(x, y))

    def g(self, x, y, batch=None):
        e = self._e(x, y)
        return float(0.5 * e @ self.A @ e)

    def grad_f(self, x, y, batch=None):
        dpsi = self.a + np.tanh(self._e(x, y))
        return self.upper.grad(x) - self.K.T @ dpsi, dpsi

    def grad_g(self, x, y, batch=None):
        ae = self.A @ self._e(x, y)
        return -self.K.T @ ae, ae

    # one block at the cost of one (the same expressions as grad_f / grad_g)
    def grad_x_f(self, x, y, batch=None):
        return self.upper.grad(x) - self.K.T @ (self.a + np.tanh(self._e(x, y)))

    def grad_y_f(self, x, y, batch=None):
        return self.a + np.tanh(self._e(x, y))

    def grad_x_g(self, x, y, batch=None):
        return -self.K.T @ (self.A @ self._e(x, y))

    def grad_y_g(self, x, y, batch=None):
        return self.A @ self._e(x, y)

    def compiled_oracles(self):
        """numba oracles (:mod:`bilevel_ref._kernels.problems`) for a piecewise-Hermite or chain
        upper level, unless a subclass overrides an oracle; else None."""
        def build():
            from .._kernels.problems import build_shift_lifted

            return build_shift_lifted(self)

        return self._compiled_unless_overridden(ShiftLiftedBilevel, COMPILED_BILEVEL, build)

    def hess_f(self, x, y, batch=None):
        d2psi = 1.0 / np.cosh(self._e(x, y)) ** 2
        hyy = np.diag(d2psi)
        return self.upper.hess(x) + self.K.T @ (d2psi[:, None] * self.K), -self.K.T * d2psi, hyy

    def hess_g(self, x, y, batch=None):
        return self.K.T @ self.A @ self.K, -self.K.T @ self.A, self.A.copy()

    def constants(self):
        out = {"mu_g": self.mu_g, "L_g": self.L_g}
        out.update(self._constants)
        return out

    def y_star(self, x):
        return self.K @ np.asarray(x, dtype=float)

    def phi(self, x):
        return self.upper.value(np.asarray(x, dtype=float))

    def grad_phi(self, x):
        return self.upper.grad(np.asarray(x, dtype=float))

    def hess_phi(self, x):
        return self.upper.hess(np.asarray(x, dtype=float))

    def y_star_penalty(self, x, lam):
        """Minimiser of f + λg in y: e solves a + tanh(e) + λAe = 0 (Newton, to 1e-14)."""
        lam = check_positive(lam, "lam")
        e = np.zeros(self.dy)
        for _ in range(100):
            r = self.a + np.tanh(e) + lam * self.A @ e
            if np.linalg.norm(r) <= 1e-15 * (1 + np.linalg.norm(self.a)):
                break
            e = e - np.linalg.solve(np.diag(1.0 / np.cosh(e) ** 2) + lam * self.A, r)
        return self.K @ np.asarray(x, dtype=float) + e

    def grad_penalty(self, x, lam):
        """∇L*_λ(x) = ∇h(x): the penalty surrogate is h + const(λ)."""
        return self.upper.grad(np.asarray(x, dtype=float))

    def hess_penalty(self, x, lam):
        """∇²L*_λ(x) = ∇²h(x)."""
        return self.upper.hess(np.asarray(x, dtype=float))


class LiftedMinimax(MinimaxProblem):
    r"""Minimax lift: :math:`f(x, y) = h(x) - (\mu/2)\|y\|^2`, so :math:`P = h`."""

    name = "lifted-minimax"

    def __init__(self, upper, dy, mu=1.0, constants=None, name=None):
        self.upper = upper
        self.dx = upper.dx
        self.dy = check_int(dy, "dy", minimum=1)
        self.mu = check_positive(mu, "mu")
        self._constants = dict(constants or {})
        if name is not None:
            self.name = name

    def f(self, x, y, batch=None):
        return self.upper.value(x) - 0.5 * self.mu * float(y @ y)

    def grad_f(self, x, y, batch=None):
        return self.upper.grad(x), -self.mu * np.asarray(y, dtype=float)

    def hess_f(self, x, y, batch=None):
        return self.upper.hess(x), np.zeros((self.dx, self.dy)), -self.mu * np.eye(self.dy)

    def grad_x_f(self, x, y, batch=None):
        return self.upper.grad(x)

    def grad_y_f(self, x, y, batch=None):
        return -self.mu * np.asarray(y, dtype=float)

    def compiled_oracles(self):
        """numba oracles (:mod:`bilevel_ref._kernels.problems`) for a piecewise-Hermite upper level,
        unless a subclass overrides an oracle; else None."""
        def build():
            from .._kernels.problems import build_lifted_minimax

            return build_lifted_minimax(self)

        return self._compiled_unless_overridden(LiftedMinimax, COMPILED_MINIMAX, build)

    def constants(self):
        # f(x, ·) is μ-strongly concave and μ-smooth; ℓ bounds the whole Hessian of f
        out = {"mu_y": self.mu, "L_y": self.mu, "ell": max(self.mu, self._constants.get("L_phi", self.mu))}
        out.update(self._constants)
        return out

    def y_star(self, x):
        return np.zeros(self.dy)

    def phi(self, x):
        return self.upper.value(np.asarray(x, dtype=float))

    def grad_phi(self, x):
        return self.upper.grad(np.asarray(x, dtype=float))

    def hess_phi(self, x):
        return self.upper.hess(np.asarray(x, dtype=float))


def _hard_constants(h1, c, order, param):
    """L_phi / rho_phi for a lifted instance: the construction's L or M (upper bounds)."""
    out = {"L_phi": max(h1.lipschitz_grad(), c)}
    if order == "gd":
        out["L_phi"] = max(param, c)
    else:
        out["rho_phi"] = param
        out["M"] = param
    return out


def lift_bilevel(h1, dx=2, dy=3, *, kappa=10.0, seed=0, order="gd", param=1.0, c=1.0, name=None):
    """Shift-coupled bilevel problem with φ(x) = h1(x_1) + (c/2)‖x_{2:}‖² (:class:`ShiftLiftedBilevel`).

    spec(A) = geomspace(1/κ, 1), K and a standard normal from ``default_rng(seed)``.
    ``order``/``param`` (the construction's L for "gd", M for "cubic") fill
    ``constants()`` (``L_phi``; ``rho_phi`` and ``M`` for cubic instances).
    A multi-dimensional ``h1`` with ``value``/``grad``/``hess``/``dx`` (e.g.
    :class:`CDHSChain`) is lifted as φ = h1 itself (``dx`` ignored, ``L_phi = param``).
    """
    kappa = check_positive(kappa, "kappa")
    if kappa < 1:
        raise ValueError(f"kappa must be >= 1, got {kappa}")
    rng = np.random.default_rng(seed)
    upper = h1 if hasattr(h1, "hess") else None  # a multi-dimensional h (e.g. CDHSChain) is used as is
    dx = upper.dx if upper is not None else check_int(dx, "dx", minimum=1)
    dy = check_int(dy, "dy", minimum=1)
    q, r = np.linalg.qr(rng.standard_normal((dy, dy)))
    q = q * np.sign(np.diag(r))
    A = (q * np.geomspace(1.0 / kappa, 1.0, dy)) @ q.T
    A = 0.5 * (A + A.T)
    K = rng.standard_normal((dy, dx))
    a = rng.standard_normal(dy)
    if upper is None:
        upper = SeparableUpper(h1, dx, c)
        known = _hard_constants(h1, c, order, param)
    else:
        known = {"L_phi": float(param)}
    # ‖∇²f‖ ≤ ‖∇²h‖ + (1 + ‖K‖)² since ψ'' = sech² ≤ 1 (joint Hessian of f in (x, y))
    known["L_f"] = known["L_phi"] + (1.0 + float(np.linalg.norm(K, 2))) ** 2
    return ShiftLiftedBilevel(upper, K, A, a, constants=known, name=name or h1.name)


def lift_minimax(h1, dx=2, dy=3, *, mu=1.0, order="gd", param=1.0, c=1.0, name=None):
    """Minimax problem with P(x) = h1(x_1) + (c/2)‖x_{2:}‖² (:class:`LiftedMinimax`, no x–y coupling)."""
    return LiftedMinimax(SeparableUpper(h1, dx, c), dy, mu,
                         constants=_hard_constants(h1, c, order, param), name=name or h1.name)


# ---------------------------------------------------------------------------
# catalog
# ---------------------------------------------------------------------------
@register_problem("hard-cubic", "Cartis-Gould-Toint cubic-Newton worst case, shift-lifted")
def _hard_cubic(seed=0, dx=2, dy=3, M=1.0, eta=0.01, k0=2, eps_min=1e-4, kappa=10.0):
    h1 = cgt_cubic_function(M, eta, k0, eps_min=eps_min)
    return lift_bilevel(h1, dx, dy, kappa=kappa, seed=seed, order="cubic", param=M, name="hard-cubic"), np.zeros(dx)


@register_problem("hard-gd", "Cartis-Gould-Toint gradient-descent worst case, shift-lifted")
def _hard_gd(seed=0, dx=2, dy=3, L=1.0, eta=0.01, k0=2, eps_min=1e-3, kappa=10.0):
    h1 = cgt_gd_function(L, eta, k0, eps_min=eps_min)
    return lift_bilevel(h1, dx, dy, kappa=kappa, seed=seed, order="gd", param=L, name="hard-gd"), np.zeros(dx)


@register_problem("hard-ramp", "eps-dependent ramp, GD/cubic-Newton worst case, shift-lifted")
def _hard_ramp(seed=0, eps=1e-2, order="gd", dx=2, dy=3, L=1.0, M=1.0, delta=1.0, kappa=10.0):
    h1 = ramp_function(eps, order, L=L, M=M, delta=delta)
    param = L if order == "gd" else M
    return (lift_bilevel(h1, dx, dy, kappa=kappa, seed=seed, order=order, param=param, name="hard-ramp"),
            np.zeros(dx))


@register_problem("hard-chain", "Carmon-Duchi-Hinder-Sidford zero-chain, shift-lifted, L_phi = ell1")
def _hard_chain(seed=0, T=20, dy=3, ell1=152.0, kappa=10.0):
    chain = CDHSChain(T, ell1)
    return lift_bilevel(chain, dy=dy, kappa=kappa, seed=seed, param=ell1, name="hard-chain"), np.zeros(T)


@register_problem("hard-cubic-minimax", "Cartis-Gould-Toint cubic worst case lifted to minimax (P = h)")
def _hard_cubic_minimax(seed=0, dx=2, dy=3, M=1.0, eta=0.01, k0=2, eps_min=1e-4, mu=1.0):
    h1 = cgt_cubic_function(M, eta, k0, eps_min=eps_min)
    return lift_minimax(h1, dx, dy, mu=mu, order="cubic", param=M, name="hard-cubic-minimax"), np.zeros(dx)
