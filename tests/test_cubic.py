"""Tests of the cubic-regularised Newton subproblem solvers (bilevel_ref.linalg.cubic).

Truth comes from the optimality conditions (NP06 Thm 10; CGT11 Thm 3.1), NP06's dual, closed forms
(H = 0, g = 0, d = 1, exact hard case) and brute-force 1-D solves.
"""
import numpy as np
import pytest
from hypothesis import given, settings, HealthCheck
from hypothesis import strategies as st

from bilevel_ref.exceptions import NonFiniteError
from bilevel_ref.linalg.cubic import (
    CubicResult,
    M_from_sigma,
    cubic_kkt,
    cubic_model,
    sigma_from_M,
    solve_cubic,
)
from _cubic_cases import (
    dual_max,
    hard_case_problem,
    hard_cases,
    model,
    near_hard_problem,
    orthogonal,
    random_symmetric,
    separated_hard_case,
    with_spectrum,
)

KKT_TOL = 1e-10
EXACT = [("eigh", "numpy"), ("eigh", "numba"), ("lanczos", "numpy"), ("lanczos", "numba")]


def kkt_ok(g, H, M, res, tol=KKT_TOL):
    kkt = cubic_kkt(g, H, M, res.s, res.lam)
    assert kkt.holds(tol), kkt
    return kkt


# --------------------------------------------------------------------------- conventions
def test_sigma_conventions():
    assert sigma_from_M(3.0) == 1.5
    assert M_from_sigma(1.5) == 3.0
    with pytest.raises(ValueError, match="M"):
        sigma_from_M(0.0)


def test_cubic_model_matches_formula():
    rng = np.random.default_rng(0)
    H = random_symmetric(rng, 6)
    g, s = rng.standard_normal(6), rng.standard_normal(6)
    assert cubic_model(g, H, 2.5, s) == pytest.approx(model(g, H, 2.5, s), rel=1e-14)
    assert cubic_model(g, lambda v: H @ v, 2.5, s) == pytest.approx(model(g, H, 2.5, s), rel=1e-14)


def test_result_repr_readable():
    res = solve_cubic(np.ones(3), np.eye(3), 1.0)
    assert isinstance(res, CubicResult)
    text = repr(res)
    assert "method='eigh'" in text and "lam=" in text and "d=3" in text
    with pytest.raises(AttributeError):
        res.lam = 0.0  # frozen


# --------------------------------------------------------------------------- KKT on random problems
@pytest.mark.parametrize("d", [1, 2, 5, 50, 300])
@pytest.mark.parametrize("method,backend", EXACT)
def test_kkt_random_indefinite(d, method, backend):
    rng = np.random.default_rng(100 + d)
    H = random_symmetric(rng, d)
    g = rng.standard_normal(d) / np.sqrt(d)
    res = solve_cubic(g, H, 1.0, method=method, backend=backend)
    assert res.converged and res.method == method
    kkt_ok(g, H, 1.0, res)
    # not beaten by random points (global optimality, checked crudely from outside)
    pts = rng.standard_normal((200, d)) * np.linalg.norm(res.s) * rng.uniform(0, 2, (200, 1))
    assert all(model(g, H, 1.0, p) >= res.model_value - 1e-12 for p in pts)
    assert res.model_value == pytest.approx(model(g, H, 1.0, res.s), rel=1e-12, abs=1e-14)


@pytest.mark.parametrize("d", [5, 50])
def test_gd_kkt_and_agrees_with_eigh(d):
    rng = np.random.default_rng(7 + d)
    H = random_symmetric(rng, d)
    g = rng.standard_normal(d)
    exact = solve_cubic(g, H, 2.0)
    res = solve_cubic(g, H, 2.0, method="gd", tol=1e-12 * np.linalg.norm(g))
    assert res.converged and res.min_eig == pytest.approx(exact.min_eig, rel=1e-12)
    assert np.linalg.norm(res.s - exact.s) <= 1e-8 * np.linalg.norm(exact.s)
    kkt_ok(g, H, 2.0, res, tol=1e-8)
    # the same with a matrix-free H and an explicit bound L
    res2 = solve_cubic(g, lambda v: H @ v, 2.0, method="gd", L=float(np.abs(np.linalg.eigvalsh(H)).max()),
                       tol=1e-12 * np.linalg.norm(g))
    assert np.linalg.norm(res2.s - exact.s) <= 1e-8 * np.linalg.norm(exact.s)


def test_gd_monotone_norm_and_model():
    """CD19: from the Cauchy point ‖x_t‖ is non-decreasing and m(x_t) non-increasing (plain GD)."""
    rng = np.random.default_rng(3)
    H = random_symmetric(rng, 20)
    g = rng.standard_normal(20)
    norms, values = [], []
    for steps in range(0, 60, 3):
        res = solve_cubic(g, H, 1.0, method="gd", maxiter=steps, tol=0.0, perturb=0.0)
        assert not res.converged  # an iteration cap is never a convergence
        norms.append(np.linalg.norm(res.s))
        values.append(res.model_value)
    assert np.all(np.diff(norms) >= -1e-14)
    assert np.all(np.diff(values) <= 1e-14)


# --------------------------------------------------------------------------- dual, invariance
@pytest.mark.parametrize("seed", range(4))
def test_model_value_equals_dual_maximum(seed):
    rng = np.random.default_rng(seed)
    d = 30
    H = random_symmetric(rng, d)
    g = rng.standard_normal(d)
    M = 10.0 ** rng.uniform(-1, 1)
    res = solve_cubic(g, H, M)
    assert res.model_value == pytest.approx(dual_max(g, H, M), rel=1e-12)


