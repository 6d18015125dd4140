r"""Reference drivers: gradient descent and cubic-regularised Newton on φ with exact derivatives.

They give the single-level rows of the theory table (GD: :math:`O(\varepsilon^{-2})`
iterations with step 1/L, Nesterov 2004; cubic Newton with constant M:
:math:`O(\varepsilon^{-3/2})`, Nesterov & Polyak 2006; both sharp, Cartis,
Gould & Toint 2010) and validate the worst-case instances of
:mod:`bilevel_ref.problems.hard`.  Each iteration is counted as one
``grad_f`` (and one ``hess_f`` for cubic Newton); the result is a
:class:`~bilevel_ref.complexity.trace.Trace` like that of a registered method.
"""
from __future__ import annotations

import math

import numpy as np

from .. import _jit
from .._kernels.oracles import BACKENDS
from ..oracles import COUNT_KINDS
from .._validation import as_vector, check_positive
from .trace import Trace, target_met_at

__all__ = ["DRIVERS", "gd_trace", "cubic_newton_trace", "run_driver"]

#: Reference drivers (single-level methods on φ with exact derivatives), as ``eps_sweep`` methods.
DRIVERS = ("gd", "cubic_newton")


def _derivative_access(fun):
    """(grad, hess, dim, scalar_fast) for a function object or a problem with closed forms."""
    if hasattr(fun, "derivs_scalar"):
        return None, None, 1, fun.derivs_scalar
    if hasattr(fun, "grad_phi"):
        return fun.grad_phi, fun.hess_phi, fun.dx, None
    if hasattr(fun, "grad") and hasattr(fun, "hess"):
        return fun.grad, fun.hess, fun.dx, None
    raise TypeError("fun must be a PiecewiseHermite, an object with grad/hess, or a problem with "
                    f"grad_phi/hess_phi; got {type(fun).__name__}")


def _cubic_step_1d(g, h, M):
    # Global minimiser of g s + h s²/2 + (M/6)|s|³: s = −sign(g) r, (M/2)r² + h r − |g| = 0,
    # r = 2|g|/(h + √(h² + 2M|g|)) (rationalised; stable for h > 0); hard case g = 0, h < 0.
    if g == 0.0:
        return -2.0 * h / M if h < 0 else 0.0
    r = 2.0 * abs(g) / (h + math.sqrt(h * h + 2.0 * M * abs(g))) if h >= 0 else \
        (-h + math.sqrt(h * h + 2.0 * M * abs(g))) / M
    return -math.copysign(r, g)


def _compiled(fun, backend, kinds, measure):
    """The compiled oracles the driver kernel runs on, or None for the NumPy loop (``backend``
    resolved as :func:`bilevel_ref._kernels.oracles.resolve_backend` does for methods)."""
    if backend not in BACKENDS:
        raise ValueError(f"options['backend'] must be one of {list(BACKENDS)}, got {backend!r}")
    if backend == "numpy":
        return None
    needs = ("grad_phi", "hess_phi") if ("hess" in kinds or measure in ("sosp", "minimax")) else ("grad_phi",)
    oracles = fun.compiled_oracles() if hasattr(fun, "compiled_oracles") else None
    ok = oracles is not None and all(getattr(oracles, n, None) is not None for n in needs)
    if backend == "auto":
        return oracles if ok and _jit.enabled() else None
    if not ok:
        raise ValueError(f"options['backend'] = 'numba': {getattr(fun, 'name', type(fun).__name__)!r} provides "
                         f"no compiled {' and '.join(needs)} (jitted-oracle convention, "
                         "bilevel_ref._kernels.oracles: compiled_oracles())")
    return oracles


def _driver_trace(fun, x0, step_fn, stop_eps, maxiter, kinds, measure, rho, backend="numpy", M=None, step=None):
    """Iterate x ← x + step_fn(∇φ, ∇²φ) from x0, recording |∇φ| and λ_min until the target or maxiter."""
    grad, hess, dim, scalar = _derivative_access(fun)
    need_hess = measure in ("sosp", "minimax")
    compiled = _compiled(fun, backend, kinds, measure)
    if compiled is not None:
        from .._kernels import loops

        if stop_eps is not None:
            target_met_at(0.0, 0.0, stop_eps, measure, rho)  # the NumPy loop's errors (measure, rho), up front
        x_final, gns, lams = loops.driver_trace(compiled, as_vector(x0, "x0", dim), cubic="hess" in kinds,
                                                step=step, M=M, stop_eps=stop_eps, maxiter=maxiter,
                                                measure=measure, rho=rho, need_hess=need_hess)
        return _trace(gns, lams, kinds, x_final)
    if scalar is not None:  # fast scalar path: (f', f'') in one call
        x = float(np.asarray(x0, dtype=float).reshape(-1)[0])

        def derivs(x):
            g, h = scalar(x)
            return g, abs(g), h, h
    else:
        x = as_vector(x0, "x0", dim)

        def derivs(x):
            g = grad(x)
            H = hess(x) if (need_hess or "hess" in kinds) else None
            lam = float(np.linalg.eigvalsh(H)[0]) if H is not None else math.nan
            return g, float(np.linalg.norm(g)), H, lam
    gns, lams = [], []
    for _ in range(maxiter + 1):
        g, gn, h, lam = derivs(x)
        gns.append(gn)
        lams.append(lam)
        if stop_eps is not None and target_met_at(gn, lam, stop_eps, measure, rho):
            break
        if len(gns) > maxiter:
            break
        x = x + step_fn(g, h)
    return _trace(gns, lams, kinds, np.atleast_1d(x))


