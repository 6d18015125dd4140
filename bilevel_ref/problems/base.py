r"""Problem protocols: :class:`BilevelProblem` and :class:`MinimaxProblem`.

A bilevel problem is

.. math::

    \min_x \varphi(x) = f(x, y^*(x)), \qquad y^*(x) = \arg\min_y g(x, y),

with :math:`g(x, \cdot)` strongly convex.  A minimax problem is
:math:`\min_x \max_y f(x, y)` with :math:`f(x, \cdot)` strongly concave; its
"hyper-objective" is :math:`P(x) = \max_y f(x, y)`.

Conventions (every problem, every method):

* arrays are 1-D float64, ``x`` of length ``dx`` and ``y`` of length ``dy``;
* second-order blocks are ``(Hxx, Hxy, Hyy)`` with ``Hxy`` of shape
  ``(dx, dy)``, i.e. :math:`\nabla^2_{xy} h \in \mathbb{R}^{d_x \times d_y}`;
* matrix-free products, each its own counted oracle kind:
  ``hvp_yy_h(x, y, v)`` = :math:`\nabla^2_{yy} h\, v`,
  ``hvp_xx_h(x, y, u)`` = :math:`\nabla^2_{xx} h\, u`,
  ``cross_h(x, y, v)`` = :math:`\nabla^2_{xy} h\, v` (an x-vector, "JVP"),
  ``cross_t_h(x, y, u)`` = :math:`\nabla^2_{yx} h\, u` (a y-vector);
* every oracle takes ``batch=None`` (full objective) or an integer index
  array (minibatch mean) for stochastic problems, which also set
  ``n_upper`` / ``n_lower`` and may override :meth:`sample`.

A subclass implements what it can.  The base class derives the matrix-free
products from dense Hessian blocks (fine for small problems) and dense blocks
from the matrix-free products (column by column, reference use only), but
never both ways round: an oracle that is neither implemented nor derivable
raises :class:`NotImplementedError` naming the problem.  :meth:`provides`
tells a method, before it starts, whether an oracle is available.
"""
from __future__ import annotations

import numpy as np

from .. import _kernels  # numba kernels, imported on first use

__all__ = ["BilevelProblem", "MinimaxProblem", "ORACLE_KINDS", "EXACT_ORACLES", "GRADIENT_BLOCKS"]

#: matrix-free product name -> (dense-block index, transpose?)
_PRODUCTS = {
    "hvp_xx": (0, False),
    "cross": (1, False),
    "cross_t": (1, True),
    "hvp_yy": (2, False),
}

#: One block of a gradient -> (the gradient oracle it is counted as, block index).
#: A problem overrides them when one block is cheaper than both (finite sums).
GRADIENT_BLOCKS = {"grad_x_f": ("grad_f", 0), "grad_y_f": ("grad_f", 1),
                   "grad_x_g": ("grad_g", 0), "grad_y_g": ("grad_g", 1)}

#: Counted oracle kinds of a bilevel problem, in the order results report them.
ORACLE_KINDS = (
    "f", "g", "grad_f", "grad_g", "hess_f", "hess_g",
    "hvp_yy_f", "hvp_yy_g", "hvp_xx_f", "hvp_xx_g",
    "cross_f", "cross_g", "cross_t_f", "cross_t_g",
)

#: Oracles (and closed forms) whose compiled twins a bilevel family provides: a subclass
#: overriding one of them in Python gets no compiled oracles (NumPy only).
COMPILED_BILEVEL = ("grad_f", "grad_g", "hess_f", "hess_g", "grad_x_f", "grad_y_f", "grad_x_g", "grad_y_g",
                    "hvp_yy_g", "cross_g", "y_star", "grad_phi", "hess_phi")
#: The same for a minimax family.
COMPILED_MINIMAX = ("grad_f", "hess_f", "grad_x_f", "grad_y_f", "grad_phi", "hess_phi")

#: Closed-form quantities; never counted (they are the truth used for metrics).
EXACT_ORACLES = ("y_star", "phi", "grad_phi", "hess_phi")


