"""Cross-check against an independent autodiff library: JAX (CPU, float64).

The quadratic and logistic golden problems are rebuilt in JAX from the raw
data stored in the golden cases (not from our code); ∇φ comes from implicit
differentiation (jax.grad / jax.jacfwd / jax.hessian blocks and a linear
solve at a lower-level solution found by Newton's method in JAX), the penalty
Hessian ∇²L*_λ from autodiff Hessian blocks (Schur complements) and, for the
quadratic, also from jax.hessian through an exact Newton step.  Everything is
checked with :func:`bilevel_ref.crosscheck.check` at the float64 tolerance
(1e-10 relative).
"""
import numpy as np
import pytest

jax = pytest.importorskip("jax", reason="JAX not installed: pip install 'bilevel_ref[crosscheck]' (jax CPU)")
jax.config.update("jax_enable_x64", True)
import jax.numpy as jnp  # noqa: E402

from bilevel_ref.crosscheck import check, export_golden, load_golden  # noqa: E402


@pytest.fixture(scope="module")
def golden(tmp_path_factory):
    path = tmp_path_factory.mktemp("golden")
    export_golden(path, ["quadratic-5x4", "quadratic-3x6", "logistic-4"])
    return str(path)


def _functions(case):
    d = {k: jnp.asarray(v) for k, v in case.data.items()}
    if case.family == "quadratic":
        def f(x, y):
            return 0.5 * x @ d["P"] @ x + x @ d["R"] @ y + 0.5 * y @ d["S"] @ y + d["p"] @ x + d["q"] @ y

        def g(x, y):
            return 0.5 * y @ d["A"] @ y + y @ d["C"] @ x + 0.5 * x @ d["E"] @ x + d["a"] @ y + d["b"] @ x
    else:
        def f(x, y):
            return jnp.mean(jnp.logaddexp(0.0, -d["b_val"] * (d["X_val"] @ y)))

        def g(x, y):
            return (jnp.mean(jnp.logaddexp(0.0, -d["b_train"] * (d["X_train"] @ y)))
                    + 0.5 * jnp.sum(jnp.exp(x) * y**2))
    return f, g


def _argmin(fun, x, y0, iters=30):
    """Newton's method in JAX on y ↦ fun(x, y) (strongly convex)."""
    grad = jax.grad(fun, argnums=1)
    hess = jax.hessian(fun, argnums=1)
    return jax.lax.fori_loop(0, iters, lambda _, y: y - jnp.linalg.solve(hess(x, y), grad(x, y)), y0)


def _blocks(fun, x, y):
    """(∇²_xx, ∇²_xy (dx×dy), ∇²_yy) by autodiff."""
    hxx = jax.hessian(fun, argnums=0)(x, y)
    hxy = jax.jacfwd(jax.grad(fun, argnums=0), argnums=1)(x, y)
    hyy = jax.hessian(fun, argnums=1)(x, y)
    return hxx, hxy, hyy


def _schur(fun, x, y):
    hxx, hxy, hyy = _blocks(fun, x, y)
    return hxx - hxy @ jnp.linalg.solve(hyy, hxy.T)


def _jax_outputs(case):
    fun = jax.jit(lambda x, y, w: _outputs(case, x, y, w))
    out = fun(*(jnp.asarray(case.inputs[k]) for k in ("x", "y", "w")))
    return {k: np.asarray(v) for k, v in out.items()}


def _outputs(case, x, y_in, w_in):
    f, g = _functions(case)
    lam = float(case.inputs["lam"])

    def h(x, y):
        return f(x, y) + lam * g(x, y)

    y_st = _argmin(g, x, jnp.zeros(y_in.shape[0]))
    y_lam = _argmin(h, x, y_st)
    # implicit differentiation: ∇φ = ∇_x f − ∇²_xy g [∇²_yy g]⁻¹ ∇_y f at y*
    _, gxy, gyy = _blocks(g, x, y_st)
    grad_phi = jax.grad(f, argnums=0)(x, y_st) - gxy @ jnp.linalg.solve(gyy, jax.grad(f, argnums=1)(x, y_st))

    def penalty_grad(x, y, w):
        return jax.grad(f, argnums=0)(x, y) + lam * (jax.grad(g, argnums=0)(x, y) - jax.grad(g, argnums=0)(x, w))

    out = {
        "y_star": y_st, "phi": f(x, y_st), "grad_phi": grad_phi, "y_star_penalty": y_lam,
        "grad_penalty": penalty_grad(x, y_lam, y_st),
        "penalty_grad_est": penalty_grad(x, y_in, w_in),
        # ∇²L*_λ = Schur(h at y*_λ) − λ Schur(g at y*): autodiff blocks, exact at the minimisers
        "hess_penalty": _schur(h, x, y_lam) - lam * _schur(g, x, y_st),
        "penalty_hess_est": _schur(h, x, y_in) - lam * _schur(g, x, w_in),
    }
    if case.family == "quadratic":
        # φ(x) = f(x, y*(x)) with y*(x) one exact Newton step from 0: jax.hessian end to end
        def y_of(fun, x):
            return -jnp.linalg.solve(jax.hessian(fun, argnums=1)(x, jnp.zeros(y_in.shape[0])),
                                     jax.grad(fun, argnums=1)(x, jnp.zeros(y_in.shape[0])))

        out["hess_phi"] = jax.hessian(lambda x: f(x, y_of(g, x)))(x)
        out["hess_penalty_unrolled"] = jax.hessian(lambda x: h(x, y_of(h, x)) - lam * g(x, y_of(g, x)))(x)
    return out


@pytest.mark.parametrize("name", ["quadratic-5x4", "quadratic-3x6", "logistic-4"])
def test_jax_matches_golden(golden, name):
    case = load_golden(golden)[name]
    outputs = _jax_outputs(case)
    unrolled = outputs.pop("hess_penalty_unrolled", None)
    report = check(golden, {name: outputs}, dtype="float64")
    rows = [r for r in report.rows if r["case"] == name]
    assert all(r["status"] == "pass" for r in rows), report.format()
    # every reference array of the case was checked (nothing silently missing)
    assert {r["array"] for r in rows} == set(case.outputs)
    assert max(r["max_rel"] for r in rows) <= 1e-10
    if unrolled is not None:
        ref = case.outputs["hess_penalty"]
        assert np.max(np.abs(unrolled - ref)) <= 1e-10 * np.max(np.abs(ref))


def test_jax_detects_a_wrong_formula(golden):
    """Control: dropping the implicit term of ∇φ must fail the check (the test can fail)."""
    case = load_golden(golden)["logistic-4"]
    f, _ = _functions(case)
    x = jnp.asarray(case.inputs["x"])
    y_st = jnp.asarray(case.outputs["y_star"])
    report = check(golden, {"logistic-4": {"grad_phi": np.asarray(jax.grad(f, argnums=0)(x, y_st))}})
    assert not report.passed
    assert "'logistic-4'" in report.format() and "'grad_phi'" in report.format()
