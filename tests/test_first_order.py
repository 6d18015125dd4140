"""F2SA-p, F2SA, F2BA (and the deterministic convergence of AID/ITD on the same instance).

Truth: the quadratic problem's closed forms (∇φ, y*_ν = perturbed linear solve,
∇L*_λ by Danskin on the closed-form y*_λ), the stencil identity of the finite-
difference estimator, each method's definition of its per-iteration oracle counts.
"""
import numpy as np
import pytest

import bilevel_ref as br
from bilevel_ref.hypergrad.finite_difference import finite_difference_hypergradient, stencil_float
from bilevel_ref.problems.quadratic import quadratic_bilevel
from bilevel_ref.problems.regularization import make_logistic_regularization


@pytest.fixture(scope="module")
def quad():
    return quadratic_bilevel(5, 5, kappa=10.0, seed=0)


@pytest.fixture(scope="module")
def logistic():
    return make_logistic_regularization(300, 300, 6, seed=1)


def per_iteration(res, kind):
    """Oracle calls of ``kind`` in each iteration (from the cumulative history)."""
    return np.diff(res.history[f"calls:{kind}"])


# ---------------------------------------------------------------------------
# deterministic convergence: exact ‖∇φ‖ ≤ 1e-6 within a stated oracle budget
# ---------------------------------------------------------------------------
DETERMINISTIC_RUNS = {
    # method: (options, total oracle budget)
    "f2ba": ({"lam": 1e7, "inner_steps": 10, "step_x": 1.0, "maxiter": 400}, 20_000),
    "f2sa_p": ({"p": 4, "nu": 1e-3, "inner_steps": 10, "normalize": False, "step_x": 1.0, "maxiter": 300},
               30_000),
    "aid": ({"maxiter": 400}, 8_000),
    "itd": ({"inner_steps": 150, "warm_start": True, "maxiter": 400}, 200_000),
}


@pytest.mark.parametrize("method", sorted(DETERMINISTIC_RUNS))
def test_deterministic_convergence_within_budget(quad, method):
    options, budget = DETERMINISTIC_RUNS[method]
    res = br.minimize(quad, method, np.zeros(quad.dx), options={**options, "budget": {"total": budget}})
    assert res.status in (0, 1, 6, 7), res.message   # converged or ran its iterations (maxiter or completed), within budget
    assert sum(res.oracle_calls[k] for k in res.oracle_calls if k != "samples") <= budget
    assert np.linalg.norm(quad.grad_phi(res.x)) <= 1e-6


def test_f2sa_p_normalised_steps_have_length_step_x(quad):
    res = br.minimize(quad, "f2sa_p", np.zeros(quad.dx), options={"maxiter": 1, "step_x": 0.3,
                                                                   "normalize": True})
    assert np.linalg.norm(res.x) == pytest.approx(0.3 * res.grad_norm_est / (res.grad_norm_est + 1e-6),
                                                  rel=1e-12)


# ---------------------------------------------------------------------------
# the inner loops solve the right problems
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("p", [1, 2, 3, 5])
def test_f2sa_p_step_with_exact_inner_solves(quad, p):
    x0 = np.linspace(-1.0, 1.0, quad.dx)
    nu, eta = 0.02, 0.7
    res = br.minimize(quad, "f2sa_p", x0, options={
        "p": p, "nu": nu, "inner": "agd", "inner_steps": 400, "normalize": False, "step_x": eta,
        "maxiter": 1})
    offsets, _ = stencil_float(p)
    ys = [quad.y_star_perturbed(x0, j * nu) for j in offsets]   # closed-form y*_{jν}
    phi = finite_difference_hypergradient(quad, x0, ys, nu, p).d
    np.testing.assert_allclose(res.x, x0 - eta * phi, rtol=0, atol=1e-10)


