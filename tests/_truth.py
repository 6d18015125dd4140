"""Truth on problems without closed forms: y*(x) by Newton's method and ∇φ(x) by a dense
implicit-function solve, on the uncounted problem (independent of the estimators under test;
checked against central finite differences of φ in test_nbo.py)."""
import numpy as np
import scipy.linalg as sla


def exact_y_star(problem, x, y0=None, tol=1e-13, maxiter=100):
    """y*(x) by Newton's method with dense ∇²_yy g on the (uncounted) problem."""
    y = np.zeros(problem.dy) if y0 is None else np.array(y0, dtype=float)
    for _ in range(maxiter):
        gy = problem.grad_g(x, y)[1]
        if np.linalg.norm(gy) <= tol:
            return y
        y = y - sla.cho_solve(sla.cho_factor(problem.hess_g(x, y)[2]), gy)
    raise RuntimeError("Newton's method on the lower level did not converge")


def implicit_hypergradient(problem, x, y):
    """∇_x f(x, y) − ∇²_xy g(x, y) [∇²_yy g(x, y)]⁻¹ ∇_y f(x, y) by a dense solve."""
    gx, gy = problem.grad_f(x, y)
    _, hxy, hyy = problem.hess_g(x, y)
    return gx - hxy @ sla.cho_solve(sla.cho_factor(hyy), gy)


def exact_grad_phi(problem, x):
    """∇φ(x) = the implicit hypergradient at the accurate y*(x)."""
    return implicit_hypergradient(problem, x, exact_y_star(problem, x))