class _ProblemBase:
    """Shared machinery: names, dimensions, derivation of products, sampling."""

    #: Human-readable name used in messages; subclasses override.
    name = "problem"
    #: Number of samples of the upper (f) and lower (g) objectives, or None if
    #: the problem is not a finite sum.
    n_upper = None
    n_lower = None
    #: The functions (``"f"``, ``"g"``) this protocol has.
    _functions: tuple = ()

    dx: int
    dy: int

    def __init_subclass__(cls, **kwargs):
        # A class that overrides a whole gradient (grad_f, grad_g) but not its blocks gets the
        # protocol's blocks, which call that gradient, not a parent's own block formula: the
        # blocks must never bypass the override.
        super().__init_subclass__(**kwargs)
        for block, (gradient, _) in GRADIENT_BLOCKS.items():
            if gradient in cls.__dict__ and block not in cls.__dict__:
                for klass in cls.__mro__[1:]:
                    if klass.__module__ == __name__ and block in klass.__dict__:
                        setattr(cls, block, klass.__dict__[block])
                        break

    # -- discovery ---------------------------------------------------------
    def _overrides(self, name):
        """True if ``type(self)`` implements ``name`` itself (not the default)."""
        for klass in type(self).__mro__:
            if klass in (_ProblemBase, BilevelProblem, MinimaxProblem):
                return False
            if name in klass.__dict__:
                return True
        return False

    def provides(self, oracle):
        """Whether ``oracle`` (e.g. ``"hvp_yy_g"``, ``"hess_f"``, ``"grad_phi"``) is available.

        Matrix-free products count as available when the dense blocks are
        implemented, and dense blocks when all four products are.
        """
        if self._overrides(oracle):
            return True
        for fn in self._functions:
            if oracle == f"hess_{fn}":
                return all(self._overrides(f"{p}_{fn}") for p in _PRODUCTS)
            if any(oracle == f"{p}_{fn}" for p in _PRODUCTS):
                return self._overrides(f"hess_{fn}")
        if oracle in GRADIENT_BLOCKS:
            return self.provides(GRADIENT_BLOCKS[oracle][0])
        if oracle == "fused_g":
            return all(self.provides(k) for k in ("grad_g", "hvp_yy_g", "cross_g"))
        if oracle == "sample":
            return self.n_upper is not None or self.n_lower is not None
        return False

    def _missing(self, oracle):
        return NotImplementedError(
            f"problem {self.name!r} does not provide the oracle {oracle!r}"
        )

    def compiled_oracles(self):
        """Compiled (numba) oracles of this problem, or None (the default: NumPy only).

        A problem opts into ``backend="numba"`` by returning a
        :class:`bilevel_ref._kernels.oracles.CompiledOracles` (the convention
        is documented there).  ``backend="auto"`` uses them when present.
        """
        return None

    def _compiled_unless_overridden(self, family, names, build):
        """``build()`` if ``type(self)`` inherits the oracles ``names`` from ``family``
        unchanged, else None: a subclass that overrides an oracle in Python must not
        be bypassed by the family's compiled twin of it."""
        klass = type(self)
        if any(getattr(klass, name, None) is not getattr(family, name, None) for name in names):
            return None
        return build()

    def constants(self):
        """Known bounds such as ``{"mu_g": ..., "L_g": ..., "L_f": ...}`` (may be empty).

        Keys must come from :data:`~bilevel_ref.constants.CONSTANT_KEYS`; values
        are finite positive numbers.  A method that needs a constant the problem
        does not report estimates it with counted oracle calls (see
        :mod:`bilevel_ref.constants`).
        """
        return {}

    # -- sampling ----------------------------------------------------------
    def sample(self, rng, size, level):
        """Draw ``size`` distinct sample indices uniformly (Floyd's algorithm).

        Parameters
        ----------
        rng : numpy.random.Generator
            The run's generator (the only source of randomness).
        size : int
            Minibatch size (clipped to the number of samples).
        level : {"lower", "upper"}
            ``"lower"`` samples g's terms, ``"upper"`` f's terms.
        """
        n = {"lower": self.n_lower, "upper": self.n_upper}.get(level, "bad")
        if n == "bad":
            raise ValueError(f"level must be 'lower' or 'upper', got {level!r}")
        if n is None:
            raise NotImplementedError(
                f"problem {self.name!r} is not stochastic (no {level}-level samples)"
            )
        return _kernels.sampling.floyd_subset(rng.random(min(int(size), n)), n)

    # -- derivations between dense blocks and products ----------------------
    def _product(self, fn, kind, x, y, vec, batch):
        if not self._overrides(f"hess_{fn}"):
            raise self._missing(f"{kind}_{fn}")
        block, transpose = _PRODUCTS[kind]
        mat = getattr(self, f"hess_{fn}")(x, y, batch=batch)[block]
        return mat.T @ vec if transpose else mat @ vec

    def _dense_from_products(self, fn, x, y, batch):
        if not all(self._overrides(f"{p}_{fn}") for p in _PRODUCTS):
            raise self._missing(f"hess_{fn}")
        ex, ey = np.eye(self.dx), np.eye(self.dy)
        hxx = np.column_stack([getattr(self, f"hvp_xx_{fn}")(x, y, e, batch=batch) for e in ex])
        hxy = np.column_stack([getattr(self, f"cross_{fn}")(x, y, e, batch=batch) for e in ey])
        hyy = np.column_stack([getattr(self, f"hvp_yy_{fn}")(x, y, e, batch=batch) for e in ey])
        return hxx.reshape(self.dx, self.dx), hxy.reshape(self.dx, self.dy), hyy.reshape(self.dy, self.dy)

    # -- f: shared by both protocols ----------------------------------------
    def f(self, x, y, batch=None):
        """Value of f (upper level, or the minimax objective)."""
        raise self._missing("f")

    def grad_f(self, x, y, batch=None):
        """``(∇_x f, ∇_y f)``."""
        raise self._missing("grad_f")

    def hess_f(self, x, y, batch=None):
        """Dense blocks ``(∇²_xx f, ∇²_xy f, ∇²_yy f)``."""
        return self._dense_from_products("f", x, y, batch)

    def grad_x_f(self, x, y, batch=None):
        """``∇_x f`` alone (counted as one ``grad_f``); override when cheaper than both blocks."""
        return self.grad_f(x, y, batch=batch)[0]

    def grad_y_f(self, x, y, batch=None):
        """``∇_y f`` alone (counted as one ``grad_f``); override when cheaper than both blocks."""
        return self.grad_f(x, y, batch=batch)[1]

    def hvp_yy_f(self, x, y, v, batch=None):
        """``∇²_yy f · v``."""
        return self._product("f", "hvp_yy", x, y, v, batch)

    def hvp_xx_f(self, x, y, u, batch=None):
        """``∇²_xx f · u``."""
        return self._product("f", "hvp_xx", x, y, u, batch)

    def cross_f(self, x, y, v, batch=None):
        """``∇²_xy f · v`` (x-vector)."""
        return self._product("f", "cross", x, y, v, batch)

    def cross_t_f(self, x, y, u, batch=None):
        """``∇²_yx f · u`` (y-vector)."""
        return self._product("f", "cross_t", x, y, u, batch)

    # -- optional closed forms -------------------------------------------------
    def y_star(self, x):
        """Exact inner solution (lower-level minimiser / inner maximiser)."""
        raise self._missing("y_star")

    def phi(self, x):
        """Exact hyper-objective φ(x) (P(x) for minimax)."""
        raise self._missing("phi")

    def grad_phi(self, x):
        """Exact ∇φ(x)."""
        raise self._missing("grad_phi")

    def hess_phi(self, x):
        """Exact ∇²φ(x)."""
        raise self._missing("hess_phi")

    def __repr__(self):
        return f"<{type(self).__name__} {self.name!r} dx={self.dx} dy={self.dy}>"