def test_f2ba_step_with_exact_inner_solves(quad):
    x0 = np.linspace(-1.0, 1.0, quad.dx)
    lam, eta = 50.0, 0.3
    res = br.minimize(quad, "f2ba", x0, options={"lam": lam, "step_x": eta, "inner_steps": 3000,
                                                 "maxiter": 1})
    np.testing.assert_allclose(res.x, x0 - eta * quad.grad_penalty(x0, lam), rtol=0, atol=1e-10)
    np.testing.assert_allclose(res.y, quad.y_star(x0), atol=1e-10)
    agd = br.minimize(quad, "f2ba", x0, options={"lam": lam, "step_x": eta, "inner_steps": 800,
                                                 "inner": "agd", "maxiter": 1})
    np.testing.assert_allclose(agd.x, x0 - eta * quad.grad_penalty(x0, lam), rtol=0, atol=1e-9)


def test_f2sa_multiplier_schedule(quad):
    lam0, delta = 2.0, 0.3
    res = br.minimize(quad, "f2sa", np.zeros(quad.dx), options={"lam": lam0, "delta": delta, "maxiter": 20})
    k = np.arange(20)
    expected = lam0 + np.concatenate([[0.0], np.cumsum(delta / (k[:-1] + 1.0) ** (1 / 7))])
    np.testing.assert_allclose(res.history["lam"][1:], expected, rtol=1e-14)


# ---------------------------------------------------------------------------
# oracle accounting
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("p", [1, 2, 3, 5, 8])
def test_f2sa_p_counts_deterministic(quad, p):
    K = 3
    res = br.minimize(quad, "f2sa_p", np.zeros(quad.dx), options={"p": p, "inner_steps": K, "maxiter": 4})
    offsets, _ = stencil_float(p)
    n, n_nonzero = len(offsets), int(np.count_nonzero(offsets))
    assert n == (p if p % 2 == 0 else p + 1)
    assert (per_iteration(res, "grad_g") == n * K + n).all()
    assert (per_iteration(res, "grad_f") == n_nonzero * K + n_nonzero).all()
    assert res.oracle_calls["samples"] == 0


@pytest.mark.parametrize("p", [2, 3])
def test_f2sa_p_counts_stochastic(logistic, p):
    K, S, b = 4, 3, 16
    res = br.minimize(logistic, "f2sa_p", np.zeros(logistic.dx), seed=1,
                      options={"p": p, "inner_steps": K, "hyper_batches": S, "batch_size": b, "maxiter": 3})
    offsets, _ = stencil_float(p)
    n, n_nonzero = len(offsets), int(np.count_nonzero(offsets))
    assert (per_iteration(res, "grad_g") == n * K + n * S).all()
    assert (per_iteration(res, "grad_f") == n_nonzero * K + n_nonzero * S).all()
    # one lower batch per G call in the inner loops, one upper per F call, one pair per S
    assert (per_iteration(res, "samples") == b * (n * K + n_nonzero * K + 2 * S)).all()


def test_f2sa_and_f2ba_counts(quad, logistic):
    T = 4
    res = br.minimize(logistic, "f2sa", np.zeros(logistic.dx), options={"inner_steps": T, "maxiter": 3,
                                                                         "batch_size": 8})
    assert (per_iteration(res, "grad_f") == T + 1).all()
    assert (per_iteration(res, "grad_g") == 2 * T + 2).all()
    assert (per_iteration(res, "samples") == 8 * (3 * T + 3)).all()
    for inner in ("gd", "agd"):
        res = br.minimize(quad, "f2ba", np.zeros(quad.dx), options={"inner_steps": T, "maxiter": 3,
                                                                     "inner": inner, "lam": 100.0})
        assert (per_iteration(res, "grad_f") == T + 1).all()
        assert (per_iteration(res, "grad_g") == 2 * T + 2).all()


