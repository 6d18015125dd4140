"""Penalty hyper-objective estimators (F2BA gradient; FSBA/IFSBA Hessian, Yang, Liu, Chen & Lui 2026):
gradient, dense Hessian, HVP form.

Truth: the closed forms of QuadraticBilevel / QuarticQuadraticBilevel
(y*_λ, y*, ∇L*_λ, ∇²L*_λ, ∇²φ), central finite differences, and the O(1/λ)
rate of the penalty gap.
"""
import numpy as np
import pytest

from bilevel_ref.hypergrad.penalty import (
    NOT_PD_MESSAGE,
    PenaltyHessianOperator,
    cholesky_quadratic_form,
    penalty_gradient,
    penalty_hessian,
)
from bilevel_ref.oracles import OracleCounter
from bilevel_ref.problems import QuadraticBilevel, make_quadratic, make_quartic_quadratic
from _fd import fd_jacobian


def _rel(a, b):
    return np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-300)


@pytest.fixture(scope="module")
def quad():
    return make_quadratic(7, 5, cond_phi="indefinite", seed=3)


@pytest.fixture(scope="module")
def quartic():
    return make_quartic_quadratic(6, 4, seed=2)


@pytest.mark.parametrize("lam", [1e1, 1e2, 1e3, 1e4])
def test_exact_points_give_closed_forms_quadratic(quad, rng, lam):
    x = rng.standard_normal(quad.dx)
    y, w = quad.y_star_penalty(x, lam), quad.y_star(x)
    G = penalty_gradient(quad, x, y, w, lam).d
    H = penalty_hessian(quad, x, y, w, lam)
    assert _rel(G, quad.grad_penalty(x, lam)) <= 1e-10
    assert _rel(H, quad.hess_penalty(x, lam)) <= 1e-10
    np.testing.assert_array_equal(H, H.T)


@pytest.mark.parametrize("lam", [1e1, 1e3, 1e5])
def test_exact_points_give_closed_forms_quartic(quartic, rng, lam):
    x = rng.standard_normal(quartic.dx)
    H = penalty_hessian(quartic, x, quartic.y_star_penalty(x, lam), quartic.y_star(x), lam)
    err = np.linalg.norm(H - quartic.hess_penalty(x, lam))
    # the two Schur complements are O(λ) and cancel: at exact points the error is <= 1e-8·λ·‖H‖
    assert err <= 1e-8 * lam * np.linalg.norm(H)
    assert err <= 1e-9 * np.linalg.norm(H) * max(1.0, lam / 1e3)


def test_hessian_is_jacobian_of_exact_penalty_gradient_fd(quad, quartic, rng):
    lam = 50.0
    x = rng.standard_normal(quad.dx)
    H = penalty_hessian(quad, x, quad.y_star_penalty(x, lam), quad.y_star(x), lam)
    J = fd_jacobian(lambda z: quad.grad_penalty(z, lam), x)
    assert _rel(H, 0.5 * (J + J.T)) <= 1e-7
    # non-quadratic: ∇L*_λ(x) by Danskin at the exact inner solutions, differentiated numerically
    x = 0.8 * rng.standard_normal(quartic.dx)

    def grad_exact(z):
        return penalty_gradient(quartic, z, quartic.y_star_penalty(z, lam), quartic.y_star(z), lam).d

    H = penalty_hessian(quartic, x, quartic.y_star_penalty(x, lam), quartic.y_star(x), lam)
    J = fd_jacobian(grad_exact, x)
    assert _rel(H, 0.5 * (J + J.T)) <= 1e-6


def test_gap_to_hess_phi_decays_like_one_over_lambda(quad, rng):
    x = rng.standard_normal(quad.dx)
    lams = np.array([1e2, 1e3, 1e4, 1e5])
    errs = [np.linalg.norm(penalty_hessian(quad, x, quad.y_star_penalty(x, lam), quad.y_star(x), lam)
                           - quad.hess_phi(x)) for lam in lams]
    slope = np.polyfit(np.log(lams), np.log(errs), 1)[0]
    assert abs(slope + 1.0) <= 0.1, slope
    # and the same on the nonconvex quartic problem (λ-gap of its closed form ∇²L*_λ)
    q = make_quartic_quadratic(5, 5, seed=0)
    z = rng.standard_normal(5)
    errs = [np.linalg.norm(penalty_hessian(q, z, q.y_star_penalty(z, lam), q.y_star(z), lam) - q.hess_phi(z))
            for lam in lams]
    assert abs(np.polyfit(np.log(lams), np.log(errs), 1)[0] + 1.0) <= 0.1


