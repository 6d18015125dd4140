"""Method options: the :class:`Option` type and the library's one option vocabulary.

Every method builds its options from the factories below wherever the quantity
exists, so the same quantity has the same name everywhere; the paper's symbol
goes into the option's doc text.

=================  ==========================================================
``tol``            target accuracy ‖∇φ(x)‖ ≤ tol (all methods); the parameters
                   left at None are derived from it
``step_x``         upper-level (x) step size
``step_y``         lower-level (y) step size
``step_v``         step of the linear-system variable v ≈ [∇²_yy g]⁻¹∇_y f
``inner_steps``    lower-level (y) iterations per outer iteration
``linsys_steps``   linear-system iterations (CG, Neumann terms, SGD steps on v)
``linsys_rtol``    relative residual tolerance of the linear-system solver
``period``         lazy refresh period (Hessian reuse, second-order refresh)
``momentum``       momentum weight (0: none)
``schedule``       step-size schedule (``'constant'`` or ``'sqrt'``)
``backend``        where the hot loops run (``'numpy'``, ``'numba'``, ``'auto'``)
=================  ==========================================================

Options renamed in 0.1.0 raise :class:`~bilevel_ref.exceptions.OptionError`
naming the new option (:data:`RENAMED`; per-method entries in ``Solver.renamed``).
"""
from __future__ import annotations

import numbers

import numpy as np

from ._validation import as_vector, check_int

__all__ = ["Option", "RENAMED", "step_x", "step_y", "step_v", "inner_steps", "linsys_steps",
           "linsys_rtol", "period", "momentum", "schedule", "backend", "constant", "VOCABULARY"]


class Option:
    """A documented, validated method option.

    Build them with the class methods (:meth:`real`, :meth:`integer`,
    :meth:`boolean`, :meth:`choice`, :meth:`vector`, :meth:`any`); each
    validates a user value and names the option in its error.
    """

    def __init__(self, default, doc, validate):
        self.default = default
        self.doc = doc
        self._validate = validate

    def validate(self, name, value):
        return self._validate(f"options[{name!r}]", value)

    @classmethod
    def real(cls, default, doc, *, low=None, high=None, strict=True, allow_none=False):
        """A real number in ``(low, high]`` (``[low, high]`` if ``strict=False``)."""

        def check(name, value):
            if value is None and allow_none:
                return None
            if isinstance(value, bool) or not isinstance(value, numbers.Real):
                raise TypeError(f"{name} must be a real number, got {type(value).__name__} {value!r}")
            value = float(value)
            if not np.isfinite(value):
                raise ValueError(f"{name} must be finite, got {value!r}")
            if low is not None and (value <= low if strict else value < low):
                raise ValueError(f"{name} must be {'>' if strict else '>='} {low}, got {value!r}")
            if high is not None and value > high:
                raise ValueError(f"{name} must be <= {high}, got {value!r}")
            return value

        return cls(default, doc, check)

    @classmethod
    def integer(cls, default, doc, *, low=None, high=None, allow_none=False):
        """An integer in ``[low, high]``."""

        def check(name, value):
            if value is None and allow_none:
                return None
            return check_int(value, name, minimum=low, maximum=high)

        return cls(default, doc, check)

    @classmethod
    def boolean(cls, default, doc):
        def check(name, value):
            if not isinstance(value, (bool, np.bool_)):
                raise TypeError(f"{name} must be True or False, got {value!r}")
            return bool(value)

        return cls(default, doc, check)

    @classmethod
    def choice(cls, default, choices, doc):
        choices = tuple(choices)

        def check(name, value):
            if not isinstance(value, str):
                raise TypeError(f"{name} must be one of {list(choices)}, got {value!r}")
            if value not in choices:
                raise ValueError(f"{name} must be one of {list(choices)}, got {value!r}")
            return value

        return cls(default, doc, check)

    @classmethod
    def vector(cls, doc):
        """An optional starting vector; its length is checked by the solver."""

        def check(name, value):
            return None if value is None else as_vector(value, name)

        return cls(None, doc, check)

    @classmethod
    def any(cls, default, doc, check=None):
        return cls(default, doc, check or (lambda name, value: value))


def _doc(what, symbol, more):
    text = what + (f" ({symbol} in the paper)" if symbol else "")
    return text + (f"; {more}" if more else ".")


def step_x(default, symbol=None, more=None):
    """Upper-level step size."""
    return Option.real(default, _doc("Upper-level (x) step size", symbol, more), low=0,
                       allow_none=default is None)


def step_y(default, symbol=None, more=None):
    """Lower-level step size."""
    return Option.real(default, _doc("Lower-level (y) step size", symbol, more), low=0,
                       allow_none=default is None)


