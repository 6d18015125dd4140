"""Compiled oracles (bilevel_ref._kernels.oracles / .problems) against the NumPy oracles and finite differences."""
import numpy as np
import pytest

from bilevel_ref._kernels.oracles import FIELDS, CompiledOracles
from bilevel_ref.check import fd_gradient, fd_jacobian
from bilevel_ref.problems import BilevelProblem
from bilevel_ref.problems.catalog import build_problem
from bilevel_ref.problems.hard import cgt_cubic_function
from bilevel_ref.problems.wrappers import SecondOrderCost

#: every catalog family with compiled oracles (small instances: compilation dominates)
BILEVEL = [("quadratic", {"dx": 3, "dy": 4}), ("quartic-quadratic", {"dx": 3, "dy": 4}),
           ("hard-cubic", {}), ("hard-gd", {}), ("hard-ramp", {}), ("hard-ramp", {"order": "cubic"}),
           ("hard-chain", {"T": 5})]
MINIMAX = [("quadratic-minimax", {"dx": 3, "dy": 4}), ("nc-sc-minimax", {"dx": 3, "dy": 4}),
           ("hard-cubic-minimax", {})]


def _ids(cases):
    return [name + "".join(f"-{k}={v}" for k, v in params.items()) for name, params in cases]


def close(a, b, rtol=1e-12):
    a, b = np.asarray(a), np.asarray(b)
    assert a.shape == b.shape
    scale = max(np.max(np.abs(b), initial=0.0), 1e-300)
    assert np.max(np.abs(a - b), initial=0.0) <= rtol * scale, (a, b)


def _point(problem, rng, scale=0.7):
    x = scale * rng.standard_normal(problem.dx)
    if "ramp" in problem.name or "cubic" in problem.name or "gd" in problem.name:
        x[0] = abs(x[0]) * 3.0  # inside the Hermite pieces
    return x, rng.standard_normal(problem.dy), rng.standard_normal(problem.dy)


@pytest.mark.parametrize("name,params", BILEVEL, ids=_ids(BILEVEL))
def test_bilevel_compiled_oracles_match_numpy(name, params, rng):
    problem, _ = build_problem(name, **params)
    co = problem.compiled_oracles()
    assert isinstance(co, CompiledOracles)
    for _ in range(3):
        x, y, v = _point(problem, rng)
        d = co.data
        gx_f, gy_f = problem.grad_f(x, y)
        gx_g, gy_g = problem.grad_g(x, y)
        close(co.grad_x_f(x, y, d), gx_f)
        close(co.grad_y_f(x, y, d), gy_f)
        close(co.grad_x_g(x, y, d), gx_g)
        close(co.grad_y_g(x, y, d), gy_g)
        for got, want in zip(co.hess_f(x, y, d), problem.hess_f(x, y)):
            close(got, want)
        for got, want in zip(co.hess_g(x, y, d), problem.hess_g(x, y)):
            close(got, want)
        close(co.hvp_yy_g(x, y, v, d), problem.hvp_yy_g(x, y, v))
        close(co.cross_g(x, y, v, d), problem.cross_g(x, y, v))
        close(co.grad_phi(x, d), problem.grad_phi(x))
        if co.hess_phi is not None:
            close(co.hess_phi(x, d), problem.hess_phi(x))


@pytest.mark.parametrize("name,params", MINIMAX, ids=_ids(MINIMAX))
def test_minimax_compiled_oracles_match_numpy(name, params, rng):
    problem, _ = build_problem(name, **params)
    co = problem.compiled_oracles()
    for _ in range(3):
        x, y, _ = _point(problem, rng)
        gx, gy = problem.grad_f(x, y)
        close(co.grad_x_f(x, y, co.data), gx)
        close(co.grad_y_f(x, y, co.data), gy)
        for got, want in zip(co.hess_f(x, y, co.data), problem.hess_f(x, y)):
            close(got, want)
        if co.grad_phi is not None:
            close(co.grad_phi(x, co.data), problem.grad_phi(x))
            close(co.hess_phi(x, co.data), problem.hess_phi(x))