@pytest.mark.parametrize("method,backend", EXACT)
def test_rotation_invariance(method, backend):
    rng = np.random.default_rng(11)
    d = 40
    H = random_symmetric(rng, d)
    g = rng.standard_normal(d)
    U = orthogonal(rng, d)
    base = solve_cubic(g, H, 1.5, method=method, backend=backend)
    rot = solve_cubic(U.T @ g, U.T @ H @ U, 1.5, method=method, backend=backend)
    assert np.linalg.norm(rot.s - U.T @ base.s) <= 1e-10 * np.linalg.norm(base.s)
    assert rot.lam == pytest.approx(base.lam, rel=1e-10)


@pytest.mark.parametrize("method,backend", EXACT)
def test_bit_identical_reruns(method, backend):
    rng = np.random.default_rng(5)
    H = random_symmetric(rng, 60)
    g = rng.standard_normal(60)
    a = solve_cubic(g, H, 1.0, method=method, backend=backend)
    b = solve_cubic(g, H, 1.0, method=method, backend=backend)
    assert np.array_equal(a.s, b.s) and a.lam == b.lam and a.model_value == b.model_value


# --------------------------------------------------------------------------- named cases
@pytest.mark.parametrize("backend", ["numpy", "numba"])
@pytest.mark.parametrize("multiplicity", [1, 3])
def test_exact_hard_case(backend, multiplicity):
    rng = np.random.default_rng(2)
    g, H, m_star, lam_star = hard_case_problem(rng, d=60, multiplicity=multiplicity)
    res = solve_cubic(g, H, 1.0, backend=backend)
    assert res.hard_case
    assert res.lam == pytest.approx(lam_star, rel=1e-12)
    assert res.model_value == pytest.approx(m_star, rel=1e-12)
    assert model(g, H, 1.0, res.s) == pytest.approx(m_star, rel=1e-10)
    kkt_ok(g, H, 1.0, res)


def test_spec_hard_case_value():
    """The d = 200 hard case (λ_1 = −2, g ⟂ q_1, M = 1): our generator reproduces the closed form."""
    rng = np.random.default_rng(4)
    g, H, m_star, _ = hard_case_problem(rng, d=200)
    assert solve_cubic(g, H, 1.0).model_value == pytest.approx(m_star, rel=1e-12)


@pytest.mark.parametrize("backend", ["numpy", "numba"])
@pytest.mark.parametrize("bottom", [1e-12, 1e-9, 1e-6])
def test_near_hard_case(backend, bottom):
    g, H = near_hard_problem(np.random.default_rng(8), bottom)
    res = solve_cubic(g, H, 1.0, backend=backend)
    kkt_ok(g, H, 1.0, res)
    q1 = np.linalg.eigh(H)[1][:, 0]
    assert res.model_value <= solve_cubic(g - (q1 @ g) * q1, H, 1.0).model_value + 1e-9


def test_zero_hessian_closed_form():
    rng = np.random.default_rng(1)
    g = rng.standard_normal(7)
    M = 3.0
    res = solve_cubic(g, np.zeros((7, 7)), M)
    r = np.sqrt(2 * np.linalg.norm(g) / M)
    assert np.allclose(res.s, -r * g / np.linalg.norm(g), rtol=1e-13, atol=0)


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_zero_gradient(backend):
    rng = np.random.default_rng(9)
    H, U = with_spectrum(rng, [-1.5, 0.5, 2.0, 3.0])
    res = solve_cubic(np.zeros(4), H, 2.0, backend=backend)
    assert np.linalg.norm(res.s) == pytest.approx(2 * 1.5 / 2.0, rel=1e-14)
    assert abs(res.s @ U[:, 0]) == pytest.approx(1.5, rel=1e-12)
    assert res.model_value == pytest.approx(0.5 * -1.5 * 1.5**2 + 2.0 / 6 * 1.5**3, rel=1e-12)
    kkt_ok(np.zeros(4), H, 2.0, res)
    pd, _ = with_spectrum(rng, [0.1, 1.0, 2.0, 3.0])
    assert np.array_equal(solve_cubic(np.zeros(4), pd, 2.0, backend=backend).s, np.zeros(4))
    # singular PSD: λ_1 = 0 up to rounding, so ‖s‖ = 2|λ_1|/M is at rounding level
    psd, _ = with_spectrum(rng, [0.0, 1.0, 2.0, 3.0])
    assert np.linalg.norm(solve_cubic(np.zeros(4), psd, 2.0, backend=backend).s) <= 1e-14


@pytest.mark.parametrize("M", [1e-8, 1e8])
def test_positive_definite_tiny_and_huge_M(M):
    rng = np.random.default_rng(12)
    H, _ = with_spectrum(rng, np.linspace(0.5, 4.0, 10))
    g = rng.standard_normal(10)
    res = solve_cubic(g, H, M)
    kkt_ok(g, H, M, res)
    if M < 1:  # → Newton step
        newton = -np.linalg.solve(H, g)
        assert np.linalg.norm(res.s - newton) <= 1e-6 * np.linalg.norm(newton)
    else:  # → ‖s‖ ≈ √(2‖g‖/M), along −g
        r = np.sqrt(2 * np.linalg.norm(g) / M)
        assert np.linalg.norm(res.s + r * g / np.linalg.norm(g)) <= 1e-3 * r


@pytest.mark.parametrize("gval,h,M", [(1.0, 2.0, 1.0), (-0.3, -1.0, 4.0), (2.0, 0.0, 0.5), (1e-3, -5.0, 1.0)])
def test_one_dimensional_by_hand(gval, h, M):
    """m(s) = gs + ½hs² + (M/6)|s|³: stationary points on s > 0 and s < 0 are
    roots of (M/2)s² ± (h s) ... written as two quadratics; pick the best."""
    candidates = [0.0]
    for sign in (1.0, -1.0):  # s = sign·r, r > 0: g·sign + h r + (M/2) r² = 0
        for r in np.roots([M / 2, h, gval * sign]):
            if abs(r.imag) < 1e-12 and r.real > 0:
                candidates.append(sign * r.real)
    m = lambda s: gval * s + 0.5 * h * s * s + M / 6 * abs(s) ** 3  # noqa: E731
    best = min(candidates, key=m)
    res = solve_cubic([gval], [[h]], M)
    assert res.s[0] == pytest.approx(best, rel=1e-12)


