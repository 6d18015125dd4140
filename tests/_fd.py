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
