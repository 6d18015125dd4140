r"""Lazy reuse of one eigendecomposition for many cubic subproblems (DCJ23).

Between Hessian refreshes, lazy second-order methods (LFSBA, LMCN; Doikov,
Chayti, Jaggi 2023, Algorithm 1) solve

.. math::

    s = \arg\min_s \langle g, s\rangle + \tfrac12 s^\top H_\pi s + \tfrac{M}{6}\|s\|^3

for a fixed snapshot H_π and a new gradient g each step.  With
H_π = Q diag(λ_i) Qᵀ computed once (O(d³)), each solve is c = Qᵀg (O(d²)), the
1-D secular equation (Cartis, Gould, Toint 2011, §6.1) on (λ_i, c) (O(d) per
Newton iteration, the same routine as ``solve_cubic(method="eigh")``), and
s = Qŝ (O(d²)) — about two dense mat-vecs.  M may change between solves
without refactoring.  The step is optimal for the snapshot H_π (the global
optimality conditions, Nesterov–Polyak 2006 Thm 10, with H_π), not the
current Hessian.

With period m the amortised cost is E/m + ≈2 mat-vecs per step, E ≈ 500–1400
mat-vecs for one eigh (d = 500–2000); m = d makes the eigh amortise to < 1
mat-vec.

Reference: N. Doikov, E. M. Chayti, M. Jaggi, "Second-order optimization with
lazy Hessians", ICML 2023, arXiv 2212.00781.
"""
from __future__ import annotations

import numpy as np

from .._validation import as_symmetric, as_vector, check_choice, check_int, check_nonnegative, check_positive
from .cubic import BACKENDS, solve_in_eigenbasis

__all__ = ["LazyCubic"]


class LazyCubic:
    """One eigendecomposition of H, then O(d²) cubic steps for any g (and any M).

    Parameters
    ----------
    H : (d, d) array_like
        Symmetric (possibly indefinite) snapshot Hessian.
    M : float > 0
        Default cubic constant ((M/6)‖s‖³ convention).
    backend : {"numba", "numpy"}, default "numba"
        Secular solve: jitted kernel, or the NumPy reference (then ``solve`` is
        bitwise equal to ``solve_cubic(g, H, M, method="eigh")``).
    tol_hard : float, default 1e-12
        Hard-case threshold, as in ``solve_cubic``.
    maxiter_secular : int, default 100

    Attributes
    ----------
    min_eig : float
        λ_1(H).
    n_solves : int
        Number of calls to :meth:`solve`.

    Examples
    --------
    >>> import numpy as np
    >>> lazy = LazyCubic(np.diag([2.0, -1.0]), M=1.0, backend="numpy")
    >>> step = lazy.solve(np.array([1.0, 1.0]))
    >>> lazy.n_solves
    1
    """

    def __init__(self, H, M, backend="numba", *, tol_hard=1e-12, maxiter_secular=100):
        H = as_symmetric(H, "H", copy=False)
        if H.shape[0] == 0:
            raise ValueError("H must have at least one row, got shape (0, 0)")
        self.M = check_positive(M, "M")
        self.backend = check_choice(backend, "backend", BACKENDS)
        self.tol_hard = check_nonnegative(tol_hard, "tol_hard")
        self.maxiter_secular = check_int(maxiter_secular, "maxiter_secular", minimum=1)
        self.eigenvalues, self.Q = np.linalg.eigh(H)
        self.d = H.shape[0]
        self.n_solves = 0

    @property
    def min_eig(self):
        """λ_1(H), the smallest eigenvalue of the snapshot."""
        return float(self.eigenvalues[0])

    def solve(self, g, M=None):
        """Cubic step for gradient ``g`` (and cubic constant ``M``, default the constructor's).

        Returns
        -------
        CubicResult
            ``method="lazy"``, ``n_matvec=0``.
        """
        g = as_vector(g, "g", self.d)
        M = self.M if M is None else check_positive(M, "M")
        self.n_solves += 1
        return solve_in_eigenbasis(self.eigenvalues, self.Q, g, M, self.backend, self.tol_hard,
                                   self.maxiter_secular, "lazy")

    def __repr__(self):
        return (f"LazyCubic(d={self.d}, M={self.M:g}, min_eig={self.min_eig:.6g}, "
                f"backend={self.backend!r}, n_solves={self.n_solves})")