def test_diagonal_against_brute_force_secular():
    from scipy.optimize import brentq

    rng = np.random.default_rng(21)
    lam = np.sort(rng.uniform(-2, 3, 12))
    g = rng.standard_normal(12)
    M = 1.7
    sigma = M / 2

    def f(x):  # ‖s(λ)‖ − λ/σ, decreasing on (−λ_1, ∞)
        return np.linalg.norm(g / (lam + x)) - x / sigma

    x_star = brentq(f, -lam[0] + 1e-12, 1e3, xtol=1e-15, rtol=1e-15)
    res = solve_cubic(g, np.diag(lam), M)
    assert res.lam == pytest.approx(x_star, rel=1e-12)
    assert np.allclose(res.s, -g / (lam + x_star), rtol=1e-11, atol=0)


# --------------------------------------------------------------------------- property-based
@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    d=st.integers(1, 8),
    seed=st.integers(0, 2**32 - 1),
    logM=st.floats(-3, 3),
    gscale=st.floats(-6, 3),
)
def test_property_kkt(d, seed, logM, gscale):
    rng = np.random.default_rng(seed)
    H = random_symmetric(rng, d) * 10 ** rng.uniform(-2, 2)
    g = rng.standard_normal(d) * 10**gscale
    M = 10**logM
    for method, backend in EXACT:
        res = solve_cubic(g, H, M, method=method, backend=backend)
        kkt_ok(g, H, M, res)


# --------------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    "kwargs,exc,name",
    [
        (dict(H=np.ones((3, 2))), ValueError, "H"),
        (dict(H=np.array([[1.0, 2.0, 0], [0, 1, 0], [0, 0, 1]])), ValueError, "H must be symmetric"),
        (dict(H=np.array([[np.nan, 0, 0], [0, 1, 0], [0, 0, 1]])), NonFiniteError, "H"),
        (dict(H=np.eye(3).astype(str)), TypeError, "H"),
        (dict(g=np.ones(4)), ValueError, "g"),
        (dict(g=np.array([1.0, np.inf, 0.0])), ValueError, "g"),
        (dict(g=["a", "b", "c"]), TypeError, "g"),
        (dict(M=0.0), ValueError, "M"),
        (dict(M=-1.0), ValueError, "M"),
        (dict(M=np.nan), ValueError, "M"),
        (dict(M="1"), TypeError, "M"),
        (dict(method="newton"), ValueError, "method"),
        (dict(backend="jax"), ValueError, "backend"),
        (dict(tol_hard=-1.0), ValueError, "tol_hard"),
        (dict(bogus=1), TypeError, "bogus"),
        (dict(H=lambda v: v), TypeError, "H must be an array"),
        (dict(method="lanczos", hard_case="maybe"), ValueError, "hard_case"),
        (dict(method="gd", H=lambda v: v), ValueError, "L"),
    ],
)
def test_bad_input_names_argument(kwargs, exc, name):
    args = dict(g=np.ones(3), H=np.eye(3), M=1.0)
    args.update(kwargs)
    with pytest.raises(exc, match=name):
        solve_cubic(**args)


# --------------------------------------------------------------------------- external peer
def test_galahad_rqs_model_value():
    import os

    os.environ.setdefault("OMP_CANCELLATION", "TRUE")
    os.environ.setdefault("OMP_PROC_BIND", "TRUE")
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # its OpenMP BLAS threads spin otherwise
    rqs = pytest.importorskip("galahad.rqs")
    rng = np.random.default_rng(31)
    d = 40
    H = random_symmetric(rng, d)
    g = rng.standard_normal(d)
    M = 1.3
    options = rqs.initialize()
    options.update(dense_factorization=1, symmetric_linear_solver="sytr", definite_linear_solver="potr")
    h_ne = d * (d + 1) // 2
    rqs.load(d, "dense", h_ne, None, None, None, options)
    x = rqs.solve_problem(d, 3.0, sigma_from_M(M), 0.0, g, h_ne, H[np.tril_indices(d)])
    inform = rqs.information()
    rqs.terminate()
    assert inform["status"] == 0
    res = solve_cubic(g, H, M)
    assert res.model_value == pytest.approx(inform["obj_regularized"], rel=1e-12)
    assert model(g, H, M, x) == pytest.approx(res.model_value, rel=1e-12)


# --------------------------------------------------------------------------- Lanczos specifics
@pytest.mark.parametrize("d", [30, 120])
def test_lanczos_numba_equals_numpy_reference(d):
    rng = np.random.default_rng(40 + d)
    H = random_symmetric(rng, d)
    g = rng.standard_normal(d)
    a = solve_cubic(g, H, 1.0, method="lanczos", backend="numpy", rng=np.random.default_rng(1))
    b = solve_cubic(g, H, 1.0, method="lanczos", backend="numba", rng=np.random.default_rng(1))
    assert a.n_iter == b.n_iter and a.n_matvec == b.n_matvec
    assert np.linalg.norm(a.s - b.s) <= 1e-10 * np.linalg.norm(a.s)
    assert b.lam == pytest.approx(a.lam, rel=1e-10)
    assert b.model_value == pytest.approx(a.model_value, rel=1e-10)
    # matrix-free: Python matvec loop + jitted tridiagonal solve
    c = solve_cubic(g, lambda v: H @ v, 1.0, method="lanczos", backend="numba", rng=np.random.default_rng(1))
    assert np.linalg.norm(c.s - a.s) <= 1e-10 * np.linalg.norm(a.s)


