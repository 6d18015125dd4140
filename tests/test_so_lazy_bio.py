"""SO-Lazy-BiO (bilevel_ref.algorithms.lazy).

Truth: the SO-Lazy-BiO iteration (ICLR 2026 submission 15198, as reconstructed
in bilevel_ref.algorithms.lazy) written out with the quadratic
problem's matrices; exact counts ⌈T/N⌉ and T; SOBA/MA-SOBA for the N = 1
identities; exact ∇φ of the logistic problem (tests/test_nbo.py, checked
against finite differences of φ) for the stochastic decrease.
"""
import math

import numpy as np
import pytest

from bilevel_ref import OptionError, minimize
from bilevel_ref.problems.quadratic import quadratic_bilevel
from bilevel_ref.problems.regularization import make_logistic_regularization
from _truth import exact_grad_phi


@pytest.fixture(scope="module")
def quad():
    return quadratic_bilevel(4, 6, kappa=10.0, seed=7)


@pytest.fixture(scope="module")
def logistic():
    return make_logistic_regularization(200, 200, 10, seed=0)


def _written_out(pb, x, iters, N, mode, momentum, mu, alpha, beta, gamma, jvp_after_update):
    """The SO-Lazy-BiO iteration written out: ∇_x f = Px + Ry + p, ∇_y f = Rᵀx + Sy + q,
    ∇_y g = Ay + Cx + a, H = A, J = Cᵀ."""
    y, z = np.zeros(pb.dy), np.zeros(pb.dy)
    jz = h_bar = None
    for t in range(iters):
        gx_f, gy_f = pb.P @ x + pb.R @ y + pb.p, pb.R.T @ x + pb.S @ y + pb.q
        if t % N == 0:
            if not jvp_after_update:
                jz = pb.C.T @ z
            z = z - gamma * (pb.A @ z + gy_f)
            if jvp_after_update:
                jz = pb.C.T @ z
        elif mode == "hvp":
            jz = pb.C.T @ z
        h = gx_f + jz
        y = y - beta * (pb.A @ y + pb.C @ x + pb.a)
        h_bar = h if (t == 0 or not momentum) else mu * h + (1 - mu) * h_bar
        x = x - alpha * h_bar
    return x, y