@pytest.mark.parametrize("lam", [1e1, 1e2, 1e4])
def test_hvp_form_matches_dense(quad, quartic, rng, lam):
    for prob in (quad, quartic):
        x = rng.standard_normal(prob.dx)
        y = prob.y_star_penalty(x, lam) + 1e-3 * rng.standard_normal(prob.dy)  # any (y, w): same operator
        w = prob.y_star(x) + 1e-3 * rng.standard_normal(prob.dy)
        H = penalty_hessian(prob, x, y, w, lam)
        op = PenaltyHessianOperator(prob, x, y, w, lam, steps=50, tol=1e-12)
        for _ in range(3):
            v = rng.standard_normal(prob.dx)
            assert _rel(op(v), H @ v) <= 1e-8
        assert op.n_products == 3


def test_hvp_form_agd_inner_solver(quad, rng):
    lam, x = 10.0, rng.standard_normal(quad.dx)
    y, w = quad.y_star_penalty(x, lam), quad.y_star(x)
    H = penalty_hessian(quad, x, y, w, lam)
    L_f = float(np.linalg.norm(np.block([[quad.P, quad.R], [quad.R.T, quad.S]]), 2))
    op = PenaltyHessianOperator(quad, x, y, w, lam, steps=400, solver="agd", warm_start=False,
                                constants=(L_f, quad.L_g, quad.mu_g))
    v = rng.standard_normal(quad.dx)
    assert _rel(op(v), H @ v) <= 1e-8
    with pytest.raises(ValueError, match="constants"):
        PenaltyHessianOperator(quad, x, y, w, lam, solver="agd")


def test_dense_hessian_oracle_counts(quad, rng):
    counter = OracleCounter(quad)
    x = rng.standard_normal(quad.dx)
    penalty_hessian(counter, x, np.zeros(quad.dy), np.zeros(quad.dy), 10.0)
    nonzero = {k: v for k, v in counter.counts.items() if v}
    assert nonzero == {"hess_f": 1, "hess_g": 2}


def test_hvp_oracle_counts_per_product(rng):
    """One H·v of the IFSBA operator: one each of the six (x, y) products and three (x, w) products, K' hvp_yy per solve,
    plus one hvp_yy of each kind for a warm start's initial residual."""
    prob = make_quadratic(6, 9, seed=1)
    counter = OracleCounter(prob)
    x, y, w = rng.standard_normal(6), rng.standard_normal(9), rng.standard_normal(9)
    k = 4  # < dy and tol = 0: CG runs exactly k iterations
    op = PenaltyHessianOperator(counter, x, y, w, 10.0, steps=k, tol=0.0)
    op(rng.standard_normal(6))  # cold: z0 = 0
    first = dict(counter.counts)
    expected_first = {"hvp_xx_f": 1, "hvp_xx_g": 2, "cross_t_f": 1, "cross_t_g": 2, "cross_f": 1,
                      "cross_g": 2, "hvp_yy_f": k, "hvp_yy_g": 2 * k}
    assert {kk: v for kk, v in first.items() if v} == expected_first
    op(rng.standard_normal(6))  # warm: + one residual product of each hvp_yy
    second = {kk: counter.counts[kk] - first[kk] for kk in first}
    expected_second = dict(expected_first, hvp_yy_f=k + 1, hvp_yy_g=2 * k + 2)
    assert {kk: v for kk, v in second.items() if v} == expected_second
    assert op.n_inner == 2 * k + 2 * (k + 1)


