"""Cases and helpers of the method contract tests (``tests/test_contract.py``).

One case per registered method on a small closed-form problem of its type
(full objectives), plus, for every method with a ``batch_size`` option, one
minibatch case on a small finite-sum problem.  Only common options are used
(``maxiter``, ``gtol``, ``budget``, ``y0``, ``history_every``, ``record_exact``)
and ``batch_size``, looked up at run time, so that renamed method options do
not break these tests.

:class:`NaNAfter` wraps any problem through the public protocol only and makes
every counted oracle return NaN from a given call on (divergence injection).
"""
from __future__ import annotations

import functools

import numpy as np

import bilevel_ref as br
from bilevel_ref.problems import (BilevelProblem, MinimaxProblem, finite_sum_quadratic,
                                  make_quadratic_minimax, quadratic_bilevel)
from bilevel_ref.problems.base import EXACT_ORACLES, GRADIENT_BLOCKS, ORACLE_KINDS
from bilevel_ref.problems.wrappers import WrapperMixin, forward_oracle

#: outer iterations of an ordinary contract run (no method converges that fast here)
MAXITER = 6
#: iteration at which callbacks stop a run / after which oracles turn NaN
K_STOP = 3
#: minibatch size of the stochastic cases
BATCH = 8


# ---------------------------------------------------------------------------
# problems
# ---------------------------------------------------------------------------
@functools.lru_cache(maxsize=None)
def bilevel_problem():
    return quadratic_bilevel(3, 3, kappa=4.0, seed=0)


@functools.lru_cache(maxsize=None)
def minimax_problem():
    return make_quadratic_minimax(3, 3, mu=0.25, seed=0)


@functools.lru_cache(maxsize=None)
def finite_sum_problem():
    # mu_inner 0.5: minibatches of 8 keep every lower-level estimate well conditioned,
    # so a short run stays finite without method-specific step sizes
    return finite_sum_quadratic(64, 64, 4, 3, mu_inner=0.5, seed=0)


# ---------------------------------------------------------------------------
# cases
# ---------------------------------------------------------------------------
class Case:
    """One contract case: a method, its problem and its base options."""

    def __init__(self, method, variant):
        self.method = method
        self.variant = variant            # "full" or "minibatch"
        self.id = method if variant == "full" else f"{method}-minibatch"

    @property
    def cls(self):
        return br.get_method(self.method)

    @property
    def problem(self):
        if self.variant == "minibatch":
            return finite_sum_problem()
        return minimax_problem() if self.cls.problem_type == "minimax" else bilevel_problem()

    @property
    def x0(self):
        # away from the solution so that no method meets its own stopping test early
        return np.linspace(1.0, 2.0, self.problem.dx)

    def options(self, **extra):
        """Base options (common ones plus ``batch_size`` for minibatch cases), updated by ``extra``."""
        opts = {"maxiter": MAXITER, "gtol": 0.0}
        if self.variant == "minibatch":
            opts["batch_size"] = BATCH
        opts.update(extra)
        return opts

    def run(self, problem=None, seed=0, callback=None, **extra):
        return br.minimize(self.problem if problem is None else problem, self.method, self.x0,
                           seed=seed, options=self.options(**extra), callback=callback)

    def __repr__(self):
        return self.id


def all_cases():
    """Every registered method, full objectives; plus a minibatch case per ``batch_size`` method."""
    cases = []
    for method in br.methods():
        cases.append(Case(method, "full"))
        if "batch_size" in br.get_method(method).all_options():
            cases.append(Case(method, "minibatch"))
    return cases


# ---------------------------------------------------------------------------
# recording callbacks
# ---------------------------------------------------------------------------
class Recorder:
    """A callback recording every intermediate result; optionally stops at iteration ``stop_at``.

    ``how`` is ``"return"`` (return True) or ``"raise"`` (raise StopIteration).
    """

    def __init__(self, stop_at=None, how="return"):
        self.stop_at = stop_at
        self.how = how
        self.nits, self.xs, self.ys, self.calls = [], [], [], []
        self.wrapper_calls = []
        self.problem = None               # a NaNAfter to read its call count from

    def __call__(self, intermediate):
        self.nits.append(int(intermediate.nit))
        self.xs.append(np.array(intermediate.x, copy=True))
        self.ys.append(np.array(intermediate.y, copy=True))
        self.calls.append(dict(intermediate.oracle_calls))
        if self.problem is not None:
            self.wrapper_calls.append(self.problem.calls)
        if self.stop_at is not None and intermediate.nit >= self.stop_at:
            if self.how == "raise":
                raise StopIteration
            return True
        return False


def total_calls(oracle_calls):
    """Counted oracle calls of every kind, samples excluded (what ``budget['total']`` limits)."""
    return sum(v for k, v in oracle_calls.items() if k != "samples")


def history_without_time(res):
    return {key: np.array(res.history[key], copy=True) for key in res.history.keys() if key != "time"}


def assert_same_history(a, b):
    ha, hb = history_without_time(a), history_without_time(b)
    assert set(ha) == set(hb), (sorted(set(ha) ^ set(hb)))
    for key in ha:
        np.testing.assert_array_equal(ha[key], hb[key], err_msg=f"history column {key!r}")


# ---------------------------------------------------------------------------
# divergence injection
# ---------------------------------------------------------------------------
def _nan_like(value):
    if isinstance(value, tuple):
        return tuple(_nan_like(v) for v in value)
    if isinstance(value, list):
        return [_nan_like(v) for v in value]
    if isinstance(value, np.ndarray):
        return np.full(value.shape, np.nan, dtype=np.result_type(value.dtype, np.float64))
    return float("nan")


class _NaNAfterMixin(WrapperMixin):
    """Delegates the protocol to ``inner``; counted oracles return NaN from call ``after`` on.

    Only public protocol members of the wrapped problem are used (dimensions,
    sample counts, ``provides``, ``constants``, ``sample``, the oracles and the
    closed forms).  ``calls`` counts oracle calls made through the wrapper.
    """

    def __init__(self, inner, after=None):
        super().__init__(inner, f"{inner.name} (NaN after {after} calls)")
        self.after = after                # None: never poison
        self.calls = 0
        self.dtype = np.dtype(getattr(inner, "dtype", np.float64))


def _poisoned(name):
    def oracle(self, *args, **kwargs):
        out = getattr(self.inner, name)(*args, **kwargs)
        poison = self.after is not None and self.calls >= self.after
        self.calls += 1
        return _nan_like(out) if poison else out

    oracle.__name__ = name
    return oracle


class NaNAfterBilevel(_NaNAfterMixin, BilevelProblem):
    pass


class NaNAfterMinimax(_NaNAfterMixin, MinimaxProblem):
    pass


for _cls in (NaNAfterBilevel, NaNAfterMinimax):
    for _name in ORACLE_KINDS + tuple(GRADIENT_BLOCKS) + ("fused_g",):
        setattr(_cls, _name, _poisoned(_name))
    for _name in EXACT_ORACLES:
        setattr(_cls, _name, forward_oracle(_name))
del _cls, _name


def nan_after(problem, after=None):
    """``problem`` wrapped so that its oracles return NaN from call number ``after`` (0-based) on."""
    return (NaNAfterMinimax if isinstance(problem, MinimaxProblem) else NaNAfterBilevel)(problem, after)
