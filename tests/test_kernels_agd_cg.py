"""numba AGD / CG kernels reproduce the NumPy references (linalg/agd.py, linalg/cg.py)."""
import numpy as np
import pytest

from bilevel_ref._kernels import agd as kagd
from bilevel_ref._kernels import cg as kcg
from bilevel_ref.linalg.agd import agd
from bilevel_ref.linalg.cg import cg
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
