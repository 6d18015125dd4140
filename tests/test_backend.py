"""options['backend']: numba kernels vs the NumPy reference (same counts, iterates to 1e-12), errors, 'auto'."""
import numpy as np
import pytest

import bilevel_ref as br
from bilevel_ref import _jit
from bilevel_ref._kernels import loops
from bilevel_ref._kernels.oracles import CompiledOracles, resolve_backend
from bilevel_ref.complexity.drivers import cubic_newton_trace, gd_trace, run_driver
from bilevel_ref.problems.catalog import build_problem
from bilevel_ref.problems.hard import cgt_cubic_function
from bilevel_ref.problems.quadratic import QuadraticMinimax
from bilevel_ref.problems.wrappers import SecondOrderCost
from bilevel_ref.result import Status

PROBLEMS = {
    "quadratic": ("quadratic", {"dx": 3, "dy": 4}),
    "quartic": ("quartic-quadratic", {"dx": 3, "dy": 4}),
    "hard-cubic": ("hard-cubic", {}),
    "hard-gd": ("hard-gd", {}),
    "hard-ramp": ("hard-ramp", {}),
    "hard-chain": ("hard-chain", {"T": 5}),
    "quadratic-minimax": ("quadratic-minimax", {"dx": 3, "dy": 4}),
    "nc-sc-minimax": ("nc-sc-minimax", {"dx": 3, "dy": 4}),
    "hard-cubic-minimax": ("hard-cubic-minimax", {}),
}
BILEVEL = ["quadratic", "quartic", "hard-cubic", "hard-gd", "hard-ramp", "hard-chain"]
MINIMAX = ["quadratic-minimax", "nc-sc-minimax", "hard-cubic-minimax"]
# lam fixed (not derived from tol): H = S1 − λS2 cancels two O(λ) Schur complements, so any two
# correct evaluations of it (reference or kernel) agree only to ~λ·ε relative; at λ = 100 that is
# far below the 1e-12 the iterates must meet (at λ ≈ 3000, hard-chain's derived value, ~1.4e-12).
_CUBIC = {"eps": 1e-300, "inner_steps": 20}
_PENALTY = dict(_CUBIC, lam=100.0)
METHODS = {  # method -> options (every run: maxiter 4, gtol 0)
    "fsba": dict(_PENALTY),
    "fsba-tol": dict(_PENALTY, inner_tol=1e-6),
    "lfsba": dict(_PENALTY, period=2),
    "f2ba": {"inner_steps": 10},
    "f2ba-agd": {"inner": "agd", "lam": 1e4, "inner_steps": 10},
    "accf2ba": {"lam": 1e4, "inner_steps": 10},
    "aid": {"inner_steps": 5, "linsys_steps": 5},
    "aid-cold": {"inner_steps": 5, "linsys_steps": 5, "warm_v": False},
    "aid-neumann": {"inner": "neumann", "inner_steps": 5, "linsys_steps": 5},
    "itd": {"inner_steps": 5},
    "itd-truncated": {"inner_steps": 6, "truncate": 3, "warm_start": True},
    "mcn": dict(_CUBIC),
    "lmcn": dict(_CUBIC, period=2),
}
MINIMAX_METHODS = ("mcn", "lmcn")
_BUILT = {}


def problem_of(key):
    if key not in _BUILT:
        name, params = PROBLEMS[key]
        _BUILT[key] = build_problem(name, **params)
    return _BUILT[key]


def rel(a, b):
    return np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-300)


def run_both(method, key, maxiter=4, **extra):
    problem, x0 = problem_of(key)
    opts = dict(METHODS[method], maxiter=maxiter, gtol=0.0, **extra)
    name = method.split("-")[0]
    runs = [br.minimize(problem, name, x0, options=dict(opts, backend=b)) for b in ("numpy", "numba")]
    return runs


def assert_equivalent(ref, ker):
    assert ker.oracle_calls == ref.oracle_calls  # every kind, identical
    assert (ker.nit, ker.status) == (ref.nit, ref.status)
    assert rel(ker.x, ref.x) <= 1e-12
    assert rel(ker.y, ref.y) <= 1e-12