def test_lanczos_free_residual_is_the_true_gradient():
    rng = np.random.default_rng(3)
    H = random_symmetric(rng, 80)
    g = rng.standard_normal(80)
    res = solve_cubic(g, H, 1.0, method="lanczos", rtol=1e-4, probe=False)
    s = res.s
    true = np.linalg.norm(g + H @ s + 0.5 * np.linalg.norm(s) * s)
    assert res.grad_norm == pytest.approx(true, rel=1e-6)
    assert res.grad_norm <= 1e-4 * np.linalg.norm(g)
    assert res.n_matvec == res.n_iter  # no probe: one product per step


def test_lanczos_arc_stop_and_maxiter():
    rng = np.random.default_rng(4)
    H = random_symmetric(rng, 100)
    g = rng.standard_normal(100)
    res = solve_cubic(g, H, 1.0, method="lanczos", stop="arc", theta=1e-3)
    assert res.converged and res.grad_norm <= 1e-3 * np.linalg.norm(res.s) ** 2 * (1 + 1e-9)
    capped = solve_cubic(g, H, 1.0, method="lanczos", maxiter=5, probe=False)
    assert capped.n_iter == 5 and not capped.converged


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_lanczos_hard_case_policies(backend):
    """A Krylov space of g misses the hard case (as GLTR/GLRT's does); "ignore" returns the
    subspace minimiser (documented), "fallback" and "perturb" the global one."""
    g, H = separated_hard_case()
    exact = solve_cubic(g, H, 1.0)
    assert exact.hard_case
    m_star = exact.model_value
    ignore = solve_cubic(g, H, 1.0, method="lanczos", backend=backend, hard_case="ignore")
    assert ignore.model_value > m_star + 1.0
    fallback = solve_cubic(g, H, 1.0, method="lanczos", backend=backend)
    assert fallback.hard_case and fallback.model_value == pytest.approx(m_star, rel=1e-12)
    perturb = solve_cubic(g, lambda v: H @ v, 1.0, method="lanczos", backend=backend,
                          rng=np.random.default_rng(0))
    assert perturb.hard_case and perturb.model_value == pytest.approx(m_star, rel=1e-9)
    # the d = 200 hard case (λ_1 = −2 isolated)
    g, H, m_star, lam_star = hard_case_problem(np.random.default_rng(4), d=200)
    res = solve_cubic(g, H, 1.0, method="lanczos", backend=backend)
    assert res.hard_case and res.model_value == pytest.approx(m_star, rel=1e-12)
    assert res.lam == pytest.approx(lam_star, rel=1e-12)


@pytest.mark.parametrize("lam1,rest", [(-3.0, (0.5, 1.0)), (-0.5, (1.0, 2.0)), (-1.05, (-1.0, 2.0))])
def test_lanczos_probe_detects_hard_case_without_ghosts(lam1, rest):
    """Well-separated spectra: Lanczos from g converges before rounding brings q_1
    in, so only the probe's Ritz value can reveal H + λI ⋡ 0."""
    g, H = separated_hard_case(lam1=lam1, rest=rest, scale=0.05)
    exact = solve_cubic(g, H, 1.0)
    assert exact.hard_case
    for backend in ("numpy", "numba"):
        res = solve_cubic(g, H, 1.0, method="lanczos", backend=backend)
        assert res.hard_case and res.model_value == pytest.approx(exact.model_value, rel=1e-12)


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_lanczos_probe_continues_after_invariant_subspace(backend):
    """g in a 2-dimensional invariant subspace ⟂ q_1: the main recurrence stops at
    k = 2, the probe must keep going on its own to see λ_1."""
    rng = np.random.default_rng(12)
    d = 30
    H, U = with_spectrum(rng, np.r_[-1.0, 0.5, 1.0, np.linspace(1.5, 3.0, d - 3)])
    g = 0.1 * U[:, 1] + 0.2 * U[:, 2]
    exact = solve_cubic(g, H, 1.0)
    assert exact.hard_case
    res = solve_cubic(g, H, 1.0, method="lanczos", backend=backend, rng=np.random.default_rng(3))
    assert res.hard_case and res.model_value == pytest.approx(exact.model_value, rel=1e-12)
    blind = solve_cubic(g, H, 1.0, method="lanczos", backend=backend, probe=False)
    assert blind.n_iter == 2 and blind.model_value > exact.model_value + 0.1


def test_lanczos_zero_gradient():
    H, U = with_spectrum(np.random.default_rng(2), [-1.0, 0.5, 1.0, 2.0, 3.0])
    res = solve_cubic(np.zeros(5), H, 1.0, method="lanczos")
    assert np.linalg.norm(res.s) == pytest.approx(2.0, rel=1e-12)
    res_mf = solve_cubic(np.zeros(5), lambda v: H @ v, 1.0, method="lanczos", rng=np.random.default_rng(0))
    assert res_mf.converged and res_mf.model_value == pytest.approx(res.model_value, rel=1e-12)
    kkt_ok(np.zeros(5), H, 1.0, res_mf)
    ignore = solve_cubic(np.zeros(5), H, 1.0, method="lanczos", hard_case="ignore")
    assert np.array_equal(ignore.s, np.zeros(5))


def test_galahad_glrt_misses_the_hard_case():
    """Negative test of the peer: GLRT reports the hard case but
    returns the Krylov-subspace minimiser, far above the optimum.  Only λ and
    obj_regularized are read (its Python x is unreliable)."""
    import os

    os.environ.setdefault("OMP_CANCELLATION", "TRUE")
    os.environ.setdefault("OMP_PROC_BIND", "TRUE")
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # its OpenMP BLAS threads spin otherwise
    glrt = pytest.importorskip("galahad.glrt")
    from bilevel_ref.bench.cubic import run_glrt

    g, H, m_star, _ = hard_case_problem(np.random.default_rng(4), d=200)
    _, glrt_model, _ = run_glrt(glrt, H, g, 1.0)
    assert glrt_model > m_star + 1.0
    assert solve_cubic(g, H, 1.0, method="lanczos", backend="numba").model_value == pytest.approx(m_star, rel=1e-12)


