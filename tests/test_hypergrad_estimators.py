"""Hypergradient estimators converge to the exact ∇φ at the rates theory predicts.

Truth: the quadratic problems' closed forms (v* = A⁻¹∇_y f, ∇φ, y*_λ), central finite
differences of x ↦ f(x, y_T(x)) with y_T built here from the problem's matrices,
and the textbook bounds (CG: 2√κ((√κ−1)/(√κ+1))^k; Neumann: (1−ημ)^{Q+1}; penalty: O(1/λ)).
"""
import numpy as np
import pytest

from _fd import fd_gradient
from bilevel_ref.algorithms.hypergradient import stocbio_hypergradient
from bilevel_ref.hypergrad import aid_cg, aid_neumann, itd_hypergradient, penalty_gradient
from bilevel_ref.oracles import OracleCounter
from bilevel_ref.problems.quadratic import make_quadratic, make_quartic_quadratic


@pytest.fixture(scope="module")
def quad():
    return make_quadratic(6, 12, mu=0.05, L=1.0, seed=11)


def _point(problem, seed=1):
    rng = np.random.default_rng(seed)
    return rng.standard_normal(problem.dx), rng.standard_normal(problem.dy)


def test_aid_cg_error_within_cg_bound(quad):
    x, y = _point(quad)
    v_star = np.linalg.solve(quad.A, quad.R.T @ x + quad.S @ y + quad.q)
    kappa = np.linalg.cond(quad.A)
    rate = (np.sqrt(kappa) - 1) / (np.sqrt(kappa) + 1)
    errors = []
    for k in range(quad.dy + 1):
        counter = OracleCounter(quad)
        est = aid_cg(counter, x, y, k, rtol=0.0)
        err = np.linalg.norm(est.v - v_star)
        errors.append(err)
        assert err <= 2 * np.sqrt(kappa) * rate**k * np.linalg.norm(v_star) * (1 + 1e-10) + 1e-12
        assert counter.counts["hvp_yy_g"] == k and counter.counts["cross_g"] == 1
        # d = ∇_x f − J v is affine in v: its error is exactly J (v* − v_k)
        np.testing.assert_allclose(est.d - (quad.P @ x + quad.R @ y + quad.p - quad.C.T @ v_star),
                                   quad.C.T @ (v_star - est.v), atol=1e-12)
    assert errors[-1] <= 1e-9 * np.linalg.norm(v_star)  # CG terminates in dy steps


def test_aid_neumann_error_within_bound(quad):
    x, y = _point(quad, 2)
    v_star = np.linalg.solve(quad.A, quad.R.T @ x + quad.S @ y + quad.q)
    eta, mu = 1.0 / quad.L_g, quad.mu_g
    errors = []
    for Q in (0, 1, 5, 20, 80, 300):
        counter = OracleCounter(quad)
        est = aid_neumann(counter, x, y, Q, eta)
        err = np.linalg.norm(est.v - v_star)
        errors.append(err)
        assert err <= (1 - eta * mu) ** (Q + 1) * np.linalg.norm(v_star) * (1 + 1e-10)
        assert counter.counts["hvp_yy_g"] == Q
    assert errors[-1] < 1e-5 * errors[0]
    # the bound is attained along the eigenvector of μ: the rate is not better than (1 − ημ)
    w, V = np.linalg.eigh(quad.A)
    slope = np.polyfit([80, 300], np.log(errors[-2:]), 1)[0]
    assert slope == pytest.approx(np.log(1 - eta * w[0]), rel=0.05)


def test_stocbio_deterministic_equals_neumann_series(quad):
    x, y = _point(quad, 3)
    Q, eta = 15, 0.7
    counter = OracleCounter(quad)
    est = stocbio_hypergradient(counter, x, y, eta, None, [None] * Q, None)
    assert counter.counts["hvp_yy_g"] == Q and counter.counts["cross_g"] == 1
    assert counter.counts["grad_f"] == 1
    # η Σ_{q=0}^{Q} (I − ηA)^q ∇_y f, summed here with dense matrices
    gy = quad.R.T @ x + quad.S @ y + quad.q
    M = np.eye(quad.dy) - eta * quad.A
    v = eta * sum(np.linalg.matrix_power(M, q) @ gy for q in range(Q + 1))
    np.testing.assert_allclose(est.v, v, rtol=1e-12)
    np.testing.assert_allclose(est.v, aid_neumann(quad, x, y, Q, eta).v, rtol=1e-12)


@pytest.mark.parametrize("make", [lambda: make_quadratic(4, 5, seed=5),
                                  lambda: make_quartic_quadratic(4, 5, seed=5)])
@pytest.mark.parametrize("T", [1, 3, 8])
def test_itd_is_exact_derivative_of_unrolled_map(make, T):
    problem = make()
    rng = np.random.default_rng(7)
    x, y0 = rng.standard_normal(problem.dx), rng.standard_normal(problem.dy)
    alpha = 0.8 / problem.L_g
    # y_T(x) by T explicit GD steps on g with the problem's matrices (g is quadratic in y)
    C = problem.C if hasattr(problem, "E") else -problem.C
    shift = problem.a if hasattr(problem, "a") else np.zeros(problem.dy)

    def f_unrolled(xx):
        y = y0.copy()
        for _ in range(T):
            y = y - alpha * (problem.A @ y + C @ xx + shift)
        return problem.f(xx, y)

    counter = OracleCounter(problem)
    est = itd_hypergradient(counter, x, y0, T, alpha)
    np.testing.assert_allclose(est.d, fd_gradient(f_unrolled, x), rtol=1e-6, atol=1e-8)
    # documented counts: T grad_g, T cross_g, T − 1 hvp_yy_g (the last backward product is unused)
    assert counter.counts["grad_g"] == T and counter.counts["cross_g"] == T
    assert counter.counts["hvp_yy_g"] == T - 1 and counter.counts["grad_f"] == 1


def test_itd_error_decreases_with_T(quad):
    x, y0 = _point(quad, 4)
    truth = quad.grad_phi(x)
    Ts = [5, 20, 80, 320, 1280]
    errors = [np.linalg.norm(itd_hypergradient(quad, x, y0, T, 1.0 / quad.L_g).d - truth) for T in Ts]
    assert all(b < a for a, b in zip(errors, errors[1:]))
    assert errors[-1] < 1e-8 * max(1.0, np.linalg.norm(truth))


def test_itd_truncation_changes_only_the_backward_pass(quad):
    x, y0 = _point(quad, 5)
    full = itd_hypergradient(quad, x, y0, 30, 1.0 / quad.L_g)
    trunc = itd_hypergradient(quad, x, y0, 30, 1.0 / quad.L_g, truncate=30)
    np.testing.assert_array_equal(full.d, trunc.d)
    short = itd_hypergradient(quad, x, y0, 30, 1.0 / quad.L_g, truncate=5)
    np.testing.assert_array_equal(full.y, short.y)
    assert not np.allclose(full.d, short.d)


def test_penalty_gradient_error_is_order_one_over_lambda(quad):
    x, _ = _point(quad, 6)
    truth = quad.grad_phi(x)
    lams = np.logspace(2, 5, 7)
    errors = []
    for lam in lams:
        counter = OracleCounter(quad)
        d = penalty_gradient(counter, x, quad.y_star_penalty(x, lam), quad.y_star(x), lam).d
        assert counter.counts["grad_f"] == 1 and counter.counts["grad_g"] == 2
        errors.append(np.linalg.norm(d - truth))
    slope = np.polyfit(np.log(lams), np.log(errors), 1)[0]
    assert slope == pytest.approx(-1.0, abs=0.1)
