"""benchopt's finite-sum quadratic problem: generator, closed forms, minibatch and fused oracles.

Truth sources: central finite differences (tests/_fd.py), the definition of
each per-sample quadratic written out with explicit matrices, the full-batch
(mean) problem, benchopt's spectra, tracemalloc for memory, and the exact
‖∇φ‖ for the stochastic methods.
"""
import os
import tracemalloc

import numpy as np
import pytest

import bilevel_ref as br
from bilevel_ref import minimize
from bilevel_ref.oracles import OracleCounter
from bilevel_ref.problems import finite_sum as fs
from bilevel_ref.problems.base import BilevelProblem
from bilevel_ref.problems.catalog import build_problem
from bilevel_ref.problems.finite_sum import FiniteSumQuadratic, QuadraticSamples, finite_sum_quadratic

from _fd import fd_directional, fd_gradient, fd_jacobian

N_IN, N_OUT, DY, DX = 60, 48, 7, 5
PRODUCTS = ("hvp_yy", "hvp_xx", "cross", "cross_t")


def _problem(storage="factored", **kw):
    kw = {"n_inner": N_IN, "n_outer": N_OUT, "dim_inner": DY, "dim_outer": DX, "seed": 3, **kw}
    return finite_sum_quadratic(storage=storage, **kw)


@pytest.fixture(scope="module")
def pair():
    """The same draw in both storages."""
    return _problem("factored"), _problem("dense")


@pytest.fixture
def point(rng):
    return rng.standard_normal(DX), rng.standard_normal(DY), rng.standard_normal(DY), rng.standard_normal(DX)


def _rel(a, b):
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return float(np.max(np.abs(a - b)) / max(1.0, float(np.max(np.abs(b)))))


def _sample_matrices(problem, level, i):
    """(Hxx, Hxy, Hyy, lx, ly) of sample i, read from the stored data by definition."""
    s = problem.lower if level == "lower" else problem.upper
    if s.storage == "dense":
        return s.hxx[i], s.hxy[i], s.hyy[i], s.lx[i], s.ly[i]
    z, e, ly = s.Fy[i]
    w, c, lx = s.Fx[i]
    return np.outer(w, w), np.outer(c, e), np.outer(z, z), lx, ly


def _by_definition(problem, level, x, y, batch):
    """Mean of ½yᵀHyy y + ½xᵀHxx x + xᵀHxy y + lyᵀy + lxᵀx over the batch, one sample at a time."""
    vals = []
    for i in batch:
        hxx, hxy, hyy, lx, ly = _sample_matrices(problem, level, i)
        vals.append(0.5 * y @ hyy @ y + 0.5 * x @ hxx @ x + x @ hxy @ y + ly @ y + lx @ x)
    return float(np.mean(vals))


# ---------------------------------------------------------------------------
# generator
# ---------------------------------------------------------------------------
def test_generator_spectra_follow_benchopt_recipe():
    # Large n, small d: the sample means converge to benchopt's population matrices,
    # whose spectra are prescribed (log-spaced), so they are checked against the recipe.
    n, dy, dx, mu = 40000, 4, 3, 0.1
    p = finite_sum_quadratic(n, n, dy, dx, mu_inner=mu, L_inner_inner=1.0, L_outer_inner=0.5,
                             L_cross_inner=0.4, seed=1)
    eig_a = np.linalg.eigvalsh(p.mean.A)
    np.testing.assert_allclose(eig_a, np.logspace(np.log10(mu), 0.0, dy), rtol=0.06)
    eig_b = np.linalg.eigvalsh(p.mean.E)
    assert abs(eig_b[0]) < 1e-12                     # exact zero: every B_i shares the null vector
    np.testing.assert_allclose(eig_b[1:], np.logspace(np.log10(mu), np.log10(0.5), dx - 1), rtol=0.06)
    sv = np.linalg.svd(p.mean.C, compute_uv=False)   # C = (mean C_i)ᵀ
    np.testing.assert_allclose(np.sort(sv), np.logspace(np.log10(mu), np.log10(0.4), dx), rtol=0.06)
    for i in (0, 17):                                # per-sample matrices are rank one
        for block in _sample_matrices(p, "lower", i)[:3]:
            assert np.linalg.matrix_rank(block, tol=1e-10 * np.abs(block).max()) == 1


def test_generator_value_function_positive_definite_and_deterministic():
    for seed in range(3):
        p = _problem(seed=seed)
        assert np.linalg.eigvalsh(p.hess_phi(np.zeros(DX)))[0] >= 1e-12
    a, b = _problem(seed=5), _problem(seed=5)
    assert np.array_equal(a.lower.Fy, b.lower.Fy) and np.array_equal(a.upper.Fx, b.upper.Fx)
    assert not np.array_equal(a.lower.Fy, _problem(seed=6).lower.Fy)


def test_generator_gives_up_after_20_draws(monkeypatch):
    calls = []
    monkeypatch.setattr(fs, "_min_eig_phi", lambda lo, up: calls.append(1) or -1.0)
    with pytest.raises(ValueError, match="positive definite"):
        _problem()
    assert len(calls) == 20


@pytest.mark.parametrize("kw, exc, match", [
    ({"storage": "sparse"}, ValueError, "storage"),
    ({"dtype": np.int64}, ValueError, "dtype"),
    ({"sampler": "epoch"}, ValueError, "sampler"),
    ({"mu_inner": 0.0}, ValueError, "mu_inner"),
    ({"L_cross_outer": -1.0}, ValueError, "L_cross_outer"),
    ({"n_inner": 5}, ValueError, "n_inner"),
    ({"dim_outer": 0}, ValueError, "dim_outer"),
    ({"seed": -1}, TypeError, "seed"),
])
def test_generator_rejects_bad_input(kw, exc, match):
    with pytest.raises(exc, match=match):
        _problem(**kw)


