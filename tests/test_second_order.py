"""FSBA, LFSBA, IFSBA (Yang, Liu, Chen & Lui 2026).

Truth: closed forms of the quadratic and quartic–quadratic problems (∇φ, ∇²φ,
y*_λ, ∇²L*_λ), cubic-Newton theory (quadratic local rate, sufficient decrease
(M/12)‖s‖³), the per-iteration oracle counts documented in
bilevel_ref.algorithms.second_order.
"""
import math

import numpy as np
import pytest

import bilevel_ref as br
from bilevel_ref.problems import QuarticQuadraticBilevel, make_quadratic, make_quartic_quadratic


@pytest.fixture(scope="module")
def quartic():
    return make_quartic_quadratic(5, 5, seed=0)


@pytest.fixture(scope="module")
def quad():
    return make_quadratic(6, 5, seed=4)


def _penalty_value(prob, x, lam):
    """L*_λ(x) = f(x, y*_λ) + λ(g(x, y*_λ) − g(x, y*)) from the closed forms."""
    y = prob.y_star_penalty(x, lam)
    return prob.f(x, y) + lam * (prob.g(x, y) - prob.g(x, prob.y_star(x)))


# ---------------------------------------------------------------------------
# second-order escape from a strict saddle
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("method, extra", [("fsba", {}), ("lfsba", {}), ("lfsba", {"period": 3}),
                                           ("ifsba", {"eps": 1e-8, "cubic_steps": 300})])
def test_saddle_escape_from_exact_saddle(quartic, method, extra):
    x0 = np.zeros(quartic.dx)
    assert np.linalg.norm(quartic.grad_phi(x0)) == 0.0
    assert np.linalg.eigvalsh(quartic.hess_phi(x0))[0] < -0.5  # strict saddle
    res = br.minimize(quartic, method, x0, options={"lam": 1e6, **extra})
    assert res.status in (br.Status.CONVERGED, br.Status.BIASED), res.message  # the stopping rule was met
    assert res.grad_norm_certified == pytest.approx(res.grad_norm, rel=1e-3, abs=1e-10)  # certificate = truth
    assert res.history["grad_est"][1] == 0.0  # G_0 = 0 exactly: only curvature can move x
    assert np.linalg.eigvalsh(quartic.hess_phi(res.x))[0] > 0
    assert np.linalg.norm(quartic.grad_phi(res.x)) <= 1e-6
    assert res.history["min_eig_exact"][-1] > 0 and res.history["min_eig_exact"][0] < 0


def test_first_order_method_stays_at_saddle(quartic):
    x0 = np.zeros(quartic.dx)
    res = br.minimize(quartic, "aid", x0, options={"maxiter": 20, "gtol": 0.0})
    np.testing.assert_array_equal(res.x, x0)
    assert np.linalg.eigvalsh(quartic.hess_phi(res.x))[0] < 0


def test_result_min_eig_is_that_of_the_estimate(quad):
    lam = 1e3
    res = br.minimize(quad, "fsba", np.zeros(quad.dx), options={"lam": lam, "maxiter": 5})
    # quadratic problem: the estimate is ∇²L*_λ whatever (y, w) are
    expected = np.linalg.eigvalsh(quad.hess_penalty(res.x, lam))[0]
    assert res.min_eig == pytest.approx(expected, rel=1e-10)
    np.testing.assert_allclose(res.history["min_eig_exact"],
                               np.linalg.eigvalsh(quad.hess_phi(None))[0], rtol=1e-12)


# ---------------------------------------------------------------------------
# lazy Hessians
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("m", [1, 2, 3, 7, 17, 40])
def test_lfsba_hessian_count_is_ceil_T_over_m(quad, m):
    T = 17
    res = br.minimize(quad, "lfsba", np.full(quad.dx, 3.0),
                      options={"period": m, "maxiter": T, "eps": 1e-300, "inner_steps": 5})
    assert res.nit == T
    assert res.oracle_calls["hess_f"] == math.ceil(T / m)
    assert res.oracle_calls["hess_g"] == 2 * math.ceil(T / m)
    fresh = res.history["hess_fresh"][1:]
    np.testing.assert_array_equal(np.flatnonzero(fresh), np.arange(0, T, m))


