"""Minimax: the NC-SC double-well instance (stand-in for the FSBA paper's Fig. 1
problem) and GDA, MCN (Luo, Li & Chen 2022), LMCN (Yang, Liu, Chen & Lui 2026).

Truth: central finite differences of the instance's oracles and closed forms,
QuadraticMinimax's closed forms (x*, ∇²P), optimality conditions of P.
"""
import math

import numpy as np
import pytest

import bilevel_ref as br
from bilevel_ref.algorithms.minimax import minimax_hessian
from bilevel_ref.problems import make_quadratic_minimax
from bilevel_ref.problems.catalog import build_problem
from bilevel_ref.problems.minimax import DoubleWellMinimax, make_nc_sc_minimax
from _fd import fd_gradient, fd_jacobian


@pytest.fixture(scope="module")
def well():
    return make_nc_sc_minimax(6, 4, seed=1)


@pytest.fixture(scope="module")
def qmm():
    return make_quadratic_minimax(6, 4, seed=2)


# ---------------------------------------------------------------------------
# the problem instance
# ---------------------------------------------------------------------------
def test_double_well_oracles_vs_finite_differences(well, rng):
    x, y = rng.standard_normal(well.dx), rng.standard_normal(well.dy)
    gx, gy = well.grad_f(x, y)
    np.testing.assert_allclose(gx, fd_gradient(lambda z: well.f(z, y), x), rtol=1e-8, atol=1e-8)
    np.testing.assert_allclose(gy, fd_gradient(lambda z: well.f(x, z), y), rtol=1e-8, atol=1e-8)
    hxx, hxy, hyy = well.hess_f(x, y)
    np.testing.assert_allclose(hxx, fd_jacobian(lambda z: well.grad_f(z, y)[0], x), atol=1e-7)
    np.testing.assert_allclose(hxy, fd_jacobian(lambda z: well.grad_f(x, z)[0], y), atol=1e-7)
    np.testing.assert_allclose(hyy, fd_jacobian(lambda z: well.grad_f(x, z)[1], y), atol=1e-7)
    u, v = rng.standard_normal(well.dx), rng.standard_normal(well.dy)
    np.testing.assert_allclose(well.hvp_xx_f(x, y, u), hxx @ u, rtol=1e-13)
    np.testing.assert_allclose(well.hvp_yy_f(x, y, v), hyy @ v, rtol=1e-13)
    np.testing.assert_allclose(well.cross_f(x, y, v), hxy @ v, rtol=1e-13)
    np.testing.assert_allclose(well.cross_t_f(x, y, u), hxy.T @ u, rtol=1e-13)


def test_double_well_closed_forms(well, rng):
    x = rng.standard_normal(well.dx)
    ys = well.y_star(x)
    np.testing.assert_allclose(well.grad_f(x, ys)[1], 0.0, atol=1e-14)  # y* maximises the concave f(x, ·)
    assert well.phi(x) == pytest.approx(well.f(x, ys), rel=1e-14)
    assert well.phi(x) >= well.f(x, ys + 1e-3 * rng.standard_normal(well.dy))
    np.testing.assert_allclose(well.grad_phi(x), fd_gradient(well.phi, x), rtol=1e-8, atol=1e-8)
    np.testing.assert_allclose(well.hess_phi(x), fd_jacobian(well.grad_phi, x), atol=1e-7)
    # origin: strict saddle
    assert np.linalg.norm(well.grad_phi(np.zeros(well.dx))) == 0.0
    assert np.linalg.eigvalsh(well.hess_phi(np.zeros(well.dx)))[0] < -0.5


def test_catalog_instance():
    prob, x_near = build_problem("nc-sc-minimax")
    _, x_far = build_problem("nc-sc-minimax", start="far")
    assert isinstance(prob, DoubleWellMinimax) and (prob.dx, prob.dy) == (10, 10)
    assert np.linalg.norm(prob.B, 2) == pytest.approx(0.5)
    assert np.linalg.norm(x_near) == pytest.approx(1e-3) and np.linalg.norm(x_far) == pytest.approx(2.0)
    np.testing.assert_allclose(x_far / 2.0, x_near / 1e-3)
    with pytest.raises(ValueError, match="start"):
        build_problem("nc-sc-minimax", start="middle")