# ---------------------------------------------------------------------------
# oracles: definition, finite differences, closed forms
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("storage", ["factored", "dense"])
def test_minibatch_values_match_definition(pair, point, storage, rng):
    p = pair[storage == "dense"]
    x, y, _, _ = point
    batch = rng.choice(N_IN, 9, replace=False)
    assert p.g(x, y, batch=batch) == pytest.approx(_by_definition(p, "lower", x, y, batch), rel=1e-13)
    batch = np.array([3, 3, -1, 0])                  # duplicates and negative indices: NumPy semantics
    assert p.f(x, y, batch=batch) == pytest.approx(_by_definition(p, "upper", x, y, batch % N_OUT),
                                                   rel=1e-13)


@pytest.mark.parametrize("storage", ["factored", "dense"])
@pytest.mark.parametrize("fn", ["g", "f"])
def test_minibatch_derivatives_match_finite_differences(pair, point, storage, fn, rng):
    p = pair[storage == "dense"]
    x, y, v, u = point
    batch = rng.choice(N_IN if fn == "g" else N_OUT, 11, replace=False)
    value = getattr(p, fn)
    grad = getattr(p, f"grad_{fn}")
    gx, gy = grad(x, y, batch=batch)
    np.testing.assert_allclose(gx, fd_gradient(lambda t: value(t, y, batch=batch), x), atol=1e-7)
    np.testing.assert_allclose(gy, fd_gradient(lambda t: value(x, t, batch=batch), y), atol=1e-7)
    hvp_yy = getattr(p, f"hvp_yy_{fn}")(x, y, v, batch=batch)
    hvp_xx = getattr(p, f"hvp_xx_{fn}")(x, y, u, batch=batch)
    cross = getattr(p, f"cross_{fn}")(x, y, v, batch=batch)
    cross_t = getattr(p, f"cross_t_{fn}")(x, y, u, batch=batch)
    np.testing.assert_allclose(hvp_yy, fd_directional(lambda t: grad(x, t, batch=batch)[1], y, v), atol=1e-7)
    np.testing.assert_allclose(hvp_xx, fd_directional(lambda t: grad(t, y, batch=batch)[0], x, u), atol=1e-7)
    np.testing.assert_allclose(cross, fd_directional(lambda t: grad(x, t, batch=batch)[0], y, v), atol=1e-7)
    np.testing.assert_allclose(cross_t, fd_directional(lambda t: grad(t, y, batch=batch)[1], x, u), atol=1e-7)
    hxx, hxy, hyy = getattr(p, f"hess_{fn}")(x, y, batch=batch)
    np.testing.assert_allclose(hyy @ v, hvp_yy, atol=1e-12)
    np.testing.assert_allclose(hxx @ u, hvp_xx, atol=1e-12)
    np.testing.assert_allclose(hxy @ v, cross, atol=1e-12)
    np.testing.assert_allclose(hxy.T @ u, cross_t, atol=1e-12)
    np.testing.assert_allclose(hyy, hyy.T, atol=1e-14)


def test_closed_forms_match_finite_differences_and_optimality(pair, point):
    p = pair[0]
    x = point[0]
    ys = p.y_star(x)
    assert np.linalg.norm(p.grad_g(x, ys)[1]) < 1e-12                  # ∇_y g(x, y*) = 0
    assert p.phi(x) == pytest.approx(p.f(x, ys), rel=1e-14)
    np.testing.assert_allclose(p.grad_phi(x), fd_gradient(p.phi, x), atol=1e-8)
    np.testing.assert_allclose(p.hess_phi(x), fd_jacobian(p.grad_phi, x), atol=1e-7)
    # full-batch oracles are the mean over every sample, computed one sample at a time
    assert p.g(x, ys) == pytest.approx(_by_definition(p, "lower", x, ys, range(N_IN)), rel=1e-12)
    assert p.f(x, ys) == pytest.approx(_by_definition(p, "upper", x, ys, range(N_OUT)), rel=1e-12)


@pytest.mark.parametrize("storage", ["factored", "dense"])
def test_mean_of_minibatch_oracles_over_a_partition_is_the_full_oracle(pair, point, storage, rng):
    p = pair[storage == "dense"]
    x, y, v, u = point
    for level, n, fn in (("lower", N_IN, "g"), ("upper", N_OUT, "f")):
        perm = rng.permutation(n)
        cuts = np.sort(rng.choice(np.arange(1, n), 4, replace=False))
        parts = np.split(perm, cuts)                           # unequal sizes: weight by size
        w = np.array([len(b) for b in parts]) / n

        def mean_of(call):
            outs = [call(b) for b in parts]
            if isinstance(outs[0], tuple):
                return tuple(sum(wi * o[k] for wi, o in zip(w, outs)) for k in range(len(outs[0])))
            return sum(wi * o for wi, o in zip(w, outs))

        checks = {
            fn: (lambda b: getattr(p, fn)(x, y, batch=b)),
            f"grad_{fn}": (lambda b: getattr(p, f"grad_{fn}")(x, y, batch=b)),
            f"hess_{fn}": (lambda b: getattr(p, f"hess_{fn}")(x, y, batch=b)),
            f"hvp_yy_{fn}": (lambda b: getattr(p, f"hvp_yy_{fn}")(x, y, v, batch=b)),
            f"hvp_xx_{fn}": (lambda b: getattr(p, f"hvp_xx_{fn}")(x, y, u, batch=b)),
            f"cross_{fn}": (lambda b: getattr(p, f"cross_{fn}")(x, y, v, batch=b)),
            f"cross_t_{fn}": (lambda b: getattr(p, f"cross_t_{fn}")(x, y, u, batch=b)),
        }
        for name, call in checks.items():
            got, full = mean_of(call), call(None)
            for a, b in zip(got if isinstance(got, tuple) else (got,),
                            full if isinstance(full, tuple) else (full,)):
                assert _rel(a, b) < 1e-12, name
        if fn == "g":
            for a, b in zip(mean_of(lambda b: p.fused_g(x, y, v, batch=b)), p.fused_g(x, y, v)):
                assert _rel(a, b) < 1e-12


