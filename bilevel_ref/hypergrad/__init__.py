r"""Hypergradient estimators, usable on their own.

Each takes a (counted) problem, the point ``x`` and a lower-level iterate or
inner-solver state, and returns a :class:`Hypergradient`.  Exact
hypergradient (implicit function theorem, :math:`\nabla^2_{xy} g \in \mathbb{R}^{d_x\times d_y}`):

.. math::

    \nabla\varphi(x) = \nabla_x f(x, y^*) - \nabla^2_{xy} g(x, y^*)\,[\nabla^2_{yy} g(x, y^*)]^{-1} \nabla_y f(x, y^*).
"""
from .aid import aid_cg, aid_neumann
from .base import Hypergradient
from .exact import exact_hypergradient
from .itd import itd_hypergradient
from .finite_difference import (
    finite_difference_hypergradient,
    stencil,
    stencil_derivative,
    stencil_float,
    stencil_offsets,
)
from .penalty import PenaltyHessianOperator, penalty_gradient, penalty_hessian, penalty_inner_solve

__all__ = ["Hypergradient", "exact_hypergradient", "aid_cg", "aid_neumann",
           "itd_hypergradient", "penalty_gradient", "penalty_inner_solve", "penalty_hessian",
           "PenaltyHessianOperator", "stencil", "stencil_float", "stencil_offsets",
           "stencil_derivative", "finite_difference_hypergradient"]