def _pairs(full):
    """(method, problem) pairs: all of them (slow: each pair compiles its kernels), or each method
    on hard-cubic / hard-cubic-minimax (every family's oracles are compared one by one in
    test_compiled_oracles.py)."""
    pairs = []
    for method in METHODS:
        keys = MINIMAX if method in MINIMAX_METHODS else BILEVEL
        pairs += [(method, k) for k in keys] if full else [(method, keys[2])]
    return sorted(set(pairs))


@pytest.mark.parametrize("method,key", _pairs(full=False))
def test_numba_matches_numpy(method, key):
    ref, ker = run_both(method, key)
    assert_equivalent(ref, ker)


@pytest.mark.slow
@pytest.mark.parametrize("method,key", sorted(set(_pairs(full=True)) - set(_pairs(full=False))))
def test_numba_matches_numpy_every_pair(method, key):
    ref, ker = run_both(method, key)
    assert_equivalent(ref, ker)


@pytest.mark.parametrize("method,budget", [("fsba", {"grad_g": 150}), ("aid", {"hvp_yy_g": 12}),
                                           ("itd", {"total": 40}), ("f2ba", {"grad_f": 25})])
def test_budget_stops_at_the_same_call(method, budget):
    """A kernel that may not fit in the budget is replaced by the NumPy loop: same stop, same counts."""
    ref, ker = run_both(method, "hard-cubic", maxiter=50, budget=budget)
    assert ref.status == Status.BUDGET
    assert_equivalent(ref, ker)


def test_divergence_reported_the_same():
    """Non-finite kernel results hand over to the NumPy loop, which names the oracle (same counts)."""
    ref, ker = run_both("f2ba", "quadratic", maxiter=5, step_y=50.0, inner_steps=300)
    assert ref.status == Status.NONFINITE and "grad_y_f returned non-finite values" in ref.message
    assert ker.message == ref.message
    assert_equivalent(ref, ker)


@pytest.mark.parametrize("driver", ["gd", "cubic_newton"])
@pytest.mark.parametrize("key", ["hard-cubic", "quartic"])
def test_drivers_numba_matches_numpy(driver, key):
    problem, x0 = problem_of(key)
    opts = {"step": 0.5} if driver == "gd" else {"M": 4.0}
    for measure, rho in (("norm", None), ("sosp", 1.0)):
        ref = run_driver(driver, problem, x0, dict(opts, backend="numpy"), 1e-3, measure, rho, 300)
        ker = run_driver(driver, problem, x0, dict(opts, backend="numba"), 1e-3, measure, rho, 300)
        assert len(ker.grad_norm) == len(ref.grad_norm)
        np.testing.assert_allclose(ker.grad_norm, ref.grad_norm, rtol=1e-12, atol=0)
        np.testing.assert_allclose(ker.min_eig, ref.min_eig, rtol=1e-12, atol=1e-14)
        assert rel(ker.info["x"], ref.info["x"]) <= 1e-12
        for kind in ("grad_f", "hess_f"):
            np.testing.assert_array_equal(ker.counts[kind], ref.counts[kind])


def test_driver_numba_errors():
    with pytest.raises(ValueError, match="compiled_oracles"):
        gd_trace(cgt_cubic_function(eps_min=1e-2), [0.0], 1.0, maxiter=5, backend="numba")
    quadratic, x0 = problem_of("quadratic")  # grad_phi compiled, hess_phi not
    with pytest.raises(ValueError, match="hess_phi"):
        cubic_newton_trace(quadratic, x0, 1.0, maxiter=5, backend="numba")
    assert len(gd_trace(quadratic, x0, 0.1, maxiter=5, backend="numba").grad_norm) == 6
    with pytest.raises(ValueError, match="backend"):
        gd_trace(quadratic, x0, 0.1, maxiter=5, backend="cuda")
    hard, x0 = problem_of("hard-cubic")
    with pytest.raises(ValueError, match="rho"):
        gd_trace(hard, x0, 0.1, maxiter=5, stop_eps=1e-3, measure="sosp", backend="numba")