def test_dense_equals_factored(pair, point, rng):
    fac, den = pair
    x, y, v, u = point
    batches = [rng.choice(N_IN, 13, replace=False), np.array([0, 0, 5, -3], dtype=np.int32),
               slice(10, 30), np.arange(N_IN)]
    for batch in batches:
        for name in ("g", "grad_g", "hess_g"):
            a, b = getattr(fac, name)(x, y, batch=batch), getattr(den, name)(x, y, batch=batch)
            for s, t in zip(np.atleast_1d(a) if name == "g" else a, np.atleast_1d(b) if name == "g" else b):
                assert _rel(s, t) < 1e-12, name
        for kind in PRODUCTS:
            vec = u if kind in ("hvp_xx", "cross_t") else v
            assert _rel(getattr(fac, f"{kind}_g")(x, y, vec, batch=batch),
                        getattr(den, f"{kind}_g")(x, y, vec, batch=batch)) < 1e-12, kind
        for s, t in zip(fac.fused_g(x, y, v, batch=batch), den.fused_g(x, y, v, batch=batch)):
            assert _rel(s, t) < 1e-12
    for s, t in zip(fac.grad_f(x, y, batch=slice(0, 7)), den.grad_f(x, y, batch=slice(0, 7))):
        assert _rel(s, t) < 1e-12
    # closed forms agree too (means from factors vs from tensors)
    assert _rel(fac.grad_phi(x), den.grad_phi(x)) < 1e-12


@pytest.mark.parametrize("storage", ["factored", "dense"])
def test_gradient_blocks_equal_the_gradient(pair, point, storage, rng):
    p = pair[storage == "dense"]
    x, y, _, _ = point
    for fn, n in (("g", N_IN), ("f", N_OUT)):
        for batch in (rng.choice(n, 9, replace=False), slice(2, 20), None):
            gx, gy = getattr(p, f"grad_{fn}")(x, y, batch=batch)
            assert _rel(getattr(p, f"grad_x_{fn}")(x, y, batch=batch), gx) < 1e-14
            assert _rel(getattr(p, f"grad_y_{fn}")(x, y, batch=batch), gy) < 1e-14


def test_gradient_blocks_are_counted(pair, point):
    x, y, _, _ = point
    counter = OracleCounter(pair[0])
    counter.grad_y_g(x, y, batch=slice(0, 4))
    assert counter.counts["grad_g"] == 1


# ---------------------------------------------------------------------------
# fused oracle
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("storage", ["factored", "dense"])
def test_fused_equals_unfused_with_identical_counts(pair, point, storage, rng):
    p = pair[storage == "dense"]
    x, y, v, _ = point
    fused, plain = OracleCounter(p), OracleCounter(p)
    for batch in (rng.choice(N_IN, 8, replace=False), slice(3, 40), None):
        got = fused.fused_g(x, y, v, batch=batch)
        want = (plain.grad_g(x, y, batch=batch)[1], plain.hvp_yy_g(x, y, v, batch=batch),
                plain.cross_g(x, y, v, batch=batch))
        for a, b in zip(got, want):
            assert _rel(a, b) < 1e-12
    assert fused.counts == plain.counts
    assert fused.counts["grad_g"] == fused.counts["hvp_yy_g"] == fused.counts["cross_g"] == 3


class _Unfused(FiniteSumQuadratic):
    """The same problem with the protocol's default (three separate calls) fused_g."""

    fused_g = BilevelProblem.fused_g


def test_soba_iterates_fused_equal_unfused(pair):
    p = pair[0]
    q = _Unfused(p.lower, p.upper)
    opts = {"batch_size": 16, "maxiter": 200}
    a = minimize(p, "soba", np.ones(DX), seed=4, options=opts)
    b = minimize(q, "soba", np.ones(DX), seed=4, options=opts)
    assert a.oracle_calls == b.oracle_calls
    assert a.oracle_calls["grad_g"] == a.oracle_calls["hvp_yy_g"] == a.oracle_calls["cross_g"] == 200
    assert a.oracle_calls["grad_f"] == 200
    assert _rel(a.x, b.x) < 1e-12 and _rel(a.y, b.y) < 1e-12


def test_soba_dense_and_factored_runs_agree(pair):
    a = minimize(pair[0], "soba", np.ones(DX), seed=2, options={"batch_size": 16, "maxiter": 200})
    b = minimize(pair[1], "soba", np.ones(DX), seed=2, options={"batch_size": 16, "maxiter": 200})
    assert _rel(a.x, b.x) < 1e-10 and a.oracle_calls == b.oracle_calls


# ---------------------------------------------------------------------------
# memory: the dense tensors are never copied per call
# ---------------------------------------------------------------------------
def test_dense_oracles_never_copy_the_tensors(rng):
    # benchopt's size for g: 1024 samples of 100×100 matrices (82 MB per tensor)
    n, d, m = 1024, 100, 64
    factors = [rng.standard_normal((n, d)) for _ in range(6)]
    lower = QuadraticSamples.rank_one(*factors, storage="dense")
    upper = QuadraticSamples.rank_one(*(f[:m] for f in factors), storage="factored")
    p = FiniteSumQuadratic(lower, upper)
    tensor_bytes = p.lower.hyy.nbytes
    assert tensor_bytes == n * d * d * 8
    x, y, v = rng.standard_normal(d), rng.standard_normal(d), rng.standard_normal(d)
    batch = rng.choice(n, m, replace=False)
    calls = [lambda: p.grad_g(x, y, batch=batch), lambda: p.fused_g(x, y, v, batch=batch),
             lambda: p.hvp_yy_g(x, y, v, batch=batch), lambda: p.cross_g(x, y, v, batch=batch),
             lambda: p.g(x, y, batch=batch), lambda: p.hess_g(x, y, batch=batch),
             lambda: p.grad_y_g(x, y, batch=batch)]
    for call in calls:
        call()                                       # compile / warm up outside the measurement
    for call in calls:
        tracemalloc.start()
        call()
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        # a copy of the batch's matrices alone would be m·d²·8 = 5.1 MB; the sums need ~3·d²·8
        assert peak < 4 * d * d * 8 + 64 * 1024, peak
        assert peak < tensor_bytes / 100


