"""ANIL-style meta-learning head (stand-in for the FSBA paper's Fig. 4 experiment): oracles vs finite differences, structure, metrics."""
import numpy as np
import pytest

from bilevel_ref import minimize
from bilevel_ref.problems.catalog import build_problem
from bilevel_ref.problems.meta import MetaLearningHead, make_meta_learning, sample_tasks
from _fd import fd_directional, fd_gradient, fd_jacobian


@pytest.fixture(scope="module")
def small():
    rng = np.random.default_rng(3)
    X = rng.standard_normal((120, 6))
    labels = np.arange(120) % 4
    tasks = sample_tasks(X, labels, 3, 3, 2, 3, rng)
    return MetaLearningHead(tasks, 2, 3, mu=0.3, test_tasks=tasks[:1])


def _point(p, seed):
    rng = np.random.default_rng(seed)
    return rng.standard_normal(p.dx), rng.standard_normal(p.dy), rng.standard_normal(p.dx), rng.standard_normal(p.dy)


def test_gradients_and_products_vs_finite_differences(small):
    p = small
    x, y, u, v = _point(p, 0)
    for fn in ("f", "g"):
        grad = getattr(p, f"grad_{fn}")
        gx, gy = grad(x, y)
        np.testing.assert_allclose(gx, fd_gradient(lambda t: getattr(p, fn)(t, y), x), rtol=1e-7, atol=1e-8)
        np.testing.assert_allclose(gy, fd_gradient(lambda t: getattr(p, fn)(x, t), y), rtol=1e-7, atol=1e-8)
        checks = (("hvp_yy", v, lambda t: grad(x, t)[1], y), ("hvp_xx", u, lambda t: grad(t, y)[0], x),
                  ("cross", v, lambda t: grad(x, t)[0], y), ("cross_t", u, lambda t: grad(t, y)[1], x))
        for prod, vec, fun, at in checks:
            np.testing.assert_allclose(getattr(p, f"{prod}_{fn}")(x, y, vec), fd_directional(fun, at, vec),
                                       rtol=1e-6, atol=1e-7)
        hxx, hxy, hyy = getattr(p, f"hess_{fn}")(x, y)
        np.testing.assert_allclose(hyy, fd_jacobian(lambda t: grad(x, t)[1], y), rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(hxy, fd_jacobian(lambda t: grad(x, t)[0], y), rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(hxx, hxx.T, atol=1e-12)
        np.testing.assert_allclose(hyy, hyy.T, atol=1e-12)


def test_gradient_blocks_equal_the_gradients(small):
    x, y, _, _ = _point(small, 4)
    for fn in ("f", "g"):
        gx, gy = getattr(small, f"grad_{fn}")(x, y, batch=[2, 0])
        np.testing.assert_array_equal(getattr(small, f"grad_x_{fn}")(x, y, batch=[2, 0]), gx)
        np.testing.assert_array_equal(getattr(small, f"grad_y_{fn}")(x, y, batch=[2, 0]), gy)


def test_structure_strong_convexity_and_batches(small):
    p = small
    x, y, _, v = _point(p, 1)
    hyy = p.hess_g(x, y)[2]
    # separable over tasks: block diagonal in the heads
    h = p.head
    off = hyy.copy()
    for i in range(p.n_tasks):
        off[i * h:(i + 1) * h, i * h:(i + 1) * h] = 0
    assert np.max(np.abs(off)) == 0.0
    # mu/n_t-strongly convex, attained along logit shifts (CE is flat there)
    eig = np.linalg.eigvalsh(hyy)
    assert eig[0] == pytest.approx(p.constants()["mu_g"], rel=1e-8)
    everyone = np.array([2, 0, 1])
    np.testing.assert_allclose(p.hvp_yy_g(x, y, v, batch=everyone), p.hvp_yy_g(x, y, v), rtol=1e-12, atol=1e-15)
    single = np.mean([p.grad_f(x, y, batch=[i])[0] for i in range(p.n_tasks)], axis=0)
    np.testing.assert_allclose(single, p.grad_f(x, y)[0], rtol=1e-12, atol=1e-15)


def test_fit_heads_solves_the_lower_level(small):
    p = small
    x = _point(p, 2)[0]
    tasks = [(s.A, s.labels, q.A, q.labels) for s, q in zip(p.support, p.query)]
    heads = np.concatenate([Y.ravel() for Y in p.fit_heads(x, tasks)])
    assert np.linalg.norm(p.grad_g(x, heads)[1]) < 1e-9


def test_default_instance_and_learning_improves_query_loss():
    p, x0 = build_problem("meta-learning", seed=0)
    assert (p.dx, p.dy, p.n_tasks) == (64 * 16, 8 * 16 * 5, 8)
    assert all(s.n == 25 and q.n == 75 for s, q in zip(p.support, p.query))
    with pytest.raises(NotImplementedError, match="products"):
        build_problem("meta-learning", seed=0, rank=200)[0].hess_g(np.zeros(64 * 200), np.zeros(8 * 200 * 5))
    res = minimize(p, "aid", x0, options={"maxiter": 20, "step_x": 2.0, "inner_steps": 30, "L_g": 0.1})
    start = p.evaluate(x0, minimize(p, "aid", x0, options={"maxiter": 1, "step_x": 1e-300, "inner_steps": 30,
                                                             "L_g": 0.1}).y)
    end = p.evaluate(res.x, res.y)
    assert end["val_loss"] < start["val_loss"] - 0.05
    assert 0.2 <= end["test_accuracy"] <= 1.0


def test_bad_input():
    with pytest.raises(ValueError, match="n_way"):
        sample_tasks(np.zeros((10, 2)), np.arange(10) % 2, 1, 3, 1, 1, np.random.default_rng(0))
    with pytest.raises(ValueError, match="k_shot"):
        sample_tasks(np.zeros((10, 2)), np.arange(10) % 2, 1, 2, 4, 4, np.random.default_rng(0))
    with pytest.raises(ValueError, match="tasks"):
        MetaLearningHead([], 2, 2)
    with pytest.raises(ValueError, match="digits"):
        make_meta_learning("mnist")


def test_missing_closed_forms_name_the_problem(small):
    with pytest.raises(NotImplementedError, match="meta-learning"):
        small.phi(np.zeros(small.dx))
