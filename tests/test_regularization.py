"""Learn-to-regularize (benchopt ijcnn1 / F2SA-p l2reg set-ups): every oracle vs central finite differences.

Truth: finite differences of the values (tests/_fd.py), the closed forms of
the penalty derivatives, and ``minibatch with all ids == full oracle``.
"""
import numpy as np
import pytest

from bilevel_ref import minimize
from bilevel_ref.problems.catalog import build_problem
from bilevel_ref.problems.regularization import (
    LearnToRegularize,
    make_logistic_regularization,
    make_multinomial_regularization,
)
from _fd import assert_gradient_blocks_match, assert_oracles_match_fd, fd_directional, fd_jacobian

CASES = {
    "binary-exp": lambda: make_logistic_regularization(40, 30, 6, seed=1),
    "binary-lin": lambda: make_logistic_regularization(40, 30, 6, seed=2, reg="lin"),
    "multi-feature": lambda: make_multinomial_regularization(40, 30, 5, 3, seed=3),
    "multi-class": lambda: make_multinomial_regularization(40, 30, 5, 3, seed=4, penalty="per_class"),
    "multi-sparse": lambda: make_multinomial_regularization(60, 40, 12, 3, seed=5, density=0.3),
}


def _point(problem, rng):
    lin = problem.reg == "lin"
    x = rng.uniform(0.5, 1.5, problem.dx) if lin else 0.5 * rng.standard_normal(problem.dx)
    return x, rng.standard_normal(problem.dy)


@pytest.fixture(params=sorted(CASES))
def case(request, rng):
    problem = CASES[request.param]()
    x, y = _point(problem, rng)
    return problem, x, y


def _close(a, b, scale=1.0, tol=1e-7):
    np.testing.assert_allclose(a, b, rtol=tol, atol=tol * max(1.0, scale))


def test_gradients_and_products_match_finite_differences(case, rng):
    p, x, y = case
    assert_oracles_match_fd(p, x, y, rng, tol=1e-7, dense=False)


def test_dense_blocks_equal_products_and_fd_jacobians(case, rng):
    p, x, y = case
    for fn in ("f", "g"):
        hxx, hxy, hyy = getattr(p, f"hess_{fn}")(x, y)
        assert hxx.shape == (p.dx, p.dx) and hxy.shape == (p.dx, p.dy) and hyy.shape == (p.dy, p.dy)
        np.testing.assert_allclose(hxx, hxx.T, atol=1e-14)
        np.testing.assert_allclose(hyy, hyy.T, atol=1e-14)
        grad = getattr(p, f"grad_{fn}")
        _close(hyy, fd_jacobian(lambda t: grad(x, t)[1], y))
        _close(hxy, fd_jacobian(lambda t: grad(x, t)[0], y))
        u, v = rng.standard_normal(p.dx), rng.standard_normal(p.dy)
        np.testing.assert_allclose(getattr(p, f"hvp_yy_{fn}")(x, y, v), hyy @ v, rtol=1e-12, atol=1e-13)
        np.testing.assert_allclose(getattr(p, f"hvp_xx_{fn}")(x, y, u), hxx @ u, rtol=1e-12, atol=1e-13)
        np.testing.assert_allclose(getattr(p, f"cross_{fn}")(x, y, v), hxy @ v, rtol=1e-12, atol=1e-13)
        np.testing.assert_allclose(getattr(p, f"cross_t_{fn}")(x, y, u), hxy.T @ u, rtol=1e-12, atol=1e-13)


def test_minibatch_with_all_ids_equals_full_and_batches_average(case, rng):
    p, x, y = case
    u, v = rng.standard_normal(p.dx), rng.standard_normal(p.dy)
    for fn, n in (("g", p.n_lower), ("f", p.n_upper)):
        everyone = rng.permutation(n)
        assert getattr(p, fn)(x, y, batch=everyone) == pytest.approx(getattr(p, fn)(x, y), rel=1e-13)
        for a, b in zip(getattr(p, f"grad_{fn}")(x, y, batch=everyone), getattr(p, f"grad_{fn}")(x, y)):
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(getattr(p, f"hvp_yy_{fn}")(x, y, v, batch=everyone),
                                   getattr(p, f"hvp_yy_{fn}")(x, y, v), rtol=1e-12, atol=1e-14)
        for blk_b, blk in zip(getattr(p, f"hess_{fn}")(x, y, batch=everyone), getattr(p, f"hess_{fn}")(x, y)):
            np.testing.assert_allclose(blk_b, blk, rtol=1e-12, atol=1e-14)
        # the mean of the single-sample oracles is the full oracle (unbiasedness)
        mean = np.mean([getattr(p, f"grad_{fn}")(x, y, batch=[i])[1] for i in range(n)], axis=0)
        np.testing.assert_allclose(mean, getattr(p, f"grad_{fn}")(x, y)[1], rtol=1e-10, atol=1e-13)
    batch = everyone[:5]
    for a, b in zip(p.fused_g(x, y, v, batch=batch),
                    (p.grad_g(x, y, batch=batch)[1], p.hvp_yy_g(x, y, v, batch=batch), p.cross_g(x, y, v, batch=batch))):
        np.testing.assert_allclose(a, b, rtol=1e-13, atol=1e-15)


