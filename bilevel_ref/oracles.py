"""Counting every oracle call: :class:`OracleCounter`.

Complexity claims are statements about oracle counts, so algorithms never
touch a problem directly: :func:`bilevel_ref.minimize` wraps it in an
:class:`OracleCounter`, which forwards each call, adds one to the count of
its kind (``grad_g``, ``hvp_yy_g``, ``cross_g``, ... one kind per protocol
oracle, plus ``samples`` for sample indices drawn) and enforces optional
budgets.  A call that would exceed a budget raises :class:`BudgetExhausted`
*before* it runs; ``minimize`` turns that into a clean stop with
``success=False``.

It also guards what a problem returns: on the first call of each oracle the
shapes (:data:`OUTPUT_SHAPES`: a scalar where a vector is due is a
``ValueError`` naming the oracle and the expected shape) and the dtype; on
every call the finiteness (a :class:`~bilevel_ref.exceptions.NonFiniteError`
naming the oracle, which ``minimize`` turns into status ``NONFINITE`` with the
iteration in the message).

The closed forms (``y_star``, ``phi``, ``grad_phi``, ``hess_phi``) are the
truth used for metrics and are deliberately *not* reachable through the
counter's oracle interface: use :attr:`OracleCounter.exact` (the wrapped
problem) for uncounted evaluations outside an algorithm's logic.
"""
from __future__ import annotations

import math

import numpy as np

from .exceptions import NonFiniteError
from .problems.base import EXACT_ORACLES, GRADIENT_BLOCKS, ORACLE_KINDS

__all__ = ["OracleCounter", "BudgetExhausted", "COUNT_KINDS", "OUTPUT_SHAPES"]

#: Every kind the counter reports: the protocol's oracles plus samples drawn.
COUNT_KINDS = ORACLE_KINDS + ("samples",)


class BudgetExhausted(RuntimeError):
    """Raised by :class:`OracleCounter` when a call would exceed a budget."""

    def __init__(self, kind, limit):
        self.kind = kind
        self.limit = limit
        what = "total oracle calls" if kind == "total" else f"{kind!r} calls"
        super().__init__(f"oracle budget exhausted: {what} limited to {limit}")


#: Output shapes of each oracle, in terms of ("x", "y") dimensions; () is a scalar.
OUTPUT_SHAPES = {
    "f": (), "g": (),
    "grad_f": (("x",), ("y",)), "grad_g": (("x",), ("y",)),
    "hess_f": (("x", "x"), ("x", "y"), ("y", "y")), "hess_g": (("x", "x"), ("x", "y"), ("y", "y")),
    "hvp_yy_f": ("y",), "hvp_yy_g": ("y",), "hvp_xx_f": ("x",), "hvp_xx_g": ("x",),
    "cross_f": ("x",), "cross_g": ("x",), "cross_t_f": ("y",), "cross_t_g": ("y",),
    "grad_x_f": ("x",), "grad_y_f": ("y",), "grad_x_g": ("x",), "grad_y_g": ("y",),
    "fused_g": (("y",), ("y",), ("x",)),
}


def _is_tuple_spec(spec):
    return bool(spec) and isinstance(spec[0], tuple)


def _finite(value):
    """True when every entry of ``value`` is finite.

    A sum is finite only if every term is, so a finite sum settles it (the
    common case, cheaply: a float64 vector by its dot product with itself,
    0.6 µs against 2.3 µs for ``np.add.reduce`` at d = 100; other small
    arrays summed as Python floats); a non-finite sum is checked entry by
    entry (an overflowing sum of finite entries is not an error).
    """
    if isinstance(value, np.ndarray):
        if value.ndim == 1 and value.dtype == np.float64:
            total = float(value.dot(value))
        elif value.size <= 64:
            total = sum(value.ravel().tolist())
        else:
            total = float(np.add.reduce(value, axis=None))
    else:
        total = float(value)
    return math.isfinite(total) or bool(np.isfinite(value).all())