def test_lfsba_default_period_is_dx(quad):
    res = br.minimize(quad, "lfsba", np.full(quad.dx, 3.0), options={"maxiter": 13, "eps": 1e-300})
    assert res.oracle_calls["hess_f"] == math.ceil(13 / quad.dx)


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_lfsba_m1_is_fsba_bitwise(quartic, backend):
    x0 = np.random.default_rng(5).standard_normal(quartic.dx)
    opts = {"lam": 1e3, "maxiter": 12, "eps": 1e-300, "backend": backend}
    a = br.minimize(quartic, "fsba", x0, options=opts)
    b = br.minimize(quartic, "lfsba", x0, options={**opts, "period": 1})
    np.testing.assert_array_equal(a.x, b.x)
    np.testing.assert_array_equal(a.y, b.y)
    for key in ("grad_est", "step_norm", "min_eig_est", "grad_norm"):
        np.testing.assert_array_equal(a.history[key], b.history[key])
    assert a.oracle_calls == b.oracle_calls


def test_m_scale_with_m(quad):
    x0 = np.full(quad.dx, 3.0)
    a = br.minimize(quad, "lfsba", x0, options={"period": 3, "M": 30.0, "maxiter": 4, "eps": 1e-300})
    b = br.minimize(quad, "lfsba", x0, options={"period": 3, "M": 10.0, "M_scale_with_m": True,
                                                 "maxiter": 4, "eps": 1e-300})
    np.testing.assert_array_equal(a.x, b.x)


# ---------------------------------------------------------------------------
# oracle counts per iteration (as documented in bilevel_ref.algorithms.second_order)
# ---------------------------------------------------------------------------
def _per_iteration(res, kind):
    return np.diff(res.history[f"calls:{kind}"])


@pytest.mark.parametrize("method", ["fsba", "lfsba"])
def test_per_iteration_counts(quartic, method):
    K, T, m = 7, 6, 4
    opts = {"lam": 1e3, "inner_steps": K, "maxiter": T, "eps": 1e-300}
    if method == "lfsba":
        opts["period"] = m
    res = br.minimize(quartic, method, np.full(quartic.dx, 0.3), options=opts)
    # setup: L_f is not reported by this problem -> its spectrum from dy counted products of ∇²_yy f
    assert res.history["calls:hvp_yy_f"][0] == quartic.dy
    assert res.history["calls:hess_f"][0] == 0
    np.testing.assert_array_equal(_per_iteration(res, "grad_f"), K + 1)
    np.testing.assert_array_equal(_per_iteration(res, "grad_g"), 2 * K + 2)
    fresh = (np.arange(T) % (m if method == "lfsba" else 1)) == 0
    np.testing.assert_array_equal(_per_iteration(res, "hess_f"), fresh * 1)
    np.testing.assert_array_equal(_per_iteration(res, "hess_g"), fresh * 2)
    untouched = [k for k in res.oracle_calls if k not in ("grad_f", "grad_g", "hess_f", "hess_g", "hvp_yy_f")]
    assert all(res.oracle_calls[k] == 0 for k in untouched)


def test_ifsba_counts_cauchy_branch(quad):
    """Far from stationarity (‖G‖ >= L²/M): Cauchy step, two H·v (GᵀCG and Δ), each one IFSBA operator product."""
    k = 3
    res = br.minimize(quad, "ifsba", np.full(quad.dx, 50.0),
                      options={"lam": 10.0, "M": 1e3, "L": 1.0, "maxiter": 1, "inner_steps": 4,
                               "linsys_steps": k, "linsys_rtol": 0.0, "L_f": 2.0})
    calls = res.oracle_calls
    P = 2
    assert res.history["hvp_products"][-1] == P
    assert calls["grad_f"] == 4 + 1 and calls["grad_g"] == 2 * 4 + 2
    assert (calls["hvp_xx_f"], calls["cross_t_f"], calls["cross_f"]) == (P, P, P)
    assert (calls["hvp_xx_g"], calls["cross_t_g"], calls["cross_g"]) == (2 * P, 2 * P, 2 * P)
    # first product cold (K' each), the second warm (K' + 1 each); ∇²_yy f and ∇²_yy g per solve
    assert calls["hvp_yy_f"] == P * k + (P - 1)
    assert calls["hvp_yy_g"] == 2 * (P * k + (P - 1))
    assert calls["hess_f"] == calls["hess_g"] == 0


