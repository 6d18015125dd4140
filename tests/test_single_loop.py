"""SOBA, MA-SOBA, SABA (bilevel_ref.algorithms.single_loop).

Truth: the update rules written out with the quadratic problem's own matrices
(∇_x f = Px + Ry + p, ∇_y f = Rᵀx + Sy + q, ∇_y g = Ay + Cx + a, H = A,
J = Cᵀ), the closed-form ∇φ, the exact hypergradient of the logistic problem
(accurate inner Newton solve + implicit-function solve, validated against
finite differences of φ in tests/test_nbo.py), and SAGA's unbiasedness
identity.
"""
import numpy as np
import pytest

from bilevel_ref import OptionError, minimize
from bilevel_ref.algorithms.single_loop import _contiguous_batches, _SagaMemory
from bilevel_ref.problems.quadratic import quadratic_bilevel
from bilevel_ref.problems.regularization import make_logistic_regularization
from _truth import exact_grad_phi


@pytest.fixture(scope="module")
def quad():
    return quadratic_bilevel(4, 6, kappa=10.0, seed=3)


@pytest.fixture(scope="module")
def logistic():
    return make_logistic_regularization(200, 200, 10, seed=0)


def _manual(pb, x, y, iters, steps, schedule, theta=None):
    """SOBA / MA-SOBA written out with the quadratic's matrices (Dagréou et al. 2022; MA-SOBA's
    moving average as reconstructed in bilevel_ref.algorithms.single_loop)."""
    rho_y, rho_z, gamma = steps
    z = np.zeros(pb.dy)
    h_bar = None
    for t in range(iters):
        s = 1.0 / np.sqrt(t + 1.0) if schedule == "sqrt" else 1.0
        gx_f = pb.P @ x + pb.R @ y + pb.p
        gy_f = pb.R.T @ x + pb.S @ y + pb.q
        gy_g = pb.A @ y + pb.C @ x + pb.a
        h = gx_f + pb.C.T @ z
        h_bar = h if (h_bar is None or theta is None) else theta * h + (1 - theta) * h_bar
        x, y, z = x - s * gamma * h_bar, y - s * rho_y * gy_g, z - s * rho_z * (pb.A @ z + gy_f)
    return x, y