def test_generator_bad_input():
    with pytest.raises(ValueError, match="b_norm"):
        make_nc_sc_minimax(4, 4, b_norm=1.5)
    with pytest.raises(ValueError, match="mu"):
        make_nc_sc_minimax(4, 4, mu=0.0)


# ---------------------------------------------------------------------------
# Schur-complement Hessian
# ---------------------------------------------------------------------------
def test_schur_hessian_equals_closed_form(well, qmm, rng):
    for prob in (well, qmm):
        x = rng.standard_normal(prob.dx)
        H = minimax_hessian(prob, x, prob.y_star(x))
        np.testing.assert_allclose(H, prob.hess_phi(x), rtol=1e-12, atol=1e-12)
    # quadratic: the Schur complement does not depend on y
    x = rng.standard_normal(qmm.dx)
    np.testing.assert_allclose(minimax_hessian(qmm, x, rng.standard_normal(qmm.dy)), qmm.hess_phi(x), rtol=1e-12)


def test_schur_hessian_not_concave_raises():
    prob = DoubleWellMinimax(np.ones((2, 2)), mu=1.0)
    prob.hess_f = lambda x, y, batch=None: (np.eye(2), np.ones((2, 2)), np.eye(2))  # convex in y
    with pytest.raises(np.linalg.LinAlgError, match="strongly concave"):
        minimax_hessian(prob, np.zeros(2), np.zeros(2))


# ---------------------------------------------------------------------------
# MCN / LMCN
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("method, extra", [("mcn", {}), ("lmcn", {}), ("lmcn", {"period": 2}), ("lmcn", {"period": 1}),
                                           ("mcn", {"cubic_solver": "lanczos"})])
def test_converges_to_quadratic_minimiser(qmm, method, extra):
    x0 = 3.0 * np.ones(qmm.dx)
    res = br.minimize(qmm, method, x0, options={"eps": 1e-14, "M": 1.0, "inner_steps": 100, **extra})
    # eps = 1e-14 is below the certificate's own resolution (~1e-12): the rule is met, not certified
    assert res.status in (br.Status.CONVERGED, br.Status.BIASED), res.message  # the stopping rule was met
    assert res.grad_norm_certified == pytest.approx(res.grad_norm, rel=1e-3, abs=1e-10)  # certificate = truth
    np.testing.assert_allclose(res.x, qmm.x_star(), atol=1e-8)
    assert res.min_eig == pytest.approx(np.linalg.eigvalsh(qmm.hess_phi(res.x))[0], rel=1e-8)


@pytest.mark.parametrize("method, extra", [("mcn", {}), ("lmcn", {}), ("lmcn", {"period": 3})])
def test_saddle_escape(well, method, extra):
    x0 = np.zeros(well.dx)
    res = br.minimize(well, method, x0, options={"eps": 1e-12, **extra})
    assert res.status in (br.Status.CONVERGED, br.Status.BIASED), res.message  # the stopping rule was met
    assert res.grad_norm_certified == pytest.approx(res.grad_norm, rel=1e-3, abs=1e-10)  # certificate = truth
    assert res.history["grad_est"][1] == 0.0
    assert np.linalg.eigvalsh(well.hess_phi(res.x))[0] > 0
    assert np.linalg.norm(well.grad_phi(res.x)) <= 1e-6
    assert res.history["min_eig_exact"][0] < 0 < res.history["min_eig_exact"][-1]


