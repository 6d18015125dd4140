"""numba AGD / CG kernels reproduce the NumPy references (linalg/agd.py, linalg/cg.py).

CG: the reference, the stand-alone kernel ``_kernels.cg.cg`` and the AID method kernel
(``_kernels.loops.aid``) run one body, ``linalg.cg.cg_start / cg_running / cg_step``; given the
same products they return the same bits and the same counts.
"""
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from bilevel_ref import _jit
from bilevel_ref._kernels import agd as kagd
from bilevel_ref._kernels import cg as kcg
from bilevel_ref._kernels import loops
from bilevel_ref.linalg.agd import agd
from bilevel_ref.linalg.cg import cg
from bilevel_ref.problems.catalog import build_problem
from bilevel_ref.problems.quadratic import make_quadratic


@pytest.fixture(scope="module")
def lower():
    rng = np.random.default_rng(17)
    dy, dx = 40, 7
    Q, _ = np.linalg.qr(rng.standard_normal((dy, dy)))
    A = (Q * np.linspace(0.1, 2.0, dy)) @ Q.T
    A = (A + A.T) / 2
    C = rng.standard_normal((dy, dx))
    a = rng.standard_normal(dy)
    x = rng.standard_normal(dx)
    return A, C, a, x


def rel(u, v):
    return np.linalg.norm(u - v) / max(np.linalg.norm(v), 1e-300)


@pytest.mark.parametrize("steps,tol", [(0, None), (1, None), (50, None), (400, 1e-8)])
def test_agd_kernel_matches_reference(lower, steps, tol):
    A, C, a, x = lower
    grad_fn, _, params = kagd.quadratic_lower_oracles(A, C, a, x)
    y0 = np.linspace(-1, 1, A.shape[0])
    ref = agd(lambda y: A @ y + C @ x + a, y0, 2.0, 0.1, steps, tol=tol)
    ker = kagd.agd(grad_fn, params, y0, 2.0, 0.1, steps, tol=tol)
    assert ker.n_grad == ref.n_grad and ker.converged == ref.converged
    assert rel(ker.y, ref.y) <= 1e-10
    if steps:
        assert ker.grad_norm == pytest.approx(ref.grad_norm, rel=1e-10)


def test_agd_kernel_converges_to_closed_form(lower):
    A, C, a, x = lower
    grad_fn, _, params = kagd.quadratic_lower_oracles(A, C, a, x)
    res = kagd.agd(grad_fn, params, np.zeros(A.shape[0]), 2.0, 0.1, 2000, tol=1e-12)
    y_star = -np.linalg.solve(A, C @ x + a)
    assert res.converged and rel(res.y, y_star) <= 1e-10


@pytest.mark.parametrize("use_x0,maxiter", [(False, None), (True, None), (False, 5), (True, 3)])
def test_cg_kernel_matches_reference(lower, use_x0, maxiter):
    A, C, a, x = lower
    _, hvp_fn, params = kagd.quadratic_lower_oracles(A, C, a, x)
    rng = np.random.default_rng(1)
    b = rng.standard_normal(A.shape[0])
    x0 = rng.standard_normal(A.shape[0]) if use_x0 else None
    y = np.zeros(A.shape[0])
    ref = cg(lambda v: A @ v, b, x0=x0, maxiter=maxiter)
    ker = kcg.cg(hvp_fn, y, params, b, x0=x0, maxiter=maxiter)
    assert (ker.n_matvec, ker.n_iter, ker.converged) == (ref.n_matvec, ref.n_iter, ref.converged)
    assert rel(ker.x, ref.x) <= 1e-10
    assert ker.residual_norm == pytest.approx(ref.residual_norm, rel=1e-6, abs=1e-14)
    if maxiter is None:
        assert rel(ker.x, np.linalg.solve(A, b)) <= 1e-9


def test_cg_kernel_stops_on_negative_curvature():
    params = (np.diag([1.0, -1.0]), np.zeros(2))
    b = np.array([0.0, 1.0])
    ref = cg(lambda v: params[0] @ v, b)
    ker = kcg.cg(kagd.quadratic_hvp, np.zeros(2), params, b)
    assert (ker.n_iter, ker.n_matvec, ker.converged) == (ref.n_iter, ref.n_matvec, False)


def test_lower_oracles_for_quadratic_problem():
    problem = make_quadratic(6, 9, seed=3)
    x = np.linspace(0, 1, problem.dx)
    y = np.linspace(-1, 1, problem.dy)
    grad_fn, hvp_fn, params = kagd.lower_oracles(problem, x)
    assert np.allclose(grad_fn(y, params), problem.grad_g(x, y)[1], rtol=1e-13, atol=1e-13)
    v = np.cos(np.arange(problem.dy))
    assert np.allclose(hvp_fn(y, v, params), problem.hvp_yy_g(x, y, v), rtol=1e-13, atol=1e-13)
    with pytest.raises(TypeError, match="jitted"):
        kagd.lower_oracles(object(), x)


