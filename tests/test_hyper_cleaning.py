"""Data hyper-cleaning (Franceschi et al. 2017; binary form of the FSBA paper, Yang, Liu,
Chen & Lui 2026): oracles vs finite differences, the closed-form derivatives,
minibatch unbiasedness, and the end-to-end claim that learned weights find corrupted labels."""
import numpy as np
import pytest

from bilevel_ref import minimize
from bilevel_ref.problems._logistic import dsigmoid, sigmoid
from bilevel_ref.problems.catalog import build_problem
from bilevel_ref.problems.hyper_cleaning import HyperCleaning, hyper_cleaning_from_dataset, make_hyper_cleaning
from _fd import assert_gradient_blocks_match, assert_oracles_match_fd

CASES = {
    "binary-sigmoid": lambda: make_hyper_cleaning(12, 10, 4, seed=1),
    "binary-softmax": lambda: make_hyper_cleaning(12, 10, 4, seed=2, weight="softmax"),
    "multi-sigmoid": lambda: make_hyper_cleaning(12, 10, 3, 3, seed=3),
    "multi-softmax": lambda: make_hyper_cleaning(12, 10, 3, 3, seed=4, weight="softmax"),
}


@pytest.fixture(params=sorted(CASES))
def case(request, rng):
    p = CASES[request.param]()
    return p, rng.standard_normal(p.dx), rng.standard_normal(p.dy)


def test_oracles_match_finite_differences(case, rng):
    p, x, y = case
    assert_oracles_match_fd(p, x, y, rng, tol=1e-7)


def test_minibatch_all_ids_equal_full_and_single_samples_average(case, rng):
    p, x, y = case
    u, v = rng.standard_normal(p.dx), rng.standard_normal(p.dy)
    everyone = rng.permutation(p.n_lower)
    names = [("g", ()), ("grad_g", ()), ("hvp_yy_g", (v,)), ("hvp_xx_g", (u,)), ("cross_g", (v,)),
             ("cross_t_g", (u,)), ("hess_g", ())]
    for name, args in names:
        full = getattr(p, name)(x, y, *args)
        part = getattr(p, name)(x, y, *args, batch=everyone)
        single = [getattr(p, name)(x, y, *args, batch=[i]) for i in range(p.n_lower)]
        full_t = full if isinstance(full, tuple) else (full,)
        part_t = part if isinstance(part, tuple) else (part,)
        for j, (a, b) in enumerate(zip(part_t, full_t)):
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)
            mean = np.mean([(s if isinstance(s, tuple) else (s,))[j] for s in single], axis=0)
            np.testing.assert_allclose(mean, b, rtol=1e-10, atol=1e-13)
    vid = rng.permutation(p.n_upper)
    np.testing.assert_allclose(p.grad_f(x, y, batch=vid)[1], p.grad_f(x, y)[1], rtol=1e-12, atol=1e-14)


def test_fused_g_equals_separate_oracles(case, rng):
    p, x, y = case
    v = rng.standard_normal(p.dy)
    for batch in (None, np.array([1, 4, 4, 7])):
        want = (p.grad_g(x, y, batch=batch)[1], p.hvp_yy_g(x, y, v, batch=batch), p.cross_g(x, y, v, batch=batch))
        for a, b in zip(p.fused_g(x, y, v, batch=batch), want):
            np.testing.assert_allclose(a, b, rtol=1e-13, atol=1e-15)


def test_missing_closed_forms_name_the_problem():
    p = make_hyper_cleaning(6, 4, 2, seed=0)
    with pytest.raises(NotImplementedError, match="hyper-cleaning"):
        p.y_star(np.zeros(6))


def test_gradient_blocks_equal_the_gradients(case):
    p, x, y = case
    assert_gradient_blocks_match(p, x, y, batches=(None, np.array([0, 3, 3, 5])))


def test_binary_sigmoid_formulas_of_the_spec(rng):
    p = make_hyper_cleaning(15, 8, 4, seed=5)
    x, y = rng.standard_normal(15), rng.standard_normal(4)
    X, b, n, mu = p.train.X, p.train.b, 15, p.mu
    z = b * (X @ y)
    ell = np.log1p(np.exp(-z))
    assert p.g(x, y) == pytest.approx(np.mean(sigmoid(x) * ell) + mu / 2 * y @ y, rel=1e-13)
    np.testing.assert_allclose(p.grad_g(x, y)[0], dsigmoid(x) * ell / n, rtol=1e-12)
    hxy = -(dsigmoid(x) * b * sigmoid(-z))[:, None] * X / n
    np.testing.assert_allclose(p.hess_g(x, y)[1], hxy, rtol=1e-12)
    c = p.constants()
    assert np.linalg.norm(hxy, 2) <= c["L_xy"] * (1 + 1e-12)
    assert np.linalg.eigvalsh(p.hess_g(x, y)[2])[-1] <= c["L_g"]
    assert c["mu_g"] == mu == 0.01


