"""Central finite differences (the outside truth for derivative tests).

Step h = eps^{1/3}·max(1, ‖x‖) for first derivatives (error O(h²) ≈ 1e-11
relative for smooth functions of unit scale).
"""
import numpy as np

EPS3 = np.finfo(float).eps ** (1.0 / 3.0)


def fd_gradient(fun, x, h=None):
    """Central-difference gradient of a scalar function."""
    x = np.asarray(x, dtype=float)
    h = EPS3 * max(1.0, float(np.linalg.norm(x))) if h is None else h
    out = np.empty_like(x)
    for i in range(x.size):
        e = np.zeros_like(x)
        e[i] = h
        out[i] = (fun(x + e) - fun(x - e)) / (2 * h)
    return out


def fd_jacobian(fun, x, h=None):
    """Central-difference Jacobian (rows: outputs) of a vector function."""
    x = np.asarray(x, dtype=float)
    h = EPS3 * max(1.0, float(np.linalg.norm(x))) if h is None else h
    cols = []
    for i in range(x.size):
        e = np.zeros_like(x)
        e[i] = h
        cols.append((np.asarray(fun(x + e)) - np.asarray(fun(x - e))) / (2 * h))
    return np.column_stack(cols)


def fd_directional(fun, x, v, h=None):
    """Central difference of a vector function along v: ≈ J(x) v."""
    x = np.asarray(x, dtype=float)
    h = EPS3 * max(1.0, float(np.linalg.norm(x))) / max(1.0, float(np.linalg.norm(v))) if h is None else h
    return (np.asarray(fun(x + h * v)) - np.asarray(fun(x - h * v))) / (2 * h)


def assert_oracles_match_fd(problem, x, y, rng, fns=("f", "g"), tol=1e-7, dense=True):
    """Every gradient, matrix-free product and (if ``dense``) Hessian block of
    ``problem`` at (x, y) against central finite differences of its values/gradients."""

    def close(a, b):
        np.testing.assert_allclose(a, b, rtol=tol, atol=tol)

    u, v = rng.standard_normal(problem.dx), rng.standard_normal(problem.dy)
    for fn in fns:
        value, grad = getattr(problem, fn), getattr(problem, f"grad_{fn}")
        gx, gy = grad(x, y)
        close(gx, fd_gradient(lambda t: value(t, y), x))
        close(gy, fd_gradient(lambda t: value(x, t), y))
        close(getattr(problem, f"hvp_yy_{fn}")(x, y, v), fd_directional(lambda t: grad(x, t)[1], y, v))
        close(getattr(problem, f"hvp_xx_{fn}")(x, y, u), fd_directional(lambda t: grad(t, y)[0], x, u))
        close(getattr(problem, f"cross_{fn}")(x, y, v), fd_directional(lambda t: grad(x, t)[0], y, v))
        close(getattr(problem, f"cross_t_{fn}")(x, y, u), fd_directional(lambda t: grad(t, y)[1], x, u))
        if dense:
            hxx, hxy, hyy = getattr(problem, f"hess_{fn}")(x, y)
            close(hxx, fd_jacobian(lambda t: grad(t, y)[0], x))
            # ∇²_xy h ∈ R^{dx×dy}: column j is d(∇_x h)/dy_j
            close(hxy, fd_jacobian(lambda t: grad(x, t)[0], y))
            close(hyy, fd_jacobian(lambda t: grad(x, t)[1], y))


def assert_gradient_blocks_match(problem, x, y, batches=(None,)):
    """``grad_{x,y}_{f,g}`` (possibly overridden, cheaper paths) equal the blocks of ``grad_f``/``grad_g``,
    whose values the finite-difference checks above vouch for."""
    for batch in batches:
        for fn in ("f", "g"):
            gx, gy = getattr(problem, f"grad_{fn}")(x, y, batch=batch)
            np.testing.assert_allclose(getattr(problem, f"grad_x_{fn}")(x, y, batch=batch), gx, rtol=1e-14, atol=1e-16)
            np.testing.assert_allclose(getattr(problem, f"grad_y_{fn}")(x, y, batch=batch), gy, rtol=1e-14, atol=1e-16)
