"""The contract every registered method keeps (issue 13, item 4).

Parametrised over ``bilevel_ref.methods()`` at collection time, so a newly
registered method is covered without editing this file: every method runs on
a small closed-form problem of its type, and every method with a
``batch_size`` option also runs in minibatch mode on a small finite-sum
problem (``tests/_contract_cases.py``).

Each check compares a run with something independent of it: a second run
(same seed, or options fed back), the run stopped by ``maxiter`` instead of a
callback, the budget number, the iterates a callback saw, the option table.
"""
import re

import numpy as np
import pytest

import bilevel_ref as br
from _contract_cases import (K_STOP, MAXITER, Recorder, all_cases, assert_same_history,
                             history_without_time, nan_after, total_calls)

CASES = all_cases()
cases = pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])

FIELDS = ("x", "y", "fun", "grad_norm", "grad_norm_est", "min_eig", "nit", "oracle_calls", "history",
          "success", "status", "message", "method", "options", "seed")


def test_every_method_has_a_case():
    # the parametrisation really is over the registry (and minibatch where available)
    assert {c.method for c in CASES} == set(br.methods())
    assert len(br.methods()) >= 1


# ---------------------------------------------------------------------------
# 1. result fields
# ---------------------------------------------------------------------------
@cases
def test_result_has_every_field(case):
    res = case.run(seed=5)
    missing = [f for f in FIELDS if f not in res]
    assert not missing, f"result lacks {missing}"
    problem = case.problem
    assert isinstance(res.x, np.ndarray) and res.x.shape == (problem.dx,)
    assert isinstance(res.y, np.ndarray) and res.y.shape == (problem.dy,)
    assert isinstance(res.status, int) and not isinstance(res.status, bool)
    assert res.status in {int(s) for s in br.Status}
    # gtol=0: runs its maxiter; no stopping test was active (COMPLETED) unless the method has its
    # own rule (MAXITER: the rule was not met); neither is a success
    cls = br.get_method(res.method)
    expected = br.Status.MAXITER if cls.stopping_rule else br.Status.COMPLETED
    assert br.Status(res.status) == expected, res.message
    assert res.nit == MAXITER and isinstance(res.nit, int)
    assert isinstance(res.success, (bool, np.bool_)) and not res.success
    assert isinstance(res.message, str) and res.message
    assert res.method == case.method
    assert res.seed == 5
    assert isinstance(res.options, dict)
    assert isinstance(res.history, br.History)
    np.testing.assert_array_equal(res.history["nit"], np.arange(MAXITER + 1))
    assert isinstance(res.oracle_calls, dict) and total_calls(res.oracle_calls) > 0
    # the last history row is the final count
    for kind, count in res.oracle_calls.items():
        assert res.history[f"calls:{kind}"][-1] == count, kind
    assert np.isfinite(res.fun) and np.isfinite(res.grad_norm)
    assert res.min_eig is None or isinstance(res.min_eig, float)
    # the closed-form metrics are the truth at the returned x
    if problem.provides("grad_phi"):
        assert res.grad_norm == pytest.approx(np.linalg.norm(problem.grad_phi(res.x)), rel=1e-12)
        assert res.fun == pytest.approx(problem.phi(res.x), rel=1e-12)


@cases
def test_result_prints(case):
    # BilevelResult is a scipy OptimizeResult: print(res) must work for every method's fields
    res = case.run()
    text = repr(res)
    assert "message" in text and "nit" in text
    str(res)


def test_result_prints_with_empty_budget():
    # an empty budget dict is valid input ("no limit") and is reported back in res.options
    case = CASES[0]
    res = case.run(budget={})
    assert res.options["budget"] == {}
    assert "message" in repr(res)


# ---------------------------------------------------------------------------
# 2. determinism
# ---------------------------------------------------------------------------
@cases
def test_same_seed_same_run(case):
    state = np.random.get_state()
    try:
        np.random.seed(1)            # a method reading the global RNG would differ between the runs
        a = case.run(seed=7)
        np.random.seed(2)
        b = case.run(seed=7)
    finally:
        np.random.set_state(state)
    np.testing.assert_array_equal(a.x, b.x)
    np.testing.assert_array_equal(a.y, b.y)
    assert a.nit == b.nit and a.oracle_calls == b.oracle_calls
    assert_same_history(a, b)
    if case.variant == "minibatch":
        # ... and the seed is what drives the minibatches
        c = case.run(seed=8)
        assert not np.array_equal(a.x, c.x), "a different seed gave the same minibatch run"


