"""Problem wrappers that change what oracles cost, not what they return.

:class:`SecondOrderCost` makes every second-order product (Hessian-vector and
Jacobian-vector products, dense Hessian blocks) cost ``c`` times its own
evaluation, by evaluating it ``c`` times.  It models the regime SO-Lazy-BiO
targets, where a second-order product is several times dearer than a
gradient (autodiff through a network), so that wall-time comparisons of lazy
and non-lazy methods are honest on small synthetic problems.  Oracle counts
are unchanged: the counter sees one call.
"""
from __future__ import annotations

from .._validation import check_int
from .base import EXACT_ORACLES, BilevelProblem
from .base import ORACLE_KINDS as _KINDS

__all__ = ["SecondOrderCost", "WrapperMixin", "forward_oracle"]

_SECOND_ORDER = tuple(k for k in _KINDS if k.startswith(("hess_", "hvp_", "cross"))) + ("fused_g",)
_FORWARDED = tuple(k for k in _KINDS if k not in _SECOND_ORDER) + (
    "grad_x_f", "grad_y_f", "grad_x_g", "grad_y_g") + EXACT_ORACLES


class WrapperMixin:
    """Delegates the protocol to ``inner`` through its public members only:
    dimensions, sample counts, ``provides``, ``constants`` and ``sample``.
    Combine it with :class:`BilevelProblem` or :class:`MinimaxProblem` and add
    the oracles with :func:`forward_oracle` (or a wrapper of your own)."""

    def __init__(self, inner, name):
        self.inner = inner
        self.dx, self.dy = inner.dx, inner.dy
        self.n_lower, self.n_upper = inner.n_lower, inner.n_upper
        self.name = name

    def provides(self, oracle):
        return self.inner.provides(oracle)

    def constants(self):
        return self.inner.constants()

    def sample(self, rng, size, level):
        return self.inner.sample(rng, size, level)


def forward_oracle(name):
    """A method returning ``self.inner.<name>(...)`` unchanged."""
    def oracle(self, *args, **kwargs):
        return getattr(self.inner, name)(*args, **kwargs)

    oracle.__name__ = name
    return oracle


class SecondOrderCost(WrapperMixin, BilevelProblem):
    """``problem`` whose second-order oracles cost ``c`` evaluations each.

    Parameters
    ----------
    problem : BilevelProblem
        The wrapped problem; its results are returned unchanged.
    c : int
        Evaluations per second-order call (1: no extra cost).
    """

    def __init__(self, problem, c):
        if not isinstance(problem, BilevelProblem):
            raise TypeError(f"problem must be a BilevelProblem, got {type(problem).__name__}")
        self.c = check_int(c, "c", minimum=1)
        super().__init__(problem, f"{problem.name} (second-order cost x{self.c})")

    def __getattr__(self, attr):
        # public data of the wrapped problem (e.g. evaluate(), datasets)
        if attr.startswith("_") or attr == "inner":
            raise AttributeError(attr)
        return getattr(self.inner, attr)


def _repeated(name):
    def oracle(self, *args, **kwargs):
        method = getattr(self.inner, name)
        for _ in range(self.c - 1):
            method(*args, **kwargs)
        return method(*args, **kwargs)

    oracle.__name__ = name
    oracle.__doc__ = f"The wrapped ``{name}``, evaluated ``c`` times."
    return oracle


for _name in _FORWARDED:
    setattr(SecondOrderCost, _name, forward_oracle(_name))
for _name in _SECOND_ORDER:
    setattr(SecondOrderCost, _name, _repeated(_name))
del _name
