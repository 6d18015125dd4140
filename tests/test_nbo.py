"""NBO (NBO-GD, NBO-CG, NSBO-SGD) — bilevel_ref.algorithms.curvature.

Truth: closed forms of the quadratic problem (y*, ∇φ, A⁻¹∇_y f); on the
logistic learn-to-regularize problem (non-quadratic lower level) the exact
y*(x) by Newton's method to ‖∇_y g‖ ≤ 1e-13 and the implicit-function
hypergradient with a dense solve (:func:`exact_grad_phi`, itself checked
against central finite differences of φ(x) = f(x, y*(x))); measured rates as
log-log slopes (Dong, Yang, Yao & Zhang 2025: the y error after a Newton step is
quadratic; the error of d_k stays first order, see bilevel_ref.algorithms.curvature).
"""
import numpy as np
import pytest

from _fd import fd_gradient
from _truth import exact_grad_phi, exact_y_star, implicit_hypergradient
from bilevel_ref import OptionError, minimize
from bilevel_ref import get_method
from bilevel_ref.oracles import OracleCounter
from bilevel_ref.problems.quadratic import quadratic_bilevel
from bilevel_ref.problems.regularization import make_logistic_regularization


@pytest.fixture(scope="module")
def quad():
    return quadratic_bilevel(5, 6, kappa=10.0, seed=1)


@pytest.fixture(scope="module")
def logistic():
    return make_logistic_regularization(200, 200, 10, seed=0)


def _solver(problem, x0, y0, options, seed=0):
    """An NBO solver on a counted problem, for inspecting u after single steps."""
    cls = get_method("nbo")
    return cls(OracleCounter(problem), np.array(x0, float), np.array(y0, float),
               np.random.default_rng(seed), cls.validate_options(options))


def test_exact_grad_phi_matches_finite_differences(logistic):
    x = np.linspace(-1.0, 0.5, 10)
    phi = lambda z: logistic.f(z, exact_y_star(logistic, z))  # noqa: E731
    np.testing.assert_allclose(exact_grad_phi(logistic, x), fd_gradient(phi, x), rtol=1e-6, atol=1e-9)


# ---------------------------------------------------------------------------
# quadratic lower level: Newton is exact
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("inner, T", [("cg", 6), ("gd", 600)])
def test_exact_newton_step_on_quadratic(quad, inner, T, rng):
    x0, y0 = rng.standard_normal(5), rng.standard_normal(6)
    s = _solver(quad, x0, y0, {"inner": inner, "linsys_steps": T, "linsys_rtol": 1e-14, "step_v": 1.0 / quad.L_g})
    s.step(0)
    np.testing.assert_allclose(s.y, quad.y_star(x0), rtol=1e-10, atol=1e-12)
    # u_1 = A⁻¹ ∇_y f(x_0, y_0): the right-hand side at the OLD y
    gy_old = quad.R.T @ x0 + quad.S @ y0 + quad.q
    np.testing.assert_allclose(s.u, np.linalg.solve(quad.A, gy_old), rtol=1e-10, atol=1e-12)


def test_exact_newton_hypergradient_is_exact_from_y_star(quad, rng):
    x0 = rng.standard_normal(5)
    alpha = 0.5
    s = _solver(quad, x0, quad.y_star(x0), {"inner": "cg", "linsys_steps": 6, "linsys_rtol": 1e-14,
                                            "step_x": alpha})
    s.step(0)
    np.testing.assert_allclose((x0 - s.x) / alpha, quad.grad_phi(x0), rtol=1e-10, atol=1e-12)
    # ... but not in general (y_0 ≠ y*): d uses ∇_y f at the old y
    s = _solver(quad, x0, quad.y_star(x0) + 0.1, {"inner": "cg", "linsys_steps": 6, "linsys_rtol": 1e-14,
                                                  "step_x": alpha})
    s.step(0)
    assert np.linalg.norm((x0 - s.x) / alpha - quad.grad_phi(x0)) > 1e-4


