"""minimize(): options, results, determinism, counting, budgets, divergence, callbacks."""
import numpy as np
import pytest

import bilevel_ref as br
from bilevel_ref.problems import make_quadratic


@pytest.fixture
def problem():
    return make_quadratic(6, 5, mu=0.2, L=1.0, seed=11)


def test_aid_reaches_exact_stationarity(problem):
    for inner in ("cg", "neumann"):
        res = br.minimize(problem, "aid", np.zeros(6), options={"inner": inner, "maxiter": 3000,
                                                                  "tol": 1e-9})
        assert res.success, res.message
        assert res.status == 0
        # truth: the closed-form gradient and the closed-form minimiser of the convex φ
        assert np.linalg.norm(problem.grad_phi(res.x)) <= 1e-8
        x_star = np.linalg.solve(problem.hess_phi(res.x), problem.hess_phi(res.x) @ res.x - problem.grad_phi(res.x))
        np.testing.assert_allclose(res.x, x_star, atol=1e-7)
        assert res.grad_norm == pytest.approx(np.linalg.norm(problem.grad_phi(res.x)))
        assert res.fun == pytest.approx(problem.phi(res.x))


def test_aid_cg_counts_per_iteration_exactly(problem):
    T, K, iters = 4, 3, 7
    res = br.minimize(problem, "aid", np.zeros(6), options={
        "inner_steps": T, "linsys_steps": K, "warm_v": False, "linsys_rtol": 0.0, "maxiter": iters, "gtol": 0.0})
    assert res.nit == iters
    calls = res.oracle_calls
    assert calls["grad_g"] == T * iters and calls["grad_f"] == iters
    assert calls["hvp_yy_g"] == K * iters and calls["cross_g"] == iters
    assert sum(calls.values()) == (T + K + 2) * iters
    hist = res.history
    np.testing.assert_array_equal(hist["calls:hvp_yy_g"], K * np.arange(iters + 1))
    np.testing.assert_array_equal(hist["nit"], np.arange(iters + 1))
    # a warm start costs one extra HVP for the initial residual b − Hv₀ (not at k = 0, v₀ = None)
    warm = br.minimize(problem, "aid", np.zeros(6), options={
        "inner_steps": T, "linsys_steps": K, "warm_v": True, "linsys_rtol": 0.0, "maxiter": iters, "gtol": 0.0})
    assert warm.oracle_calls["hvp_yy_g"] == K * iters + (iters - 1)


def test_itd_counts_per_iteration_exactly(problem):
    res = br.minimize(problem, "itd", np.zeros(6), options={"inner_steps": 5, "maxiter": 3, "gtol": 0.0})
    calls = res.oracle_calls
    assert calls["grad_g"] == 15 and calls["grad_f"] == 3 and calls["cross_g"] == 15
    assert calls["hvp_yy_g"] == 12  # the backward pass never needs the last H·v


def test_same_seed_bit_identical_history(problem):
    a = br.minimize(problem, "aid", np.ones(6), seed=3, options={"maxiter": 50})
    b = br.minimize(problem, "aid", np.ones(6), seed=3, options={"maxiter": 50})
    np.testing.assert_array_equal(a.x, b.x)
    np.testing.assert_array_equal(a.y, b.y)
    for key in a.history.keys():
        if key != "time":
            np.testing.assert_array_equal(a.history[key], b.history[key])
    assert a.oracle_calls == b.oracle_calls


def test_history_columns_and_every(problem):
    res = br.minimize(problem, "aid", np.zeros(6), options={"maxiter": 20, "gtol": 0.0, "history_every": 5})
    np.testing.assert_array_equal(res.history["nit"], [0, 5, 10, 15, 20])
    assert {"phi", "grad_norm", "grad_est", "time"} <= set(res.history.keys())
    assert np.all(np.diff(res.history["time"]) >= 0)
    assert res.history.total_calls(["grad_f"])[-1] == 20
    assert set(res.history.to_dict()) == set(res.history.keys())
    off = br.minimize(problem, "aid", np.zeros(6), options={"maxiter": 3, "record_exact": False})
    assert "grad_norm" not in off.history


def test_budget_stops_cleanly(problem):
    res = br.minimize(problem, "aid", np.zeros(6), options={"budget": {"hvp_yy_g": 25}, "maxiter": 1000})
    assert not res.success and res.status == 2
    assert "budget" in res.message and "hvp_yy_g" in res.message
    assert res.oracle_calls["hvp_yy_g"] <= 25
    assert np.all(np.isfinite(res.x))