def test_ifsba_counts_gd_branch(quartic):
    """GD branch: K_cubic steps + Δ = K_cubic + 1 products; the first is H·0 (no inner iterations)."""
    k, Kc = 3, 5
    res = br.minimize(quartic, "ifsba", np.zeros(quartic.dx),
                      options={"lam": 10.0, "L": 3.0, "L_f": 1.0, "maxiter": 1, "inner_steps": 2,
                               "cubic_steps": Kc, "linsys_steps": k, "linsys_rtol": 0.0,
                               "c_prime": 1.0})  # 5 steps leave the saddle x = 0 only with c' = 1
    calls, P = res.oracle_calls, Kc + 1
    assert res.history["hvp_products"][-1] == P
    assert calls["hvp_xx_f"] == P and calls["cross_g"] == 2 * P
    assert calls["hvp_yy_f"] == (P - 1) * (k + 1)
    assert calls["hvp_yy_g"] == 2 * (P - 1) * (k + 1)


def test_ifsba_power_iterations_for_L(quartic):
    res = br.minimize(quartic, "ifsba", np.zeros(quartic.dx),
                      options={"lam": 10.0, "L_f": 1.0, "maxiter": 1, "cubic_steps": 4})
    assert res.history["hvp_products"][-1] == 20 + 4 + 1


# ---------------------------------------------------------------------------
# convergence theory
# ---------------------------------------------------------------------------
def test_fsba_local_quadratic_convergence(quad):
    """On a quadratic L*_λ with ∇²L*_λ ⪰ μI an exact cubic step gives e_{t+1} <= (M/(2μ)) e_t²."""
    lam, M = 1e3, 1.0
    H = quad.hess_penalty(np.zeros(quad.dx), lam)
    mu = np.linalg.eigvalsh(H)[0]
    assert mu > 0
    x_star = -np.linalg.solve(H, quad.grad_penalty(np.zeros(quad.dx), lam))
    xs = []
    x0 = x_star + 0.5 * np.ones(quad.dx)
    res = br.minimize(quad, "fsba", x0, callback=lambda r: xs.append(r.x),
                      options={"lam": lam, "M": M, "inner_steps": 300, "maxiter": 8, "eps": 1e-300,
                               "y0": quad.y_star_penalty(x0, lam), "w0": quad.y_star(x0)})
    e = np.array([np.linalg.norm(x0 - x_star)] + [np.linalg.norm(x - x_star) for x in xs])
    big = e[1:] > 1e-8  # above the floor set by rounding in G (‖∇L*_λ(x*_λ)‖ ≈ 1e-11 here)
    assert big.sum() >= 4
    ratios = e[1:][big] / e[:-1][big] ** 2
    assert np.all(ratios <= M / (2 * mu) * (1 + 1e-6)), ratios
    assert e[-1] <= 1e-9 and res.nit == 8


def test_exact_cubic_steps_sufficient_decrease():
    """Nesterov & Polyak 2006: L*_λ(x_t) − L*_λ(x_{t+1}) >= (M/12)‖s_t‖³ when M >= the Hessian-Lipschitz constant."""
    prob = make_quartic_quadratic(4, 4, seed=7)
    lam, M = 100.0, 20.0  # ∇²L*_λ = diag(3x²−1) + const is 6‖x‖_∞-Lipschitz; iterates stay in |x_i| <= 1.5
    x0 = np.array([1.2, -0.9, 0.05, 1.4])
    xs = [x0]
    br.minimize(prob, "fsba", x0, callback=lambda r: xs.append(r.x),
                options={"lam": lam, "M": M, "L_f": 1.0, "inner_steps": 200, "maxiter": 15, "eps": 1e-300,
                         "y0": prob.y_star_penalty(x0, lam), "w0": prob.y_star(x0)})
    xs = np.array(xs)
    assert np.max(np.abs(xs)) <= 1.5 + 1e-12
    for a, b in zip(xs[:-1], xs[1:]):
        s = np.linalg.norm(b - a)
        decrease = _penalty_value(prob, a, lam) - _penalty_value(prob, b, lam)
        assert decrease >= M / 12 * s**3 - 1e-12