# --------------------------------------------------------------------------- T18 sub/final solvers
def test_subsolver_cauchy_branch_closed_form():
    """‖g‖ ≥ ℓ²/M: the Cauchy step minimises m along −g (1-D check by hand)."""
    from bilevel_ref.linalg.cubic import cubic_subsolver

    rng = np.random.default_rng(0)
    H = random_symmetric(rng, 10)
    L = float(np.abs(np.linalg.eigvalsh(H)).max())
    g = rng.standard_normal(10)
    g *= 2 * L * L / np.linalg.norm(g)  # M = 1
    s, delta_m, n_mv = cubic_subsolver(g, lambda v: H @ v, 1.0, L, 1e-3, rng)
    u = -g / np.linalg.norm(g)
    r = np.linalg.norm(s)
    assert np.allclose(s, r * u, rtol=1e-13)
    # d/dr m(r u) = uᵀg + r uᵀHu + (M/2) r² = 0 at the Cauchy radius
    assert u @ g + r * (u @ H @ u) + 0.5 * r * r == pytest.approx(0.0, abs=1e-12 * np.linalg.norm(g))
    assert delta_m == pytest.approx(model(g, H, 1.0, s), rel=1e-13)
    assert n_mv == 2


def test_subsolver_gd_branch_decreases_model_and_counts():
    from bilevel_ref.linalg.cubic import cubic_subsolver

    rng = np.random.default_rng(1)
    d = 20
    H = random_symmetric(rng, d)
    L = float(np.abs(np.linalg.eigvalsh(H)).max())
    g = rng.standard_normal(d) * 0.01
    calls = []

    def hvp(v):
        calls.append(1)
        return H @ v

    out = cubic_subsolver(g, hvp, 1.0, L, 1e-4, np.random.default_rng(7), n_steps=300)
    assert out.n_matvec == 301 == len(calls)
    exact = solve_cubic(g, H, 1.0)
    assert out.delta_m < 0 and out.delta_m == pytest.approx(model(g, H, 1.0, out.s), rel=1e-12)
    assert out.delta_m <= 0.5 * exact.model_value  # most of the optimal decrease
    again = cubic_subsolver(g, hvp, 1.0, L, 1e-4, np.random.default_rng(7), n_steps=300)
    assert np.array_equal(again.s, out.s)  # randomness only from the Generator


def test_finalsolver_reaches_eps_over_two():
    from bilevel_ref.linalg.cubic import cubic_finalsolver

    rng = np.random.default_rng(2)
    d = 15
    lam = np.linspace(0.2, 1.0, d)
    H, _ = with_spectrum(rng, lam)
    g = rng.standard_normal(d)
    eps = 1e-6
    out = cubic_finalsolver(g, lambda v: H @ v, 1.0, 1.0, eps)
    assert out.converged and out.grad_norm <= eps / 2
    s = out.s
    assert np.linalg.norm(g + H @ s + 0.5 * np.linalg.norm(s) * s) == pytest.approx(out.grad_norm, rel=1e-10)
    assert np.linalg.norm(s - solve_cubic(g, H, 1.0).s) <= eps  # strongly convex model: near s*


@pytest.mark.parametrize("bad,exc,name", [
    (dict(hvp=np.eye(3)), TypeError, "hvp"), (dict(M=0.0), ValueError, "M"),
    (dict(L=-1.0), ValueError, "L"), (dict(eps=0.0), ValueError, "eps"),
])
def test_t18_bad_input(bad, exc, name):
    from bilevel_ref.linalg.cubic import cubic_finalsolver, cubic_subsolver

    args = dict(g=np.ones(3), hvp=lambda v: v, M=1.0, L=1.0, eps=1e-3)
    args.update(bad)
    with pytest.raises(exc, match=name):
        cubic_subsolver(rng=np.random.default_rng(0), **args)
    with pytest.raises(exc, match=name):
        cubic_finalsolver(**args)


def test_no_solver_beats_the_exact_one():
    """m(s_eigh) ≤ m(s) of every other solver (up to rounding), on the same problem."""
    from bilevel_ref.linalg.cubic import cubic_subsolver
    from bilevel_ref.linalg.lazy import LazyCubic

    rng = np.random.default_rng(77)
    d = 25
    H = random_symmetric(rng, d)
    g = rng.standard_normal(d)
    best = solve_cubic(g, H, 1.0).model_value
    others = [
        solve_cubic(g, H, 1.0, method="lanczos", backend="numba").model_value,
        solve_cubic(g, H, 1.0, method="lanczos", probe=False, rtol=1e-3).model_value,
        solve_cubic(g, H, 1.0, method="gd", maxiter=50, tol=0.0).model_value,
        LazyCubic(H, 1.0).solve(g).model_value,
        cubic_subsolver(g, lambda v: H @ v, 1.0, 3.0, 1e-3, rng, n_steps=100).delta_m,
    ]
    assert all(best <= m + 1e-12 * abs(best) for m in others)