def test_not_positive_definite_penalised_hessian_raises():
    # S = -5 I: S + λA (A = I) is indefinite for λ < 5
    dx, dy = 3, 2
    prob = QuadraticBilevel(np.eye(dx), np.zeros((dx, dy)), -5 * np.eye(dy), np.zeros(dx), np.zeros(dy),
                            np.eye(dy), np.ones((dy, dx)), np.zeros((dx, dx)), np.zeros(dy), np.zeros(dx))
    with pytest.raises(np.linalg.LinAlgError, match="increase lam"):
        penalty_hessian(prob, np.zeros(dx), np.zeros(dy), np.zeros(dy), 2.0)
    assert "increase lam" in NOT_PD_MESSAGE
    penalty_hessian(prob, np.zeros(dx), np.zeros(dy), np.zeros(dy), 10.0)  # fine for λ > 5
    import bilevel_ref as br

    res = br.minimize(prob, "fsba", np.ones(dx), options={"lam": 2.0, "L_f": 5.0, "maxiter": 3})
    assert not res.success and "increase lam" in res.message


def test_cholesky_quadratic_form(rng):
    B = rng.standard_normal((4, 3))
    D = np.diag([1.0, 2.0, 4.0])
    np.testing.assert_allclose(cholesky_quadratic_form(B, D), B @ np.linalg.inv(D) @ B.T, rtol=1e-13)
    with pytest.raises(np.linalg.LinAlgError, match="my block"):
        cholesky_quadratic_form(B, -D, what="my block")


def test_operator_bad_input(quad):
    z = np.zeros(quad.dy)
    with pytest.raises(ValueError, match="lam"):
        PenaltyHessianOperator(quad, np.zeros(quad.dx), z, z, 0.0)
    with pytest.raises(ValueError, match="solver"):
        PenaltyHessianOperator(quad, np.zeros(quad.dx), z, z, 1.0, solver="lu")
    with pytest.raises(ValueError, match="steps"):
        PenaltyHessianOperator(quad, np.zeros(quad.dx), z, z, 1.0, steps=-1)


# ---------------------------------------------------------------------------
# non-quadratic: data hyper-cleaning
# ---------------------------------------------------------------------------
def _newton_argmin(grad, hess, y, tol=1e-14, maxiter=50):
    """Minimiser of a smooth strongly convex function by Newton's method (to ‖∇‖ <= tol·max(1, ‖∇₀‖))."""
    g0 = np.linalg.norm(grad(y))
    for _ in range(maxiter):
        g = grad(y)
        if np.linalg.norm(g) <= tol * max(1.0, g0):
            break
        y = y - np.linalg.solve(hess(y), g)
    return y


def test_penalty_estimators_vs_finite_differences_hyper_cleaning(rng):
    from bilevel_ref.problems.hyper_cleaning import hyper_cleaning_from_dataset
    from _fd import fd_gradient

    prob = hyper_cleaning_from_dataset("breast-cancer", 0.25, max_train=40)
    lam = 10.0

    def y_lam(x):
        return _newton_argmin(lambda y: prob.grad_f(x, y)[1] + lam * prob.grad_g(x, y)[1],
                              lambda y: prob.hess_f(x, y)[2] + lam * prob.hess_g(x, y)[2], np.zeros(prob.dy))

    def y_low(x):
        return _newton_argmin(lambda y: prob.grad_g(x, y)[1], lambda y: prob.hess_g(x, y)[2], np.zeros(prob.dy))

    def value(x):  # L*_λ(x) with both inner problems solved to 1e-14
        y = y_lam(x)
        return prob.f(x, y) + lam * (prob.g(x, y) - prob.g(x, y_low(x)))

    def grad_exact(x):
        return penalty_gradient(prob, x, y_lam(x), y_low(x), lam).d

    x = 0.5 * rng.standard_normal(prob.dx)
    G = grad_exact(x)
    assert _rel(G, fd_gradient(value, x)) <= 1e-6
    H = penalty_hessian(prob, x, y_lam(x), y_low(x), lam)
    J = fd_jacobian(grad_exact, x)
    assert _rel(H, 0.5 * (J + J.T)) <= 1e-6
    op = PenaltyHessianOperator(prob, x, y_lam(x), y_low(x), lam, steps=60, tol=1e-13)
    v = rng.standard_normal(prob.dx)
    assert _rel(op(v), H @ v) <= 1e-8