# ---------------------------------------------------------------------------
# non-quadratic lower level: slopes 2 / 2 / 1
# ---------------------------------------------------------------------------
def test_error_orders_on_logistic_lower_level(logistic, rng):
    x = np.linspace(-1.0, 0.5, 10)
    y_st = exact_y_star(logistic, x)
    grad = implicit_hypergradient(logistic, x, y_st)
    direction = rng.standard_normal(10)
    direction /= np.linalg.norm(direction)
    deltas = np.logspace(-2.5, -0.5, 7)
    err_y, err_h, err_d = [], [], []
    for delta in deltas:
        s = _solver(logistic, x, y_st + delta * direction,
                    {"inner": "cg", "linsys_steps": 10, "linsys_rtol": 1e-15, "step_x": 1.0})
        s.step(0)
        err_y.append(np.linalg.norm(s.y - y_st))
        # hypergradient with the exact u at the Newton-updated y
        err_h.append(np.linalg.norm(implicit_hypergradient(logistic, x, s.y) - grad))
        # NBO's own estimate d_0 (u_1 from ∇_y f at the old y), alpha = 1
        err_d.append(np.linalg.norm((x - s.x) - grad))
    slope = lambda e: np.polyfit(np.log(deltas), np.log(e), 1)[0]  # noqa: E731
    assert abs(slope(err_y) - 2.0) <= 0.2, slope(err_y)
    assert abs(slope(err_h) - 2.0) <= 0.2, slope(err_h)
    assert abs(slope(err_d) - 1.0) <= 0.1, slope(err_d)


# ---------------------------------------------------------------------------
# T = 0 is SOBA; counts
# ---------------------------------------------------------------------------
def test_gd_T0_old_equals_soba_bit_for_bit(quad, logistic):
    steps = {"schedule": "constant", "step_y": 0.5, "step_v": 0.5, "step_x": 0.1}
    nbo = {"linsys_steps": 0, "eval_at": "old", "step_v": 0.5, "step_x": 0.1}
    for problem, x0, extra in ((quad, np.ones(5), {}), (logistic, np.zeros(10), {"batch_size": 16})):
        a = minimize(problem, "soba", x0, seed=2, options={**steps, **extra, "maxiter": 200})
        b = minimize(problem, "nbo", x0, seed=2, options={**nbo, **extra, "maxiter": 200})
        assert np.array_equal(a.x, b.x) and np.array_equal(a.y, b.y)
        assert a.oracle_calls == b.oracle_calls


def test_sqrt_schedule_damps_like_soba(quad):
    # T = 0, eval_at="old": y, u, x steps scaled by 1/sqrt(k+1), as SOBA's benchopt schedule
    # soba's old defaults made explicit: schedule "sqrt", c = 0.5 on y and z, x step c/r = 0.5/5
    a = minimize(quad, "soba", np.ones(5), options={"schedule": "sqrt", "step_y": 0.5, "step_v": 0.5,
                                                    "step_x": 0.5 / 5.0, "maxiter": 50})
    b = minimize(quad, "nbo", np.ones(5), options={"linsys_steps": 0, "eval_at": "old", "step_v": 0.5,
                                                   "step_x": 0.1, "schedule": "sqrt", "maxiter": 50})
    np.testing.assert_allclose(b.x, a.x, rtol=1e-12)
    np.testing.assert_allclose(b.y, a.y, rtol=1e-12)


@pytest.mark.parametrize("T", [0, 1, 3])
@pytest.mark.parametrize("eval_at", ["new", "old"])
def test_counts_gd(quad, T, eval_at):
    K = 6
    res = minimize(quad, "nbo", np.ones(5), options={"linsys_steps": T, "eval_at": eval_at, "maxiter": K})
    c = res.oracle_calls
    assert c["grad_g"] == K
    assert c["grad_f"] == K * (2 if eval_at == "new" else 1)
    assert c["hvp_yy_g"] == K * (1 + 2 * T)
    assert c["cross_g"] == K
    assert sum(c.values()) == c["grad_g"] + c["grad_f"] + c["hvp_yy_g"] + c["cross_g"]


