"""AGD, GD and CG references: convergence bounds from theory, exact call counts."""
import numpy as np
import pytest

from bilevel_ref.linalg import agd, cg, gd


def _spd(rng, spectrum):
    q, _ = np.linalg.qr(rng.standard_normal((len(spectrum), len(spectrum))))
    return (q * spectrum) @ q.T


@pytest.mark.parametrize("kappa", [10.0, 100.0])
def test_agd_respects_its_bound(rng, kappa):
    mu, L = 1.0 / kappa, 1.0
    A = _spd(rng, np.linspace(mu, L, 30))
    b = rng.standard_normal(30)
    y_star = np.linalg.solve(A, b)
    y0 = np.zeros(30)
    calls = []

    def grad(y):
        calls.append(1)
        return A @ y - b

    for K in (5, 20, 80):
        calls.clear()
        res = agd(grad, y0, L, mu, K)
        bound = (kappa + 1) * (1 - 1 / np.sqrt(kappa)) ** K * np.sum((y0 - y_star) ** 2)
        assert np.sum((res.y - y_star) ** 2) <= bound
        assert len(calls) == K == res.n_grad


def test_agd_is_faster_than_gd_in_sqrt_kappa(rng):
    # iterations to reach 1e-8 relative error scale like √κ (AGD) vs κ (GD)
    def iterations(method, kappa):
        A = np.diag(np.linspace(1.0 / kappa, 1.0, 50))
        b = np.ones(50)
        y_star = np.linalg.solve(A, b)

        def reached(K):
            y = (agd(lambda y: A @ y - b, np.zeros(50), 1.0, 1.0 / kappa, K).y if method == "agd"
                 else gd(lambda y: A @ y - b, np.zeros(50), 1.0, K).y)
            return np.linalg.norm(y - y_star) <= 1e-8 * np.linalg.norm(y_star)

        hi = 1
        while not reached(hi):
            hi *= 2
        lo = hi // 2
        while hi - lo > max(1, hi // 50):  # hitting time to 2 %
            mid = (lo + hi) // 2
            lo, hi = (lo, mid) if reached(mid) else (mid, hi)
        return hi

    def slope(method, kappas):
        return np.polyfit(np.log(kappas), np.log([iterations(method, k) for k in kappas]), 1)[0]

    assert slope("agd", [10.0, 100.0, 1000.0]) == pytest.approx(0.5, abs=0.15)
    assert slope("gd", [10.0, 100.0]) == pytest.approx(1.0, abs=0.15)


def test_agd_tolerance_stops_early(rng):
    A = np.diag([1.0, 2.0])
    res = agd(lambda y: A @ y - 1.0, np.zeros(2), 2.0, 1.0, 1000, tol=1e-12)
    assert res.converged and res.n_grad < 1000
    assert np.linalg.norm(A @ res.y - 1.0) <= 1e-12


@pytest.mark.parametrize("kwargs, match", [
    ({"L": -1.0}, "L must be"), ({"mu": 0.0}, "mu must be"), ({"mu": 3.0}, "mu must be <= L"),
    ({"steps": 1.5}, "steps must be an integer"),
])
def test_agd_bad_input(kwargs, match):
    args = {"grad": lambda y: y, "y0": np.zeros(2), "L": 2.0, "mu": 1.0, "steps": 3, **kwargs}
    with pytest.raises((ValueError, TypeError), match=match):
        agd(**args)


def test_cg_bound_and_counts(rng):
    kappa = 50.0
    A = _spd(rng, np.linspace(1.0 / kappa, 1.0, 60))
    b = rng.standard_normal(60)
    v_star = np.linalg.solve(A, b)
    n = []

    def matvec(v):
        n.append(1)
        return A @ v

    rate = (np.sqrt(kappa) - 1) / (np.sqrt(kappa) + 1)

    def a_norm(e):
        return np.sqrt(e @ A @ e)

    for K in (3, 10, 25):
        n.clear()
        res = cg(matvec, b, maxiter=K, rtol=0.0)
        assert len(n) == K == res.n_matvec == res.n_iter
        assert a_norm(res.x - v_star) <= 2 * rate**K * a_norm(v_star)
    # warm start: one extra matvec for the initial residual
    n.clear()
    res = cg(matvec, b, x0=v_star + 1e-3, maxiter=4, rtol=0.0)
    assert len(n) == 5 == res.n_matvec
    # to tolerance: exact solution
    res = cg(matvec, b, rtol=1e-12, maxiter=1000)
    assert res.converged and np.linalg.norm(A @ res.x - b) <= 1e-12 * np.linalg.norm(b)


def test_cg_stops_on_nonpositive_curvature():
    res = cg(lambda v: -v, np.ones(3), maxiter=10)
    assert not res.converged and res.n_iter == 0