def test_factored_oracles_allocate_only_outputs(pair, point, rng):
    p = pair[0]
    x, y, v, _ = point
    batch = rng.choice(N_IN, 32, replace=False)
    p.fused_g(x, y, v, batch=batch)
    tracemalloc.start()
    p.fused_g(x, y, v, batch=batch)
    p.grad_g(x, y, batch=batch)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 16 * 1024


# ---------------------------------------------------------------------------
# batches and sampling
# ---------------------------------------------------------------------------
def test_bad_batches_are_rejected(pair, point):
    x, y, v, _ = point
    for p in pair:
        with pytest.raises(IndexError, match="out of range"):
            p.grad_g(x, y, batch=np.array([0, N_IN]))
        with pytest.raises(IndexError, match="out of range"):
            p.fused_g(x, y, v, batch=np.array([-N_IN - 1]))
        with pytest.raises(TypeError, match="batch"):
            p.grad_g(x, y, batch=np.array([0.0, 1.0]))
        with pytest.raises(TypeError, match="batch"):
            p.hvp_yy_g(x, y, v, batch=np.zeros((2, 2), dtype=int))
        with pytest.raises(ValueError, match="empty"):
            p.grad_f(x, y, batch=np.array([], dtype=int))
        with pytest.raises(ValueError, match="slice"):
            p.grad_f(x, y, batch=slice(0, 10, 2))


def test_samplers():
    iid = _problem(sampler="iid")
    win = _problem(sampler="window")
    rng = np.random.default_rng(0)
    counts = np.zeros(N_IN)
    pairs = np.zeros((N_IN, N_IN))
    for _ in range(6000):
        draw = iid.sample(rng, 20, "lower")
        assert len(np.unique(draw)) == 20 and 0 <= draw.min() and draw.max() < N_IN
        counts[draw] += 1
        pairs[np.ix_(draw, draw)] += 1
    # uniform subsets: inclusion 20/60 (Binomial(6000, 1/3), sd ≈ 36.5) and pair inclusion
    # 20·19/(60·59) (sd ≈ 22.3 around 644) for every index / pair
    assert np.all(np.abs(counts - 2000) < 6 * 36.5)
    off = pairs[~np.eye(N_IN, dtype=bool)]
    assert np.all(np.abs(off - 6000 * 20 * 19 / (60 * 59)) < 6 * 22.3)
    assert len(iid.sample(rng, 500, "upper")) == N_OUT   # size clipped to n
    counts = np.zeros(N_IN)
    for _ in range(6000):
        w = win.sample(rng, 20, "lower")
        assert len(np.unique(w)) == 20
        assert np.all(np.diff(w) % N_IN == 1)         # contiguous, wrapping around the end
        counts[w] += 1
    assert np.all(np.abs(counts - 2000) < 6 * 36.5)
    a, b = np.random.default_rng(9), np.random.default_rng(9)
    assert np.array_equal(win.sample(a, 7, "upper"), win.sample(b, 7, "upper"))
    assert np.array_equal(iid.sample(a, 7, "upper"), iid.sample(b, 7, "upper"))
    with pytest.raises(ValueError, match="level"):
        win.sample(rng, 3, "middle")
    with pytest.raises(ValueError, match="size"):
        iid.sample(rng, 0, "lower")
    x, y = np.ones(DX), np.ones(DY)                  # a window is an ordinary index array too
    batch = win.sample(np.random.default_rng(1), 30, "lower")
    assert _rel(win.grad_g(x, y, batch=batch)[1], win.grad_g(x, y, batch=np.array(batch))[1]) < 1e-15


def test_float32_storage_close_to_float64(point, rng):
    p64, p32 = _problem(), _problem(dtype="float32")
    assert p32.lower.Fy.dtype == np.float32 and p32.dtype == np.float32
    x, y, v, _ = point
    batch = rng.choice(N_IN, 10, replace=False)
    for a, b in zip(p32.fused_g(x, y, v, batch=batch), p64.fused_g(x, y, v, batch=batch)):
        assert _rel(a, b) < 1e-5
    assert _rel(p32.grad_phi(x), p64.grad_phi(x)) < 1e-4
    assert p32.grad_phi(x).dtype == np.float64
    d32 = _problem("dense", dtype=np.float32)
    assert d32.lower.hyy.dtype == np.float32
    assert _rel(d32.grad_g(x, y, batch=batch)[1], p64.grad_g(x, y, batch=batch)[1]) < 1e-5


def test_float32_storage_runs_in_minimize():
    # minimize keeps float64 iterates (proposed: iterates in problem.dtype); the run must
    # still follow the float64 reference closely
    opts = {"batch_size": 16, "maxiter": 100}
    a = minimize(_problem(dtype="float32"), "soba", np.ones(DX), seed=1, options=opts)
    b = minimize(_problem(), "soba", np.ones(DX), seed=1, options=opts)
    assert a.status == br.Status.COMPLETED and _rel(a.x, b.x) < 1e-4


def test_user_dense_samples_and_validation(rng):
    n, dy, dx = 30, 4, 3
    a = rng.standard_normal((n, dy, dy))
    hyy = a @ a.transpose(0, 2, 1) + np.eye(dy)
    hxx = np.zeros((n, dx, dx))
    cross = rng.standard_normal((n, dx, dy))
    s = QuadraticSamples.dense(hyy, hxx, cross, rng.standard_normal((n, dy)), rng.standard_normal((n, dx)))
    p = FiniteSumQuadratic(s, s)
    x, y = rng.standard_normal(dx), rng.standard_normal(dy)
    assert p.g(x, y, batch=[1, 2]) == pytest.approx(_by_definition(p, "lower", x, y, [1, 2]), rel=1e-13)
    with pytest.raises(ValueError, match="symmetric"):
        QuadraticSamples.dense(a, hxx, cross, np.zeros((n, dy)), np.zeros((n, dx)))
    with pytest.raises(ValueError, match="shapes"):
        QuadraticSamples.dense(hyy, hxx, cross[:, :, :2], np.zeros((n, dy)), np.zeros((n, dx)))
    with pytest.raises(TypeError, match="QuadraticSamples"):
        FiniteSumQuadratic(s, "f")