@pytest.mark.parametrize("name,params", BILEVEL + MINIMAX, ids=_ids(BILEVEL + MINIMAX))
def test_compiled_oracles_match_finite_differences(name, params, rng):
    """Outside truth: gradients are derivatives of the problem's values, Hessian blocks of the gradients."""
    problem, _ = build_problem(name, **params)
    co, d = problem.compiled_oracles(), problem.compiled_oracles().data
    x, y, v = _point(problem, rng)
    tol = dict(rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(co.grad_x_f(x, y, d), fd_gradient(lambda t: problem.f(t, y), x), **tol)
    np.testing.assert_allclose(co.grad_y_f(x, y, d), fd_gradient(lambda t: problem.f(x, t), y), **tol)
    hxx, hxy, hyy = co.hess_f(x, y, d)
    np.testing.assert_allclose(hxx, fd_jacobian(lambda t: co.grad_x_f(t, y, d), x), **tol)
    np.testing.assert_allclose(hxy, fd_jacobian(lambda t: co.grad_x_f(x, t, d), y), **tol)
    np.testing.assert_allclose(hyy, fd_jacobian(lambda t: co.grad_y_f(x, t, d), y), **tol)
    if co.grad_y_g is None:
        return
    np.testing.assert_allclose(co.grad_x_g(x, y, d), fd_gradient(lambda t: problem.g(t, y), x), **tol)
    np.testing.assert_allclose(co.grad_y_g(x, y, d), fd_gradient(lambda t: problem.g(x, t), y), **tol)
    hxx, hxy, hyy = co.hess_g(x, y, d)
    np.testing.assert_allclose(hxy, fd_jacobian(lambda t: co.grad_x_g(x, t, d), y), **tol)
    np.testing.assert_allclose(hyy, fd_jacobian(lambda t: co.grad_y_g(x, t, d), y), **tol)
    np.testing.assert_allclose(co.hvp_yy_g(x, y, v, d), hyy @ v, **tol)
    np.testing.assert_allclose(co.cross_g(x, y, v, d), hxy @ v, **tol)


def test_hermite_scalar_path_is_the_vectorised_one(rng):
    """The pure-Python scalar f', f'' of PiecewiseHermite (the NumPy path's speed-up) equal the
    vectorised evaluation on 1-element arrays (the previous scalar route) bit for bit."""
    h = cgt_cubic_function(eps_min=1e-3)
    xs = np.concatenate([rng.uniform(h.nodes[0] - 1, h.nodes[-1] + 1, 2000), h.nodes, [-np.inf, np.inf]])
    for x in xs:
        assert h.deriv(float(x)) == float(h.deriv(np.array([x]))[0])
        assert h.deriv2(float(x)) == float(h.deriv2(np.array([x]))[0])


def test_subclass_overriding_an_oracle_gets_no_compiled_oracles():
    problem, _ = build_problem("quadratic", dx=2, dy=3)

    class Shifted(type(problem)):
        def grad_g(self, x, y, batch=None):
            gx, gy = super().grad_g(x, y)
            return gx, gy + 1.0

    shifted = Shifted(problem.P, problem.R, problem.S, problem.p, problem.q, problem.A, problem.C,
                      problem.E, problem.a, problem.b)
    assert shifted.compiled_oracles() is None
    # its gradient blocks follow its own grad_g, not the parent's block formula
    x, y = np.ones(2), np.ones(3)
    np.testing.assert_array_equal(shifted.grad_y_g(x, y), problem.grad_y_g(x, y) + 1.0)

    class Renamed(type(problem)):
        name = "renamed"

    assert isinstance(Renamed(problem.P, problem.R, problem.S, problem.p, problem.q, problem.A, problem.C,
                              problem.E, problem.a, problem.b).compiled_oracles(), CompiledOracles)


def test_user_problems_and_wrappers_have_none():
    problem, _ = build_problem("hard-cubic")
    assert SecondOrderCost(problem, 2).compiled_oracles() is None
    assert BilevelProblem().compiled_oracles() is None
    assert FIELDS[0] == "grad_x_f" and "data" not in FIELDS
