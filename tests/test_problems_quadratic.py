"""Closed-form problems: every oracle vs central finite differences, closed forms vs
numerically solved lower levels and finite differences of φ."""
import numpy as np
import pytest
import scipy.optimize as so

from bilevel_ref.problems import (
    make_quadratic,
    make_quadratic_minimax,
    make_quartic_quadratic,
    quadratic_bilevel,
)

from _fd import fd_directional, fd_gradient, fd_jacobian

BILEVEL = {
    "quadratic": lambda: make_quadratic(6, 4, seed=3),
    "quadratic-indefinite": lambda: make_quadratic(5, 7, cond_phi="indefinite", seed=4),
    "quartic": lambda: make_quartic_quadratic(5, 6, seed=5),
    "quartic-nonseparable": lambda: make_quartic_quadratic(6, 3, seed=6),
}


def _point(problem, rng):
    return rng.standard_normal(problem.dx), rng.standard_normal(problem.dy)


@pytest.mark.parametrize("name", sorted(BILEVEL))
@pytest.mark.parametrize("fn", ["f", "g"])
def test_bilevel_oracles_match_finite_differences(name, fn, rng):
    problem = BILEVEL[name]()
    x, y = _point(problem, rng)
    value = getattr(problem, fn)
    grad = getattr(problem, f"grad_{fn}")
    gx, gy = grad(x, y)
    np.testing.assert_allclose(gx, fd_gradient(lambda t: value(t, y), x), rtol=1e-7, atol=1e-8)
    np.testing.assert_allclose(gy, fd_gradient(lambda t: value(x, t), y), rtol=1e-7, atol=1e-8)
    hxx, hxy, hyy = getattr(problem, f"hess_{fn}")(x, y)
    np.testing.assert_allclose(hxx, fd_jacobian(lambda t: grad(t, y)[0], x), rtol=1e-7, atol=1e-8)
    np.testing.assert_allclose(hyy, fd_jacobian(lambda t: grad(x, t)[1], y), rtol=1e-7, atol=1e-8)
    # ∇²_xy h ∈ R^{dx×dy}: column j is d(∇_x h)/dy_j
    np.testing.assert_allclose(hxy, fd_jacobian(lambda t: grad(x, t)[0], y), rtol=1e-7, atol=1e-8)
    np.testing.assert_allclose(hxx, hxx.T, atol=1e-14)
    np.testing.assert_allclose(hyy, hyy.T, atol=1e-14)
    u, v = rng.standard_normal(problem.dx), rng.standard_normal(problem.dy)
    np.testing.assert_allclose(getattr(problem, f"hvp_yy_{fn}")(x, y, v),
                               fd_directional(lambda t: grad(x, t)[1], y, v), rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(getattr(problem, f"hvp_xx_{fn}")(x, y, u),
                               fd_directional(lambda t: grad(t, y)[0], x, u), rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(getattr(problem, f"cross_{fn}")(x, y, v),
                               fd_directional(lambda t: grad(x, t)[0], y, v), rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(getattr(problem, f"cross_t_{fn}")(x, y, u),
                               fd_directional(lambda t: grad(t, y)[1], x, u), rtol=1e-6, atol=1e-8)


def _y_star_numerical(problem, x):
    # Newton-type root finding on the optimality condition ∇_y g(x, y) = 0
    res = so.root(lambda y: problem.grad_g(x, y)[1], np.zeros(problem.dy),
                  jac=lambda y: problem.hess_g(x, y)[2], method="lm", tol=1e-15)
    assert np.linalg.norm(problem.grad_g(x, res.x)[1]) <= 1e-11
    return res.x


@pytest.mark.parametrize("name", sorted(BILEVEL))
def test_closed_forms_against_numerical_lower_level(name, rng):
    problem = BILEVEL[name]()
    x = rng.standard_normal(problem.dx)
    # y*: the lower-level optimality condition ∇_y g(x, y*) = 0 and a numerical solve
    y_star = problem.y_star(x)
    assert np.linalg.norm(problem.grad_g(x, y_star)[1]) <= 1e-10 * max(1, np.linalg.norm(y_star))
    np.testing.assert_allclose(y_star, _y_star_numerical(problem, x), rtol=1e-6, atol=1e-7)
    # φ through the numerical y*, ∇φ and ∇²φ by finite differences of φ
    assert problem.phi(x) == pytest.approx(problem.f(x, _y_star_numerical(problem, x)), rel=1e-9, abs=1e-10)
    np.testing.assert_allclose(problem.grad_phi(x), fd_gradient(problem.phi, x), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(problem.hess_phi(x), fd_jacobian(problem.grad_phi, x), rtol=1e-6, atol=1e-7)


def test_quadratic_penalty_and_perturbed_closed_forms(rng):
    problem = make_quadratic(5, 4, seed=8)
    x = rng.standard_normal(5)
    for lam in (10.0, 1e3):
        y_lam = problem.y_star_penalty(x, lam)
        # optimality of y*_λ for f + λg
        grad = problem.grad_f(x, y_lam)[1] + lam * problem.grad_g(x, y_lam)[1]
        assert np.linalg.norm(grad) <= 1e-9 * lam
        # ∇²L*_λ is the derivative of ∇L*_λ (central finite differences)
        np.testing.assert_allclose(problem.hess_penalty(x, lam),
                                   fd_jacobian(lambda t: problem.grad_penalty(t, lam), x),
                                   rtol=1e-6, atol=1e-6 * lam)
    # L*_λ → φ: ∇L*_λ − ∇φ = O(1/λ)
    errs = [np.linalg.norm(problem.grad_penalty(x, lam) - problem.grad_phi(x)) for lam in (1e2, 1e3, 1e4)]
    slope = np.polyfit(np.log([1e2, 1e3, 1e4]), np.log(errs), 1)[0]
    assert slope == pytest.approx(-1.0, abs=0.1)
    nu = 0.05
    y_nu = problem.y_star_perturbed(x, nu)
    assert np.linalg.norm(problem.grad_g(x, y_nu)[1] + nu * problem.grad_f(x, y_nu)[1]) <= 1e-10


def test_convex_generator_has_prescribed_curvature():
    problem = make_quadratic(8, 6, mu=0.05, L=2.0, mu_phi=0.2, seed=1)
    assert np.linalg.eigvalsh(problem.hess_phi(np.zeros(8)))[0] == pytest.approx(0.2, rel=1e-9)
    assert np.linalg.eigvalsh(problem.A)[[0, -1]] == pytest.approx([0.05, 2.0], rel=1e-9)
    c = problem.constants()
    assert c["mu_g"] == pytest.approx(0.05) and c["L_g"] == pytest.approx(2.0)
    assert quadratic_bilevel(4, 4, kappa=100.0).constants()["mu_g"] == pytest.approx(0.01)


def test_quartic_saddle_and_known_minima():
    problem = make_quartic_quadratic(4, 5, seed=2)
    x0 = np.zeros(4)
    assert np.linalg.norm(problem.grad_phi(x0)) == 0.0
    assert np.linalg.eigvalsh(problem.hess_phi(x0))[0] < -0.5
    x_min = problem.stationary_point([1, -1, 1, 1])
    assert np.linalg.norm(problem.grad_phi(x_min)) <= 1e-12
    assert np.linalg.eigvalsh(problem.hess_phi(x_min))[0] > 0
    x_saddle = problem.stationary_point([1, 0, -1, 1])
    assert np.linalg.norm(problem.grad_phi(x_saddle)) <= 1e-12
    assert np.linalg.eigvalsh(problem.hess_phi(x_saddle))[0] < 0
    with pytest.raises(ValueError, match="diagonal"):
        make_quartic_quadratic(5, 3, seed=0).stationary_point(np.ones(5))


def test_quadratic_minimax_closed_forms(rng):
    problem = make_quadratic_minimax(5, 4, seed=9)
    x, y = rng.standard_normal(5), rng.standard_normal(4)
    gx, gy = problem.grad_f(x, y)
    np.testing.assert_allclose(gx, fd_gradient(lambda t: problem.f(t, y), x), rtol=1e-7, atol=1e-8)
    np.testing.assert_allclose(gy, fd_gradient(lambda t: problem.f(x, t), y), rtol=1e-7, atol=1e-8)
    hxx, hxy, hyy = problem.hess_f(x, y)
    np.testing.assert_allclose(hxy, fd_jacobian(lambda t: problem.grad_f(x, t)[0], y), rtol=1e-7, atol=1e-8)
    assert np.linalg.eigvalsh(hyy)[-1] < 0  # strongly concave in y
    assert np.linalg.eigvalsh(hxx)[0] < 0  # nonconvex in x
    # y* maximises f(x, ·); P = f(x, y*) and its derivatives by finite differences
    assert np.linalg.norm(problem.grad_f(x, problem.y_star(x))[1]) <= 1e-10
    np.testing.assert_allclose(problem.grad_phi(x), fd_gradient(problem.phi, x), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(problem.hess_phi(x), fd_jacobian(problem.grad_phi, x), rtol=1e-6, atol=1e-7)
    assert np.linalg.norm(problem.grad_phi(problem.x_star())) <= 1e-10
    # the base class derives the matrix-free products from the dense blocks
    v = rng.standard_normal(4)
    np.testing.assert_allclose(problem.cross_f(x, y, v), hxy @ v)
    np.testing.assert_allclose(problem.hvp_yy_f(x, y, v), hyy @ v)


@pytest.mark.parametrize("kwargs, match", [
    ({"dx": 0, "dy": 3}, "dx"),
    ({"dx": 3, "dy": 3, "mu": -1.0}, "mu"),
    ({"dx": 3, "dy": 3, "mu": 2.0, "L": 1.0}, "mu must be <= L"),
    ({"dx": 3, "dy": 3, "cond_phi": "concave"}, "cond_phi"),
])
def test_generator_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_quadratic(**kwargs)


def test_constructor_bad_input():
    problem = make_quadratic(3, 2, seed=0)
    args = dict(P=problem.P, R=problem.R, S=problem.S, p=problem.p, q=problem.q,
                A=problem.A, C=problem.C, E=problem.E, a=problem.a, b=problem.b)
    from bilevel_ref.problems import QuadraticBilevel

    with pytest.raises(ValueError, match="positive definite"):
        QuadraticBilevel(**{**args, "A": -np.eye(2)})
    with pytest.raises(ValueError, match="R must have shape"):
        QuadraticBilevel(**{**args, "R": np.zeros((2, 2))})
    with pytest.raises(ValueError, match="finite"):
        QuadraticBilevel(**{**args, "p": [np.nan, 0, 0]})
    with pytest.raises(ValueError, match="k_norm"):
        make_quartic_quadratic(3, 3, k_norm=1.5)