def test_gd_perturbation_escapes_the_hard_case():
    """CD19: from b ⟂ q_1 GD stays in q_1^⟂ in exact arithmetic (in floating point
    rounding seeds q_1 slowly); a perturbation of b drawn from the caller's
    Generator reaches the global minimiser, and GD on the true model then
    removes the O(σ_p) bias."""
    rng = np.random.default_rng(6)
    g, H, m_star, _ = hard_case_problem(rng, d=20)
    res = solve_cubic(g, H, 1.0, method="gd", perturb=1e-6, rng=np.random.default_rng(0), tol=1e-9)
    assert res.converged and res.model_value == pytest.approx(m_star, rel=1e-12)
    # default: CD19's σ, drawn from default_rng(0) (reproducible bitwise), or from the caller's Generator
    a = solve_cubic(g, H, 1.0, method="gd")
    b = solve_cubic(g, H, 1.0, method="gd", rng=np.random.default_rng(0))
    assert np.array_equal(a.s, b.s) and a.converged
    c = solve_cubic(g, H, 1.0, method="gd", rng=np.random.default_rng(5))
    assert c.converged and c.model_value == pytest.approx(m_star, rel=1e-12)


@pytest.mark.parametrize("d", [1, 3, 8, 37, 300])
def test_symv_kernel_equals_matvec_and_reads_one_triangle(d):
    """The compiled H·v is BLAS dsymv: H·v to rounding, the pair is the two single products, and
    only the upper triangle of the C-ordered H is read (garbage below the diagonal changes nothing)."""
    from bilevel_ref._kernels.blas import symv, symv_pair

    rng = np.random.default_rng(d)
    A = rng.standard_normal((d, d))
    H = A + A.T
    q, p = rng.standard_normal(d), rng.standard_normal(d)
    w = symv(H, q)
    np.testing.assert_allclose(w, H @ q, rtol=1e-13, atol=1e-13 * np.abs(H).sum())
    w2, wp = symv_pair(H, q, p)
    assert np.array_equal(w2, w) and np.array_equal(wp, symv(H, p))
    upper_only = np.triu(H) + np.tril(rng.standard_normal((d, d)), -1)
    assert np.array_equal(symv(upper_only, q), w)


def _thread_cases():
    rng = np.random.default_rng(3)
    g, H, _, _ = hard_case_problem(np.random.default_rng(4), d=300)
    return {
        "random": (rng.standard_normal(400) / 20, random_symmetric(rng, 400)),
        "hard": (g, H),
        "near_hard": near_hard_problem(np.random.default_rng(8), 1e-6, d=300),
        "separated": separated_hard_case(d=300),
    }


@pytest.mark.parametrize("case", ["random", "hard", "near_hard", "separated"])
def test_lanczos_kernel_agrees_with_reference_at_every_thread_count(case):
    """numba Lanczos (BLAS dsymv/dgemv in threads) against the NumPy reference at 1 and 2 BLAS threads
    and the default: same bits for a fixed thread count; across thread counts the threaded BLAS sums
    in another order, so s, λ, the probe's Ritz value θ_p, θ_1 and the model value agree to 1e-12 and
    every discrete outcome (steps, H·v count, hard-case decision) is the same.  (The raw Krylov step of
    an exact hard case sits on the pole of T_k, where it is ill-conditioned; it is discarded for the eigh
    fallback, whose step is compared.)"""
    import contextlib

    threadpoolctl = pytest.importorskip("threadpoolctl")
    from bilevel_ref.linalg.cubic.lanczos import _fixed_probe, lanczos_cubic

    g, H = _thread_cases()[case]
    probe = _fixed_probe(g.shape[0])
    ref = solve_cubic(g, H, 1.0, method="lanczos", backend="numpy")
    ref_raw = lanczos_cubic(g, H, 0.5, probe=probe, backend="numpy")
    for threads in (1, 2, None):
        limit = contextlib.nullcontext() if threads is None else threadpoolctl.threadpool_limits(threads)
        with limit:
            a = solve_cubic(g, H, 1.0, method="lanczos", backend="numba")
            b = solve_cubic(g, H, 1.0, method="lanczos", backend="numba")
            raw = lanczos_cubic(g, H, 0.5, probe=probe, backend="numba")
            raw2 = lanczos_cubic(g, H, 0.5, probe=probe, backend="numba")
        assert np.array_equal(a.s, b.s) and a.lam == b.lam and a.min_eig == b.min_eig, threads
        assert np.array_equal(raw[0], raw2[0]) and raw[1:] == raw2[1:], threads
        assert (a.n_iter, a.n_matvec, a.hard_case, a.converged) == \
            (ref.n_iter, ref.n_matvec, ref.hard_case, ref.converged), threads
        assert np.linalg.norm(a.s - ref.s) <= 1e-12 * np.linalg.norm(ref.s), threads
        for got, want in ((a.lam, ref.lam), (a.min_eig, ref.min_eig), (a.model_value, ref.model_value)):
            assert got == pytest.approx(want, rel=1e-12, abs=1e-300), threads
        s, lam, theta1, theta_p, k, n_matvec = raw[:6]
        assert (k, n_matvec) == tuple(ref_raw[4:6]), threads
        if not ref.hard_case:  # in the hard case the raw Krylov step sits on the pole (then discarded)
            assert np.linalg.norm(s - ref_raw[0]) <= 1e-12 * np.linalg.norm(ref_raw[0]), threads
        for got, want in ((lam, ref_raw[1]), (theta1, ref_raw[2]), (theta_p, ref_raw[3])):
            assert got == pytest.approx(want, rel=1e-12), threads


def test_unknown_option_is_the_library_option_error():
    from bilevel_ref.exceptions import OptionError

    with pytest.raises(OptionError, match="bogus.*valid"):
        solve_cubic(np.ones(3), np.eye(3), 1.0, method="lanczos", bogus=1)


# --------------------------------------------------------------------------- no false convergence (issue 16)
#: Every method and variant; "free": H as a callable v -> Hv.
SOLVERS = {
    "eigh": dict(method="eigh"),
    "eigh-numba": dict(method="eigh", backend="numba"),
    "lanczos": dict(method="lanczos"),
    "lanczos-numba": dict(method="lanczos", backend="numba"),
    "lanczos-free": dict(method="lanczos", free=True),
    "lanczos-free-numba": dict(method="lanczos", backend="numba", free=True),
    "gd": dict(method="gd"),
    "gd-free": dict(method="gd", free=True),
    "gd-unperturbed": dict(method="gd", perturb=0.0),
    "gd-capped": dict(method="gd", maxiter=300),
}
HARD_CASES = hard_cases()


