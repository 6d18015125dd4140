"""Shared logistic/softmax math (problems/_logistic.py) vs closed forms and finite differences."""
import numpy as np
import pytest
import scipy.sparse as sp

from bilevel_ref.problems._logistic import (
    BinaryLogisticLoss,
    SoftmaxLoss,
    as_pm1,
    d2sigmoid,
    dsigmoid,
    lambda_max_gram,
    matvec,
    rmatvec,
    sigmoid,
    softmax,
    softplus,
    weighted_gram,
)
from _fd import fd_directional, fd_gradient, fd_jacobian


def test_scalar_maps_are_stable_and_exact():
    t = np.array([-800.0, -30.0, -1.0, 0.0, 1.0, 30.0, 800.0])
    assert np.all(np.isfinite(softplus(t)))
    np.testing.assert_allclose(softplus(t[2:5]), np.log1p(np.exp(t[2:5])), rtol=1e-15)
    assert softplus(800.0) == 800.0 and softplus(-800.0) == 0.0
    np.testing.assert_allclose(sigmoid(t[2:5]), 1 / (1 + np.exp(-t[2:5])), rtol=1e-15)
    for s in (-3.0, 0.2, 2.5):
        assert dsigmoid(s) == pytest.approx(fd_gradient(lambda u: sigmoid(u[0]), [s])[0], rel=1e-8)
        assert d2sigmoid(s) == pytest.approx(fd_gradient(lambda u: dsigmoid(u[0]), [s])[0], rel=1e-7)
    P = softmax(np.array([[1000.0, 0.0], [0.0, 0.0]]))
    np.testing.assert_allclose(P, [[1.0, 0.0], [0.5, 0.5]])


def test_as_pm1():
    np.testing.assert_array_equal(as_pm1([0, 1, 1]), [-1.0, 1.0, 1.0])
    np.testing.assert_array_equal(as_pm1([-1, 1]), [-1.0, 1.0])
    with pytest.raises(ValueError, match="binary"):
        as_pm1([0, 1, 2])


@pytest.fixture(params=["dense", "csr"])
def data(request, rng):
    X = rng.standard_normal((30, 6)) * (rng.random((30, 6)) < 0.6)
    return (sp.csr_matrix(X) if request.param == "csr" else X), X


def test_products_never_densify_and_agree(data, rng):
    X, Xd = data
    v, w, V = rng.standard_normal(6), rng.standard_normal(30), rng.standard_normal((6, 3))
    for got, want in ((matvec(X, v), Xd @ v), (rmatvec(X, w), Xd.T @ w), (matvec(X, V), Xd @ V)):
        assert isinstance(got, np.ndarray)
        np.testing.assert_allclose(got, want, rtol=1e-13, atol=1e-14)
    np.testing.assert_allclose(weighted_gram(X, w), Xd.T @ (Xd * w[:, None]), rtol=1e-12, atol=1e-13)
    assert lambda_max_gram(X) == pytest.approx(np.linalg.norm(Xd, 2) ** 2, rel=1e-5)


def _models(X, rng):
    return [BinaryLogisticLoss(X, rng.integers(0, 2, X.shape[0])),
            SoftmaxLoss(X, rng.integers(0, 4, X.shape[0]), 4)]


def test_loss_models_vs_finite_differences(data, rng):
    X, _ = data
    for m in _models(X, rng):
        y, v = rng.standard_normal(m.dim), rng.standard_normal(m.dim)
        c = rng.random(m.n)
        weighted = lambda t: float(c @ m.losses(t))  # noqa: E731
        np.testing.assert_allclose(m.weighted_grad(y, c), fd_gradient(weighted, y), rtol=1e-7, atol=1e-8)
        np.testing.assert_allclose(m.weighted_hvp(y, c, v),
                                   fd_directional(lambda t: m.weighted_grad(t, c), y, v), rtol=1e-7, atol=1e-8)
        H = m.weighted_hess(y, c)
        np.testing.assert_allclose(H, fd_jacobian(lambda t: m.weighted_grad(t, c), y), rtol=1e-7, atol=1e-8)
        np.testing.assert_allclose(H @ v, m.weighted_hvp(y, c, v), rtol=1e-12, atol=1e-13)
        G = m.sample_grads(y)
        np.testing.assert_allclose(G @ v, m.directional(y, v), rtol=1e-12, atol=1e-13)
        np.testing.assert_allclose(G.T @ c, m.weighted_grad(y, c), rtol=1e-12, atol=1e-13)
        ell, grad = m.losses_and_grad(y, c)
        np.testing.assert_array_equal(ell, m.losses(y))
        np.testing.assert_array_equal(grad, m.weighted_grad(y, c))
        rows = np.array([2, 5, 5, 9])
        np.testing.assert_allclose(m.weighted_grad(y, np.ones(4), rows),
                                   sum(m.weighted_grad(y, np.ones(1), [i]) for i in rows), rtol=1e-12)


def test_cross_entropy_closed_form(rng):
    X = rng.standard_normal((5, 3))
    labels = np.array([0, 1, 2, 1, 0])
    m = SoftmaxLoss(X, labels, 3)
    W = rng.standard_normal((3, 3))
    logits = X @ W
    want = -np.log(np.exp(logits[np.arange(5), labels]) / np.exp(logits).sum(1))
    np.testing.assert_allclose(m.losses(W.ravel()), want, rtol=1e-13)
    assert m.accuracy(W.ravel()) == np.mean(np.argmax(logits, 1) == labels)
    with pytest.raises(ValueError, match="labels"):
        SoftmaxLoss(X, [0, 1, 3, 0, 0], 3)


def test_dense_limit_raises_not_implemented(rng):
    m = SoftmaxLoss(rng.standard_normal((4, 10)), [0, 1, 2, 0], 3)
    with pytest.raises(NotImplementedError, match="max_dense"):
        m.weighted_hess(np.zeros(30), np.ones(4), max_dense=100)


def test_batch_validation():
    from bilevel_ref.problems._logistic import as_rows
    from bilevel_ref.problems.hyper_cleaning import make_hyper_cleaning

    assert as_rows(None) is None
    np.testing.assert_array_equal(as_rows([3, 1]), [3, 1])
    with pytest.raises(ValueError, match="empty"):
        as_rows([])
    with pytest.raises(TypeError, match="batch"):
        as_rows([0.5, 1.0])
    p = make_hyper_cleaning(10, 5, 3, seed=0)
    with pytest.raises(ValueError, match="batch"):
        p.grad_g(np.zeros(10), np.zeros(3), batch=np.array([], dtype=int))