def test_gradient_blocks_equal_the_gradients(case):
    p, x, y = case
    assert_gradient_blocks_match(p, x, y, batches=(None, np.array([0, 3, 3, 5])))


def test_batch_subset_is_the_subset_mean(rng):
    p = make_logistic_regularization(30, 20, 4, seed=0)
    x, y = _point(p, rng)
    batch = np.array([3, 7, 7, 11])
    want = np.mean([p.g(x, y, batch=[i]) for i in batch])
    assert p.g(x, y, batch=batch) == pytest.approx(want, rel=1e-13)


def test_binary_formulas_of_the_spec(rng):
    # binary logistic, per-feature penalty reg="exp": ∇²_xy g = diag(e^x ⊙ y), ∇²_yy g = (1/n)Xᵀdiag(σσ)X + diag(e^x)
    p = make_logistic_regularization(25, 10, 4, seed=7)
    x, y = _point(p, rng)
    hxx, hxy, hyy = p.hess_g(x, y)
    np.testing.assert_allclose(hxy, np.diag(np.exp(x) * y), rtol=1e-14)
    np.testing.assert_allclose(hxx, np.diag(0.5 * np.exp(x) * y**2), rtol=1e-14)
    X, b = p.train.X, p.train.b
    z = b * (X @ y)
    s = 1 / (1 + np.exp(-z))
    want = X.T @ (X * (s * (1 - s))[:, None]) / X.shape[0] + np.diag(np.exp(x))
    np.testing.assert_allclose(hyy, want, rtol=1e-12)


def test_multinomial_penalty_scale_is_one_over_2N(rng):
    p = make_multinomial_regularization(20, 10, 3, 4, seed=0)
    x, W = _point(p, rng)
    N = p.dy
    g0 = p.g(x, np.zeros(N))
    want = g0 + 0.5 * np.mean(W.reshape(3, 4) ** 2 * np.exp(x)[:, None])
    assert p.g(x, W) - np.mean(p.train.losses(W)) + g0 == pytest.approx(want, rel=1e-12)
    assert N == 12


def test_sparse_and_dense_paths_agree(rng):
    ps = make_multinomial_regularization(50, 30, 15, 3, seed=9, density=0.2)
    pd = LearnToRegularize(ps.train.X.toarray(), ps.train.labels, ps.val.X.toarray(), ps.val.labels,
                           loss="multinomial", n_classes=3)
    assert ps.sparse and not pd.sparse
    x, y = _point(ps, rng)
    u, v = rng.standard_normal(ps.dx), rng.standard_normal(ps.dy)
    for name, args in (("grad_g", ()), ("grad_f", ()), ("hvp_yy_g", (v,)), ("cross_g", (v,)),
                       ("cross_t_g", (u,)), ("hvp_yy_f", (v,)), ("hess_g", ())):
        a, b = getattr(ps, name)(x, y, *args), getattr(pd, name)(x, y, *args)
        for blk_a, blk_b in zip(a if isinstance(a, tuple) else (a,), b if isinstance(b, tuple) else (b,)):
            np.testing.assert_allclose(blk_a, blk_b, rtol=1e-12, atol=1e-13)
    assert ps.g(x, y) == pytest.approx(pd.g(x, y), rel=1e-13)


def test_constants_bound_the_hessian(rng):
    for p in (make_logistic_regularization(60, 30, 5, seed=1), make_multinomial_regularization(60, 30, 4, 3, seed=1)):
        c = p.constants()
        x = p.x_ref
        for _ in range(3):
            y = 3 * rng.standard_normal(p.dy)
            eig = np.linalg.eigvalsh(p.hess_g(x, y)[2])
            assert c["mu_g"] <= eig[0] * (1 + 1e-12)
            assert eig[-1] <= c["L_g"] * (1 + 1e-12)
            eig_f = np.linalg.eigvalsh(p.hess_f(x, y)[2])
            assert eig_f[-1] <= c["L_f"] * (1 + 1e-12)


