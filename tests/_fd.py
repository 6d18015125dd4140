"""Central finite differences (the outside truth for derivative tests).

The difference quotients are :mod:`bilevel_ref.check`'s (the ones
:func:`bilevel_ref.check_problem` uses): step h = eps^{1/3}·max(1, ‖x‖∞) for
first derivatives (error O(h²) ≈ 1e-11 relative for smooth functions of unit
scale).  This module adds the assertions of the test suite.
"""
import numpy as np

# the public finite-difference helpers of bilevel_ref.check_problem (step eps^{1/3}·max(1, ‖x‖∞))
from bilevel_ref.check import fd_directional, fd_gradient, fd_jacobian  # noqa: F401


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
