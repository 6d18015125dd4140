"""LazyCubic: one eigh, O(d²) solves (lazy Hessians, Doikov, Chayti & Jaggi 2023)."""
import numpy as np
import pytest

from bilevel_ref.linalg.cubic import cubic_kkt, solve_cubic
from bilevel_ref.linalg.lazy import LazyCubic
from _cubic_cases import hard_case_problem, model, random_symmetric


@pytest.fixture(scope="module")
def problem():
    rng = np.random.default_rng(2024)
    d = 80
    return random_symmetric(rng, d), rng.standard_normal((5, d))


def test_numpy_backend_bitwise_equals_eigh(problem):
    H, gs = problem
    lazy = LazyCubic(H, 1.0, backend="numpy")
    for g in gs:
        a, b = lazy.solve(g), solve_cubic(g, H, 1.0, method="eigh")
        assert np.array_equal(a.s, b.s) and a.lam == b.lam and a.model_value == b.model_value
    assert lazy.n_solves == len(gs)


def test_numba_backend_matches_eigh(problem):
    H, gs = problem
    lazy = LazyCubic(H, 1.0)
    assert lazy.backend == "numba"
    for g in gs:
        a, b = lazy.solve(g), solve_cubic(g, H, 1.0, method="eigh")
        assert np.linalg.norm(a.s - b.s) <= 1e-12 * np.linalg.norm(b.s)
        assert a.lam == pytest.approx(b.lam, rel=1e-12)
        assert cubic_kkt(g, H, 1.0, a.s, a.lam).holds(1e-10)
        assert a.model_value == pytest.approx(model(g, H, 1.0, a.s), rel=1e-12)


def test_M_changes_without_refactoring(problem):
    H, gs = problem
    lazy = LazyCubic(H, 1.0)
    Q_before = lazy.Q
    for M in (0.1, 1.0, 10.0):
        res = lazy.solve(gs[0], M=M)
        assert cubic_kkt(gs[0], H, M, res.s, res.lam).holds(1e-10)
    assert lazy.Q is Q_before


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_hard_case_and_min_eig(backend):
    rng = np.random.default_rng(5)
    g, H, m_star, lam_star = hard_case_problem(rng, d=40)
    lazy = LazyCubic(H, 1.0, backend=backend)
    assert lazy.min_eig == pytest.approx(-lam_star, rel=1e-12)
    res = lazy.solve(g)
    assert res.hard_case and res.model_value == pytest.approx(m_star, rel=1e-12)


def test_snapshot_optimality_is_for_the_snapshot(problem):
    """A lazy step is optimal for H_π, not for a different current Hessian."""
    H, gs = problem
    H_now = H + 0.3 * np.eye(H.shape[0])
    res = LazyCubic(H, 1.0).solve(gs[1])
    assert cubic_kkt(gs[1], H, 1.0, res.s, res.lam).holds(1e-10)
    assert not cubic_kkt(gs[1], H_now, 1.0, res.s, res.lam).holds(1e-6)


def test_bit_identical_reruns(problem):
    H, gs = problem
    a = LazyCubic(H, 2.0).solve(gs[2])
    b = LazyCubic(H, 2.0).solve(gs[2])
    assert np.array_equal(a.s, b.s)


@pytest.mark.parametrize(
    "args,kwargs,exc,name",
    [
        ((np.ones((2, 3)), 1.0), {}, ValueError, "H"),
        ((np.array([[1.0, 1.0], [0.0, 1.0]]), 1.0), {}, ValueError, "H must be symmetric"),
        ((np.eye(2), 0.0), {}, ValueError, "M"),
        ((np.eye(2), 1.0), {"backend": "c"}, ValueError, "backend"),
    ],
)
def test_bad_input(args, kwargs, exc, name):
    with pytest.raises(exc, match=name):
        LazyCubic(*args, **kwargs)


def test_bad_solve_input():
    lazy = LazyCubic(np.eye(3), 1.0)
    with pytest.raises(ValueError, match="g"):
        lazy.solve(np.ones(2))
    with pytest.raises(ValueError, match="g"):
        lazy.solve(np.array([np.nan, 0, 0]))
    with pytest.raises(ValueError, match="M"):
        lazy.solve(np.ones(3), M=-1.0)
    assert "LazyCubic(d=3" in repr(lazy)


def test_numba_backend_bitwise_equals_eigh_numba(problem):
    """LFSBA with m = 1 must reproduce FSBA bit for bit: same backend ⇒ same bits."""
    H, gs = problem
    lazy = LazyCubic(H, 1.0, backend="numba")
    for g in gs[:2]:
        a, b = lazy.solve(g), solve_cubic(g, H, 1.0, method="eigh", backend="numba")
        assert np.array_equal(a.s, b.s) and a.lam == b.lam


def test_threads_change_rounding_only():
    """Qᵀg and Qŝ run in threaded BLAS: at 1 and 2 threads (and the default) a solve repeats bitwise,
    matches solve_cubic(method="eigh", backend="numba") and agrees with the NumPy reference to 1e-12
    (the threaded sums differ only in order)."""
    import contextlib

    threadpoolctl = pytest.importorskip("threadpoolctl")
    rng = np.random.default_rng(7)
    d = 400
    H = random_symmetric(rng, d)
    g = rng.standard_normal(d) / 20
    ref = LazyCubic(H, 1.0, backend="numpy").solve(g)
    lazy = LazyCubic(H, 1.0)
    for threads in (1, 2, None):
        with contextlib.nullcontext() if threads is None else threadpoolctl.threadpool_limits(threads):
            a, b = lazy.solve(g), lazy.solve(g)
            c = solve_cubic(g, H, 1.0, method="eigh", backend="numba")
        assert np.array_equal(a.s, b.s) and a.lam == b.lam, threads
        # eigh factorises again under this limit, the snapshot's Q was computed at the default threads
        assert a.lam == pytest.approx(c.lam, rel=1e-13) and np.linalg.norm(a.s - c.s) <= 1e-13 * np.linalg.norm(c.s)
        assert np.linalg.norm(a.s - ref.s) <= 1e-12 * np.linalg.norm(ref.s), threads
        assert a.lam == pytest.approx(ref.lam, rel=1e-12) and a.model_value == pytest.approx(ref.model_value,
                                                                                               rel=1e-12)
