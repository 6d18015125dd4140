r"""The compiled-oracle convention: how a problem opts into ``backend="numba"``.

A method's hot loop (the inner AGD loops of FSBA on :math:`f + \lambda g` and on
:math:`g`, AID's lower-level steps and conjugate gradients, ITD's unrolled
steps, ...) runs in one numba kernel when the problem provides *compiled
oracles*: ``problem.compiled_oracles()`` returns a :class:`CompiledOracles`
(the default, :meth:`bilevel_ref.BilevelProblem.compiled_oracles`, returns
None: NumPy only).

Convention
----------
Every field but ``data`` is a ``numba.njit`` function (library code compiles
them through :func:`bilevel_ref._jit.jit`, ``cache=True``):

================  ===========================  ===================================
field             signature                    returns
================  ===========================  ===================================
``grad_x_f``      ``(x, y, data)``             :math:`\nabla_x f(x, y)`, shape (dx,)
``grad_y_f``      ``(x, y, data)``             :math:`\nabla_y f(x, y)`, shape (dy,)
``hess_f``        ``(x, y, data)``             ``(Hxx, Hxy, Hyy)`` dense blocks of f
``grad_x_g``      ``(x, y, data)``             :math:`\nabla_x g(x, y)`
``grad_y_g``      ``(x, y, data)``             :math:`\nabla_y g(x, y)`
``hess_g``        ``(x, y, data)``             ``(Hxx, Hxy, Hyy)`` of g (``Hxy``: dx × dy)
``hvp_yy_g``      ``(x, y, v, data)``          :math:`\nabla^2_{yy} g(x, y)\,v`
``cross_g``       ``(x, y, v, data)``          :math:`\nabla^2_{xy} g(x, y)\,v` (an x-vector)
``grad_phi``      ``(x, data)``                closed form :math:`\nabla\varphi(x)` (reference drivers)
``hess_phi``      ``(x, data)``                closed form :math:`\nabla^2\varphi(x)`
================  ===========================  ===================================

* ``data`` is a tuple of arrays and numbers holding the problem's constant data
  (never x or y), passed unchanged to every call, so a kernel never calls back
  into Python.  Arrays are C-contiguous float64 (store transposes that the
  oracles multiply with, e.g. ``KT = K.T.copy()``).
* Minimax problems (``min_x max_y f``) give the three f fields only; a field a
  problem cannot give is None, and a method needing it refuses
  ``backend="numba"`` with a :class:`ValueError` naming it.
* The penalised gradient :math:`\nabla_y(f + \lambda g)` of FSBA/F2BA is
  formed inside the kernels from ``grad_y_f`` and ``grad_y_g`` in the
  reference's order, ``grad_y_f + lam * grad_y_g``
  (:func:`penalised_grad_y` compiles it on its own).
* Each compiled oracle must compute what the problem's NumPy oracle computes
  (the tests require agreement to 1e-12 relative, and with finite
  differences); evaluating it has no side effects.

Counting
--------
A kernel returns how many calls of each kind it made; its caller reports them
through :meth:`bilevel_ref.OracleCounter.count` so that ``res.oracle_calls``
is the same on both backends (``grad_x_f``/``grad_y_f`` count as ``grad_f``,
as the NumPy blocks do).  When a budget may not hold a whole kernel, when a
kernel's results are not finite, or when a factorisation in it fails, the
caller runs the NumPy reference instead (same counts, same error and message).

Kernels taking a jitted function as an *argument* pay numba's dispatch on
every call (~5 µs per function argument); the method kernels of
:mod:`bilevel_ref._kernels.loops` are therefore compiled once per
:class:`CompiledOracles` with the oracles bound as constants, and cached on
disk under a key that describes the bound oracles by module, name, bytecode
and source file (``jit(cache="closure")`` of :mod:`bilevel_ref._jit`): a new
process loads them instead of compiling again.

The older, lower-level-only convention ``numba_lower_oracles(x) -> (grad_fn,
hvp_fn, params)`` of the stand-alone AGD and CG kernels
(``bilevel_ref._kernels.agd.lower_oracles``) keeps working unchanged.

Implemented by :class:`~bilevel_ref.problems.quadratic.QuadraticBilevel`,
:class:`~bilevel_ref.problems.quadratic.QuarticQuadraticBilevel`,
:class:`~bilevel_ref.problems.quadratic.QuadraticMinimax`,
:class:`~bilevel_ref.problems.minimax.DoubleWellMinimax` and the worst-case
instances :class:`~bilevel_ref.problems.hard.ShiftLiftedBilevel` (hard-cubic,
hard-gd, hard-ramp, hard-chain) and
:class:`~bilevel_ref.problems.hard.LiftedMinimax` (hard-cubic-minimax); their
oracles are in :mod:`bilevel_ref._kernels.problems`.  A subclass that overrides
one of its family's NumPy oracles gets None (NumPy only) unless it provides
compiled oracles of its own.

This module imports no numba.
"""
from __future__ import annotations

