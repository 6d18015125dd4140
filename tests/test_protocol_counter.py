"""The problem protocol (user subclasses, derived oracles) and the oracle counter."""
import numpy as np
import pytest

import bilevel_ref as br
from bilevel_ref.oracles import COUNT_KINDS, BudgetExhausted, OracleCounter
from bilevel_ref.problems import BilevelProblem, MinimaxProblem


class ToyDense(BilevelProblem):
    """A user's problem: f = ½‖x‖² + ½‖y − 1‖², g = ½‖y − x‖² (only dense Hessians)."""

    name = "toy-dense"
    dx = dy = 3

    def f(self, x, y, batch=None):
        return 0.5 * x @ x + 0.5 * np.sum((y - 1) ** 2)

    def g(self, x, y, batch=None):
        return 0.5 * np.sum((y - x) ** 2)

    def grad_f(self, x, y, batch=None):
        return x.copy(), y - 1

    def grad_g(self, x, y, batch=None):
        return x - y, y - x

    def hess_f(self, x, y, batch=None):
        return np.eye(3), np.zeros((3, 3)), np.eye(3)

    def hess_g(self, x, y, batch=None):
        return np.eye(3), -np.eye(3), np.eye(3)

    def constants(self):
        return {"L_g": 1.0, "mu_g": 1.0}


class ToyProducts(ToyDense):
    """Same problem, matrix-free products only for g."""

    name = "toy-products"
    hess_g = BilevelProblem.hess_g

    def hvp_yy_g(self, x, y, v, batch=None):
        return np.array(v, dtype=float)

    def hvp_xx_g(self, x, y, u, batch=None):
        return np.array(u, dtype=float)

    def cross_g(self, x, y, v, batch=None):
        return -np.asarray(v, dtype=float)

    def cross_t_g(self, x, y, u, batch=None):
        return -np.asarray(u, dtype=float)


class ValuesOnly(BilevelProblem):
    name = "values-only"
    dx = dy = 2

    def f(self, x, y, batch=None):
        return 0.0


def test_products_derived_from_dense_blocks(rng):
    problem = ToyDense()
    x, y, v = rng.standard_normal(3), rng.standard_normal(3), rng.standard_normal(3)
    assert problem.provides("hvp_yy_g") and problem.provides("cross_t_f")
    np.testing.assert_array_equal(problem.cross_g(x, y, v), -v)
    np.testing.assert_array_equal(problem.cross_t_g(x, y, v), -v)
    gy, hv, jv = problem.fused_g(x, y, v)
    np.testing.assert_array_equal(gy, y - x)
    np.testing.assert_array_equal(hv, v)
    np.testing.assert_array_equal(jv, -v)


def test_dense_blocks_derived_from_products():
    problem = ToyProducts()
    assert problem.provides("hess_g")
    hxx, hxy, hyy = problem.hess_g(np.zeros(3), np.zeros(3))
    np.testing.assert_array_equal(hxx, np.eye(3))
    np.testing.assert_array_equal(hxy, -np.eye(3))
    np.testing.assert_array_equal(hyy, np.eye(3))


def test_missing_oracles_name_the_problem():
    problem = ValuesOnly()
    for oracle in ("grad_g", "hess_f", "hvp_yy_g", "cross_g", "grad_phi", "y_star"):
        assert not problem.provides(oracle)
    with pytest.raises(NotImplementedError, match="values-only.*grad_g"):
        problem.grad_g(np.zeros(2), np.zeros(2))
    with pytest.raises(NotImplementedError, match="values-only.*hvp_yy_g"):
        problem.hvp_yy_g(np.zeros(2), np.zeros(2), np.zeros(2))
    with pytest.raises(NotImplementedError, match="values-only.*hess_g"):
        problem.hess_g(np.zeros(2), np.zeros(2))
    with pytest.raises(NotImplementedError, match="not stochastic"):
        problem.sample(np.random.default_rng(0), 3, "lower")
    with pytest.raises(ValueError, match="level"):
        problem.sample(np.random.default_rng(0), 3, "middle")