@pytest.mark.parametrize("kwargs,exc,name", [
    (dict(L=0.0), ValueError, "L"), (dict(mu=3.0), ValueError, "mu"), (dict(steps=-1), ValueError, "steps"),
    (dict(y0=np.array([np.nan, 0.0])), ValueError, "y0"),
])
def test_agd_kernel_bad_input(kwargs, exc, name):
    args = dict(grad_fn=kagd.quadratic_grad, params=(np.eye(2), np.zeros(2)), y0=np.zeros(2), L=2.0, mu=1.0,
                steps=3)
    args.update(kwargs)
    with pytest.raises(exc, match=name):
        kagd.agd(**args)


def test_quadratic_adapter_bad_input(lower):
    A, C, a, x = lower
    with pytest.raises(ValueError, match="x"):
        kagd.quadratic_lower_oracles(A, C, a, x[:-1])
    with pytest.raises(ValueError, match="A"):
        kagd.quadratic_lower_oracles(A[:, :-1], C, a, x)


# --------------------------------------------------------------------------- one CG body, three callers
def _spd(n, lo, hi, seed):
    rng = np.random.default_rng(seed)
    Q, _ = np.linalg.qr(rng.standard_normal((n, n)))
    A = (Q * np.linspace(lo, hi, n)) @ Q.T
    return np.ascontiguousarray((A + A.T) / 2)


# (H, b, x0, maxiter, rtol, atol, expected outcome); b and x0 drawn from the seed
_SYSTEMS = {
    "cold-converges": (_spd(30, 0.1, 2.0, 1), 11, False, None, 1e-10, 0.0, "converged"),
    "warm-converges": (_spd(30, 0.1, 2.0, 1), 12, True, None, 1e-10, 0.0, "converged"),
    "ill-conditioned": (_spd(17, 1e-3, 10.0, 2), 13, True, 60, 1e-12, 0.0, "converged"),
    "loose-rtol": (_spd(25, 1.0, 1.5, 3), 14, False, None, 1e-4, 0.0, "converged"),
    "maxiter-hit": (_spd(30, 0.1, 2.0, 1), 15, False, 3, 1e-10, 0.0, "maxiter"),
    "warm-maxiter-0": (_spd(30, 0.1, 2.0, 1), 16, True, 0, 1e-10, 0.0, "maxiter"),
    "indefinite-first": (np.diag([1.0, -1.0, 2.0]), None, False, None, 1e-10, 0.0, "curvature"),
    "indefinite-later": (np.diag([4.0, 3.0, 2.0, 1.0, -10.0]), None, False, None, 1e-10, 0.0, "curvature"),
}


def _system(key):
    H, seed, warm, maxiter, rtol, atol, outcome = _SYSTEMS[key]
    n = H.shape[0]
    if seed is None:  # indefinite: p_0 = b is a negative direction, or b weighs it so little that it
        # shows only after some steps
        b = np.array([0.0, 1.0, 0.0]) if key == "indefinite-first" else np.array([1.0, 1.0, 1.0, 1.0, 0.05])
        return H, b, None, maxiter, rtol, atol, outcome
    rng = np.random.default_rng(seed)
    b = rng.standard_normal(n)
    return H, b, rng.standard_normal(n) if warm else None, maxiter, rtol, atol, outcome


def _bits(res):
    return (res.x.tobytes(), res.n_matvec, res.n_iter, np.float64(res.residual_norm).tobytes(), res.converged)


class _Calls:
    """A problem stand-in for loops.aid: records the counts the kernel reports."""

    def __init__(self):
        self.calls = {}

    def count(self, kind, n):
        self.calls[kind] = self.calls.get(kind, 0) + n


