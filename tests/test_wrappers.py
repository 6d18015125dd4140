"""SecondOrderCost: same results and counts, c evaluations per second-order call."""
import numpy as np
import pytest

import bilevel_ref as br
from bilevel_ref.problems import make_quadratic
from bilevel_ref.problems.wrappers import SecondOrderCost


class Tally(type(make_quadratic(2, 2))):
    """A quadratic problem that tallies its own evaluations."""

    def __init__(self, base):
        self.__dict__.update(base.__dict__)
        self.evals = {}

    def _tally(self, name):
        self.evals[name] = self.evals.get(name, 0) + 1

    def hvp_yy_g(self, x, y, v, batch=None):
        self._tally("hvp_yy_g")
        return super().hvp_yy_g(x, y, v, batch)

    def cross_g(self, x, y, v, batch=None):
        self._tally("cross_g")
        return super().cross_g(x, y, v, batch)

    def grad_g(self, x, y, batch=None):
        self._tally("grad_g")
        return super().grad_g(x, y, batch)


def test_results_unchanged_and_second_order_evaluated_c_times(rng):
    inner = Tally(make_quadratic(4, 3, seed=0))
    wrapped = SecondOrderCost(inner, 5)
    x, y, v = rng.standard_normal(4), rng.standard_normal(3), rng.standard_normal(3)
    np.testing.assert_array_equal(wrapped.hvp_yy_g(x, y, v), inner.A @ v)
    np.testing.assert_array_equal(wrapped.cross_g(x, y, v), inner.C.T @ v)
    np.testing.assert_array_equal(wrapped.grad_g(x, y)[1], inner.A @ y + inner.C @ x + inner.a)
    assert inner.evals == {"hvp_yy_g": 5, "cross_g": 5, "grad_g": 1}
    np.testing.assert_array_equal(wrapped.grad_phi(x), inner.grad_phi(x))
    assert wrapped.provides("hvp_yy_g") and not wrapped.provides("sample")
    assert "x5" in wrapped.name


def test_runs_count_one_call_per_product():
    base = make_quadratic(4, 3, seed=1)
    plain = br.minimize(base, "soba", np.zeros(4), options={"maxiter": 20})
    costly = br.minimize(SecondOrderCost(base, 3), "soba", np.zeros(4), options={"maxiter": 20})
    np.testing.assert_array_equal(plain.x, costly.x)
    assert plain.oracle_calls == costly.oracle_calls


def test_bad_input():
    with pytest.raises(ValueError, match="c must be >= 1"):
        SecondOrderCost(make_quadratic(2, 2), 0)
    with pytest.raises(TypeError, match="problem must be a BilevelProblem"):
        SecondOrderCost(object(), 2)