@pytest.mark.parametrize("case", sorted(HARD_CASES))
@pytest.mark.parametrize("solver", sorted(SOLVERS))
def test_hard_cases_on_every_method(case, solver):
    """The hard and degenerate cases of the exact solver's suite, on every method: the global value
    or converged=False, never converged=True with a wrong value; the reported value is m(s)."""
    g, H, M, m_star = HARD_CASES[case]
    options = dict(SOLVERS[solver])
    if options.pop("free", False):
        H_arg = lambda v: H @ v  # noqa: E731
        if options["method"] == "gd":
            options["L"] = float(np.abs(np.linalg.eigvalsh(H)).max())
    else:
        H_arg = H
    res = solve_cubic(g, H_arg, M, **options)
    assert np.isfinite(res.model_value)
    assert res.model_value == pytest.approx(model(g, H, M, res.s), rel=1e-10, abs=1e-13)
    if res.converged:
        assert res.model_value == pytest.approx(m_star, rel=1e-9, abs=1e-12)
        kkt_ok(g, H, M, res, tol=1e-8 if solver.startswith("gd") else KKT_TOL)
    if solver != "gd-capped":
        assert res.converged  # all of them do find these minimisers (gd: perturbation, certificate, escape)


def test_issue_reproductions():
    """Issue 16: gd at the saddle s = 0 of a g = 0 problem claimed convergence (global value −2/3).
    Issue 19: matrix-free Lanczos at g = 0, H ⪰ 0 returned s ≠ 0 with m(s) > 0 (answer s = 0)."""
    res = solve_cubic(np.zeros(6), np.diag([-1.0, 1, 2, 3, 4, 5]), 1.0, method="gd")
    assert res.converged and res.model_value == pytest.approx(-2.0 / 3.0, rel=1e-12)
    assert res.min_eig == -1.0 and abs(res.s[0]) == pytest.approx(2.0, rel=1e-9)
    D = np.diag([0.0, 0.2, 1.0, 2.0])
    for backend in ("numpy", "numba"):
        res = solve_cubic(np.zeros(4), lambda v: D @ v, 1.5, method="lanczos", backend=backend)
        assert res.converged and np.array_equal(res.s, np.zeros(4)) and res.model_value == 0.0


def test_gd_certificate_rejects_a_saddle(monkeypatch):
    """Without the perturbation and the escape, GD stays at the saddle s = 0 (‖∇m‖ = 0 exactly);
    the certificate λ_1(H) + (M/2)‖s‖ = −1 < 0 turns that into converged=False."""
    from bilevel_ref.linalg.cubic import gd

    monkeypatch.setattr(gd, "MAX_ESCAPES", 0)
    H = np.diag([-1.0, 1, 2, 3, 4, 5])
    for H_arg, extra in ((H, {}), (lambda v: H @ v, {"L": 5.0})):
        res = solve_cubic(np.zeros(6), H_arg, 1.0, method="gd", perturb=0.0, **extra)
        assert not res.converged and res.hard_case and res.model_value == 0.0
        assert res.min_eig == pytest.approx(-1.0, rel=1e-12)


def test_lanczos_restart_still_violating_is_not_converged(monkeypatch):
    """After the matrix-free restart, a probe that still certifies H + λI ⋡ 0 means converged=False."""
    from bilevel_ref.linalg.cubic import lanczos

    monkeypatch.setattr(lanczos, "probe_violates", lambda theta_p, lam: True)
    g, H = separated_hard_case()
    res = solve_cubic(g, lambda v: H @ v, 1.0, method="lanczos")
    assert res.hard_case and not res.converged


@pytest.mark.parametrize("method,backend", [("lanczos", "numpy"), ("lanczos", "numba"), ("gd", "numpy"),
                                            ("gd", "numba")])
@pytest.mark.parametrize("bad_call", [1, 4])
def test_nan_from_callable_H_is_an_error_naming_it(method, backend, bad_call):
    rng = np.random.default_rng(0)
    H = random_symmetric(rng, 8)
    g = rng.standard_normal(8)
    calls = []

    def hvp(v):
        calls.append(1)
        out = H @ v
        if len(calls) >= bad_call:
            out[2] = np.nan
        return out

    extra = {"L": 3.0} if method == "gd" else {}
    with pytest.raises(NonFiniteError, match=r"Hessian operator H \(the callable v -> H v, an hvp\) returned NaN"):
        solve_cubic(g, hvp, 1.0, method=method, backend=backend, **extra)
    assert len(calls) == bad_call  # raised at the first bad product
    with pytest.raises(ValueError, match="Hessian operator H .*shape"):
        solve_cubic(g, lambda v: np.ones(3), 1.0, method=method, backend=backend, **extra)


def test_t18_hvp_nan_is_an_error_naming_it():
    from bilevel_ref.linalg.cubic import cubic_finalsolver, cubic_subsolver

    g = np.full(3, 1e-3)
    nan_hvp = lambda v: np.full(3, np.nan)  # noqa: E731
    with pytest.raises(NonFiniteError, match="Hessian operator hvp"):
        cubic_subsolver(g, nan_hvp, 1.0, 1.0, 1e-3, np.random.default_rng(0), n_steps=5)
    with pytest.raises(NonFiniteError, match="Hessian operator hvp"):
        cubic_finalsolver(g, nan_hvp, 1.0, 1.0, 1e-9)


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_lanczos_matrix_free_hard_case_kkt_at_rounding_level(backend):
    """The restart from a perturbed g leaves an O(1e-8) error; the Newton refinement on the true model
    brings the KKT residuals to the documented 1e-10 (measured ≈ 1e-15), as dense eigh has them."""
    for name in ("hard_d200", "hard_d60_mult3", "separated_-1.05_0.05", "g0_indefinite"):
        g, H, M, m_star = HARD_CASES[name]
        res = solve_cubic(g, lambda v: H @ v, M, method="lanczos", backend=backend, rng=np.random.default_rng(1))
        assert res.converged and res.hard_case, name
        assert max(cubic_kkt(g, H, M, res.s, res.lam)) <= 1e-12, name