class BilevelProblem(_ProblemBase):
    """Protocol for ``min_x f(x, y*(x))``, ``y*(x) = argmin_y g(x, y)``.

    Subclass it and implement at least ``f``/``g`` values and gradients; add
    dense Hessian blocks (``hess_f``, ``hess_g``) and/or the matrix-free
    products for second-order methods.  Set ``dx``, ``dy`` and ``name``.
    """

    name = "bilevel problem"
    _functions = ("f", "g")

    def g(self, x, y, batch=None):
        """Value of the lower-level objective g."""
        raise self._missing("g")

    def grad_g(self, x, y, batch=None):
        """``(∇_x g, ∇_y g)``."""
        raise self._missing("grad_g")

    def hess_g(self, x, y, batch=None):
        """Dense blocks ``(∇²_xx g, ∇²_xy g, ∇²_yy g)``."""
        return self._dense_from_products("g", x, y, batch)

    def grad_x_g(self, x, y, batch=None):
        """``∇_x g`` alone (counted as one ``grad_g``); override when cheaper than both blocks."""
        return self.grad_g(x, y, batch=batch)[0]

    def grad_y_g(self, x, y, batch=None):
        """``∇_y g`` alone (counted as one ``grad_g``); override when cheaper than both blocks."""
        return self.grad_g(x, y, batch=batch)[1]

    def hvp_yy_g(self, x, y, v, batch=None):
        """``∇²_yy g · v``."""
        return self._product("g", "hvp_yy", x, y, v, batch)

    def hvp_xx_g(self, x, y, u, batch=None):
        """``∇²_xx g · u``."""
        return self._product("g", "hvp_xx", x, y, u, batch)

    def cross_g(self, x, y, v, batch=None):
        """``∇²_xy g · v`` (x-vector)."""
        return self._product("g", "cross", x, y, v, batch)

    def cross_t_g(self, x, y, u, batch=None):
        """``∇²_yx g · u`` (y-vector)."""
        return self._product("g", "cross_t", x, y, u, batch)

    def fused_g(self, x, y, v, batch=None):
        """``(∇_y g, ∇²_yy g·v, ∇²_xy g·v)`` at (x, y) on one batch.

        Single-loop methods (SOBA, ...) need exactly these three at the same
        point and vector.  The default makes three separate calls; a problem
        whose data can be read once for all three overrides it.  The counter
        counts one ``grad_g``, one ``hvp_yy_g`` and one ``cross_g`` either way.
        """
        return (self.grad_g(x, y, batch=batch)[1], self.hvp_yy_g(x, y, v, batch=batch),
                self.cross_g(x, y, v, batch=batch))


class MinimaxProblem(_ProblemBase):
    """Protocol for ``min_x max_y f(x, y)`` with f strongly concave in y.

    Same oracles as the f-part of :class:`BilevelProblem`; the optional
    closed forms are ``y_star`` (inner maximiser), ``phi`` (P(x) = max_y f),
    ``grad_phi`` and ``hess_phi``.
    """

    name = "minimax problem"
    _functions = ("f",)