def test_minimize_rejects_problem_without_required_oracles():
    with pytest.raises(ValueError, match="needs the oracle 'grad_f'.*values-only"):
        br.minimize(ValuesOnly(), "aid", np.zeros(2))
    minimax = br.problems.make_quadratic_minimax(2, 2)
    assert isinstance(minimax, MinimaxProblem)
    with pytest.raises(TypeError, match="needs a BilevelProblem"):
        br.minimize(minimax, "aid", np.zeros(2))


def test_user_problem_runs_with_aid_and_itd():
    # φ(x) = ½‖x‖² + ½‖x − 1‖², minimiser x = ½·1
    for method in ("aid", "itd"):
        res = br.minimize(ToyProducts(), method, np.zeros(3),
                          options={"step_x": 0.5, "maxiter": 200, "inner_steps": 5})
        assert res.success, res.message
        np.testing.assert_allclose(res.x, 0.5 * np.ones(3), atol=1e-8)


def test_counter_counts_each_call_by_kind(rng):
    problem = br.problems.make_quadratic(3, 2, seed=0)
    counter = OracleCounter(problem)
    x, y = rng.standard_normal(3), rng.standard_normal(2)
    counter.grad_g(x, y)
    counter.grad_g(x, y)
    counter.hvp_yy_g(x, y, y)
    counter.fused_g(x, y, y)
    counter.hess_f(x, y)
    snap = counter.snapshot()
    assert snap["grad_g"] == 3 and snap["hvp_yy_g"] == 2 and snap["cross_g"] == 1 and snap["hess_f"] == 1
    assert sum(snap[k] for k in COUNT_KINDS if k != "samples") == counter.total == 7
    snap["grad_g"] = 99  # a snapshot is a copy
    assert counter.counts["grad_g"] == 3


def test_counter_forwards_results_unchanged(rng):
    problem = br.problems.make_quadratic(3, 2, seed=0)
    counter = OracleCounter(problem)
    x, y = rng.standard_normal(3), rng.standard_normal(2)
    for a, b in zip(counter.grad_f(x, y), problem.grad_f(x, y)):
        np.testing.assert_array_equal(a, b)
    assert counter.dx == 3 and counter.dy == 2 and counter.name == "quadratic"
    assert counter.constants() == problem.constants()
    np.testing.assert_array_equal(counter.A, problem.A)  # public attributes forwarded


def test_counter_hides_closed_forms():
    counter = OracleCounter(br.problems.make_quadratic(3, 2, seed=0))
    with pytest.raises(AttributeError, match="counter.exact"):
        counter.grad_phi(np.zeros(3))
    assert counter.exact.grad_phi(np.zeros(3)).shape == (3,)


def test_budget_stops_before_the_call(rng):
    problem = br.problems.make_quadratic(3, 2, seed=0)
    counter = OracleCounter(problem, budget={"grad_g": 2, "total": 3})
    x, y = rng.standard_normal(3), rng.standard_normal(2)
    counter.grad_g(x, y)
    counter.grad_g(x, y)
    with pytest.raises(BudgetExhausted, match="'grad_g' calls limited to 2"):
        counter.grad_g(x, y)
    assert counter.counts["grad_g"] == 2
    counter.grad_f(x, y)
    with pytest.raises(BudgetExhausted, match="total oracle calls limited to 3"):
        counter.hvp_yy_g(x, y, y)


@pytest.mark.parametrize("budget, exc", [
    ({"gradient": 3}, ValueError), ({"grad_g": -1}, ValueError), ([("grad_g", 1)], TypeError),
])
def test_budget_validation(budget, exc):
    with pytest.raises(exc, match="budget"):
        OracleCounter(ToyDense(), budget=budget)


def test_gradient_blocks_default_to_the_gradient_and_count_as_it(rng):
    problem = ToyDense()
    counter = OracleCounter(problem)
    x, y = rng.standard_normal(3), rng.standard_normal(3)
    np.testing.assert_array_equal(counter.grad_y_g(x, y), y - x)
    np.testing.assert_array_equal(counter.grad_x_g(x, y), x - y)
    np.testing.assert_array_equal(counter.grad_x_f(x, y), x)
    np.testing.assert_array_equal(counter.grad_y_f(x, y), y - 1)
    assert counter.counts["grad_g"] == 2 and counter.counts["grad_f"] == 2
    assert problem.provides("grad_y_g") and not ValuesOnly().provides("grad_y_g")