@pytest.mark.parametrize("method", ["fsba", "lfsba", "mcn", "lmcn", "f2ba", "accf2ba", "aid", "itd"])
def test_numba_without_compiled_oracles_is_a_value_error(method):
    key = "hard-cubic-minimax" if method in MINIMAX_METHODS else "hard-cubic"
    problem, x0 = problem_of(key)
    if method in MINIMAX_METHODS:
        P, B, D = np.eye(2), np.ones((2, 3)), np.eye(3)

        class UserMinimax(QuadraticMinimax):  # a user's override: no compiled twin
            def grad_f(self, x, y, batch=None):
                return super().grad_f(x, y)

        problem, x0 = UserMinimax(P, B, D, np.ones(2), np.ones(3)), np.zeros(2)
    else:
        problem = SecondOrderCost(problem, 1)
    with pytest.raises(ValueError, match="compiled oracles.*convention"):
        br.minimize(problem, method, x0, options={"backend": "numba", "maxiter": 1})
    # auto: the NumPy reference, no error
    assert br.minimize(problem, method, x0, options={"maxiter": 1, "eps": 1e-300}
                       if method in ("fsba", "lfsba", "mcn", "lmcn") else {"maxiter": 1}).nit == 1


def test_missing_compiled_field_is_named():
    problem, x0 = problem_of("hard-cubic-minimax")

    class NoHessian(type(problem)):
        def compiled_oracles(self):
            return super().compiled_oracles()._replace(hess_f=None)

    mine = NoHessian(problem.upper, problem.dy, problem.mu, constants=problem.constants())
    with pytest.raises(ValueError, match=r"lack \['hess_f'\]"):
        br.minimize(mine, "mcn", x0, options={"backend": "numba", "maxiter": 1})
    assert resolve_backend(mine, "auto", ("hess_f",)) == "numpy"


def test_minibatch_runs_refuse_numba():
    problem, _ = problem_of("hard-cubic")
    with pytest.raises(ValueError, match="deterministic mode only"):
        resolve_backend(problem, "numba", ("grad_y_g",), deterministic=False)
    assert resolve_backend(problem, "auto", ("grad_y_g",), deterministic=False) == "numpy"
    with pytest.raises(ValueError, match="backend"):
        resolve_backend(problem, "gpu", ())
    with pytest.raises(ValueError, match="CompiledOracles"):
        class Odd(type(problem)):
            def compiled_oracles(self):
                return ("not", "a", "convention")
        resolve_backend(Odd(problem.upper, problem.K, problem.A, problem.a), "numba", ())


def test_auto_picks_numba_exactly_when_compiled_oracles_exist(monkeypatch):
    calls = []
    real = loops.penalty_step

    def spy(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(loops, "penalty_step", spy)
    problem, x0 = problem_of("hard-cubic")
    opts = {"maxiter": 2, "eps": 1e-300, "inner_steps": 5}
    br.minimize(problem, "fsba", x0, options=opts)  # backend="auto" is the default
    assert len(calls) == (2 if _jit.enabled() else 0)  # JIT off: auto means numpy
    calls.clear()
    br.minimize(SecondOrderCost(problem, 1), "fsba", x0, options=opts)
    assert calls == []
    br.minimize(problem, "fsba", x0, options=dict(opts, backend="numpy"))
    assert calls == []
    monkeypatch.setattr(_jit, "_override", False)  # as set_enabled(False), undone whatever the environment says
    br.minimize(problem, "fsba", x0, options=opts)
    assert calls == []


def test_counter_count_is_public_and_budgeted():
    problem, _ = problem_of("hard-cubic")
    counter = br.OracleCounter(problem, budget={"grad_g": 3, "total": 5})
    counter.count("grad_g", 2)
    assert counter.counts["grad_g"] == 2 and counter.total == 2
    assert counter.fits_budget({"grad_g": 1, "grad_f": 2}) and not counter.fits_budget({"grad_g": 2})
    assert not counter.fits_budget({"grad_f": 4})
    with pytest.raises(br.oracles.BudgetExhausted):
        counter.count("grad_g", 2)
    assert counter.counts["grad_g"] == 2
    assert isinstance(counter.compiled_oracles(), CompiledOracles)
