r"""Iterative differentiation (ITD): reverse mode through T inner gradient steps.

Forward: :math:`y_{t+1} = y_t - \alpha\nabla_y g(x, y_t)`, t = 0..T−1.
Backward (exact derivative of :math:`x \mapsto f(x, y_T(x))`):
:math:`v_T = \nabla_y f(x, y_T)`, :math:`d = \nabla_x f(x, y_T)`; for t = T−1..0:
:math:`d \leftarrow d - \alpha J(x, y_t) v_{t+1}`,
:math:`v_t = v_{t+1} - \alpha H(x, y_t) v_{t+1}`.
With ``truncate=K`` only the last K steps are differentiated.
Memory O(T·dy). Cost: T ``grad_g``, 1 ``grad_f``, min(T, K) ``hvp_yy_g`` and ``cross_g``
(the last ``hvp_yy_g`` of the backward pass is not needed and not computed).

References
----------
D. Maclaurin, D. Duvenaud, R. Adams, "Gradient-based hyperparameter
optimization through reversible learning", ICML 2015.
L. Franceschi, M. Donini, P. Frasconi, M. Pontil, "Forward and reverse
gradient-based hyperparameter optimization", ICML 2017.
"""
from __future__ import annotations

from .base import Hypergradient

__all__ = ["itd_hypergradient"]


def itd_hypergradient(problem, x, y0, steps, alpha, truncate=None, batch_f=None, batch_g=None,
                      backend="numpy"):
    """ITD hypergradient through ``steps`` GD steps of size ``alpha`` from ``y0``.

    ``backend="numba"`` (full batches): forward and reverse pass in one kernel
    over the problem's compiled oracles (:mod:`bilevel_ref._kernels.oracles`),
    same counts.
    """
    first = 0 if truncate is None else max(0, steps - truncate)
    if backend == "numba" and batch_f is None and batch_g is None:
        from .._kernels import loops

        out = loops.itd(problem, problem.compiled_oracles(), x, y0, steps, alpha, truncate)
        if out is not None:
            return Hypergradient(d=out[1], y=out[0], info={"n_hvp": max(steps - first - 1, 0)})
    ys = [y0]
    for _ in range(steps):
        ys.append(ys[-1] - alpha * problem.grad_y_g(x, ys[-1], batch=batch_g))
    d, v = problem.grad_f(x, ys[-1], batch=batch_f)
    for t in range(steps - 1, first - 1, -1):
        d = d - alpha * problem.cross_g(x, ys[t], v, batch=batch_g)
        if t > first:
            v = v - alpha * problem.hvp_yy_g(x, ys[t], v, batch=batch_g)
    return Hypergradient(d=d, y=ys[-1], info={"n_hvp": max(steps - first - 1, 0)})