# ---------------------------------------------------------------------------
# 3. budgets
# ---------------------------------------------------------------------------
@cases
def test_budget_total_stops_with_budget_status(case):
    free = case.run()
    per_iter = free.history.total_calls()
    assert per_iter[K_STOP] > per_iter[K_STOP - 1], "iteration without oracle calls"
    # a limit in the middle of iteration K_STOP: K_STOP - 1 iterations complete, then it runs out
    limit = int(per_iter[K_STOP - 1] + (per_iter[K_STOP] - per_iter[K_STOP - 1]) // 2)
    res = case.run(budget={"total": limit})
    assert res.status == br.Status.BUDGET, res.message
    assert not res.success
    assert total_calls(res.oracle_calls) <= limit
    assert res.nit == K_STOP - 1
    # the interrupted iteration is rolled back: x, y are those after K_STOP - 1 iterations
    short = case.run(maxiter=K_STOP - 1)
    np.testing.assert_array_equal(res.x, short.x)
    np.testing.assert_array_equal(res.y, short.y)


@cases
def test_budget_of_one_call(case):
    free = case.run()
    assert total_calls(free.oracle_calls) > 1
    res = case.run(budget={"total": 1})
    assert res.status == br.Status.BUDGET, res.message
    assert not res.success
    assert total_calls(res.oracle_calls) <= 1
    assert np.all(np.isfinite(res.x)) and np.all(np.isfinite(res.y))


# ---------------------------------------------------------------------------
# 4. callbacks
# ---------------------------------------------------------------------------
@cases
@pytest.mark.parametrize("how", ["return", "raise"])
def test_callback_stop_equals_maxiter(case, how):
    stopper = Recorder(stop_at=K_STOP, how=how)
    stopped = case.run(callback=stopper)
    capped = case.run(maxiter=K_STOP)
    assert stopped.status == br.Status.CALLBACK, stopped.message
    assert not stopped.success
    assert stopped.nit == capped.nit == K_STOP
    assert stopper.nits == list(range(1, K_STOP + 1))
    np.testing.assert_array_equal(stopped.x, capped.x)
    np.testing.assert_array_equal(stopped.y, capped.y)
    assert stopped.oracle_calls == capped.oracle_calls
    assert_same_history(stopped, capped)


@cases
def test_callback_sees_every_iteration(case):
    seen = Recorder()
    res = case.run(callback=seen)
    assert res.status in (br.Status.MAXITER, br.Status.COMPLETED), res.message
    assert len(seen.nits) == res.nit == MAXITER
    assert seen.nits == list(range(1, MAXITER + 1))
    # the last call saw the returned iterates, the others the history's counts
    np.testing.assert_array_equal(seen.xs[-1], res.x)
    np.testing.assert_array_equal(seen.ys[-1], res.y)
    assert seen.calls[-1] == res.oracle_calls
    for i, calls in enumerate(seen.calls, start=1):
        for kind, count in calls.items():
            assert res.history[f"calls:{kind}"][i] == count, (i, kind)


# ---------------------------------------------------------------------------
# 5. divergence
# ---------------------------------------------------------------------------
@cases
@pytest.mark.parametrize("done", [0, K_STOP - 1], ids=["from-start", f"after-{K_STOP - 1}-iterations"])
def test_nan_oracles_stop_with_last_finite_iterate(case, done):
    # oracle calls (through the wrapper) made by the first `done` iterations of a clean run
    clean = nan_after(case.problem)
    probe = Recorder()
    probe.problem = clean
    case.run(problem=clean, callback=probe)
    after = 0 if done == 0 else probe.wrapper_calls[done - 1]
    assert clean.calls > after

    poisoned = nan_after(case.problem, after)
    seen = Recorder()
    res = case.run(problem=poisoned, callback=seen)
    assert poisoned.calls > after, "the NaN oracles were never reached"
    assert res.status in (br.Status.NONFINITE, br.Status.FAILURE), (res.status, res.message)
    assert not res.success
    assert np.all(np.isfinite(res.x)) and np.all(np.isfinite(res.y))
    assert done <= res.nit < MAXITER
    # the reported iterate is the one of the last completed (reported) iteration
    assert seen.nits == list(range(1, res.nit + 1))
    if res.nit == 0:
        np.testing.assert_array_equal(res.x, case.x0)
        np.testing.assert_array_equal(res.y, np.zeros(case.problem.dy))
    else:
        np.testing.assert_array_equal(res.x, seen.xs[-1])
        np.testing.assert_array_equal(res.y, seen.ys[-1])
    # ... and up to the poisoning the run is the clean one
    if done:
        np.testing.assert_array_equal(seen.xs[done - 1], probe.xs[done - 1])
        np.testing.assert_array_equal(seen.ys[done - 1], probe.ys[done - 1])


# ---------------------------------------------------------------------------
# 6. options round trip
# ---------------------------------------------------------------------------
def _show_options_names(method):
    return set(re.findall(r"^\s+(\w+) \(default", br.show_options(method), flags=re.MULTILINE))


@cases
def test_options_round_trip(case):
    problem = case.problem
    first = case.run(y0=np.linspace(-0.5, 0.5, problem.dy), history_every=2,
                     budget={"total": 10 ** 9}, record_exact=False)
    assert set(br.get_method(case.method).all_options()) <= set(first.options)
    assert _show_options_names(case.method) <= set(first.options)
    assert _show_options_names(case.method) == set(br.get_method(case.method).all_options())
    again = br.minimize(problem, case.method, case.x0, seed=0, options=first.options)
    np.testing.assert_array_equal(again.x, first.x)
    np.testing.assert_array_equal(again.y, first.y)
    assert again.nit == first.nit
    assert again.oracle_calls == first.oracle_calls
    assert_same_history(again, first)
    # the options given are the options reported
    assert first.options["maxiter"] == MAXITER and first.options["history_every"] == 2
    assert first.options["record_exact"] is False
    np.testing.assert_array_equal(first.options["y0"], np.linspace(-0.5, 0.5, problem.dy))
    # and they mattered: y0 is where the lower level started
    default_y0 = case.run(history_every=2, budget={"total": 10 ** 9}, record_exact=False)
    assert not (np.array_equal(default_y0.x, first.x) and np.array_equal(default_y0.y, first.y))
    assert set(history_without_time(first)) == set(history_without_time(default_y0))
