r"""Problem constants: the declared keys and the one resolution policy.

A problem may report bounds in ``constants()``; the keys must come from
:data:`CONSTANT_KEYS` (a misspelt key is a ``ValueError``).  Every method
resolves a constant it needs the same way (:func:`resolve_constant`):

1. the method's option of the same name (``options={"L_g": 4.0}``), else
2. ``problem.constants()[key]``, else
3. a **counted** estimate on the problem's own oracles at the starting point
   :math:`(x_0, y_0)`:

   * ``L_g``, ``mu_g``: largest / smallest eigenvalue of
     :math:`\nabla^2_{yy} g(x_0, y_0)` from ``hvp_yy_g`` products;
   * ``L_f``: :math:`\|\nabla^2_{yy} f(x_0, y_0)\|_2` from ``hvp_yy_f``;
   * ``L_y``, ``mu_y`` (minimax, f concave in y): largest / smallest
     eigenvalue of :math:`-\nabla^2_{yy} f(x_0, y_0)`;
   * ``L_phi``: power iteration on finite differences of the hypergradient
     :math:`\nabla\varphi(x) = \nabla_x f - \nabla^2_{xy} g\,[\nabla^2_{yy} g]^{-1}\nabla_y f`
     at :math:`(y^*(x), v^*(x))` from a tight AGD + CG solve (``grad_g``,
     ``grad_f``, ``hvp_yy_g``, ``cross_g``).

   Eigenvalues come from the dense matrix built from ``dim`` products when
   ``dim <= 32`` (exact), else from ARPACK's Lanczos (:func:`scipy.sparse.linalg.eigsh`,
   relative tolerance 1e-6) on the counted products.  The estimates are local:
   on a non-quadratic problem the curvature far from :math:`(x_0, y_0)` may be
   larger; report a global bound in ``constants()`` when you have one.

The result of :func:`bilevel_ref.minimize` reports every constant a method used
in ``res.constants`` and where each came from in ``res.constant_sources``
(``"option"``, ``"problem"`` or ``"estimate"``); the estimates' oracle calls
are in ``res.oracle_calls``.
"""
from __future__ import annotations

import difflib
import math
import numbers

import numpy as np

__all__ = ["CONSTANT_KEYS", "check_constants", "resolve_constant", "estimate_constant"]

#: The keys ``constants()`` may report, and what each bounds.
CONSTANT_KEYS = {
    "L_g": "smoothness of g in y: ‖∇²_yy g‖ ≤ L_g",
    "mu_g": "strong convexity of g in y: ∇²_yy g ⪰ mu_g·I",
    "L_f": "smoothness of f in y: ‖∇²_yy f‖ ≤ L_f",
    "L_xy": "bound on the cross derivative ‖∇²_xy g‖",
    "L_phi": "smoothness of the hyper-objective: ‖∇²φ‖ ≤ L_phi",
    "rho_phi": "Lipschitz constant of ∇²φ",
    "M": "cubic-regularisation constant suited to the problem",
    "ell": "joint smoothness ℓ of f in (x, y) (penalty and minimax methods)",
    "L_y": "minimax: smoothness of f in y",
    "mu_y": "minimax: strong concavity of f in y",
}

_DENSE_MAX = 32


def check_constants(known, problem_name="problem"):
    """``known`` as a dict of floats after checking its keys and values."""
    if not isinstance(known, dict):
        raise TypeError(f"{problem_name}.constants() must return a dict, got {type(known).__name__}")
    out = {}
    for key, value in known.items():
        if key not in CONSTANT_KEYS:
            close = difflib.get_close_matches(str(key), CONSTANT_KEYS, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ValueError(f"{problem_name}.constants() reports unknown key {key!r}{hint} "
                             f"(known keys: {sorted(CONSTANT_KEYS)})")
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value) \
                or value <= 0:
            raise ValueError(f"{problem_name}.constants()[{key!r}] must be a finite positive number, "
                             f"got {value!r}")
        out[key] = float(value)
    return out


def _spectrum(matvec, dim, rng):
    """(λ_min, λ_max) of the symmetric operator ``matvec`` (dense if small, else Lanczos)."""
    if dim <= _DENSE_MAX:
        A = np.column_stack([matvec(e) for e in np.eye(dim)])
        lam = np.linalg.eigvalsh(0.5 * (A + A.T))
        return float(lam[0]), float(lam[-1])
    from scipy.sparse.linalg import LinearOperator, eigsh

    op = LinearOperator((dim, dim), matvec=lambda v: matvec(np.asarray(v).ravel()), dtype=np.float64)
    v0 = rng.standard_normal(dim)
    ncv = min(dim - 1, 24)
    lo = eigsh(op, k=1, which="SA", tol=1e-6, v0=v0, ncv=ncv, return_eigenvectors=False)[0]
    hi = eigsh(op, k=1, which="LA", tol=1e-6, v0=v0, ncv=ncv, return_eigenvectors=False)[0]
    return float(lo), float(hi)