# --------------------------------------------------------------------------- bench cubic: thread columns
def test_bench_cubic_reports_default_and_limited_threads(tmp_path, capsys):
    """One invocation times each d at the default threads and at --threads N, ratios side by side."""
    import json

    from bilevel_ref.bench import cubic as bench

    path = tmp_path / "cubic.json"
    assert bench.main(["--sizes", "20", "--repeat", "1", "--no-jit", "--json", str(path)]) == 0
    report = json.loads(path.read_text())
    assert report["threads"] == 1 and [(r["d"], r["threads"]) for r in report["rows"]] == [(20, "default"), (20, 1)]
    lazy = [r for r in report["ratios"] if r["ratio"] == "lazy/H@v"]
    assert len(lazy) == 1 and lazy[0]["default"] > 0 and lazy[0]["limited"] > 0
    by_threads = {r["threads"]: r for r in report["rows"]}
    assert lazy[0]["limited"] == pytest.approx(by_threads[1]["t_lazy"] / by_threads[1]["t_matvec"])
    assert 4000 in bench.DEFAULT_SIZES
    assert bench.main(["--sizes", "20", "--repeat", "1", "--no-jit", "--threads", "2"]) == 0
    assert "default threads | 2 threads" in capsys.readouterr().out


@pytest.mark.parametrize("value", ["0", "-1", "1.5", "x"])
def test_bench_cubic_rejects_thread_limits_that_are_not_positive_integers(value, capsys):
    from bilevel_ref.bench import cubic as bench

    with pytest.raises(SystemExit) as exc:
        bench.main(["--sizes", "20", "--no-jit", "--threads", value])
    assert exc.value.code == 2 and "--threads" in capsys.readouterr().err


@pytest.mark.parametrize("value", [-1, 1.5, True, "2", None])
def test_thread_limit_helper_rejects_bad_values(value):
    from bilevel_ref._text import blas_limit

    with pytest.raises(ValueError, match="--threads"):
        blas_limit(value)


def test_thread_limit_helper_limits_the_kernels_blas_and_restores_it():
    """blas_limit(1) holds every BLAS/OpenMP pool threadpoolctl sees to one thread, SciPy's BLAS (the one
    the numba kernels' dsymv/dgemv run in) included, and restores the previous limits on exit."""
    threadpoolctl = pytest.importorskip("threadpoolctl")
    from bilevel_ref._kernels import blas  # noqa: F401 -- loads SciPy's BLAS, as a kernel does
    from bilevel_ref._text import blas_limit

    def pools():
        return {(lib["user_api"], lib["filepath"]): lib["num_threads"] for lib in threadpoolctl.threadpool_info()}

    before = pools()
    assert any("scipy" in path for api, path in before if api == "blas")
    with blas_limit(1):
        inside = pools()
    assert inside and set(inside.values()) == {1}
    assert pools() == before


# --------------------------------------------------------------------------- numba input check of a dense H
@pytest.mark.parametrize("d", [1, 5, 64, 65, 150])
def test_numba_input_check_matches_as_symmetric(d):
    """backend="numba" checks a dense H with the one-pass kernel: the same accept/reject decisions and
    errors as as_symmetric (finite; symmetric to 1e-12·max(1, max|H|)), at row-block edges too, and the
    same maxima as NumPy."""
    from bilevel_ref._kernels.cubic import symmetry_check
    from bilevel_ref._validation import as_symmetric

    rng = np.random.default_rng(d)
    A = rng.standard_normal((d, d)) * 3.0
    H = A + A.T
    assert symmetry_check(H) == (True, np.abs(H).max(), 0.0)
    amax = np.abs(H).max()
    skew = H + 1e-3 * np.triu(rng.standard_normal((d, d)), 1)   # max|H − Hᵀ| as NumPy finds it
    assert symmetry_check(skew) == (True, np.abs(skew).max(), np.abs(skew - skew.T).max())
    for i_bad, j_bad in ((d - 1, d - 1), (d - 1, 0), (0, d - 1)):   # the short last block, both triangles
        for value in (np.nan, np.inf):
            bad = H.copy()
            bad[i_bad, j_bad] = value
            assert symmetry_check(bad) == (False, np.inf, np.inf)
    g = rng.standard_normal(d)
    i, j = d - 1, 0  # the last row block against the first column
    for delta, ok in ((0.5e-12 * amax, True), (2e-12 * amax, False)):
        bad = H.copy()
        bad[i, j] += delta
        if d == 1:
            ok = True  # a 1×1 matrix is symmetric whatever it holds
        for backend in ("numpy", "numba"):
            if ok:
                assert solve_cubic(g, bad, 1.0, method="lanczos", backend=backend).converged
            else:
                with pytest.raises(ValueError, match="H must be symmetric"):
                    solve_cubic(g, bad, 1.0, method="lanczos", backend=backend)
        if not ok:
            with pytest.raises(ValueError, match="H must be symmetric"):
                as_symmetric(bad, "H", copy=False)
    for value in (np.nan, np.inf, -np.inf):
        bad = H.copy()
        bad[d // 2, d - 1] = value
        for backend in ("numpy", "numba"):
            with pytest.raises(NonFiniteError, match="H must contain only finite values"):
                solve_cubic(g, bad, 1.0, method="lanczos", backend=backend)