def test_divergence_ends_with_success_false(problem):
    res = br.minimize(problem, "aid", np.ones(6), options={"step_x": 1e6, "maxiter": 500})
    assert not res.success and res.status == 3
    assert "diverged" in res.message
    assert np.all(np.isfinite(res.x)) and np.all(np.isfinite(res.y))


def test_callback_can_stop(problem):
    seen = []

    def callback(intermediate):
        seen.append(intermediate.nit)
        return intermediate.nit == 4

    res = br.minimize(problem, "aid", np.zeros(6), callback=callback)
    assert seen == [1, 2, 3, 4]
    assert res.nit == 4 and res.status == 4 and not res.success

    def raises(intermediate):
        raise StopIteration

    assert br.minimize(problem, "aid", np.zeros(6), callback=raises).nit == 1


@pytest.mark.parametrize("kwargs, exc, match", [
    ({"x0": np.zeros(5)}, ValueError, r"x0 must have shape \(6,\)"),
    ({"x0": np.zeros((6, 1))}, ValueError, "x0 must be a 1-D array"),
    ({"x0": np.full(6, np.nan)}, ValueError, "x0 must contain only finite"),
    ({"x0": "zeros"}, TypeError, "x0"),
    ({"method": "newton"}, ValueError, "unknown method 'newton'"),
    ({"method": 3}, TypeError, "method must be a string"),
    ({"options": {"stepx": 1.0}}, ValueError, r"unknown option\(s\) \['stepx'\]"),
    ({"options": {"hvp_steps": 5}}, br.OptionError, r"options\['hvp_steps'\].*renamed to linsys_steps"),
    ({"options": {"cg_rtol": 0.0}}, br.OptionError, r"options\['cg_rtol'\].*renamed to linsys_rtol"),
    ({"options": {"step_x": -1.0}}, ValueError, r"options\['step_x'\] must be > 0"),
    ({"options": {"step_x": "big"}}, TypeError, r"options\['step_x'\] must be a real number"),
    ({"options": {"maxiter": 2.5}}, TypeError, r"options\['maxiter'\] must be an integer"),
    ({"options": {"inner": "lu"}}, ValueError, r"options\['inner'\] must be one of"),
    ({"options": {"warm_v": 1}}, TypeError, r"options\['warm_v'\] must be True or False"),
    ({"options": {"y0": np.zeros(3)}}, ValueError, r"options\['y0'\] must have shape \(5,\)"),
    ({"options": {"budget": 10}}, TypeError, r"options\['budget'\] must be a dict"),
    ({"options": [("maxiter", 3)]}, TypeError, "options must be a dict"),
    ({"seed": -1}, TypeError, "seed"),
    ({"seed": 1.5}, TypeError, "seed"),
    ({"callback": 3}, TypeError, "callback must be callable"),
])
def test_bad_input_names_the_parameter(problem, kwargs, exc, match):
    args = {"method": "aid", "x0": np.zeros(6), **kwargs}
    with pytest.raises(exc, match=match):
        br.minimize(problem, **args)


def test_methods_and_show_options():
    names = br.methods()
    assert "aid" in names and "itd" in names and names == sorted(names)
    assert br.get_method("AID") is br.get_method("aid")
    text = br.show_options("aid")
    assert "linsys_steps" in text and "default 10" in text and "maxiter" in text


def test_missing_step_constant_is_reported():
    from bilevel_ref.problems import BilevelProblem

    class NoConstants(BilevelProblem):
        name = "no-constants"
        dx = dy = 2
        f = g = lambda self, x, y, batch=None: 0.0
        grad_f = grad_g = lambda self, x, y, batch=None: (np.zeros(2), np.zeros(2))
        hess_g = lambda self, x, y, batch=None: (np.eye(2), np.eye(2), np.eye(2))

    # L_g is estimated (counted); φ ≡ 0 has no curvature to set the x step from
    with pytest.raises(ValueError, match=r"options\['step_x'\] or options\['L_phi'\] is required.*no-constants"):
        br.minimize(NoConstants(), "aid", np.zeros(2))
    res = br.minimize(NoConstants(), "aid", np.zeros(2), options={"step_x": 1.0})
    assert res.success and res.constants["L_g"] == 1.0
    # the certificate of the success needs mu_g too: estimated and reported
    assert res.constant_sources == {"L_g": "estimate", "mu_g": "estimate"}