def test_ifsba_and_fsba_reach_the_same_point():
    prob = make_quartic_quadratic(20, 20, seed=3)
    x0 = 1.3 * prob.stationary_point(np.where(np.arange(20) % 2 == 0, 1.0, -1.0))  # near a local minimum
    opts = {"lam": 1e4, "L_f": 1.0, "eps": 1e-10}
    a = br.minimize(prob, "fsba", x0, options=opts)
    b = br.minimize(prob, "ifsba", x0, options={**opts, "cubic_steps": 300})
    for res in (a, b):   # both rules met; the penalty bias O(1/λ) is above eps = 1e-10
        assert res.status in (br.Status.CONVERGED, br.Status.BIASED), res.message  # the stopping rule was met
        assert res.grad_norm_certified == pytest.approx(res.grad_norm, rel=1e-3, abs=1e-10)  # certificate = truth
    np.testing.assert_allclose(b.x, a.x, atol=1e-6)


# ---------------------------------------------------------------------------
# stopping rules, solvers, determinism
# ---------------------------------------------------------------------------
def test_stop_rule_estimate_returns_certified_iterate(quad):
    lam, eps = 1e3, 1e-8
    res = br.minimize(quad, "fsba", np.zeros(quad.dx), options={"lam": lam, "stop_rule": "estimate", "eps": eps,
                                                                 "inner_steps": 100, "M": 1.0})
    # the 'estimate' rule is met on the penalty surrogate; its O(1/λ) bias is far above eps = 1e-8,
    # which the certificate reports (success=False, status BIASED)
    assert res.status == br.Status.BIASED and not res.success and "estimate" in res.message
    assert res.grad_norm_certified == pytest.approx(np.linalg.norm(quad.grad_phi(res.x)), rel=1e-6)
    assert res.history["grad_est"][-1] <= eps
    assert np.linalg.norm(quad.grad_penalty(res.x, lam)) <= 10 * eps


def test_stop_rule_exact(quartic):
    res = br.minimize(quartic, "fsba", np.zeros(quartic.dx),
                      options={"lam": 1e6, "stop_rule": "exact", "eps": 1e-5})
    assert res.success and "exact" in res.message
    assert np.linalg.norm(quartic.grad_phi(res.x)) <= 1e-5
    assert np.linalg.eigvalsh(quartic.hess_phi(res.x))[0] >= -math.sqrt(10 * 1e-5)


@pytest.mark.parametrize("solver", ["lanczos", "gd"])
def test_fsba_cubic_solvers_agree(quartic, solver):
    x0 = np.full(quartic.dx, 0.7)
    opts = {"lam": 1e3, "maxiter": 6, "eps": 1e-300}
    a = br.minimize(quartic, "fsba", x0, options=opts)
    b = br.minimize(quartic, "fsba", x0, options={**opts, "cubic_solver": solver})
    np.testing.assert_allclose(b.x, a.x, atol=1e-7)


def test_ifsba_deterministic_given_seed(quartic):
    opts = {"lam": 1e3, "maxiter": 3, "cubic_steps": 50}
    a = br.minimize(quartic, "ifsba", np.zeros(quartic.dx), seed=3, options=opts)
    b = br.minimize(quartic, "ifsba", np.zeros(quartic.dx), seed=3, options=opts)
    c = br.minimize(quartic, "ifsba", np.zeros(quartic.dx), seed=4, options=opts)
    np.testing.assert_array_equal(a.x, b.x)
    assert not np.array_equal(a.x, c.x)  # the Cubic-Subsolver perturbation comes from the run's generator


# ---------------------------------------------------------------------------
# bad input
# ---------------------------------------------------------------------------
class _WithConstants(QuarticQuadraticBilevel):
    """A user problem reporting ℓ and μ (lam must be >= 2ℓ/μ: FSBA paper Lemma B.2, after Kwon et al. 2023 Lemma 3.2)."""

    def constants(self):
        return {"ell": 5.0, "mu_g": 0.5, "L_g": 2.0, "L_f": 1.0}


@pytest.mark.parametrize("method", ["fsba", "lfsba", "ifsba"])
@pytest.mark.parametrize("option, value, exc", [
    ("M", 0.0, ValueError), ("M", -1.0, ValueError), ("lam", 0.0, ValueError), ("lam", -3.0, ValueError),
    ("eps", 0.0, ValueError), ("inner_steps", -1, ValueError), ("stop_rule", "sometimes", ValueError),
])
def test_bad_common_options(quartic, method, option, value, exc):
    with pytest.raises(exc, match=f"options\\['{option}'\\]"):
        br.minimize(quartic, method, np.zeros(quartic.dx), options={option: value})


@pytest.mark.parametrize("value, exc", [(0, ValueError), (-2, ValueError), (2.5, ValueError), (3.0, ValueError),
                                        ("5", TypeError), (True, TypeError)])