def test_gda_stays_at_saddle_and_moves_elsewhere(well):
    res = br.minimize(well, "gda", np.zeros(well.dx), options={"maxiter": 50, "gtol": 0.0})
    np.testing.assert_array_equal(res.x, 0.0)
    # from a generic point GDA (default steps η_y = 1/ℓ, η_x = η_y/(10κ²)) reaches a local minimum of P
    _, x0 = build_problem("nc-sc-minimax", dx=well.dx, dy=well.dy, seed=1, start="far")
    res = br.minimize(well, "gda", x0, options={"maxiter": 5000, "gtol": 0.0})
    assert np.linalg.norm(well.grad_phi(res.x)) <= 1e-6
    assert np.linalg.eigvalsh(well.hess_phi(res.x))[0] > 0
    assert res.oracle_calls["grad_f"] == res.nit == 5000


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_lmcn_m1_is_mcn_bitwise(well, backend):
    x0 = np.random.default_rng(0).standard_normal(well.dx)
    opts = {"maxiter": 10, "eps": 1e-300, "backend": backend}
    a = br.minimize(well, "mcn", x0, options=opts)
    b = br.minimize(well, "lmcn", x0, options={**opts, "period": 1})
    np.testing.assert_array_equal(a.x, b.x)
    for key in ("grad_est", "step_norm", "min_eig_est"):
        np.testing.assert_array_equal(a.history[key], b.history[key])


@pytest.mark.parametrize("m", [1, 3, 4, 10, 30])
def test_lmcn_counts(well, m):
    K, T = 6, 10
    res = br.minimize(well, "lmcn", 2.0 * np.ones(well.dx),
                      options={"period": m, "inner_steps": K, "maxiter": T, "eps": 1e-300})
    assert res.nit == T
    np.testing.assert_array_equal(np.diff(res.history["calls:grad_f"]), K + 1)
    np.testing.assert_array_equal(np.diff(res.history["calls:hess_f"]), (np.arange(T) % m == 0) * 1)
    assert res.oracle_calls["hess_f"] == math.ceil(T / m)
    assert sum(res.oracle_calls.values()) - res.oracle_calls["samples"] == T * (K + 1) + math.ceil(T / m)


@pytest.mark.parametrize("method", ["mcn", "lmcn"])
def test_bad_input(well, method):
    x0 = np.zeros(well.dx)
    with pytest.raises(ValueError, match=r"options\['M'\]"):
        br.minimize(well, method, x0, options={"M": 0.0})
    with pytest.raises(ValueError, match=r"options\['eps'\]"):
        br.minimize(well, method, x0, options={"eps": -1.0})
    with pytest.raises(TypeError, match="MinimaxProblem"):
        br.minimize(br.problems.make_quadratic(3, 3), method, np.zeros(3))


def test_bad_period(well):
    for value, exc in [(0, ValueError), (1.5, ValueError), ("2", TypeError)]:
        with pytest.raises(exc, match=r"options\['period'\]"):
            br.minimize(well, "lmcn", np.zeros(well.dx), options={"period": value})


def test_old_period_name_raises_option_error(well):
    with pytest.raises(br.OptionError, match="period"):
        br.minimize(well, "lmcn", np.zeros(well.dx), options={"m": 2})


def test_mu_y_required(well):
    class NoConstants(DoubleWellMinimax):
        def constants(self):
            return {}

    prob = NoConstants(well.B, well.mu)
    # not reported: estimated from −∇²_yy f = μI with dy counted products (one set for both)
    res = br.minimize(prob, "mcn", np.zeros(prob.dx), options={"maxiter": 2})
    assert res.constant_sources == {"L_y": "estimate", "mu_y": "estimate"}
    assert res.constants["L_y"] == pytest.approx(well.mu) and res.constants["mu_y"] == pytest.approx(well.mu)
    assert res.history["calls:hvp_yy_f"][0] == prob.dy
    res = br.minimize(prob, "mcn", np.zeros(prob.dx), options={"L_y": 1.0, "mu_y": 1.0, "maxiter": 2})
    assert res.nit == 2 and res.constant_sources == {"L_y": "option", "mu_y": "option"}