def test_dense_hessian_samples_are_stored_exactly_symmetric(rng):
    """A Hessian sample symmetric to 1e-12 but not exactly is stored with its lower triangle mirrored from
    the upper one (the user's array untouched); an exactly symmetric tensor is stored without a copy; the
    oracles apply the stored samples."""
    n, dy, dx = 12, 5, 3
    a = rng.standard_normal((n, dy, dy))
    hyy = a + a.transpose(0, 2, 1) + 4.0 * dy * np.eye(dy)   # exactly symmetric, mean positive definite
    skewed = hyy.copy()
    skewed[:, 3, 1] += 1e-14                                  # lower triangle off by far less than 1e-12
    hxx = np.broadcast_to(np.eye(dx), (n, dx, dx)).copy()
    cross = rng.standard_normal((n, dx, dy))
    ly, lx = rng.standard_normal((n, dy)), rng.standard_normal((n, dx))
    s = QuadraticSamples.dense(skewed, hxx, cross, ly, lx)
    assert np.array_equal(s.hyy, hyy) and np.array_equal(s.hyy, s.hyy.transpose(0, 2, 1))
    assert skewed[0, 3, 1] != hyy[0, 3, 1]                    # the caller's array is unchanged
    exact = QuadraticSamples.dense(hyy, hxx, cross, ly, lx)
    assert np.shares_memory(exact.hyy, hyy)                   # exactly symmetric: no copy
    p = FiniteSumQuadratic(s, s)
    x, y, v = rng.standard_normal(dx), rng.standard_normal(dy), rng.standard_normal(dy)
    batch = np.array([4, 0, 7])
    assert _rel(p.hvp_yy_g(x, y, v, batch=batch), hyy[batch].sum(axis=0) @ v / 3) < 1e-14
    gy = (hyy[batch].sum(axis=0) @ y + cross[batch].sum(axis=0).T @ x + ly[batch].sum(axis=0)) / 3
    assert _rel(p.grad_y_g(x, y, batch=batch), gy) < 1e-14