def test_bad_input_is_named():
    X = np.ones((4, 2))
    with pytest.raises(ValueError, match="loss"):
        LearnToRegularize(X, [0, 1, 0, 1], X, [0, 1, 0, 1], loss="poisson")
    with pytest.raises(ValueError, match="X_val"):
        LearnToRegularize(X, [0, 1, 0, 1], np.ones((4, 3)), [0, 1, 0, 1])
    with pytest.raises(ValueError, match="y_train"):
        LearnToRegularize(X, [0, 1, 0], X, [0, 1, 0, 1])
    with pytest.raises(ValueError, match="labels"):
        LearnToRegularize(X, [0, 2, 0, 1], X, [0, 1, 0, 1])
    p = make_logistic_regularization(10, 10, 3, seed=0, reg="lin")
    with pytest.raises(ValueError, match="x > 0"):
        p.grad_g(np.array([1.0, -1.0, 1.0]), np.zeros(3))
    big = make_multinomial_regularization(10, 10, 30, 5, seed=0, max_dense=1000)
    with pytest.raises(NotImplementedError, match="max_dense"):
        big.hess_g(np.zeros(30), np.zeros(150))


def test_missing_exact_oracles_name_the_problem():
    p = make_logistic_regularization(10, 10, 3, seed=0)
    with pytest.raises(NotImplementedError, match="logistic-regularization"):
        p.grad_phi(np.zeros(3))


def test_catalog_instances_and_determinism():
    p1, x1 = build_problem("logistic-regularization", seed=3, n_train=50, n_val=40, d=5)
    p2, x2 = build_problem("logistic-regularization", seed=3, n_train=50, n_val=40, d=5)
    assert np.array_equal(p1.train.X, p2.train.X) and np.array_equal(x1, x2)
    assert p1.n_lower == 50 and p1.n_upper == 40 and p1.dx == p1.dy == 5
    p3, _ = build_problem("multinomial-regularization", seed=0, n_train=30, n_val=20, d=4, n_classes=3)
    assert p3.dy == 12 and p3.dx == 4
    idx = p1.sample(np.random.default_rng(0), 10, "lower")
    assert len(np.unique(idx)) == 10 and idx.max() < 50


def test_aid_lowers_the_validation_loss():
    # an outside check that the oracles fit together: a hypergradient method
    # decreases f(x, y*(x)) (y* from a long inner solve) from the start.
    p, x0 = build_problem("logistic-regularization", seed=0, n_train=100, n_val=100, d=8)
    res = minimize(p, "aid", x0, options={"maxiter": 30, "step_x": 1.0, "inner_steps": 50})
    start = minimize(p, "aid", x0, options={"maxiter": 0, "inner_steps": 50})
    inner = minimize(p, "aid", x0, options={"maxiter": 1, "step_x": 1e-12, "inner_steps": 200})
    assert p.evaluate(res.x, res.y)["val_loss"] < p.evaluate(x0, inner.y)["val_loss"] - 1e-3
    assert start.nit == 0


def test_newsgroups_sized_sparse_products_never_densify():
    # 20-Newsgroups shape (issue 7): 18 000 × 130 107 CSR, ~0.1 % density, 20
    # classes, dy = 2.6 M.  A dense X would take 18.7 GB; one HVP and one
    # cross product must stay far below (tracemalloc), and they must agree
    # with central differences of the gradient (outside truth) at full scale.
    import tracemalloc

    p = make_multinomial_regularization(18_000, 2_000, 130_107, 20, seed=0, density=1e-3)
    assert p.sparse and p.train.X.shape == (18_000, 130_107) and p.dy == 130_107 * 20
    rng = np.random.default_rng(1)
    x, y = 0.1 * rng.standard_normal(p.dx), 0.01 * rng.standard_normal(p.dy)
    v = rng.standard_normal(p.dy)
    tracemalloc.start()
    try:
        hv = p.hvp_yy_g(x, y, v)
        cv = p.cross_g(x, y, v)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    dense_bytes = 18_000 * 130_107 * 8
    assert peak < 200e6 < dense_bytes / 50
    both = fd_directional(lambda t: np.concatenate(p.grad_g(x, t)), y, v)
    fd_x, fd_y = both[:p.dx], both[p.dx:]
    assert np.linalg.norm(hv - fd_y) <= 1e-7 * np.linalg.norm(fd_y)
    assert np.linalg.norm(cv - fd_x) <= 1e-7 * np.linalg.norm(fd_x)
    with pytest.raises(NotImplementedError, match="Hessian-vector"):
        p.hess_g(x, y)


def test_dataset_instance_breast_cancer():
    p, x0 = build_problem("regularization", seed=0, dataset="breast-cancer")
    assert p.dx == p.dy == 30 and p.loss == "binary" and p.test is not None
    m = p.evaluate(x0, np.zeros(30))
    assert m["val_loss"] == pytest.approx(np.log(2.0))