def _counted(kind, name=None):
    name = kind if name is None else name

    def oracle(self, *args, **kwargs):
        self.count(kind, 1)
        return self._checked(name, getattr(self.exact, name)(*args, **kwargs))

    oracle.__name__ = name
    oracle.__doc__ = f"Counted call of the problem's ``{name}`` oracle (kind ``{kind}``)."
    return oracle


class OracleCounter:
    """Wrap a problem, count its oracle calls by kind and enforce budgets.

    Parameters
    ----------
    problem : BilevelProblem or MinimaxProblem
        Any object implementing the protocol.
    budget : dict, optional
        Maximum number of calls per kind, e.g. ``{"hess_g": 10}``; the key
        ``"total"`` limits the sum over oracle kinds (samples excluded).

    Attributes
    ----------
    counts : dict
        Calls so far by kind (every kind of :data:`COUNT_KINDS` present).
    exact : problem
        The wrapped problem, for uncounted access to closed forms.
    """

    def __init__(self, problem, budget=None):
        self.exact = problem
        self.counts = dict.fromkeys(COUNT_KINDS, 0)
        self.total = 0
        self.budget = self._check_budget(budget)
        self._constants = None
        self._shape_checked = set()
        self._tuple_output = {}  # oracle name -> returns a tuple of arrays (set with the shape check)
        self._compiled = None  # (problem.compiled_oracles(),) once asked

    @staticmethod
    def _check_budget(budget):
        if budget is None:
            return {}
        if not isinstance(budget, dict):
            raise TypeError(f"budget must be a dict of kind -> max calls, got {type(budget).__name__}")
        out = {}
        for kind, limit in budget.items():
            if kind not in COUNT_KINDS and kind != "total":
                raise ValueError(
                    f"budget has unknown oracle kind {kind!r}; known: {list(COUNT_KINDS) + ['total']}"
                )
            if isinstance(limit, bool) or not isinstance(limit, (int, float)) or not limit >= 0:
                raise ValueError(f"budget[{kind!r}] must be a number >= 0, got {limit!r}")
            out[kind] = limit
        return out

    # -- output guards -----------------------------------------------------
    def _expected(self, dims):
        return tuple(self.exact.dx if d == "x" else self.exact.dy for d in dims)

    def _check_part(self, name, value, dims, label):
        shape = self._expected(dims)
        arr = np.asarray(value)
        if arr.shape != shape:
            raise ValueError(f"problem {self.exact.name!r}: oracle {label} returned shape {arr.shape}, "
                             f"expected {shape}")
        if arr.dtype.kind not in "fiu":
            raise TypeError(f"problem {self.exact.name!r}: oracle {label} returned dtype {arr.dtype}, "
                            "expected real floating point")

    def _checked(self, name, out):
        """Guard an oracle's output: shapes and dtype on the first call of each
        oracle, finiteness on every call (a :class:`NonFiniteError` naming it)."""
        if name not in self._shape_checked:
            spec = OUTPUT_SHAPES[name]
            parts = tuple(out) if _is_tuple_spec(spec) else (out,)
            if _is_tuple_spec(spec):
                if not isinstance(out, (tuple, list)) or len(out) != len(spec):
                    raise ValueError(f"problem {self.exact.name!r}: oracle {name} must return a tuple of "
                                     f"{len(spec)} arrays, got {type(out).__name__}")
                for i, (part, dims) in enumerate(zip(parts, spec)):
                    self._check_part(name, part, dims, f"{name}[{i}]")
            else:
                self._check_part(name, out, spec, name)
            self._shape_checked.add(name)
            self._tuple_output[name] = _is_tuple_spec(spec)
        if self._tuple_output[name]:
            for part in out:
                if not _finite(part):
                    raise NonFiniteError(f"{name} returned non-finite values")
        elif not _finite(out):
            raise NonFiniteError(f"{name} returned non-finite values")
        return out

    def count(self, kind, n=1):
        """Count ``n`` calls of oracle ``kind`` (or ``n`` samples for ``"samples"``).

        The one way calls are counted: the counted oracles use it, and so do
        the compiled kernels (:mod:`bilevel_ref._kernels.oracles`), which
        report how many calls of each kind they made.  With a budget, a count
        that would exceed it raises :class:`BudgetExhausted` before anything
        is counted.
        """
        if self.budget:
            if self.counts[kind] + n > self.budget.get(kind, math.inf):
                raise BudgetExhausted(kind, self.budget[kind])
            if kind != "samples" and self.total + n > self.budget.get("total", math.inf):
                raise BudgetExhausted("total", self.budget["total"])
        self.counts[kind] += n
        if kind != "samples":
            self.total += n

    def fits_budget(self, calls):
        """Whether the calls ``{kind: n}``, made together, all fit in the budget.

        A compiled kernel runs a whole loop at once; its caller takes the NumPy
        path instead when the loop may not fit, so that a budget stops a run
        at exactly the same call on either backend.
        """
        if not self.budget:
            return True
        total = 0
        for kind, n in calls.items():
            if self.counts[kind] + n > self.budget.get(kind, math.inf):
                return False
            total += n
        return self.total + total <= self.budget.get("total", math.inf)

    def compiled_oracles(self):
        """The wrapped problem's compiled oracles (:mod:`bilevel_ref._kernels.oracles`), or None;
        built once per counter (a run), since a kernel call per iteration reuses them."""
        if self._compiled is None:
            self._compiled = (self.exact.compiled_oracles(),)
        return self._compiled[0]

    # -- forwarded, uncounted descriptors ---------------------------------
    @property
    def dx(self):
        return self.exact.dx

    @property
    def dy(self):
        return self.exact.dy

    @property
    def name(self):
        return self.exact.name

    @property
    def n_upper(self):
        return self.exact.n_upper

    @property
    def n_lower(self):
        return self.exact.n_lower

    def provides(self, oracle):
        return self.exact.provides(oracle)

    def constants(self):
        """The problem's ``constants()``, checked once (keys from
        :data:`~bilevel_ref.constants.CONSTANT_KEYS`, finite positive values)."""
        if self._constants is None:
            from .constants import check_constants

            self._constants = check_constants(self.exact.constants(), repr(self.exact.name))
        return dict(self._constants)

    def sample(self, rng, size, level):
        """Draw sample indices (counted under ``samples`` by the number drawn)."""
        idx = self.exact.sample(rng, size, level)
        self.count("samples", len(idx))
        return idx

    def fused_g(self, x, y, v, batch=None):
        """``(∇_y g, ∇²_yy g·v, ∇²_xy g·v)``, counted as one call of each kind."""
        self.count("grad_g", 1)
        self.count("hvp_yy_g", 1)
        self.count("cross_g", 1)
        return self._checked("fused_g", self.exact.fused_g(x, y, v, batch=batch))

    def __getattr__(self, attr):
        # Public, non-oracle attributes of the problem (e.g. its data or a
        # numba fast path) are forwarded; closed forms are not, so that an
        # algorithm cannot use the truth by accident.
        if attr.startswith("_") or attr in EXACT_ORACLES:
            raise AttributeError(
                f"{attr!r} is not available through the oracle counter"
                + (" (closed forms are uncounted truth: use counter.exact)" if attr in EXACT_ORACLES else "")
            )
        return getattr(self.exact, attr)

    def count_samples(self, n):
        """Count ``n`` samples a method selected itself (e.g. SABA's fixed minibatches)."""
        self.count("samples", int(n))

    def snapshot(self):
        """A copy of the counts, for histories."""
        return dict(self.counts)

    def __repr__(self):
        nonzero = {k: v for k, v in self.counts.items() if v}
        return f"<OracleCounter of {self.exact!r}: {nonzero}>"


for _kind in ORACLE_KINDS:
    setattr(OracleCounter, _kind, _counted(_kind))
for _name, (_kind, _) in GRADIENT_BLOCKS.items():   # one block of a gradient: counted as the gradient
    setattr(OracleCounter, _name, _counted(_kind, _name))
del _kind, _name