@pytest.mark.parametrize("d", [1, 2, 5, 8, 13])
def test_packed_symmetric_sums_are_the_full_sums(d, rng):
    """The dense oracles stream the symmetric Hessian samples as packed upper triangles: the mirrored
    batch sum is bit-identical to the index-order sum of the full matrices, for every thread split."""
    from bilevel_ref._kernels import finite_sum as kernels
    from bilevel_ref.problems.finite_sum import _packed_upper

    a = rng.standard_normal((30, d, d))
    full = a + a.transpose(0, 2, 1)
    packed = _packed_upper(full)
    assert packed.shape == (30, -(-d * (d + 1) // 2 // d), d)
    rows, cols = np.triu_indices(d)
    assert np.array_equal(packed.reshape(30, -1)[:, : d * (d + 1) // 2], full[:, rows, cols])
    idx = np.array([3, 29, -1, 0, 3, 7, 12, 5, 5, 6, 18, -30, 2])
    want = _index_order_sum(full, idx)
    for chunks in (1, 2, 3):
        total = np.full(packed.shape[1:], np.nan)
        assert kernels.gather_sum(packed, idx, total, chunks) == -1
        out = np.full((d, d), np.nan)
        kernels.unpack_symmetric(total, out)
        assert np.array_equal(out, want)


def test_dense_oracles_stream_the_packed_triangles(rng):
    """A dense level's sums come from the packed data (bytes counted), equal to the full-matrix sums."""
    p = finite_sum_quadratic(40, 40, 6, 5, storage="dense", seed=2)
    level = p.lower
    batch = np.array([1, 7, 7, 30, 12])
    syy, sxx, sxy = level._sums(("hyy", "hxx", "hxy"), batch)
    for got, name in ((syy, "hyy"), (sxx, "hxx"), (sxy, "hxy")):
        assert np.array_equal(got, _index_order_sum(getattr(level, name), batch))
    # values per sample: S^yy 6·7/2 = 21 padded to 4 rows of 6 = 24, S^xx 5·6/2 = 15 (3 rows of 5), S^xy 5·6
    assert level.bytes_streamed == 5 * 8 * (24 + 15 + 30)


@pytest.mark.parametrize("rows, cols", [(13, 11), (16, 7), (3, 9)])
def test_dense_matvec_adds_in_index_order(rows, cols, rng):
    """The apply kernel's S v (eight rows per sweep, then the rest) and Sᵀv (row axpys) give every element
    as the sum of its products in index order from 0, divided by m: the same bits as that loop."""
    from bilevel_ref._kernels import finite_sum as kernels

    S = rng.standard_normal((rows, cols))
    v, w = rng.standard_normal(cols), rng.standard_normal(rows)
    want_sv, want_stw = np.zeros(rows), np.zeros(cols)
    for r in range(rows):
        for c in range(cols):
            want_sv[r] += S[r, c] * v[c]
            want_stw[c] += w[r] * S[r, c]
    out = np.full(rows, np.nan)
    kernels.matvec(S, v, False, 3, out)
    assert np.array_equal(out, want_sv / 3)
    out = np.full(cols, np.nan)
    kernels.matvec(S, w, True, 3, out)
    assert np.array_equal(out, want_stw / 3)


def test_catalog_instances():
    p, x0 = build_problem("finite-sum-quadratic-small", seed=1)
    assert isinstance(p, FiniteSumQuadratic) and x0.shape == (p.dx,)
    assert (p.n_lower, p.n_upper, p.dy, p.dx) == (256, 256, 20, 10)
    p, x0 = build_problem("finite-sum-quadratic", n_inner=128, n_outer=64, dim_inner=10, dim_outer=6,
                          storage="dense", dtype="float32")
    assert p.storage == "dense" and p.dtype == np.float32 and x0.shape == (6,)


# ---------------------------------------------------------------------------
# the stochastic methods on this problem
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("method", ["soba", "stocbio"])
def test_methods_reduce_exact_gradient_tenfold(method):
    # Start 20 away from x*, displaced along the range of ∇²φ (benchopt's B_i share a null
    # vector, so ∇²φ has a tiny eigenvalue that no 1000-step run can resolve); default options
    # and budget (maxiter 1000), batch 64 as in benchopt, five seeds.
    for seed in range(5):
        p = finite_sum_quadratic(256, 256, 20, 10, seed=seed)
        hess = p.hess_phi(np.zeros(10))
        x_star = -np.linalg.solve(hess, p.grad_phi(np.zeros(10)))
        d = hess @ np.random.default_rng(100 + seed).standard_normal(10)
        x0 = x_star + 20 * d / np.linalg.norm(d)
        res = minimize(p, method, x0, seed=seed, options={"batch_size": 64, "record_exact": False})
        assert res.status == br.Status.COMPLETED and res.nit == 1000
        assert res.grad_norm <= 0.1 * np.linalg.norm(p.grad_phi(x0)), (seed, res.grad_norm)


def test_bench_reports_spec_counts_per_iteration():
    from bilevel_ref.bench import stochastic

    p = finite_sum_quadratic(64, 64, 6, 4, seed=0)
    r = stochastic.measure_method(p, np.zeros(4), "soba", 8, iters=3, repeat=1)
    assert r["calls"] == {"grad_f": 1, "grad_g": 1, "hvp_yy_g": 1, "cross_g": 1}
    r = stochastic.measure_method(p, np.zeros(4), "stocbio", 8, iters=3, repeat=1)
    assert r["calls"] == {"grad_f": 1, "grad_g": 10, "hvp_yy_g": 10, "cross_g": 1}
    assert r["cpu"] > 0 and r["wall"] > 0 and r["nit"] == 3
    assert stochastic.measure_unit(p, 8, calls=5, repeat=1) > 0
    assert stochastic.measure_slice_read(np.ones((32, 6, 6)), 8, reads=4, repeat=1) > 0


def test_bench_command_runs(capsys):
    from bilevel_ref.bench import stochastic

    assert stochastic.main(["--methods", "soba", "no_such_method", "--n", "64", "--d", "5",
                            "--batch", "8", "--iters", "2", "--repeat", "1"]) == 0
    out = capsys.readouterr().out
    assert "slice read" in out and "grad_g" in out and "soba" in out and "not registered" in out
    assert "ratio default" in out and "ratio 1 thread" in out


def test_bench_rows_give_both_thread_settings():
    from bilevel_ref.bench import stochastic

    rows = stochastic.run(["soba", "mrbo"], ("dense",), n=64, d=5, batch_size=8, iters=2, repeat=1)
    ref, one = rows[0], rows[1]
    assert ref["method"] == "slice read" and ref["seconds"] > 0 and ref["wall"] is None
    # the reference cycles over the problem's six dense tensors (both levels); the one-tensor read is reported
    assert ref["tensors"] == 6 and ref["data_bytes"] == 6 * 64 * 5 * 5 * 8
    assert one["method"] == stochastic.ONE_TENSOR and one["ratio"] == pytest.approx(one["seconds"] / ref["seconds"])
    by_method = {r["method"]: r for r in rows[2:]}
    assert set(by_method) == {"grad_g", "soba", "mrbo"}
    assert by_method["grad_g"]["sums"] is None and by_method["soba"]["sums"] > 0
    for r in by_method.values():
        assert r["ratio"] == pytest.approx(r["wall"] / ref["seconds"])
        assert r["one_thread"]["ratio"] == pytest.approx(r["one_thread"]["wall"] / ref["seconds"])
    assert by_method["mrbo"]["target"] == stochastic.TARGETS["mrbo"]      # dense float64: targets apply
    assert by_method["grad_g"]["target"] is None


def test_bench_keeps_the_fastest_round_and_checks_its_counts(monkeypatch):
    from bilevel_ref.bench import stochastic

    walls = iter([5.0, 7.0, 3.0, 9.0, 4.0, 8.0])   # default, 1 thread, default, 1 thread, ...

    def fake(problem, x0, method, batch_size, **kw):
        return {"wall": next(walls), "cpu": 1.0, "calls": {}, "nit": 2, "sums": None, "status": "ok",
                "options": {}}

    monkeypatch.setattr(stochastic, "measure_method", fake)
    monkeypatch.setattr(stochastic, "measure_unit", lambda *a, **k: 1.0)
    rows = stochastic.run(["soba"], ("dense",), n=16, d=3, batch_size=4, iters=2, repeat=1, rounds=3)
    soba = rows[-1]
    assert soba["wall"] == 3.0 and soba["one_thread"]["wall"] == 7.0      # best of the three rounds each
    for bad in ({"rounds": 0}, {"repeat": 0}, {"iters": 0}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            stochastic.run(["soba"], ("dense",), n=16, d=3, batch_size=4, **{"iters": 2, "repeat": 1, **bad})


def test_slice_read_plan_reads_every_slab_of_every_tensor_once_per_pass():
    from bilevel_ref.bench.stochastic import slice_read_plan

    plan = slice_read_plan(6, 1024, 64)
    assert len(plan) == 96 and len(set(plan)) == 96                  # 6 tensors x 16 slabs, no repeat
    assert {j for j, _ in plan} == set(range(6)) and {s for _, s in plan} == set(range(0, 1024, 64))
    assert [j for j, _ in plan[:7]] == [0, 1, 2, 3, 4, 5, 0]          # tensors in turn
    assert slice_read_plan(1, 32, 8) == [(0, (8 * k) % 25) for k in range(64)]   # at least 64 reads
    assert len(slice_read_plan(2, 32, 8, reads=5)) == 5


def test_bench_counts_the_slices_a_dense_iteration_reads(monkeypatch):
    """SOBA reads 5 batch sums per iteration (grad_f: S^yy, S^xx, S^xy of f; fused_g: S^yy, S^xy of g):
    with the batch-sum cache off, every one is formed, and the bench reports exactly that, and the bytes
    they read (the symmetric ones packed)."""
    from bilevel_ref.bench import stochastic
    from bilevel_ref.problems.finite_sum import _DenseSamples

    monkeypatch.setattr(_DenseSamples, "CACHE_ENTRIES", 0)
    p = finite_sum_quadratic(64, 64, 5, 4, storage="dense", seed=0)
    row = stochastic.measure_method(p, np.zeros(4), "soba", 8, iters=3, repeat=2)
    assert row["sums"] == 5
    # values read per sample: S^yy packed 15 (dy = 5: 5·6/2, three rows of 5), S^xx packed 12 (dx = 4: 10
    # values padded to three rows of 4), S^xy 4·5 = 20; f: all three, g: S^yy and S^xy; a slab is dy² = 25
    assert row["slices"] == (15 + 12 + 20 + 15 + 20) / 25
    assert stochastic.measure_method(finite_sum_quadratic(64, 64, 5, 4, seed=0), np.zeros(4), "soba", 8,
                                     iters=3, repeat=1)["sums"] is None   # factored storage


def test_bench_clears_the_batch_sums_of_both_levels():
    from bilevel_ref.bench.stochastic import clear_batch_caches

    p = finite_sum_quadratic(32, 32, 4, 3, storage="dense", seed=0)
    x, y, batch = np.zeros(3), np.zeros(4), np.arange(4)
    p.grad_f(x, y, batch=batch)
    p.grad_g(x, y, batch=batch)
    clear_batch_caches(p)
    hits = p.lower.cache_hits + p.upper.cache_hits
    p.grad_f(x, y, batch=batch)
    p.grad_g(x, y, batch=batch)
    assert p.lower.cache_hits + p.upper.cache_hits == hits       # formed again, not served
    clear_batch_caches(finite_sum_quadratic(32, 32, 4, 3, seed=0))   # factored storage: nothing to clear


def test_last_level_cache_size_is_positive_or_unknown():
    from bilevel_ref.bench.stochastic import last_level_cache_bytes

    size = last_level_cache_bytes()
    assert size is None or (isinstance(size, int) and size >= 1 << 16)


def test_bench_status_says_missed_when_a_target_is_missed():
    from bilevel_ref.bench.stochastic import TARGETS, target_status

    method, target = next(iter(TARGETS.items()))
    assert target_status({"method": method, "status": "ok", "ratio": target * 0.5}) == "ok"
    assert target_status({"method": method, "status": "ok", "ratio": target * 2.0}).startswith("missed")
    assert target_status({"method": method, "status": "ok", "ratio": target * 2.0, "target": None}) == "ok"
    assert target_status({"method": "no-target", "status": "ok", "ratio": 1e9}) == "ok"
    assert target_status({"method": method, "status": "diverged", "ratio": 1.0}) == "diverged"


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "2", 2.0])
def test_thread_limits_must_be_positive_integers(bad):
    from bilevel_ref import _jit
    from bilevel_ref.bench.stochastic import thread_setting

    with pytest.raises(ValueError, match="positive integer"):
        _jit.check_threads(bad, "threads")
    with pytest.raises(ValueError, match="limit must be a positive integer"):
        _jit.kernel_threads(bad)
    with pytest.raises(ValueError, match="threads must be a positive integer"):
        thread_setting(bad)


def test_kernel_threads_follow_threadpoolctl_and_the_limit():
    from threadpoolctl import threadpool_limits

    from bilevel_ref import _jit

    assert _jit.kernel_threads(1) == 1
    assert 1 <= _jit.kernel_threads() <= max(1, os.cpu_count() or 1)
    with threadpool_limits(limits=1):
        assert _jit.kernel_threads() == 1
    with threadpool_limits(limits=1, user_api="blas"):   # what ``--threads 1`` sets
        assert _jit.kernel_threads() == 1


# ---------------------------------------------------------------------------
# threads: every chunk count gives the same bits
# ---------------------------------------------------------------------------
def _index_order_sum(tensor, idx):
    """Σ_k tensor[idx[k]] added in index order from 0 (np.sum would add pairwise)."""
    out = np.zeros(tensor.shape[1:])
    for i in idx:
        out = out + tensor[i]
    return out


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_gather_sum_is_the_index_order_sum_for_every_chunk_count(rng, dtype):
    from bilevel_ref._kernels import finite_sum as kernels

    tensor = rng.standard_normal((20, 7, 5)).astype(dtype)
    idx = np.array([3, 19, -1, 0, 3, 7, 12, 5, 5, 6, 18, -20, 2, 11, 9, 4, 13, 1, 0])   # > 2 groups of 8
    for part in (idx[:5], idx[:16], idx):                # fewer than 8, whole groups of 8, groups and a tail
        for chunks in (1, 2, 3, 7, 11):
            out = np.full((7, 5), np.nan)
            assert kernels.gather_sum(tensor, part, out, chunks) == -1
            # float32 data: float64 sums, no float32 rounding
            assert np.array_equal(out, _index_order_sum(tensor, part)), (len(part), chunks)
    want = _index_order_sum(tensor, idx)
    assert kernels.gather_sum(tensor, np.array([1, 20, 2]), out, 2) == 1   # first bad position
    other = rng.standard_normal((20, 4, 5)).astype(dtype)                 # two tensors, one launch
    for chunks in (1, 2, 5):
        out1, out2 = np.full((7, 5), np.nan), np.full((4, 5), np.nan)
        assert kernels.gather_sums((tensor, other), idx, (out1, out2), chunks) == -1
        assert np.array_equal(out1, want) and np.array_equal(out2, _index_order_sum(other, idx)), chunks
    assert kernels.gather_sums((tensor, other), np.array([0, -21]), (out1, out2), 2) == 1
    third = rng.standard_normal((20, 5, 3)).astype(dtype)                 # three tensors, one launch
    for chunks in (1, 2, 3):
        outs = tuple(np.full(t.shape[1:], np.nan) for t in (tensor, other, third))
        assert kernels.gather_sums((tensor, other, third), idx, outs, chunks) == -1
        assert all(np.array_equal(o, _index_order_sum(t, idx)) for o, t in zip(outs, (tensor, other, third)))
    assert kernels.gather_sums((tensor, other[:19]), idx, (out1, out2), 1) == 0   # sample counts differ


def test_factored_kernels_are_bit_identical_for_every_chunk_count(pair, point, rng):
    from bilevel_ref._kernels import finite_sum as kernels

    p = pair[0].lower
    x, y, v, _ = point
    idx = np.concatenate([rng.choice(N_IN, 25, replace=False), [-1, 0]])

    def run(chunks):
        gx, gy, blk, fg, fh, fj, prod = (np.empty(DX), np.empty(DY), np.empty(DY), np.empty(DY),
                                         np.empty(DY), np.empty(DX), np.empty(DX))
        assert kernels.factored_grad(p.Fy, p.Fx, idx, x, y, gx, gy, chunks) == -1
        assert kernels.factored_grad_block(p.Fy, p.Fx, idx, y, x, blk, chunks) == -1
        assert kernels.factored_fused(p.Fy, p.Fx, idx, x, y, v, fg, fh, fj, chunks) == -1
        assert kernels.factored_product(p.Fy, 1, p.Fx, 1, idx, v, prod, chunks) == -1
        status, value = kernels.factored_value(p.Fy, p.Fx, idx, x, y, chunks)
        assert status == -1
        return [gx, gy, blk, fg, fh, fj, prod, np.array([value])]

    want = run(1)
    for chunks in (2, 3, 5, 40):
        for a, b in zip(run(chunks), want):
            assert np.array_equal(a, b), chunks
    # truth: the definition (rank-one means) to rounding
    z, e, ly = (p.Fy[idx, k] for k in range(3))
    c = p.Fx[idx, 1]
    assert _rel(want[3], (z * (z @ y)[:, None] + e * (c @ x)[:, None] + ly).mean(axis=0)) < 1e-13
    bad = np.array([0, N_IN])
    assert kernels.factored_grad(p.Fy, p.Fx, bad, x, y, np.empty(DX), np.empty(DY), 3) == 1


@pytest.mark.parametrize("storage", ["factored", "dense"])
def test_oracles_bit_identical_at_one_and_at_default_threads(storage, monkeypatch, rng):
    from threadpoolctl import threadpool_limits

    monkeypatch.setattr(fs, "DENSE_PARALLEL_MIN", 0)        # small data, parallel path all the same
    monkeypatch.setattr(fs, "FACTORED_PARALLEL_MIN", 0)
    p = _problem(storage)
    x, y, v = rng.standard_normal(DX), rng.standard_normal(DY), rng.standard_normal(DY)
    batch = rng.choice(N_IN, 30, replace=False)

    def oracles():
        if storage == "dense":
            p.lower.clear_cache()
        return [p.g(x, y, batch=batch), *p.grad_g(x, y, batch=batch), *p.fused_g(x, y, v, batch=batch),
                p.hvp_yy_g(x, y, v, batch=batch), p.cross_t_g(x, y, x, batch=batch),
                *p.hess_g(x, y, batch=batch)]

    default = oracles()
    with threadpool_limits(limits=1):
        one = oracles()
    for a, b in zip(default, one):
        assert np.array_equal(a, b)


# ---------------------------------------------------------------------------
# dense batch-sum cache: bytes saved, results and counts unchanged
# ---------------------------------------------------------------------------
def test_dense_cache_serves_a_batch_at_two_points_with_identical_results(point, rng):
    p = _problem("dense")
    q = _problem("dense")
    q.lower.CACHE_ENTRIES = 0                                  # no cache: every call sums afresh
    x, y, v, _ = point
    batch = rng.choice(N_IN, 12, replace=False)
    for prob in (p, q):
        assert prob.lower.cache_hits == 0
    for prob in (p, q):
        first = prob.grad_y_g(x, y, batch=batch)
        second = prob.grad_y_g(x + 1.0, y - 1.0, batch=batch)
        third = prob.cross_g(x, y, v, batch=batch)
        prob.results = [first, second, third]
    for a, b in zip(p.results, q.results):
        assert np.array_equal(a, b)
    assert (p.lower.cache_misses, p.lower.cache_hits) == (2, 3)   # hyy, hxy once; then 3 hits
    assert (q.lower.cache_misses, q.lower.cache_hits) == (5, 0)
    assert len(q.lower._cache) == 0


def test_dense_cache_is_keyed_by_batch_contents(point, rng):
    p = _problem("dense")
    x, y, v, _ = point
    batch = np.arange(10)
    before = p.hvp_yy_g(x, y, v, batch=batch)
    batch[:] = np.arange(20, 30)                               # the same array, other samples
    after = p.hvp_yy_g(x, y, v, batch=batch)
    A = p.lower.hyy
    assert _rel(after, _index_order_sum(A, batch) @ v / 10) < 1e-13
    assert not np.allclose(before, after)
    assert p.lower.cache_misses == 2
    # same values in another integer dtype: a different key, the same numbers
    again = p.hvp_yy_g(x, y, v, batch=batch.astype(np.int32))
    assert p.lower.cache_misses == 3 and np.array_equal(again, after)
    # the cached sums are float64 (float32 data is summed in float64 once, not upcast per call)
    p32 = _problem("dense", dtype="float32")
    p32.hvp_yy_g(x, y, v, batch=batch)
    assert all(s.dtype == np.float64 and not s.flags.writeable for s in p32.lower._cache.values())


def test_dense_cache_evicts_least_recent_within_its_bounds(point):
    p = _problem("dense")
    x, y, v, _ = point
    p.lower.CACHE_ENTRIES = 3
    for start in range(5):
        p.hvp_yy_g(x, y, v, batch=slice(start, start + 4))
    assert len(p.lower._cache) == 3 and p.lower.cache_misses == 5
    p.hvp_yy_g(x, y, v, batch=slice(4, 8))                        # most recent: a hit
    assert p.lower.cache_hits == 1
    p.hvp_yy_g(x, y, v, batch=slice(0, 4))                        # evicted long ago: a miss
    assert p.lower.cache_misses == 6
    p.lower.CACHE_BYTES = 8 * DY * DY                              # room for one sum
    p.hvp_yy_g(x, y, v, batch=slice(9, 13))
    assert len(p.lower._cache) == 1
    with pytest.raises(ValueError):
        p.lower.hyy[0, 0, 0] = 1.0                                 # read-only: a cached sum stays valid