def test_bad_period(quartic, value, exc):
    with pytest.raises(exc, match=r"options\['period'\]"):
        br.minimize(quartic, "lfsba", np.zeros(quartic.dx), options={"period": value})


@pytest.mark.parametrize("method, old, value, new", [
    ("lfsba", "m", 3, "period"), ("ifsba", "hvp_inner_steps", 5, "linsys_steps"),
    ("ifsba", "hvp_inner_tol", 0.0, "linsys_rtol"), ("ifsba", "hvp_inner_solver", "cg", "linsys_solver"),
    ("ifsba", "hvp_warm_start", False, "linsys_warm_start"),
])
def test_old_option_names_raise_option_error(quartic, method, old, value, new):
    with pytest.raises(br.OptionError, match=new):
        br.minimize(quartic, method, np.zeros(quartic.dx), options={old: value})


def test_bad_cubic_solver_and_lambda_threshold(quartic):
    with pytest.raises(ValueError, match=r"options\['cubic_solver'\]"):
        br.minimize(quartic, "fsba", np.zeros(quartic.dx), options={"cubic_solver": "newton"})
    prob = _WithConstants(quartic.A, quartic.C)
    for method in ("fsba", "lfsba", "ifsba"):
        with pytest.raises(ValueError, match=r"options\['lam'\] must be >= 2\*ell/mu = 20"):
            br.minimize(prob, method, np.zeros(prob.dx), options={"lam": 19.0})
    br.minimize(prob, "fsba", np.zeros(prob.dx), options={"lam": 20.0, "maxiter": 1})


def test_exact_stop_rule_needs_closed_forms(quartic):
    class NoClosedForms(QuarticQuadraticBilevel):
        def provides(self, oracle):
            return oracle not in ("grad_phi", "hess_phi") and super().provides(oracle)

    prob = NoClosedForms(quartic.A, quartic.C)
    with pytest.raises(ValueError, match=r"options\['stop_rule'\]"):
        br.minimize(prob, "fsba", np.zeros(prob.dx), options={"stop_rule": "exact"})


def test_mu_g_required_without_constants(quartic):
    class NoConstants(QuarticQuadraticBilevel):
        def constants(self):
            return {}

    prob = NoConstants(quartic.A, quartic.C)
    # not reported: μ_g, L_g from one counted spectrum of ∇²_yy g (dy products), L_f from ∇²_yy f
    # explicit lam: the default is derived from tol with a measured C_lam (tests/test_tol_defaults.py)
    res = br.minimize(prob, "fsba", np.zeros(prob.dx), options={"maxiter": 1, "lam": 100.0})
    assert res.constant_sources == {"mu_g": "estimate", "L_g": "estimate", "L_f": "estimate"}
    assert res.constants["mu_g"] == pytest.approx(quartic.mu_g)
    assert res.history["calls:hvp_yy_g"][0] == prob.dy and res.history["calls:hvp_yy_f"][0] == prob.dy
    # with μ given, only the other two are estimated
    res = br.minimize(prob, "fsba", np.zeros(prob.dx), options={"mu_g": quartic.mu_g, "maxiter": 1})
    assert res.constant_sources["mu_g"] == "option"


# ---------------------------------------------------------------------------
# the benchmark driver (small sizes; the figures come from `bilevel-ref bench second-order`)
# ---------------------------------------------------------------------------
def test_bench_driver_small(capsys):
    from bilevel_ref.bench import second_order as bench

    rows = bench.run_lazy_vs_fresh(dims=(20,), inner_steps=(20,), periods=(1, 3), repeat=1)
    assert [r["m"] for r in rows] == ["-", 1, 3, 20]
    for r in rows:
        assert r["reached"] and r["grad_norm"] <= bench.TOL
        m = r["nit"] if r["m"] == "-" else r["m"]
        assert r["hessians"] == math.ceil(r["nit"] / (1 if r["m"] == "-" else m))
    curves = bench.run_lmcn_ablation(periods=(1, 10), max_calls=300)
    for calls, err in curves.values():
        assert calls[-1] <= 300 and err[-1] <= 1e-12
    assert bench.main(["--dims", "20", "--inner-steps", "20", "--periods", "2", "--repeat", "1",
                       "--skip-ablation"]) == 0
    assert "speedup vs FSBA" in capsys.readouterr().out