def _need(problem, oracle, key):
    if not problem.provides(oracle):
        raise ValueError(
            f"options[{key!r}] is required: problem {problem.name!r} reports no {key!r} in constants() "
            f"({CONSTANT_KEYS[key]}) and provides no {oracle!r} to estimate it")


def tight_solve(grad, y0, L, mu):
    """Minimiser of an L-smooth, mu-strongly convex function by AGD to ‖∇‖ ≤ 1e-12
    (at most √κ·log(1e12) + 20 steps, each one counted ``grad`` call)."""
    from .linalg.agd import agd

    steps = int(math.ceil(math.sqrt(L / mu) * math.log(1e12))) + 20
    return agd(grad, y0, L, mu, steps, tol=1e-12).y


def tight_hypergradient(problem, x, y, L_g, mu_g):
    """∇φ(x) from a tight AGD lower solve and CG (counted); returns (∇φ, y*)."""
    from .linalg.cg import cg

    y = tight_solve(lambda q: problem.grad_y_g(x, q), y, L_g, mu_g)
    gx, gy = problem.grad_f(x, y)
    v = cg(lambda q: problem.hvp_yy_g(x, y, q), gy, maxiter=max(2 * problem.dy, 50), rtol=1e-12).x
    return gx - problem.cross_g(x, y, v), y


def _estimate_L_phi(problem, x, y, rng, L_g, mu_g, iters=10):
    for oracle in ("grad_f", "grad_g", "hvp_yy_g", "cross_g"):
        _need(problem, oracle, "L_phi")
    g0, y_star = tight_hypergradient(problem, x, y, L_g, mu_g)
    u = rng.standard_normal(problem.dx)
    u /= np.linalg.norm(u)
    delta = 1e-5 * (1.0 + float(np.linalg.norm(x)))
    L = 0.0
    for _ in range(iters):
        g1 = tight_hypergradient(problem, x + delta * u, y_star, L_g, mu_g)[0]
        hu = (g1 - g0) / delta
        L = float(np.linalg.norm(hu))
        if L == 0.0:
            break
        u = hu / L
    return L


def estimate_constant(problem, key, x, y, rng, resolve, cache=None):
    """A counted estimate of ``key`` at ``(x, y)``; ``resolve(key)`` gives other constants.

    ``cache`` (a dict kept for one run) holds the spectra already computed, so
    ``L_g`` and ``mu_g`` (or ``L_y`` and ``mu_y``) share one set of products.
    """
    cache = {} if cache is None else cache

    def spectrum(oracle, sign):
        if oracle not in cache:
            hvp = getattr(problem, oracle)
            cache[oracle] = _spectrum(lambda v: sign * hvp(x, y, v), problem.dy, rng)
        return cache[oracle]

    if key in ("L_g", "mu_g"):
        _need(problem, "hvp_yy_g", key)
        lo, hi = spectrum("hvp_yy_g", 1.0)
        if key == "L_g":
            return hi
        if lo <= 0:
            raise ValueError(f"options['mu_g'] is required: the estimated smallest eigenvalue of "
                             f"∇²_yy g at the starting point is {lo:.3e} <= 0 (g is not strongly convex "
                             f"in y there); problem {problem.name!r} reports no 'mu_g' in constants()")
        return lo
    if key == "L_f":
        _need(problem, "hvp_yy_f", key)
        lo, hi = spectrum("hvp_yy_f", 1.0)
        return max(abs(lo), abs(hi))
    if key in ("L_y", "mu_y"):
        _need(problem, "hvp_yy_f", key)
        lo, hi = spectrum("hvp_yy_f", 1.0)
        lo, hi = -hi, -lo  # spectrum of −∇²_yy f
        if key == "L_y":
            return hi
        if lo <= 0:
            raise ValueError(f"options['mu_y'] is required: f is not strongly concave in y at the start "
                             f"(estimated λ_min(−∇²_yy f) = {lo:.3e})")
        return lo
    if key == "L_phi":
        L = _estimate_L_phi(problem, x, y, rng, resolve("L_g"), resolve("mu_g"))
        if not L > 0:
            raise ValueError(f"options['step_x'] or options['L_phi'] is required: the estimated L_phi of "
                             f"problem {problem.name!r} at the starting point is {L:.3e} (φ looks linear "
                             "there)")
        return L
    raise ValueError(f"options[{key!r}] is required: problem {problem.name!r} reports no {key!r} in "
                     f"constants() ({CONSTANT_KEYS[key]}) and it cannot be estimated")


def resolve_constant(problem, opts, key, x, y, rng, resolve, cache=None):
    """``(value, source)``: the option, else ``problem.constants()``, else a counted estimate."""
    value = opts.get(key)
    if value is not None:
        return float(value), "option"
    known = problem.constants()
    if key in known:
        return known[key], "problem"
    return estimate_constant(problem, key, x, y, rng, resolve, cache), "estimate"