def test_softmax_weights_sum_to_one(rng):
    p = make_hyper_cleaning(10, 5, 3, seed=0, weight="softmax")
    x, y = rng.standard_normal(10), rng.standard_normal(3)
    ell = p.train.losses(y)
    w = np.exp(x) / np.exp(x).sum()
    assert p.g(x, y) == pytest.approx(w @ ell + p.mu / 2 * y @ y, rel=1e-13)
    assert np.mean(p.sample_weights(x)) == pytest.approx(1.0)


def test_bad_input_and_dense_limit():
    X = np.ones((4, 2))
    with pytest.raises(ValueError, match="weight"):
        HyperCleaning(X, [0, 1, 0, 1], X, [0, 1, 0, 1], weight="relu")
    with pytest.raises(ValueError, match="corrupted"):
        HyperCleaning(X, [0, 1, 0, 1], X, [0, 1, 0, 1], corrupted=[True])
    with pytest.raises(ValueError, match="mu"):
        HyperCleaning(X, [0, 1, 0, 1], X, [0, 1, 0, 1], mu=-1.0)
    p = HyperCleaning(X, [0, 1, 0, 1], X, [0, 1, 0, 1], max_dense=10)
    with pytest.raises(NotImplementedError, match="max_dense"):
        p.hess_g(np.zeros(4), np.zeros(2))
    p.hvp_yy_g(np.zeros(4), np.zeros(2), np.ones(2))  # products still work


def test_evaluate_precision_recall_by_hand():
    X = np.eye(4)
    p = HyperCleaning(X, [0, 1, 0, 1], X, [0, 1, 0, 1], corrupted=[True, True, False, False])
    x = np.array([-5.0, 5.0, -5.0, 5.0])  # flags samples 0 and 2
    m = p.evaluate(x, np.zeros(4))
    assert m["precision"] == 0.5 and m["recall"] == 0.5
    assert m["val_loss"] == pytest.approx(np.log(2.0))


def test_catalog_breast_cancer_instance():
    p, x0 = build_problem("hyper-cleaning", seed=0, dataset="breast-cancer", noise=0.25)
    assert p.dx == p.n_lower == len(x0) and p.dy == 30
    assert abs(p.corrupted.mean() - 0.25) < 0.01
    q, _ = build_problem("hyper-cleaning", seed=0, dataset="digits", noise=0.5, max_train=100)
    assert q.dx == 100 and q.dy == 640 and q.loss == "multinomial"


@pytest.mark.parametrize("method,options", [
    ("aid", {"maxiter": 150, "step_x": 100.0, "inner_steps": 20, "linsys_steps": 10}),
    ("f2ba", {"maxiter": 150, "step_x": 100.0, "inner_steps": 20, "lam": 10.0}),
])
def test_learned_weights_find_corrupted_samples_on_breast_cancer(method, options):
    # Issue 7 acceptance: noise 0.5 on breast cancer; after the run the mean
    # weight of corrupted samples is below that of clean ones, and the test
    # accuracy beats the model trained on the noisy labels with uniform weights.
    p = hyper_cleaning_from_dataset("breast-cancer", 0.5, seed=0)
    x0 = np.zeros(p.dx)
    uniform = minimize(p, "aid", x0, options={"maxiter": 1, "step_x": 1e-300, "inner_steps": 3000})
    res = minimize(p, method, x0, options=options)
    m0, m = p.evaluate(x0, uniform.y), p.evaluate(res.x, res.y)
    # p = 0.5 flips exactly half the labels: uniform weights learn nothing (≈ 50 %)
    assert m["weight_corrupted"] < m["weight_clean"] - 0.3
    assert m["test_accuracy"] > max(m0["test_accuracy"] + 0.2, 0.85)
    assert m["precision"] > 0.8 and m["recall"] > 0.8
    assert m["val_loss"] < m0["val_loss"]