@pytest.mark.parametrize("T", [1, 2, 4])
def test_counts_cg(quad, T):
    # linsys_rtol = 0: no early stop, exactly T CG iterations per system
    res = minimize(quad, "nbo", np.ones(5), options={"inner": "cg", "linsys_steps": T, "linsys_rtol": 0.0,
                                                     "maxiter": 5})
    c = res.oracle_calls
    assert (c["grad_g"], c["grad_f"], c["hvp_yy_g"], c["cross_g"]) == (5, 10, 5 * (1 + 2 * T), 5)


def test_default_T(quad):
    # deterministic mode: T follows the theory from κ = L_g/mu_g (tol-derived defaults; the
    # experiments' T = 1 / 5 remain the stochastic-mode defaults)
    kappa = quad.constants()["L_g"] / quad.constants()["mu_g"]
    T = int(np.ceil(kappa * (1 - 1e-9)))
    res = minimize(quad, "nbo", np.ones(5), options={"maxiter": 1})
    assert res.derived["linsys_steps"] == T and res.oracle_calls["hvp_yy_g"] == 1 + 2 * T
    T = int(np.ceil(np.sqrt(kappa) * np.log(4 * np.sqrt(kappa)) * (1 - 1e-9)))
    res = minimize(quad, "nbo", np.ones(5), options={"maxiter": 1, "inner": "cg", "linsys_rtol": 0.0})
    assert res.derived["linsys_steps"] == T and res.oracle_calls["hvp_yy_g"] == 1 + 2 * T


def test_warmup_steps(quad):
    res = minimize(quad, "nbo", np.ones(5), options={"maxiter": 3, "warmup_steps": 4})
    assert res.oracle_calls["grad_g"] == 3 + 4
    # the warm-up is GD on g(x_0, ·): from y0 = 0 with β = 1/L_g
    s = _solver(quad, np.ones(5), np.zeros(6), {"warmup_steps": 2, "linsys_steps": 0, "step_x": 1e-300})
    y = np.zeros(6)
    for _ in range(2):
        y = y - (quad.A @ y + quad.C @ np.ones(5) + quad.a) / quad.L_g
    s.step(0)
    y = y - (quad.A @ y + quad.C @ np.ones(5) + quad.a) / quad.L_g
    np.testing.assert_allclose(s.y, y, rtol=1e-14)


# ---------------------------------------------------------------------------
# convergence
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("T", [2, 3, 5])
def test_nbo_cg_not_slower_than_aid(quad, T):
    # AID: 10 GD steps on y (its default) + T CG steps per outer iteration.
    # (With T = 1 CG step AID's 10 y-steps win: 148 vs 145 iterations here.)
    step = 1.0 / quad.constants()["L_phi"]
    nbo = minimize(quad, "nbo", np.ones(5), options={"inner": "cg", "linsys_steps": T, "step_x": step,
                                                     "gtol": 0.0, "maxiter": 400})
    aid = minimize(quad, "aid", np.ones(5), options={"linsys_steps": T, "step_x": step, "gtol": 0.0,
                                                    "inner_steps": 10, "maxiter": 400})
    k_nbo = np.argmax(nbo.history["grad_norm"] <= 1e-8)
    k_aid = np.argmax(aid.history["grad_norm"] <= 1e-8)
    assert nbo.history["grad_norm"][k_nbo] <= 1e-8 and aid.history["grad_norm"][k_aid] <= 1e-8
    assert k_nbo <= k_aid, (k_nbo, k_aid)


@pytest.mark.parametrize("inner", ["gd", "cg"])
def test_deterministic_convergence(quad, inner):
    res = minimize(quad, "nbo", np.ones(5), options={"inner": inner, "step_x": 1.0 / quad.constants()["L_phi"],
                                                     "maxiter": 400, "tol": 1e-9})
    assert res.success and res.grad_norm <= 1e-9