# ---------------------------------------------------------------------------
# stochastic plumbing and determinism
# ---------------------------------------------------------------------------
# f2sa_p: the stochastic mode's defaults, explicit (deterministic mode derives its own from tol)
@pytest.mark.parametrize("method,options", [("f2sa_p", {"p": 3, "nu": 0.1, "inner_steps": 10, "normalize": True,
                                                        "step_x": 0.1}), ("f2sa", {})])
def test_full_batch_equals_deterministic(logistic, method, options):
    x0 = np.zeros(logistic.dx)
    det = br.minimize(logistic, method, x0, options={**options, "maxiter": 15})
    full = br.minimize(logistic, method, x0, seed=4,
                       options={**options, "maxiter": 15, "batch_size": max(logistic.n_lower, logistic.n_upper)})
    np.testing.assert_allclose(full.x, det.x, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(full.y, det.y, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("method", ["f2sa_p", "f2sa"])
def test_same_seed_bit_identical(logistic, method):
    x0 = np.zeros(logistic.dx)
    opts = {"batch_size": 16, "maxiter": 10}
    a = br.minimize(logistic, method, x0, seed=7, options=opts)
    b = br.minimize(logistic, method, x0, seed=7, options=opts)
    c = br.minimize(logistic, method, x0, seed=8, options=opts)
    np.testing.assert_array_equal(a.x, b.x)
    for key in ("grad_est", "calls:grad_g", "calls:samples"):
        np.testing.assert_array_equal(a.history[key], b.history[key])
    assert not np.array_equal(a.x, c.x)


def test_avg_warm_start_averages_same_side_iterates(quad):
    # p = 4: offsets −2, −1 | 1, 2.  With K = 1 GD step after averaging, the two iterates of a side
    # start from their mean, so y^{2} − y^{1} = −η_y·ν·(2 − 1)·∇_y f(x, mean) exactly (f, g quadratic:
    # the g-gradients at the same point cancel).
    x0 = np.zeros(quad.dx)
    opts = {"p": 4, "inner_steps": 1, "maxiter": 2, "avg_warm_start": True, "nu": 0.1, "step_y": 0.5}
    solver_cls = br.get_method("f2sa_p")
    captured = {}

    class Probe(solver_cls):
        def step(self, t):
            out = super().step(t)
            captured[t] = [y.copy() for y in self.ys]
            return out

    from bilevel_ref.oracles import OracleCounter
    solver = Probe(OracleCounter(quad), x0.copy(), np.zeros(quad.dy), np.random.default_rng(0),
                   solver_cls.validate_options(opts))
    solver.step(0)
    x1 = solver.x.copy()
    before = captured[0]
    solver.step(1)
    mean_pos = 0.5 * (before[2] + before[3])
    diff = captured[1][3] - captured[1][2]
    np.testing.assert_allclose(diff, -0.5 * 0.1 * quad.grad_f(x1, mean_pos)[1], atol=1e-14)


# ---------------------------------------------------------------------------
# bad input
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("method,options,error,match", [
    ("f2sa_p", {"p": 0}, ValueError, r"options\['p'\] must be >= 1"),
    ("f2sa_p", {"p": 2.0}, TypeError, r"options\['p'\] must be an integer"),
    ("f2sa_p", {"inner_steps": 0}, ValueError, r"options\['inner_steps'\] must be >= 1"),
    ("f2sa_p", {"nu": 0.0}, ValueError, r"options\['nu'\] must be > 0"),
    ("f2sa_p", {"step_x": -1.0}, ValueError, r"options\['step_x'\] must be > 0"),
    ("f2sa_p", {"step_y": 0}, ValueError, r"options\['step_y'\] must be > 0"),
    ("f2sa_p", {"nu": 0.5, "inner": "agd", "p": 4}, ValueError, r"options\['nu'\]=0.5 is too large"),
    ("f2sa_p", {"batch_size": 4, "inner": "agd"}, ValueError, r"needs options\['batch_size'\]=None"),
    ("f2sa_p", {"batch_size": 4}, ValueError, "needs a stochastic problem"),
    ("f2sa", {"batch_size": 64}, ValueError, "needs a stochastic problem"),
    ("f2sa", {"step_y": 0.0}, ValueError, r"options\['step_y'\] must be > 0"),
    ("f2sa", {"step_size": 0.1}, br.OptionError, r"options\['step_size'\].*renamed to step_y"),
    ("f2sa", {"outer_ratio": 2.0}, br.OptionError, r"options\['outer_ratio'\].*renamed to step_x"),
    ("f2sa", {"inner_steps": 0}, ValueError, r"options\['inner_steps'\] must be >= 1"),
    ("f2ba", {"lam": -1.0}, ValueError, r"options\['lam'\] must be > 0"),
    ("f2ba", {"batch_size": 8}, ValueError, "unknown option"),
    ("f2ba", {"inner_steps": 0}, ValueError, r"options\['inner_steps'\] must be >= 1"),
    ("f2ba", {"tau": 0.1}, ValueError, "unknown option"),
])
def test_bad_options(quad, method, options, error, match):
    with pytest.raises(error, match=match):
        br.minimize(quad, method, np.zeros(quad.dx), options=options)


def test_alias_and_registry():
    assert br.get_method("f2sa-p") is br.get_method("f2sa_p")
    assert {"f2sa", "f2sa_p", "f2ba", "accf2ba"} <= set(br.methods())


# ---------------------------------------------------------------------------
# AccF2BA
# ---------------------------------------------------------------------------
ACC = {"lam": 1e3, "inner_steps": 20, "step_x": 0.3}


def test_accf2ba_without_momentum_is_f2ba_with_agd(quad):
    a = br.minimize(quad, "accf2ba", np.zeros(quad.dx), options={**ACC, "momentum": 0.0, "maxiter": 30})
    b = br.minimize(quad, "f2ba", np.zeros(quad.dx), options={**ACC, "inner": "agd", "maxiter": 30})
    np.testing.assert_array_equal(a.x, b.x)


def test_accf2ba_restarting_every_step_is_f2ba_with_step_one_plus_theta(quad):
    # restart after each step: m = Φ_t then zero, so x_{t+1} = x_t − η(1 + θ)Φ_t
    theta = 0.4
    a = br.minimize(quad, "accf2ba", np.zeros(quad.dx),
                    options={**ACC, "momentum": theta, "B": 1e-150, "B0": 1e-150, "maxiter": 30})
    assert np.all(a.history["restart"][1:] == 1)
    b = br.minimize(quad, "f2ba", np.zeros(quad.dx),
                    options={**ACC, "inner": "agd", "step_x": ACC["step_x"] * (1 + theta), "maxiter": 30})
    np.testing.assert_allclose(a.x, b.x, rtol=1e-12, atol=1e-13)


def test_accf2ba_reaches_penalty_stationarity(quad):
    res = br.minimize(quad, "accf2ba", np.zeros(quad.dx),
                      options={**ACC, "maxiter": 300, "gtol": 0.0, "budget": {"total": 20_000}})
    assert res.status == br.Status.COMPLETED, res.message
    # exact ∇L*_λ of the quadratic (Danskin on the closed-form y*_λ, y*)
    assert np.linalg.norm(quad.grad_penalty(res.x, ACC["lam"])) <= 1e-8
    K = ACC["inner_steps"]
    assert (per_iteration(res, "grad_f") == K + 1).all()
    assert (per_iteration(res, "grad_g") == 2 * K + 2).all()


def test_agd_inner_needs_large_enough_lambda(quad):
    bound = 2 * quad.constants()["L_f"] / quad.mu_g
    for method, extra in (("accf2ba", {}), ("f2ba", {"inner": "agd"})):
        with pytest.raises(ValueError, match=r"options\['lam'\]=.* is too small for inner='agd'"):
            br.minimize(quad, method, np.zeros(quad.dx), options={"lam": 0.5 * bound, **extra})
