"""F2SA-p stencils and the finite-difference hypergradient.

Truth: the published stencil table (Fornberg 1988; F2SA-p, Chen, Li, Chayti & Zhang
2026, Lemma 3.1 for the O(ν^p) error), the
central closed form, exact polynomial differentiation in rational arithmetic,
and the quadratic problem's closed forms (y*_ν by a linear solve, ∇φ exact).
"""
from fractions import Fraction as Fr
from math import factorial

import numpy as np
import pytest

from bilevel_ref.hypergrad.finite_difference import (
    finite_difference_hypergradient, stencil, stencil_derivative, stencil_float, stencil_offsets)
from bilevel_ref.oracles import OracleCounter
from bilevel_ref.problems.quadratic import QuadraticBilevel, make_quadratic

PUBLISHED = {
    1: {0: Fr(-1), 1: Fr(1)},
    2: {-1: Fr(-1, 2), 1: Fr(1, 2)},
    3: {-1: Fr(-1, 3), 0: Fr(-1, 2), 1: Fr(1), 2: Fr(-1, 6)},
    4: {-2: Fr(1, 12), -1: Fr(-2, 3), 1: Fr(2, 3), 2: Fr(-1, 12)},
    5: {-2: Fr(1, 20), -1: Fr(-1, 2), 0: Fr(-1, 3), 1: Fr(1), 2: Fr(-1, 4), 3: Fr(1, 30)},
    6: {-3: Fr(-1, 60), -2: Fr(3, 20), -1: Fr(-3, 4), 1: Fr(3, 4), 2: Fr(-3, 20), 3: Fr(1, 60)},
    8: {-4: Fr(1, 280), -3: Fr(-4, 105), -2: Fr(1, 5), -1: Fr(-4, 5),
        1: Fr(4, 5), 2: Fr(-1, 5), 3: Fr(4, 105), 4: Fr(-1, 280)},
    10: {-5: Fr(-1, 1260), -4: Fr(5, 504), -3: Fr(-5, 84), -2: Fr(5, 21), -1: Fr(-5, 6),
         1: Fr(5, 6), 2: Fr(-5, 21), 3: Fr(5, 84), 4: Fr(-5, 504), 5: Fr(1, 1260)},
}


@pytest.mark.parametrize("p", sorted(PUBLISHED))
def test_exact_weights_equal_published_table(p):
    offsets, weights = stencil(p)
    assert all(isinstance(w, Fr) for w in weights)
    assert dict(zip(offsets, weights)) == PUBLISHED[p]


@pytest.mark.parametrize("p", [2, 4, 6, 8, 10, 12, 16])
def test_central_closed_form(p):
    m = p // 2
    offsets, weights = stencil(p)
    for j, a in zip(offsets, weights):
        k = abs(j)
        expected = Fr((-1) ** (k + 1) * factorial(m) ** 2, k * factorial(m - k) * factorial(m + k))
        assert a == (expected if j > 0 else -expected)


@pytest.mark.parametrize("p", range(1, 14))
def test_moment_conditions_and_bounds(p):
    offsets, weights = stencil(p)
    n_points = p if p % 2 == 0 else p + 1
    assert len(offsets) == n_points
    assert (0 in offsets) == (p % 2 == 1)
    for k in range(p + 1):  # Σ α_j j^k = δ_{k1} for k = 0..p (k = p by symmetry for even p)
        assert sum(a * Fr(j) ** k for j, a in zip(offsets, weights)) == (1 if k == 1 else 0)
    for j, a in zip(offsets, weights):
        assert abs(j * a) <= 1 if j else abs(a) <= 1
    off_f, w_f = stencil_float(p)
    assert off_f.tolist() == list(offsets)
    np.testing.assert_array_equal(w_f, [float(w) for w in weights])


@pytest.mark.parametrize("p", range(1, 9))
def test_exact_on_polynomials_up_to_degree_p(p):
    # h(t) = Σ_k c_k t^k has h'(0) = c_1 exactly, for any ν, in rational arithmetic.
    coeffs = [Fr(3 * k + 1, k + 2) * (-1) ** k for k in range(p + 1)]

    def h(t):
        return sum(c * t**k for k, c in enumerate(coeffs))

    for nu in (Fr(1, 3), Fr(2), Fr(1, 1000)):
        assert stencil_derivative(h, nu, p) == coeffs[1]
    # one degree more is not exact (the order is exactly p)
    def h_next(t):
        return h(t) + t ** (p + 1)

    assert stencil_derivative(h_next, Fr(1, 3), p) != coeffs[1]


def test_bad_order():
    with pytest.raises(ValueError, match="p must be >= 1"):
        stencil(0)
    with pytest.raises(TypeError, match="p must be an integer"):
        stencil_offsets(2.5)


def _rescaled_quadratic(rho_target=0.75, seed=3):
    """Quadratic with ρ(A⁻¹S) = rho_target (the ν-series of ℓ_ν has radius 1/ρ, so ν·max|j| must stay below it)."""
    q = make_quadratic(4, 5, mu=0.5, L=1.0, seed=seed)
    rho = np.max(np.abs(np.linalg.eigvals(np.linalg.solve(q.A, q.S))))
    return QuadraticBilevel(q.P, q.R, q.S * (rho_target / rho), q.p, q.q, q.A, q.C, q.E, q.a, q.b)


@pytest.mark.parametrize("p", [1, 2, 3, 4, 5, 6])
def test_bias_order_is_p(p):
    problem = _rescaled_quadratic()
    x = np.random.default_rng(0).standard_normal(problem.dx)
    truth = problem.grad_phi(x)
    offsets, _ = stencil_float(p)
    nus = np.logspace(-2, -1, 7)
    errors = []
    for nu in nus:
        ys = [problem.y_star_perturbed(x, j * nu) for j in offsets]
        errors.append(np.linalg.norm(finite_difference_hypergradient(problem, x, ys, nu, p).d - truth))
    slope = np.polyfit(np.log(nus), np.log(errors), 1)[0]
    assert abs(slope - p) <= 0.25, (p, slope, errors)


@pytest.mark.parametrize("p", [1, 2, 3, 5])
def test_estimator_equals_danskin_stencil_and_counts(p):
    # Φ = (1/ν) Σ α_j ψ(jν) with ψ(ν) = ν∇_x f(x, y*_ν) + ∇_x g(x, y*_ν) computed here from the
    # problem's matrices; counts: grad_g per offset, grad_f per non-zero offset.
    problem = _rescaled_quadratic()
    counter = OracleCounter(problem)
    x = np.linspace(-1.0, 1.0, problem.dx)
    nu = 0.05

    def psi(t):
        y = problem.y_star_perturbed(x, t)
        return t * (problem.P @ x + problem.R @ y + problem.p) + problem.C.T @ y + problem.E @ x + problem.b

    offsets, _ = stencil_float(p)
    ys = [problem.y_star_perturbed(x, j * nu) for j in offsets]
    d = finite_difference_hypergradient(counter, x, ys, nu, p).d
    np.testing.assert_allclose(d, stencil_derivative(psi, nu, p), rtol=1e-12, atol=1e-12)
    assert counter.counts["grad_g"] == len(offsets)
    assert counter.counts["grad_f"] == sum(1 for j in offsets if j != 0)
    with pytest.raises(ValueError, match="ys must hold"):
        finite_difference_hypergradient(counter, x, ys[:-1], nu, p)