def step_v(default, symbol=None, more=None):
    """Step of the linear-system variable."""
    return Option.real(default, _doc("Step of the linear-system variable v ≈ [∇²_yy g]⁻¹∇_y f",
                                     symbol, more), low=0, allow_none=default is None)


def inner_steps(default, symbol=None, more=None, *, low=1):
    """Lower-level iterations per outer iteration."""
    return Option.integer(default, _doc("Lower-level (y) iterations per outer iteration", symbol, more),
                          low=low, allow_none=default is None)


def linsys_steps(default, symbol=None, more=None, *, low=0):
    """Iterations of the linear-system solver."""
    return Option.integer(default, _doc("Linear-system iterations per outer iteration (CG "
                                        "iterations, Neumann terms or steps on v)", symbol, more),
                          low=low, allow_none=default is None)


def linsys_rtol(default, symbol=None, more=None):
    """Relative residual tolerance of the linear-system solver."""
    return Option.real(default, _doc("Relative residual tolerance of the linear-system solver "
                                     "(early stop)", symbol, more), low=0, strict=False)


def _check_period(name, value):
    """None or an integer ≥ 1; non-integers are a ValueError."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be an integer >= 1, got {type(value).__name__} {value!r}")
    if not isinstance(value, numbers.Integral):
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    if value < 1:
        raise ValueError(f"{name} must be >= 1, got {value!r}")
    return int(value)


def period(default, symbol=None, more=None):
    """Lazy refresh period (None allowed when the method has a problem-dependent default)."""
    opt = Option.any(default, _doc("Lazy refresh period: second-order information is recomputed "
                                   "every this many iterations", symbol, more), _check_period)
    return opt


def momentum(default, symbol=None, more=None):
    """Momentum weight in [0, 1] (0: no momentum)."""
    return Option.real(default, _doc("Momentum weight in [0, 1] (0: no momentum)", symbol, more),
                       low=0, high=1, strict=False)


def schedule(default="constant"):
    """Step-size schedule shared by the single-loop methods."""
    return Option.choice(default, ("constant", "sqrt"),
                         "Step schedule: 'constant' keeps every step fixed; 'sqrt' multiplies them "
                         "by 1/sqrt(t+1) (benchopt's c/(t+1)^(1/2)).")


def backend(default="auto"):
    """Where a method's hot loops run: ``"numpy"`` (the reference), ``"numba"`` or ``"auto"``."""
    return Option.choice(default, ("auto", "numpy", "numba"),
                         "Where the hot loops run: 'numpy' (the reference), 'numba' (compiled kernels over "
                         "the problem's compiled oracles, bilevel_ref._kernels.oracles; same counts and "
                         "iterates to rounding; a ValueError if the problem has none) or 'auto' (numba "
                         "when the problem provides compiled oracles, else numpy).")


def constant(key):
    """Option overriding the problem constant ``key`` (see :mod:`bilevel_ref.constants`)."""
    from .constants import CONSTANT_KEYS

    return Option.real(None, f"{CONSTANT_KEYS[key][0].upper()}{CONSTANT_KEYS[key][1:]} (default: "
                       "problem.constants(), else a counted estimate at the starting point; "
                       "reported in res.constants).", low=0, allow_none=True)


#: The vocabulary: option name -> what it means (for docs and ``compare``).
VOCABULARY = {
    "tol": "target accuracy ‖∇φ‖ ≤ tol; parameters left at None are derived from it",
    "step_x": "upper-level (x) step size",
    "step_y": "lower-level (y) step size",
    "step_v": "step of the linear-system variable v",
    "inner_steps": "lower-level iterations per outer iteration",
    "linsys_steps": "linear-system iterations per outer iteration",
    "linsys_rtol": "relative residual tolerance of the linear-system solver",
    "period": "lazy refresh period",
    "momentum": "momentum weight (0: none)",
    "schedule": "step-size schedule",
    "backend": "where the hot loops run (numpy, numba, auto)",
}

#: Old option names of 0.1.0.dev0 that mean the same thing in every method that had them.
RENAMED = {
    "hvp_steps": "linsys_steps", "neumann_steps": "linsys_steps", "hvp_inner_steps": "linsys_steps",
    "cg_rtol": "linsys_rtol", "hvp_inner_tol": "linsys_rtol",
    "n_inner": "inner_steps", "T": "inner_steps",
    "m": "period", "N": "period",
    "theta": "momentum (= 1 - theta)", "mu": "momentum (= 1 - mu)",
    "step_z": "step_v", "gamma": "step_v", "alpha": "step_x",
    "step_size": "step_y and step_v (the base step c)", "outer_ratio": "step_x (= c / outer_ratio)",
    "hvp_inner_solver": "linsys_solver", "hvp_warm_start": "linsys_warm_start",
}