@pytest.mark.parametrize("key", sorted(_SYSTEMS))
def test_cg_reference_and_kernel_give_the_same_bits(key):
    """linalg.cg.cg and _kernels.cg.cg with the same (compiled) product: identical iterates and counts."""
    H, b, x0, maxiter, rtol, atol, outcome = _system(key)
    params = (H, np.zeros(H.shape[0]))
    y = np.zeros(H.shape[0])
    inputs = (b.copy(), None if x0 is None else x0.copy())
    ref = cg(lambda v: kagd.quadratic_hvp(y, v, params), b, x0=x0, maxiter=maxiter, rtol=rtol, atol=atol)
    ker = kcg.cg(kagd.quadratic_hvp, y, params, b, x0=x0, maxiter=maxiter, rtol=rtol, atol=atol)
    assert _bits(ker) == _bits(ref)
    # compiled, cg_step updates its vectors in place: never the caller's
    assert b.tobytes() == inputs[0].tobytes() and (x0 is None or x0.tobytes() == inputs[1].tobytes())
    # the case is what its name says (a test that cannot fail is a defect)
    n_iter_cap = H.shape[0] if maxiter is None else maxiter
    assert ref.converged == (outcome == "converged")
    assert ref.n_iter == n_iter_cap if outcome == "maxiter" else ref.n_iter < n_iter_cap
    assert ref.n_matvec == ref.n_iter + (x0 is not None) + (outcome == "curvature")
    if outcome == "curvature":
        assert (ref.n_iter == 0) == (key == "indefinite-first")
    if outcome == "converged":  # truth from outside: the solution of Hx = b
        assert np.linalg.norm(H @ ref.x - b) <= 10 * max(rtol * np.linalg.norm(b), atol)


@pytest.mark.parametrize("key", sorted(k for k in _SYSTEMS if _SYSTEMS[k][5] == 0.0))
def test_cg_in_the_aid_kernel_gives_the_reference_bits(key):
    """The CG of the compiled AID kernel (no lower steps: y fixed) is linalg.cg.cg bit for bit, same counts."""
    H, b, v0, maxiter, rtol, _, _ = _system(key)
    n = H.shape[0]
    problem, _ = build_problem("quadratic", dx=2, dy=n)
    oracles = problem.compiled_oracles()
    data = list(oracles.data)
    data[6] = H  # quad_hvp_yy_g multiplies by data[6] (the lower-level Hessian A)
    oracles = oracles._replace(data=tuple(data))
    x, y = np.linspace(-1.0, 1.0, 2), np.linspace(0.5, -0.5, n)
    gy = oracles.grad_y_f(x, y, oracles.data)
    steps = n if maxiter is None else maxiter
    ref = cg(lambda v: oracles.hvp_yy_g(x, y, v, oracles.data), gy, x0=v0, maxiter=steps, rtol=rtol)
    calls = _Calls()
    v0_before = None if v0 is None else v0.copy()
    out = loops.aid(calls, oracles, x, y, v0, 0.1, 0, steps, rtol, False, 0.0)
    assert out is not None
    assert v0 is None or v0.tobytes() == v0_before.tobytes()  # the warm start is copied, not updated
    y_out, v, d = out
    assert y_out.tobytes() == y.tobytes() and v.tobytes() == ref.x.tobytes()
    assert d.tobytes() == (oracles.grad_x_f(x, y, oracles.data) - oracles.cross_g(x, y, v, oracles.data)).tobytes()
    assert calls.calls == {"grad_f": 1, "hvp_yy_g": ref.n_matvec, "cross_g": 1}
    if _jit.enabled():  # cacheable on disk: no dynamic globals (e.g. a dispatcher passed as an argument)
        kernel = loops._kernel("aid", oracles, ("grad_x_f", "grad_y_f", "grad_y_g", "hvp_yy_g", "cross_g"),
                               loops._build_aid)
        assert type(kernel._cache).__name__.endswith("ClosureFunctionCache")
        assert all(not cres.library.has_dynamic_globals for cres in kernel.overloads.values())


@pytest.mark.slow
@pytest.mark.skipif(not _jit.enabled(), reason="numba JIT disabled")
def test_aid_kernel_is_loaded_from_the_disk_cache_in_a_new_process(tmp_path):
    """The AID kernel (which calls the shared CG body by name) is read from numba's cache by a second process."""
    code = textwrap.dedent("""
        import numpy as np
        import bilevel_ref as br
        from bilevel_ref._kernels import loops
        from bilevel_ref.problems import quadratic_bilevel
        p = quadratic_bilevel(dx=3, dy=5, kappa=4.0, seed=0)
        r = br.minimize(p, "aid", np.zeros(3), options={"backend": "numba", "maxiter": 3, "inner_steps": 4,
                                                         "linsys_steps": 4})
        k = loops._KERNELS[next(key for key in loops._KERNELS if key[0] == "aid")]
        print(sum(k.stats.cache_hits.values()), sum(k.stats.cache_misses.values()), repr(r.x.tolist()))
    """)
    env = {key: value for key, value in os.environ.items() if key not in ("NUMBA_DISABLE_JIT", _jit.ENV_VAR)}
    env["NUMBA_CACHE_DIR"] = str(tmp_path)

    def run():
        proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr
        return proc.stdout.split(maxsplit=2)

    first, second = run(), run()
    assert (first[0], first[1]) == ("0", "1")    # compiled the first time
    assert (second[0], second[1]) == ("1", "0")  # loaded the second time
    assert first[2] == second[2]