def test_soba_matches_written_out_update_with_benchopt_schedule(quad):
    x0, y0 = np.linspace(-1, 1, 4), np.linspace(0.5, -0.5, 6)
    # soba's old defaults made explicit: schedule "sqrt", c = 0.3 on y and z, x step c/r = 0.3/2
    res = minimize(quad, "soba", x0, options={"maxiter": 5, "schedule": "sqrt", "step_y": 0.3,
                                              "step_v": 0.3, "step_x": 0.3 / 2.0, "y0": y0})
    x, y = _manual(quad, x0, y0, 5, (0.3, 0.3, 0.15), "sqrt")
    np.testing.assert_allclose(res.x, x, rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(res.y, y, rtol=1e-13, atol=1e-15)


def test_step_overrides(quad):
    x0 = np.ones(4)
    res = minimize(quad, "soba", x0, options={"maxiter": 4, "schedule": "constant", "step_y": 0.5,
                                              "step_v": 0.7, "step_x": 0.2})
    x, y = _manual(quad, x0, np.zeros(6), 4, (0.5, 0.7, 0.2), "constant")
    np.testing.assert_allclose(res.x, x, rtol=1e-13)
    np.testing.assert_allclose(res.y, y, rtol=1e-13)


def test_ma_soba_matches_written_out_moving_average(quad):
    x0 = np.ones(4)
    # momentum = 1 - θ; the transcription keeps θ: equal up to rounding, compared at rtol 1e-13
    res = minimize(quad, "ma_soba", x0, options={"maxiter": 6, "step_y": 0.5, "step_v": 0.5,
                                                 "step_x": 0.5 / 4.0, "momentum": 1 - 0.3})
    x, y = _manual(quad, x0, np.zeros(6), 6, (0.5, 0.5, 0.125), "constant", theta=0.3)
    np.testing.assert_allclose(res.x, x, rtol=1e-13)
    np.testing.assert_allclose(res.y, y, rtol=1e-13)


@pytest.mark.parametrize("method", ["soba", "ma_soba", "saba"])
def test_deterministic_convergence_on_quadratic(quad, method):
    L_phi = quad.constants()["L_phi"]
    res = minimize(quad, method, np.ones(4), options={
        "maxiter": 3000, "schedule": "constant", "step_y": 0.5, "step_v": 0.5,
        "step_x": 0.5 / (0.5 * L_phi)})
    assert res.grad_norm <= 1e-6  # closed-form ∇φ


@pytest.mark.parametrize("method", ["soba", "ma_soba", "saba"])
def test_counts_per_iteration(quad, logistic, method):
    res = minimize(quad, method, np.ones(4), options={"maxiter": 7})
    calls = res.oracle_calls
    assert (calls["grad_g"], calls["grad_f"], calls["hvp_yy_g"], calls["cross_g"]) == (7, 7, 7, 7)
    assert sum(calls.values()) == 28
    # stochastic mode: one inner and one outer minibatch per iteration
    # (batch 20 divides n = 200, so SABA's fixed minibatches are all full)
    res = minimize(logistic, method, np.zeros(10), options={"maxiter": 5, "batch_size": 20})
    assert res.oracle_calls["hvp_yy_g"] == 5 and res.oracle_calls["grad_f"] == 5
    assert res.oracle_calls["samples"] == 5 * 2 * 20
    assert np.array_equal(res.history["calls:grad_g"], np.arange(6))


def test_saba_full_memory_init_counts(logistic):
    # 200 rows in minibatches of 64 → 4 ids per level, each evaluated once at the start
    res = minimize(logistic, "saba", np.zeros(10), options={"maxiter": 3, "batch_size": 64,
                                                            "memory_init": "full"})
    assert res.oracle_calls["grad_g"] == 4 + 3 and res.oracle_calls["grad_f"] == 4 + 3


def test_saga_estimate_is_unbiased_with_short_last_batch(rng):
    batches = _contiguous_batches(10, 4)               # sizes 4, 4, 2
    assert [len(b) for b in batches] == [4, 4, 2]
    weights = np.array([len(b) / 10 for b in batches])
    mem = _SagaMemory(weights, 3)
    for b in range(3):
        mem.fill(b, rng.standard_normal(3))
    new = rng.standard_normal((3, 3))                   # per-minibatch means at the current point
    expected = sum(w * q for w, q in zip(weights, new))  # full-sample mean
    estimates = []
    for b in range(3):                                 # E over a uniform id
        trial = _SagaMemory(weights, 3)
        trial.table, trial.mean = mem.table.copy(), mem.mean.copy()
        estimates.append(trial.estimate(b, new[b]))
    np.testing.assert_allclose(np.mean(estimates, axis=0), expected, rtol=1e-14, atol=1e-15)
    # memory mean tracks Σ w_b m_b
    trial.fill(0, new[0])
    np.testing.assert_allclose(trial.mean, weights @ trial.table, rtol=1e-14)


def test_full_batch_equals_deterministic(logistic):
    x0 = np.zeros(10)
    opts = {"maxiter": 20, "schedule": "constant", "step_y": 0.5, "step_v": 0.5, "step_x": 0.5}
    for method in ("soba", "saba"):
        det = minimize(logistic, method, x0, options=opts)
        full = minimize(logistic, method, x0, options={**opts, "batch_size": 200})
        np.testing.assert_allclose(full.x, det.x, rtol=1e-10, atol=1e-13)
    # SABA with one minibatch is SOBA (memory terms cancel)
    soba = minimize(logistic, "soba", x0, options=opts)
    saba = minimize(logistic, "saba", x0, options=opts)
    np.testing.assert_allclose(saba.x, soba.x, rtol=1e-10, atol=1e-13)


@pytest.mark.parametrize("method", ["soba", "ma_soba", "saba"])
def test_same_seed_bit_identical(logistic, method):
    opts = {"maxiter": 30, "batch_size": 16}
    a = minimize(logistic, method, np.zeros(10), seed=4, options=opts)
    b = minimize(logistic, method, np.zeros(10), seed=4, options=opts)
    c = minimize(logistic, method, np.zeros(10), seed=5, options=opts)
    np.testing.assert_array_equal(a.x, b.x)
    np.testing.assert_array_equal(a.history["grad_est"], b.history["grad_est"])
    assert not np.array_equal(a.x, c.x)


@pytest.mark.parametrize("method, step_yz, step_x", [
    ("soba", 0.7, 2.0), ("ma_soba", 0.7, 2.0),
    ("saba", 0.3, 1.0),  # SAGA's stale memories need smaller steps (diverges at 0.7 / 2.0)
])
def test_stochastic_decrease_five_seeds(logistic, method, step_yz, step_x):
    x0 = np.zeros(10)
    g0 = np.linalg.norm(exact_grad_phi(logistic, x0))
    for seed in range(5):
        res = minimize(logistic, method, x0, seed=seed, options={
            "maxiter": 3000, "batch_size": 64, "schedule": "constant", "step_y": step_yz,
            "step_v": step_yz, "step_x": step_x, "history_every": 3000})
        assert np.linalg.norm(exact_grad_phi(logistic, res.x)) <= 0.1 * g0, (method, seed)


@pytest.mark.parametrize("options, error, match", [
    ({"step_y": 0.0}, ValueError, "step_y"),
    ({"step_x": -1.0}, ValueError, "step_x"),
    ({"step_v": 0}, ValueError, "step_v"),
    ({"batch_size": 0}, ValueError, "batch_size"),
    ({"schedule": "linear"}, ValueError, "schedule"),
    ({"step_y": "big"}, TypeError, "step_y"),
])
def test_bad_options(quad, options, error, match):
    with pytest.raises(error, match=match):
        minimize(quad, "soba", np.ones(4), options=options)


def test_bad_options_ma_saba(quad):
    with pytest.raises(ValueError, match="momentum"):
        minimize(quad, "ma_soba", np.ones(4), options={"momentum": 1 - 1.5})
    with pytest.raises(ValueError, match="memory_init"):
        minimize(quad, "saba", np.ones(4), options={"memory_init": "random"})


@pytest.mark.parametrize("method, old, new", [
    ("soba", "step_size", "step_y"), ("soba", "outer_ratio", "step_x"), ("soba", "step_z", "step_v"),
    ("saba", "step_size", "step_y"), ("ma_soba", "theta", "momentum"),
])
def test_old_option_names_raise_option_error(quad, method, old, new):
    with pytest.raises(OptionError, match=new):
        minimize(quad, method, np.ones(4), options={old: 0.1})


def test_minibatches_need_a_stochastic_problem(quad):
    with pytest.raises(ValueError, match="batch_size"):
        minimize(quad, "soba", np.ones(4), options={"batch_size": 8})