def _trace(gns, lams, kinds, x_final):
    """The :class:`Trace` of the iterates' |∇φ| and λ_min (one ``grad_f``, and ``hess_f``, per iteration)."""
    t = np.arange(len(gns), dtype=np.int64)
    counts = {k: np.zeros(len(gns), dtype=np.int64) for k in COUNT_KINDS}
    counts["grad_f"] = t.copy()
    if "hess" in kinds:
        counts["hess_f"] = t.copy()
    return Trace(np.array(gns), np.array(lams), counts, t, 1, {"x": x_final, "nit": int(t[-1])})


def gd_trace(fun, x0, step, *, stop_eps=None, maxiter=10**7, measure="norm", rho=None, backend="auto"):
    """Gradient descent x ← x − step·∇φ(x) on a function with exact derivatives.

    ``fun``: a :class:`~bilevel_ref.problems.hard.PiecewiseHermite` (fast scalar
    loop), an object with ``grad``/``hess``/``dx``, or a problem with
    ``grad_phi``.  One ``grad_f`` per iteration.  ``backend``: ``"numba"`` runs
    the whole loop in one kernel over ``fun.compiled_oracles()`` (``grad_phi``,
    and ``hess_phi`` when λ_min is measured); ``"auto"`` does so when they exist.
    """
    step = check_positive(step, "step")
    return _driver_trace(fun, x0, lambda g, h: -step * g, stop_eps, maxiter, ("grad",), measure, rho,
                         backend=backend, step=step)


def cubic_newton_trace(fun, x0, M, *, stop_eps=None, maxiter=10**7, measure="norm", rho=None, backend="auto"):
    r"""Cubic-regularised Newton (Nesterov–Polyak) with constant M on exact derivatives.

    :math:`x \leftarrow x + \arg\min_s \langle g, s\rangle + \tfrac12 s^\top H s + \tfrac M6\|s\|^3`
    (closed form in 1-D, :func:`bilevel_ref.linalg.cubic.solve_cubic` (eigh)
    otherwise).  One ``grad_f`` and one ``hess_f`` per iteration.  ``backend``
    as :func:`gd_trace` (the kernel runs eigh and the compiled secular solve).
    """
    M = check_positive(M, "M")
    grad, hess, dim, scalar = _derivative_access(fun)
    if scalar is not None:
        step_fn = lambda g, h: _cubic_step_1d(g, h, M)  # noqa: E731
    else:
        from ..linalg.cubic import solve_cubic

        step_fn = lambda g, H: solve_cubic(g, H, M, method="eigh").s  # noqa: E731
    return _driver_trace(fun, x0, step_fn, stop_eps, maxiter, ("grad", "hess"), measure, rho,
                         backend=backend, M=M)


def _driver_default(fun, key):
    known = fun.constants() if hasattr(fun, "constants") else {}
    if key == "step":
        if "L_phi" in known:
            return 1.0 / known["L_phi"]
        if hasattr(fun, "lipschitz_grad"):
            return 1.0 / fun.lipschitz_grad()
    if key == "M":
        for k in ("M", "rho_phi"):
            if k in known:
                return float(known[k])
        if hasattr(fun, "lipschitz_hess"):
            return fun.lipschitz_hess()
    raise ValueError(f"options[{key!r}] is required: cannot derive it from {type(fun).__name__}")


def run_driver(method, fun, x0, options, stop_eps, measure, rho, maxiter):
    """Trace of driver ``method`` (:data:`DRIVERS`) with option ``step`` (GD) or ``M`` (cubic
    Newton), by default 1/L_φ or ρ_φ from the function's constants."""
    options = dict(options or {})
    backend = options.pop("backend", "auto")
    if method == "gd":
        step = options.pop("step", None) or _driver_default(fun, "step")
        tr = gd_trace(fun, x0, step, stop_eps=stop_eps, maxiter=maxiter, measure=measure, rho=rho,
                      backend=backend)
    else:
        M = options.pop("M", None) or _driver_default(fun, "M")
        tr = cubic_newton_trace(fun, x0, M, stop_eps=stop_eps, maxiter=maxiter, measure=measure, rho=rho,
                                backend=backend)
    if options:
        raise ValueError(f"unknown option(s) {sorted(options)} for driver {method!r}")
    return tr