@pytest.mark.parametrize("mode", ["hvp", "hvp+jvp"])
@pytest.mark.parametrize("base", ["soba", "ma_soba"])
@pytest.mark.parametrize("jvp_after_update", [False, True])
def test_matches_written_out_pseudocode(quad, mode, base, jvp_after_update):
    x0 = np.linspace(-1, 1, 4)
    N, iters = 4, 13
    # old base="soba" is momentum=0.0; base="ma_soba" with weight mu on the new estimate is
    # momentum=1-mu (the transcription keeps mu: equal up to rounding, compared at rtol 1e-13)
    res = minimize(quad, "so_lazy_bio", x0, options={
        "period": N, "mode": mode, "momentum": 1 - 0.6 if base == "ma_soba" else 0.0,
        "step_x": 0.2, "step_y": 0.7, "step_v": 0.5,
        "jvp_after_update": jvp_after_update, "maxiter": iters})
    x, y = _written_out(quad, x0, iters, N, mode, base == "ma_soba", 0.6, 0.2, 0.7, 0.5, jvp_after_update)
    np.testing.assert_allclose(res.x, x, rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(res.y, y, rtol=1e-13, atol=1e-15)


def test_defaults_follow_spec(quad):
    res = minimize(quad, "so_lazy_bio", np.ones(4), options={"maxiter": 9})
    o = res.options
    # momentum 0.2 = 1 - μ with μ = 0.8 (base MA-SOBA)
    assert (o["period"], o["mode"], o["momentum"], o["step_x"]) == (5, "hvp", 0.2, 0.01)
    x, y = _written_out(quad, np.ones(4), 9, 5, "hvp", True, 0.8, 0.01, 1 / quad.L_g, 1 / quad.L_g, False)
    np.testing.assert_allclose(res.x, x, rtol=1e-13)


def test_N1_without_momentum_is_soba_bit_for_bit(quad, logistic):
    lazy = {"period": 1, "momentum": 0.0, "step_x": 0.1, "step_y": 0.5, "step_v": 0.4}
    soba = {"schedule": "constant", "step_x": 0.1, "step_y": 0.5, "step_v": 0.4}
    for problem, x0, extra in ((quad, np.ones(4), {}), (logistic, np.zeros(10), {"batch_size": 16})):
        for mode in ("hvp", "hvp+jvp"):
            a = minimize(problem, "soba", x0, seed=3, options={**soba, **extra, "maxiter": 150})
            b = minimize(problem, "so_lazy_bio", x0, seed=3, options={**lazy, **extra, "mode": mode,
                                                                      "maxiter": 150})
            assert np.array_equal(a.x, b.x) and np.array_equal(a.y, b.y)
            assert a.oracle_calls == b.oracle_calls


def test_N1_with_momentum_is_ma_soba_bit_for_bit(logistic):
    a = minimize(logistic, "ma_soba", np.zeros(10), seed=1, options={
        "step_x": 0.3, "step_y": 0.5, "step_v": 0.4, "momentum": 0.3, "batch_size": 32, "maxiter": 100})
    b = minimize(logistic, "so_lazy_bio", np.zeros(10), seed=1, options={
        "period": 1, "step_x": 0.3, "step_y": 0.5, "step_v": 0.4, "momentum": 0.3, "batch_size": 32,
        "maxiter": 100})
    assert np.array_equal(a.x, b.x) and np.array_equal(a.y, b.y)


@pytest.mark.parametrize("N", [1, 3, 5, 10])
@pytest.mark.parametrize("T", [1, 7, 10, 23])
@pytest.mark.parametrize("mode", ["hvp", "hvp+jvp"])
def test_counts(quad, N, T, mode):
    res = minimize(quad, "so_lazy_bio", np.ones(4), options={"period": N, "mode": mode, "maxiter": T})
    c = res.oracle_calls
    refreshes = math.ceil(T / N)
    assert c["hvp_yy_g"] == refreshes
    assert c["cross_g"] == (refreshes if mode == "hvp+jvp" else T)
    assert c["grad_g"] == T and c["grad_f"] == T
    assert sum(c.values()) == 2 * T + c["hvp_yy_g"] + c["cross_g"]
    # refresh iterations are t ≡ 0 (mod N): the HVP count steps up exactly there
    hvp = res.history["calls:hvp_yy_g"]
    assert np.array_equal(np.diff(hvp), (np.arange(T) % N == 0).astype(hvp.dtype))


def test_counts_jvp_after_update(quad):
    res = minimize(quad, "so_lazy_bio", np.ones(4), options={"period": 4, "mode": "hvp+jvp", "maxiter": 10,
                                                             "jvp_after_update": True})
    assert res.oracle_calls["hvp_yy_g"] == 3 and res.oracle_calls["cross_g"] == 3


def test_refresh_batch_size(logistic):
    res = minimize(logistic, "so_lazy_bio", np.zeros(10), options={
        "period": 5, "maxiter": 10, "batch_size": 8, "refresh_batch_size": 40})
    # lower draws: 2 refreshes × 40 + 8 × 8; upper draws: 10 × 8
    assert res.oracle_calls["samples"] == 2 * 40 + 8 * 8 + 10 * 8


@pytest.mark.parametrize("N", [1, 5, 10])
def test_stochastic_decrease_five_seeds(logistic, N):
    x0 = np.zeros(10)
    g0 = np.linalg.norm(exact_grad_phi(logistic, x0))
    for seed in range(5):
        res = minimize(logistic, "so_lazy_bio", x0, seed=seed, options={
            "period": N, "step_x": 2.0, "batch_size": 64, "maxiter": 3000, "history_every": 3000})
        assert res.oracle_calls["hvp_yy_g"] == math.ceil(3000 / N)
        assert np.linalg.norm(exact_grad_phi(logistic, res.x)) <= 0.1 * g0, (N, seed)


def test_same_seed_bit_identical(logistic):
    opts = {"period": 3, "batch_size": 16, "maxiter": 40}
    a = minimize(logistic, "so_lazy_bio", np.zeros(10), seed=9, options=opts)
    b = minimize(logistic, "so_lazy_bio", np.zeros(10), seed=9, options=opts)
    np.testing.assert_array_equal(a.x, b.x)
    np.testing.assert_array_equal(a.history["grad_est"], b.history["grad_est"])


@pytest.mark.parametrize("options, error, match", [
    ({"period": 0}, ValueError, r"options\['period'\] must be >= 1"),
    ({"period": 2.5}, ValueError, "'period'"),
    ({"mode": "jvp"}, ValueError, "mode"),
    ({"momentum": True}, TypeError, "momentum"),  # momentum is a weight now, not a flag
    ({"momentum": "yes"}, TypeError, "momentum"),
    ({"momentum": 1.5}, ValueError, "momentum"),   # was mu = -0.5
    ({"momentum": -0.1}, ValueError, "momentum"),  # was mu = 1.1
    ({"step_x": -0.1}, ValueError, "step_x"),
    ({"refresh_batch_size": 10}, ValueError, "refresh_batch_size"),
])
def test_bad_options(quad, options, error, match):
    with pytest.raises(error, match=match):
        minimize(quad, "so_lazy_bio", np.ones(4), options=options)


def test_momentum_flag_agreeing_with_base(quad):
    # old base="soba" (with or without momentum=False) is momentum=0.0; an integer 0 means the same
    a = minimize(quad, "so_lazy_bio", np.ones(4), options={"momentum": 0.0, "maxiter": 5})
    b = minimize(quad, "so_lazy_bio", np.ones(4), options={"momentum": 0, "maxiter": 5})
    assert np.array_equal(a.x, b.x)


@pytest.mark.parametrize("old, value, new", [
    ("N", 3, "period"), ("alpha", 0.1, "step_x"), ("beta", 0.1, "step_y"), ("gamma", 0.1, "step_v"),
    ("mu", 0.8, "momentum"), ("base", "soba", "momentum"),
])
def test_old_option_names_raise_option_error(quad, old, value, new):
    with pytest.raises(OptionError, match=new):
        minimize(quad, "so_lazy_bio", np.ones(4), options={old: value})