# ---------------------------------------------------------------------------
# stochastic NSBO-SGD
# ---------------------------------------------------------------------------
def test_stochastic_batches_and_counts(logistic):
    base = {"maxiter": 4, "batch_size": 16}
    res = minimize(logistic, "nbo", np.zeros(10), options=base)
    # ξ_g, ξ_f, then fresh ξ_f', ξ_g' for d
    assert res.oracle_calls["samples"] == 4 * 4 * 16
    res = minimize(logistic, "nbo", np.zeros(10), options={**base, "share_hessian_batch": False})
    assert res.oracle_calls["samples"] == 4 * 5 * 16
    assert res.oracle_calls["hvp_yy_g"] == 4 * 3


def test_shared_hessian_batch_means_same_H(logistic):
    # with one shared batch and exact CG, v and w solve systems with the same minibatch H
    s = _solver(logistic, np.zeros(10), np.zeros(10), {"batch_size": 8, "inner": "cg", "linsys_steps": 10,
                                                       "linsys_rtol": 1e-15})
    draws = []
    sample = s.problem.sample
    s.problem.sample = lambda rng, size, level: draws.append(sample(rng, size, level)) or draws[-1]
    s.step(0)
    batch_g, batch_f = draws[0], draws[1]
    H = logistic.hess_g(np.zeros(10), np.zeros(10), batch=batch_g)[2]
    gy_f = logistic.grad_f(np.zeros(10), np.zeros(10), batch=batch_f)[1]
    np.testing.assert_allclose(s.u, np.linalg.solve(H, gy_f), rtol=1e-9)


def test_full_batch_equals_deterministic(logistic):
    # linsys_steps and gtol explicit: deterministic mode derives its own from tol
    opts = {"maxiter": 10, "step_x": 1.0, "linsys_steps": 1, "gtol": 0.0}
    det = minimize(logistic, "nbo", np.zeros(10), options=opts)
    full = minimize(logistic, "nbo", np.zeros(10), options={**opts, "batch_size": 200})
    np.testing.assert_allclose(full.x, det.x, rtol=1e-10, atol=1e-13)


def test_stochastic_decrease_and_determinism(logistic):
    x0 = np.zeros(10)
    g0 = np.linalg.norm(exact_grad_phi(logistic, x0))
    opts = {"maxiter": 3000, "batch_size": 64, "step_x": 2.0, "history_every": 3000}
    for seed in range(5):
        res = minimize(logistic, "nbo", x0, seed=seed, options=opts)
        assert np.linalg.norm(exact_grad_phi(logistic, res.x)) <= 0.1 * g0, seed
    again = minimize(logistic, "nbo", x0, seed=4, options=opts)
    assert np.array_equal(again.x, res.x)


# ---------------------------------------------------------------------------
# bad input
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("options, error, match", [
    ({"linsys_steps": -1}, ValueError, "'linsys_steps'"),
    ({"linsys_steps": 1.5}, TypeError, "'linsys_steps'"),
    ({"inner": "newton"}, ValueError, "inner"),
    ({"eval_at": "middle"}, ValueError, "eval_at"),
    ({"step_x": 0.0}, ValueError, "step_x"),
    ({"step_v": -1.0}, ValueError, "step_v"),
    ({"warmup_steps": -2}, ValueError, "warmup_steps"),
    ({"share_hessian_batch": 1}, TypeError, "share_hessian_batch"),
])
def test_bad_options(quad, options, error, match):
    with pytest.raises(error, match=match):
        minimize(quad, "nbo", np.ones(5), options=options)


@pytest.mark.parametrize("old, new", [("T", "linsys_steps"), ("alpha", "step_x"), ("beta", "step_v"),
                                      ("cg_rtol", "linsys_rtol")])
def test_old_option_names_raise_option_error(quad, old, new):
    with pytest.raises(OptionError, match=new):
        minimize(quad, "nbo", np.ones(5), options={old: 1})