from typing import Callable, NamedTuple, Optional

from .. import _jit

__all__ = ["CompiledOracles", "FIELDS", "resolve_backend", "BACKENDS", "penalised_grad_y"]

#: Values of the ``backend`` option.
BACKENDS = ("auto", "numpy", "numba")


class CompiledOracles(NamedTuple):
    """A problem's compiled oracles (module docstring); unused fields stay None."""

    data: tuple
    grad_x_f: Callable
    grad_y_f: Callable
    hess_f: Optional[Callable] = None
    grad_x_g: Optional[Callable] = None
    grad_y_g: Optional[Callable] = None
    hess_g: Optional[Callable] = None
    hvp_yy_g: Optional[Callable] = None
    cross_g: Optional[Callable] = None
    grad_phi: Optional[Callable] = None
    hess_phi: Optional[Callable] = None


#: Oracle fields of :class:`CompiledOracles` (every field but ``data``).
FIELDS = CompiledOracles._fields[1:]


def resolve_backend(problem, backend, needs, *, what="this method", deterministic=True):
    """The backend a run uses: ``"numpy"`` or ``"numba"``.

    Parameters
    ----------
    problem : problem or OracleCounter
    backend : {"auto", "numpy", "numba"}
        ``"auto"``: numba when the problem provides compiled oracles with every
        field in ``needs``, the run is deterministic and compilation is on
        (:func:`bilevel_ref._jit.enabled`); numpy otherwise.
    needs : tuple of str
        :class:`CompiledOracles` fields the method's kernels call.
    what : str
        Named in the error.
    deterministic : bool
        False for a minibatch run (no kernels).

    Raises
    ------
    ValueError
        ``backend="numba"`` when the problem provides no compiled oracles (or
        not the fields in ``needs``), or for a minibatch run.
    """
    if backend not in BACKENDS:
        raise ValueError(f"options['backend'] must be one of {list(BACKENDS)}, got {backend!r}")
    if backend == "numpy":
        return "numpy"
    oracles = problem.compiled_oracles()
    missing = None
    if oracles is None:
        missing = ("problem {name!r} provides no compiled oracles: backend='numba' needs "
                   "problem.compiled_oracles() to return a bilevel_ref._kernels.oracles.CompiledOracles "
                   "(the jitted-oracle convention)")
    elif not isinstance(oracles, CompiledOracles):
        missing = (f"problem {{name!r}}: compiled_oracles() must return a "
                   f"bilevel_ref._kernels.oracles.CompiledOracles, got {type(oracles).__name__}")
    else:
        absent = [field for field in needs if getattr(oracles, field) is None]
        if absent:
            missing = (f"problem {{name!r}}: the compiled oracles lack {absent}, which {what} calls with "
                       "backend='numba' (jitted-oracle convention, bilevel_ref._kernels.oracles)")
    if backend == "auto":
        return "numba" if missing is None and deterministic and _jit.enabled() else "numpy"
    if missing is not None:
        raise ValueError("options['backend'] = 'numba': " + missing.format(name=problem.name))
    if not deterministic:
        raise ValueError("options['backend'] = 'numba' runs deterministic mode only "
                         "(options['batch_size'] = None); minibatch runs use backend='numpy'")
    return "numba"


_PENALISED = {}


def penalised_grad_y(oracles):
    """The compiled ``(x, y, lam, data) -> ∇_y f + lam ∇_y g`` of ``oracles`` (one compilation each)."""
    key = (oracles.grad_y_f, oracles.grad_y_g)
    if key not in _PENALISED:
        grad_y_f, grad_y_g = key

        @_jit.jit(cache=False)
        def grad(x, y, lam, data):
            return grad_y_f(x, y, data) + lam * grad_y_g(x, y, data)

        _PENALISED[key] = grad
    return _PENALISED[key]
