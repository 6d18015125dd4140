r"""Check a problem's oracles against finite differences: :func:`check_problem`.

A bilevel method trusts its problem's derivatives; a wrong sign in a cross
block or a factor 2 in a Hessian-vector product does not crash anything, it
silently changes the hypergradient.  :func:`check_problem` compares every
oracle a problem :meth:`~bilevel_ref.BilevelProblem.provides` with central
finite differences of the oracle one order below, at one point ``(x, y)``:

* ``grad_f``, ``grad_g`` and the blocks ``grad_x_f`` ... against central
  differences of the values ``f``, ``g``;
* the dense blocks of ``hess_f``, ``hess_g`` against central differences of
  the gradient blocks (column :math:`j` of :math:`\nabla^2_{xy} h` is
  :math:`\partial \nabla_x h / \partial y_j`), and ``hvp_*``, ``cross_*``,
  ``cross_t_*`` against directional differences of the gradients along random
  directions; ``fused_g`` against its three parts;
* dense blocks against the matrix-free products, the symmetry of
  :math:`\nabla^2_{xx}` and :math:`\nabla^2_{yy}`;
* strong convexity of g in y (bilevel) or strong concavity of f in y
  (minimax) at the point, and the reported ``constants()`` against the
  measured spectrum (a reported ``L_g`` below :math:`\lambda_{\max}(\nabla^2_{yy} g)`
  or ``mu_g`` above :math:`\lambda_{\min}` is an error);
* the closed forms: ``y_star`` against the stationarity condition and a
  Newton solve of the inner problem, ``phi`` against :math:`f(x, y^*(x))`,
  ``grad_phi`` against differences of φ, ``hess_phi`` against differences of
  ``grad_phi``.

Second-order references are differences of *verified* gradients only: when a
gradient block fails its own check, the checks that would difference it are
reported as skipped (with the reason) instead of blaming a correct Hessian.
An oracle that raises, returns the wrong shape or dtype, or returns NaN gets
one FAIL row naming it and the reason; the checks that need it are skipped.

Steps and tolerances (``eps`` the machine epsilon of the problem's working
precision: the lowest precision among its outputs and its ``dtype``
attribute, if any):

* step :math:`h = \epsilon^{1/3}\max(1, \|z\|_\infty)` (divided by
  :math:`\|d\|_\infty` along a direction ``d``): it balances the truncation
  error :math:`O(h^2)` and the rounding error :math:`O(\epsilon/h)` of a central
  difference, both :math:`\approx\epsilon^{2/3}` (4e-11 in float64);
* comparisons with finite differences pass at relative error
  :math:`\le \epsilon^{1/3}` (6.1e-6 in float64): :math:`10^5` times the
  expected difference error, room for third derivatives much larger than the
  first, while a real bug (a factor, a sign, a transposition) is an O(1) error;
* comparisons of two exact computations (dense vs matrix-free, symmetry,
  ``fused_g`` vs its parts, closed forms vs a Newton solve) pass at
  :math:`\sqrt\epsilon` (1.5e-8 in float64);
* ``rtol`` replaces both;
* a comparison with finite differences that fails is repeated at steps h/8,
  h/64 and h/512: the O(h) error of a difference across a kink shrinks and
  passes, a bug's error does not.

Errors are normwise: :math:`\|a - b\|_\infty / \max(\|a\|_\infty, \|b\|_\infty, s)`
with a floor ``s`` at the rounding level of the differenced values
(:math:`100\,\epsilon\,\max|F| / (h\cdot\mathrm{tol})`), so that derivatives that vanish
exactly are not failed on rounding noise.  Dimensions above
:data:`FD_MAX_DIM` are differenced on a random subset of that many
coordinates (the table says so).

Command line: ``bilevel-ref check-problem MODULE:FACTORY`` (or
``python -m bilevel_ref.check MODULE:FACTORY``) prints the table and exits 0
if every check passes, 1 on any failure, 2 on bad usage.
"""
from __future__ import annotations

import argparse
import importlib
import importlib.util
import math
import os
import sys
from dataclasses import asdict, dataclass, field

import numpy as np

from ._text import dumps_json, format_table, json_safe, parse_assignments, safe_print
from .constants import _DENSE_MAX, _spectrum, check_constants
from .oracles import OUTPUT_SHAPES
from .problems.base import GRADIENT_BLOCKS, BilevelProblem, MinimaxProblem

__all__ = ["check_problem", "ProblemCheck", "CheckRow", "fd_step", "fd_gradient", "fd_jacobian",
           "fd_directional", "FD_MAX_DIM", "main"]

#: Largest dimension differenced coordinate by coordinate; above it a random subset of this size.
FD_MAX_DIM = 64
_EPS64 = float(np.finfo(np.float64).eps)
#: Step factors of the retries of a failing FD comparison (see ``_Checker.run``).
_RETRY_FACTORS = (1.0 / 8.0, 1.0 / 64.0, 1.0 / 512.0)
#: Rounding of an oracle's value relative to its magnitude, in units of eps (sums of many terms).
_ROUNDING = 100.0
#: shapes of the closed forms, in the notation of :data:`~bilevel_ref.oracles.OUTPUT_SHAPES`
_SHAPES = dict(OUTPUT_SHAPES, y_star=("y",), phi=(), grad_phi=("x",), hess_phi=("x", "x"))
_PARTS = {"grad": ("∇_x", "∇_y"), "hess": ("Hxx", "Hxy", "Hyy"),
          "fused_g": ("∇_y g", "∇²_yy g·v", "∇²_xy g·v")}
_BLOCK = {"xx": 0, "xy": 1, "yy": 2}
#: constants checked as upper bounds of a measured norm -> the check's text
_NORM_KEYS = {"L_f": "≥ measured ‖∇²_yy f‖", "L_xy": "≥ measured ‖∇²_xy g‖", "L_phi": "≥ measured ‖∇²φ(x)‖"}
#: matrix-free product -> (gradient block differenced, variable differenced along, dense block, transposed)
_PRODUCTS = {"hvp_yy": ("y", "y", "yy", False), "hvp_xx": ("x", "x", "xx", False),
             "cross": ("x", "y", "xy", False), "cross_t": ("y", "x", "xy", True)}
_MATH = {"hvp_yy": "∇²_yy {h}·v", "hvp_xx": "∇²_xx {h}·u", "cross": "∇²_xy {h}·v", "cross_t": "∇²_yx {h}·u"}


# ---------------------------------------------------------------------------
# central finite differences (public: the test suite uses them too)
# ---------------------------------------------------------------------------
def fd_step(z, direction=None, eps=_EPS64):
    r"""Central-difference step :math:`\epsilon^{1/3}\max(1, \|z\|_\infty) / \|d\|_\infty`.

    Parameters
    ----------
    z : array_like
        The point differenced at.
    direction : array_like, optional
        A direction ``d`` (default: coordinate directions, :math:`\|d\|_\infty = 1`).
    eps : float
        Machine epsilon of the working precision (default float64).
    """
    z = np.asarray(z, dtype=float)
    h = eps ** (1.0 / 3.0) * max(1.0, float(np.max(np.abs(z), initial=0.0)))
    if direction is not None:
        size = float(np.max(np.abs(np.asarray(direction, dtype=float)), initial=0.0))
        h = h / size if size > 0 else h
    return h


def _central(fun, z, directions, h):
    """Central differences of ``fun`` at ``z`` along ``directions`` (step ``h``):
    ``(list of derivatives, max |fun| over the evaluations)``."""
    cols, size = [], 0.0
    for d in directions:
        plus, minus = np.asarray(fun(z + h * d), dtype=float), np.asarray(fun(z - h * d), dtype=float)
        size = max(size, float(np.max(np.abs(plus), initial=0.0)), float(np.max(np.abs(minus), initial=0.0)))
        cols.append((plus - minus) / (2.0 * h))
    return cols, size


def _coordinate_directions(n, coords):
    eye = np.eye(n)
    return [eye[i] for i in coords]


def fd_gradient(fun, z, h=None, *, eps=_EPS64):
    """Central-difference gradient of a scalar function (step :func:`fd_step`)."""
    z = np.asarray(z, dtype=float)
    h = fd_step(z, eps=eps) if h is None else h
    return np.array(_central(fun, z, _coordinate_directions(z.size, range(z.size)), h)[0], dtype=float)


def fd_jacobian(fun, z, h=None, *, eps=_EPS64):
    """Central-difference Jacobian (rows: outputs, columns: coordinates of ``z``) of a vector function."""
    z = np.asarray(z, dtype=float)
    h = fd_step(z, eps=eps) if h is None else h
    return np.column_stack(_central(fun, z, _coordinate_directions(z.size, range(z.size)), h)[0])


def fd_directional(fun, z, v, h=None, *, eps=_EPS64):
    """Central difference of a vector function along ``v``: ≈ J(z) v."""
    z, v = np.asarray(z, dtype=float), np.asarray(v, dtype=float)
    h = fd_step(z, v, eps=eps) if h is None else h
    return _central(fun, z, [v], h)[0][0]


# ---------------------------------------------------------------------------
# the result
# ---------------------------------------------------------------------------
@dataclass(frozen=True)
class CheckRow:
    """One check: the oracle blamed, what was compared, the error, the tolerance and the verdict.

    ``verdict`` is ``"pass"``, ``"FAIL"`` or ``"skipped"``; ``error`` is the
    maximum relative error (``None`` where nothing was compared, e.g. a raising
    oracle or a skipped check); ``note`` gives the reason or the measured values.
    """

    oracle: str
    check: str
    error: float | None = None
    tolerance: float | None = None
    verdict: str = "pass"
    note: str = ""


@dataclass
class ProblemCheck:
    r"""Result of :func:`check_problem`: rows, verdict, table and JSON.

    Attributes
    ----------
    problem : str
        The problem's name.
    kind : str
        ``"bilevel"`` or ``"minimax"``.
    dx, dy : int
    x, y : ndarray
        The point checked at.
    seed : int
    eps, step, tol_fd, tol_exact : float
        Machine epsilon of the working precision, relative FD step
        :math:`\epsilon^{1/3}`, tolerances of FD and of exact comparisons.
    rows : list of CheckRow
    not_provided : list of str
        Protocol oracles the problem does not provide (nothing to check).
    """

    problem: str
    kind: str
    dx: int
    dy: int
    x: np.ndarray
    y: np.ndarray
    seed: int
    eps: float
    step: float
    tol_fd: float
    tol_exact: float
    rows: list = field(default_factory=list)
    not_provided: list = field(default_factory=list)

    @property
    def failures(self):
        """The rows with verdict FAIL."""
        return [r for r in self.rows if r.verdict == "FAIL"]

    @property
    def ok(self):
        """True iff no check failed."""
        return not self.failures

    @property
    def failed_oracles(self):
        """Sorted names of the oracles named by a failing row."""
        return sorted({name for r in self.failures for name in r.oracle.split(", ")})

    def to_table(self):
        """Plain-text report: a header, one line per check, a summary."""
        counts = {v: sum(r.verdict == v for r in self.rows) for v in ("pass", "FAIL", "skipped")}
        head = (f"check_problem: {self.problem!r} ({self.kind}, dx={self.dx}, dy={self.dy}), seed {self.seed}; "
                f"eps {self.eps:.1e}: FD step {self.step:.1e}·max(1,|z|), "
                f"tolerance {self.tol_fd:.1e} (FD) / {self.tol_exact:.1e} (exact)")
        cells = [[r.oracle, r.check, "-" if r.error is None else f"{r.error:.1e}",
                  "-" if r.tolerance is None else f"{r.tolerance:.1e}", r.verdict, r.note] for r in self.rows]
        headers = ["oracle", "check", "max rel. error", "tolerance", "verdict", "note"]
        for col in (0, 1, 4, 5):   # text columns left-aligned (format_table right-aligns)
            width = max([len(headers[col])] + [len(row[col]) for row in cells])
            headers[col] = headers[col].ljust(width)
            for row in cells:
                row[col] = row[col].ljust(width)
        body = "\n".join(line.rstrip() for line in format_table(headers, cells).splitlines())
        lines = [head, body]
        if self.not_provided:
            lines.append("not provided: " + ", ".join(self.not_provided))
        lines.append(f"{'OK' if self.ok else 'FAILED'}: {counts['pass']} passed, {counts['FAIL']} failed, "
                     f"{counts['skipped']} skipped"
                     + ("" if self.ok else f" (failing: {', '.join(self.failed_oracles)})"))
        return "\n".join(lines)

    def to_dict(self):
        """A JSON-ready dict (non-finite numbers as ``None``)."""
        out = {k: getattr(self, k) for k in ("problem", "kind", "dx", "dy", "seed", "eps", "step", "tol_fd",
                                             "tol_exact", "not_provided")}
        out.update(ok=self.ok, failed_oracles=self.failed_oracles, x=self.x, y=self.y,
                   rows=[asdict(r) for r in self.rows])
        return json_safe(out)

    def to_json(self, indent=1):
        """Strict JSON text of :meth:`to_dict`."""
        return dumps_json(self.to_dict(), indent=indent)

    def __str__(self):
        return self.to_table()


# ---------------------------------------------------------------------------
# the checker
# ---------------------------------------------------------------------------
class _Unavailable(Exception):
    """An oracle misbehaved (its FAIL row is already recorded)."""

    def __init__(self, oracle):
        super().__init__(oracle)
        self.oracle = oracle


class _Skip(Exception):
    """A check cannot run (the message says why)."""


def _inf_norm(a):
    return float(np.max(np.abs(a), initial=0.0))


def _rel(a, b, floor=0.0):
    """Normwise relative error ‖a − b‖∞ / max(‖a‖∞, ‖b‖∞, floor) (0 when both vanish)."""
    diff = _inf_norm(np.asarray(a) - np.asarray(b))
    scale = max(_inf_norm(a), _inf_norm(b), floor)
    return diff / scale if scale > 0 else (0.0 if diff == 0 else math.inf)


def _join(*notes):
    return "; ".join(n for n in notes if n)


def _sym(mat):
    return 0.5 * (mat + mat.T)


class _Checker:
    def __init__(self, problem, x, y, seed, rtol):
        self.p = problem
        self.dx, self.dy = problem.dx, problem.dy
        self.x, self.y = x, y
        self.rng = np.random.default_rng(seed)
        self.rtol = rtol
        self.rows = []
        self.broken = {}             # oracle -> reason
        self.verified = set()        # keys of checks passed ("grad_g:x", "hess_g:yy", "hvp_yy_g", ...)
        self.failed = set()          # keys of checks failed
        self.dtypes = set()
        self.cache = {}
        self.h_factor = 1.0
        self.kind = "minimax" if isinstance(problem, MinimaxProblem) else "bilevel"
        if not isinstance(problem, (BilevelProblem, MinimaxProblem)):
            self.kind = "bilevel" if self.provides("g") or self.provides("grad_g") else "minimax"
        self.functions = ("f", "g") if self.kind == "bilevel" else ("f",)
        self.inner = "g" if self.kind == "bilevel" else "f"   # the function of the inner problem
        self.sign = 1.0 if self.kind == "bilevel" else -1.0  # inner problem: minimise sign·inner
        self.set_precision(_EPS64)

    def set_precision(self, eps):
        self.eps = eps
        self.step = eps ** (1.0 / 3.0)
        self.tol_fd = self.step if self.rtol is None else self.rtol
        self.tol_exact = math.sqrt(eps) if self.rtol is None else self.rtol

    # -- rows ------------------------------------------------------------------
    def add(self, oracle, check, error=None, tol=None, verdict=None, note="", key=None):
        if verdict is None:
            verdict = "pass" if error is not None and error <= tol else "FAIL"
        self.rows.append(CheckRow(oracle, check, None if error is None else float(error),
                                  None if tol is None else float(tol), verdict, note))
        if key is not None:
            (self.verified if verdict == "pass" else self.failed if verdict == "FAIL" else set()).add(key)
        return verdict == "pass"

    def run(self, oracle, check, fn, key=None, fd=False):
        """Run ``fn() -> (error, tol, note[, verdict])`` as one row; oracle failures and skips become rows.

        ``fd``: a comparison with finite differences that fails at step h is tried again at h/8,
        h/64 and h/512 (with the error floor of step h).  A derivative bug gives the same error at
        every step; the O(h) error of a difference across a kink (a piecewise polynomial's knot)
        shrinks with h and passes.
        """
        try:
            error, tol, note, *verdict = fn()
            if fd and not error <= tol:
                first = error
                for factor in _RETRY_FACTORS:
                    self.h_factor = factor
                    error, tol, note, *verdict = fn()
                    if error <= tol:
                        note = _join(note, f"at step h/{round(1 / factor)} ({first:.1e} at h: a kink or large "
                                           "third derivatives)")
                        break
        except _Unavailable as exc:
            if exc.oracle != oracle:
                self.add(oracle, check, verdict="skipped", note=f"needs {exc.oracle}, which failed")
            return False
        except _Skip as exc:
            self.add(oracle, check, verdict="skipped", note=str(exc))
            return False
        finally:
            self.h_factor = 1.0
        return self.add(oracle, check, error, tol, verdict[0] if verdict else None, note=note, key=key)

    # -- guarded oracle calls ------------------------------------------------------
    def provides(self, name):
        try:
            return bool(self.p.provides(name))
        except Exception as exc:  # noqa: BLE001 - a user's provides() may raise anything
            if "provides" not in self.broken:
                self.broken["provides"] = f"raised {type(exc).__name__}: {exc}"
                self.add("provides", f"provides({name!r})", verdict="FAIL", note=self.broken["provides"])
            return False

    def fail_oracle(self, name, reason):
        self.broken[name] = reason
        self.add(name, "output", verdict="FAIL", note=reason)
        raise _Unavailable(name)

    def call(self, name, *args):
        """``problem.<name>(*args)`` validated (shape, dtype, finite) as float64; a misbehaving
        oracle gets its FAIL row (once) and raises :class:`_Unavailable`."""
        if name in self.broken:
            raise _Unavailable(name)
        try:
            out = getattr(self.p, name)(*args)
        except Exception as exc:  # noqa: BLE001 - any error of the user's code is a verdict
            self.fail_oracle(name, f"raised {type(exc).__name__}: {exc}")
        spec = _SHAPES[name]
        if spec and isinstance(spec[0], tuple):
            if not isinstance(out, (tuple, list)) or len(out) != len(spec):
                self.fail_oracle(name, f"returned {type(out).__name__}, expected a tuple of {len(spec)} arrays")
            labels = _PARTS.get(name, _PARTS.get(name.split("_")[0]))
            parts = [self.validate(name, part, dims, f"{name} {label}")
                     for part, dims, label in zip(out, spec, labels)]
            return tuple(parts)
        arr = self.validate(name, out, spec, name)
        return float(arr) if spec == () else arr

    def validate(self, name, value, dims, label):
        shape = tuple(self.dx if d == "x" else self.dy for d in dims)
        if value is None:
            self.fail_oracle(name, f"{label} returned None")
        try:
            arr = np.asarray(value)
        except Exception as exc:  # noqa: BLE001
            self.fail_oracle(name, f"{label}: not an array ({type(exc).__name__}: {exc})")
        if arr.shape != shape:
            self.fail_oracle(name, f"{label} has shape {arr.shape}, expected {shape}")
        if arr.dtype.kind not in "fiu":
            self.fail_oracle(name, f"{label} has dtype {arr.dtype}, expected real floating point")
        if not np.isfinite(arr).all():
            what = "NaN" if np.isnan(arr).any() else "inf"
            self.fail_oracle(name, f"{label} returned {what} (non-finite values)")
        if arr.dtype.kind == "f":
            self.dtypes.add(arr.dtype)
        return arr.astype(np.float64)

    # -- points, directions, references ---------------------------------------------
    def point(self, var):
        return self.x if var == "x" else self.y

    def dim(self, var):
        return self.dx if var == "x" else self.dy

    def coords(self, var):
        """Coordinates differenced along ``var`` (all, or a random subset above FD_MAX_DIM)."""
        key = ("coords", var)
        if key not in self.cache:
            n = self.dim(var)
            self.cache[key] = (np.arange(n) if n <= FD_MAX_DIM
                               else np.sort(self.rng.choice(n, FD_MAX_DIM, replace=False)))
        return self.cache[key]

    def subset_note(self, var):
        n = self.dim(var)
        return "" if n <= FD_MAX_DIM else f"on {FD_MAX_DIM} random {var}-coordinates of {n}"

    def direction(self, var):
        key = ("dir", var)
        if key not in self.cache:
            d = self.rng.standard_normal(self.dim(var))
            self.cache[key] = d / _inf_norm(d)
        return self.cache[key]

    def at(self, var, t):
        """(x, y) with ``var`` replaced by ``t``."""
        return (t, self.y) if var == "x" else (self.x, t)

    def h(self, z, direction=None):
        """The FD step at ``z`` (along ``direction``), times the retry factor."""
        return fd_step(z, direction, eps=self.eps) * self.h_factor

    def floor(self, size, z, tol):
        """Rounding-level floor of an FD comparison: its noise 100·eps·max|F|/h over tol (h the first
        step, also in retries at smaller steps: a retry may not loosen the comparison)."""
        return _ROUNDING * self.eps * size / (fd_step(z, eps=self.eps) * tol)

    def fd_values(self, fn, var):
        """Central differences of the value ``fn`` along the coordinates of ``var``: (derivative, max|fn|)."""
        key = ("fdv", fn, var, self.h_factor)
        if key not in self.cache:
            z = self.point(var)
            cols, size = _central(lambda t: self.call(fn, *self.at(var, t)), z,
                                  _coordinate_directions(z.size, self.coords(var)), self.h(z))
            self.cache[key] = (np.array(cols), size)
        return self.cache[key]

    def gradient_source(self, fn, block):
        """A verified oracle for the ``block`` part of ∇fn: ``(label, t -> ∇_block fn at t)``."""
        index = 0 if block == "x" else 1
        if f"grad_{fn}:{block}" in self.verified:
            return lambda x, y: self.call(f"grad_{fn}", x, y)[index]
        if f"grad_{block}_{fn}" in self.verified:
            return lambda x, y: self.call(f"grad_{block}_{fn}", x, y)
        raise _Skip(f"needs a verified ∇_{block} {fn} (grad_{fn} or grad_{block}_{fn} did not pass)")

    def fd_grad(self, fn, block, var, direction=None):
        """Central differences of ∇_block fn along ``var``: coordinates (a matrix, columns) or one direction."""
        key = ("fdg", fn, block, var, direction is None, self.h_factor)
        if key not in self.cache:
            grad = self.gradient_source(fn, block)
            z = self.point(var)
            dirs = (_coordinate_directions(z.size, self.coords(var)) if direction is None else [direction])
            cols, size = _central(lambda t: grad(*self.at(var, t)), z, dirs,
                                  self.h(z, direction))
            self.cache[key] = (np.column_stack(cols), size)
        return self.cache[key]

    def derived(self, name):
        """Note for an oracle the base class derives from others (a failure may be theirs)."""
        overrides = getattr(self.p, "_overrides", None)
        if overrides is None or overrides(name):
            return ""
        for fn in self.functions:
            if name == f"hess_{fn}":
                return f"derived from the products of {fn}"
            for prod in _PRODUCTS:
                if name == f"{prod}_{fn}":
                    return f"derived from hess_{fn}"
        if name in GRADIENT_BLOCKS:
            return f"derived from {GRADIENT_BLOCKS[name][0]}"
        if name == "fused_g":
            return "derived from grad_g, hvp_yy_g, cross_g"
        return ""

    # -- the checks --------------------------------------------------------------------
    def check_all(self):
        provided = {}
        names = ["f", "grad_f", "grad_x_f", "grad_y_f", "hess_f", "hvp_yy_f", "hvp_xx_f", "cross_f", "cross_t_f"]
        if self.kind == "bilevel":
            names += ["g", "grad_g", "grad_x_g", "grad_y_g", "hess_g", "hvp_yy_g", "hvp_xx_g", "cross_g",
                      "cross_t_g", "fused_g"]
        names += ["y_star", "phi", "grad_phi", "hess_phi"]
        for name in names:
            provided[name] = self.provides(name)
        self.provided = provided
        self.not_provided = [n for n in names if not provided[n]]
        self.precision()
        for fn in self.functions:
            if provided[fn]:
                self.run(fn, "finite scalar at (x, y)",
                         lambda fn=fn: (None, None, f"{fn}(x, y) = {self.call(fn, self.x, self.y):.6g}", "pass"))
        for fn in self.functions:
            self.check_gradients(fn)
        for fn in self.functions:
            self.check_second_order(fn)
        if self.kind == "bilevel" and provided["fused_g"]:
            self.check_fused()
        self.check_curvature()
        self.check_closed_forms()
        self.check_constants()

    def precision(self):
        """Working precision: the lowest among the first outputs and the problem's ``dtype``."""
        for name in ("f", "g", "grad_f", "grad_g"):
            if self.provided.get(name):
                try:
                    self.call(name, self.x, self.y)
                except _Unavailable:
                    pass
        dtypes = set(self.dtypes)
        declared = getattr(self.p, "dtype", None)
        if declared is not None:
            try:
                dtypes.add(np.dtype(declared))
            except TypeError:
                pass
        eps = max([float(np.finfo(d).eps) for d in dtypes if np.issubdtype(d, np.floating)] + [_EPS64])
        self.set_precision(eps)

    def check_gradients(self, fn):
        """``grad_fn`` (each block) and ``grad_x_fn``, ``grad_y_fn`` against differences of ``fn``."""
        for index, var in enumerate(("x", "y")):
            both, block = f"grad_{fn}", f"grad_{var}_{fn}"
            for oracle, key, pick in ((both, f"{both}:{var}", lambda out, i=index: out[i]),
                                      (block, block, lambda out: out)):
                if not self.provided.get(oracle):
                    continue

                def compare(oracle=oracle, pick=pick, var=var):
                    value = pick(self.call(oracle, self.x, self.y))[self.coords(var)]
                    ref, size = self.fd_values(fn, var)
                    return (_rel(value, ref, self.floor(size, self.point(var), self.tol_fd)), self.tol_fd,
                            _join(self.subset_note(var), self.derived(oracle)))

                self.run(oracle, f"∇_{var} {fn} vs central FD of {fn}", compare, key=key, fd=True)

    def check_second_order(self, fn):
        hess = f"hess_{fn}"
        dense = None
        if self.provided.get(hess):
            try:
                dense = self.dense(fn)
            except _Unavailable:
                pass
        if dense is not None:
            self.check_dense(fn, dense)
        for prod, (block, var, _, _) in _PRODUCTS.items():
            name = f"{prod}_{fn}"
            if not self.provided.get(name):
                continue

            def compare(name=name, block=block, var=var):
                d = self.direction(var)
                value = self.product(name, var)
                ref, size = self.fd_grad(fn, block, var, d)
                return (_rel(value, ref[:, 0], self.floor(size, self.point(var), self.tol_fd)), self.tol_fd,
                        self.derived(name))

            text = _MATH[prod].format(h=fn)
            self.run(name, f"{text} vs FD of ∇_{block} {fn} along {var}", compare, key=name, fd=True)
        if dense is not None:
            self.check_consistency(fn, dense)
        else:
            self.check_product_symmetry(fn)

    def dense(self, fn):
        """``hess_fn`` at (x, y), evaluated once."""
        key = ("hess", fn)
        if key not in self.cache:
            self.cache[key] = self.call(f"hess_{fn}", self.x, self.y)
        return self.cache[key]

    def product(self, name, var):
        key = ("prod", name)
        if key not in self.cache:
            self.cache[key] = self.call(name, self.x, self.y, self.direction(var))
        return self.cache[key]

    def check_dense(self, fn, dense):
        hess = f"hess_{fn}"
        note = self.derived(hess)
        hxx, hxy, hyy = dense
        cx, cy = self.coords("x"), self.coords("y")

        def fd_block(label):
            if label == "xx":
                ref, size = self.fd_grad(fn, "x", "x")
                return hxx[:, cx], ref, size, self.point("x"), self.subset_note("x")
            if label == "yy":
                ref, size = self.fd_grad(fn, "y", "y")
                return hyy[:, cy], ref, size, self.point("y"), self.subset_note("y")
            try:   # columns ∂∇_x/∂y_j, or else rows ∂∇_y/∂x_i
                ref, size = self.fd_grad(fn, "x", "y")
                return hxy[:, cy], ref, size, self.point("y"), self.subset_note("y")
            except _Skip:
                ref, size = self.fd_grad(fn, "y", "x")
                return hxy[cx, :], ref.T, size, self.point("x"), _join(f"from ∇_y {fn}", self.subset_note("x"))

        for label in ("xx", "xy", "yy"):
            def compare(label=label):
                value, ref, size, z, sub = fd_block(label)
                return _rel(value, ref, self.floor(size, z, self.tol_fd)), self.tol_fd, _join(sub, note)

            what = {"xx": "∇²_xx", "xy": "∇²_xy (dx×dy)", "yy": "∇²_yy"}[label]
            self.run(hess, f"{what} {fn} vs FD of ∇{fn}", compare, key=f"{hess}:{label}", fd=True)
        for label, mat in (("xx", hxx), ("yy", hyy)):
            self.run(hess, f"∇²_{label} {fn} symmetric",
                     lambda mat=mat: (_rel(mat, mat.T), self.tol_exact, ""), key=f"{hess}:{label}:sym")

    def check_consistency(self, fn, dense):
        """Dense blocks against the matrix-free products along the same directions."""
        hess = f"hess_{fn}"
        for prod, (_, var, label, transpose) in _PRODUCTS.items():
            name = f"{prod}_{fn}"
            if not self.provided.get(name):
                continue
            mat = dense[_BLOCK[label]].T if transpose else dense[_BLOCK[label]]
            d = self.direction(var)
            terms = _inf_norm(np.abs(mat) @ np.abs(d))   # scale of the rounding of mat @ d

            def compare(name=name, mat=mat, d=d, terms=terms, var=var):
                return _rel(mat @ d, self.product(name, var), terms), self.tol_exact, ""

            block = "∇²_yx" if transpose else f"∇²_{label}"
            self.compare_pair([hess + ":" + label, name], [hess, name],
                              f"{block} {fn} of {hess} = {name}", compare)

    def compare_pair(self, keys, oracles, check, compare):
        """An exact comparison of two (or more) oracles: skipped if one failed its own check, and
        blamed on the unverified ones when it fails."""
        failed = [o for k, o in zip(keys, oracles) if k in self.failed]
        if failed:
            self.add(", ".join(oracles), check, verdict="skipped", note=f"{', '.join(failed)} failed its own check")
            return
        unverified = [o for k, o in zip(keys, oracles) if k not in self.verified]
        blame = ", ".join(unverified or oracles)
        self.run(blame, check, compare)

    def check_product_symmetry(self, fn):
        """Without dense blocks: uᵀ(Hw) = wᵀ(Hu) for the square products."""
        for prod, var in (("hvp_xx", "x"), ("hvp_yy", "y")):
            name = f"{prod}_{fn}"
            if not self.provided.get(name):
                continue

            def compare(name=name, var=var):
                u, w = self.rng.standard_normal(self.dim(var)), self.rng.standard_normal(self.dim(var))
                hu, hw = self.call(name, self.x, self.y, u), self.call(name, self.x, self.y, w)
                scale = max(np.linalg.norm(u) * np.linalg.norm(hw), np.linalg.norm(w) * np.linalg.norm(hu))
                diff = abs(float(u @ hw) - float(w @ hu))
                return (diff / scale if scale > 0 else 0.0), self.tol_exact, ""

            self.run(name, f"∇²_{prod[-2:]} {fn} symmetric: uᵀ(Hw) = wᵀ(Hu)", compare, key=f"{name}:sym")

    def check_fused(self):
        v = self.direction("y")

        def compare():
            fused = self.call("fused_g", self.x, self.y, v)
            parts = (self.call("grad_g", self.x, self.y)[1], self.product("hvp_yy_g", "y"),
                     self.product("cross_g", "y"))
            return max(_rel(a, b) for a, b in zip(fused, parts)), self.tol_exact, self.derived("fused_g")

        self.compare_pair(["fused_g", "grad_g:y", "hvp_yy_g", "cross_g"],
                          ["fused_g", "grad_g", "hvp_yy_g", "cross_g"],
                          "= (grad_g[1], hvp_yy_g·v, cross_g·v)", compare)

    # -- curvature and constants ---------------------------------------------------------
    def hyy_operator(self, fn):
        """A verified ∇²_yy fn at (x, y): ``(matvec, dense or None, source)``."""
        hess = f"hess_{fn}"
        if f"{hess}:yy" in self.verified:
            mat = _sym(self.dense(fn)[2])
            return (lambda v: mat @ v), mat, hess
        if f"hvp_yy_{fn}" in self.verified:
            return (lambda v: self.call(f"hvp_yy_{fn}", self.x, self.y, v)), None, f"hvp_yy_{fn}"
        if self.dy <= FD_MAX_DIM:
            mat = _sym(self.fd_grad(fn, "y", "y")[0])
            return (lambda v: mat @ v), mat, f"FD of ∇_y {fn}"
        raise _Skip(f"no verified ∇²_yy {fn} (hess_{fn}, hvp_yy_{fn})")

    def spectrum(self, fn):
        """(λ_min, λ_max, source) of ∇²_yy fn at the point."""
        key = ("spectrum", fn)
        if key not in self.cache:
            try:
                matvec, mat, source = self.hyy_operator(fn)
                if mat is not None and self.dy <= 2000:
                    lam = np.linalg.eigvalsh(mat)
                    self.cache[key] = (float(lam[0]), float(lam[-1]), source)
                else:
                    lo, hi = _spectrum(matvec, self.dy, self.rng)
                    self.cache[key] = (lo, hi, source + (" (Lanczos)" if self.dy > _DENSE_MAX else ""))
            except (_Skip, _Unavailable) as exc:
                self.cache[key] = exc
        if isinstance(self.cache[key], Exception):
            raise self.cache[key]
        return self.cache[key]

    def inner_spectrum(self):
        """(λ_min, λ_max, source) of the inner problem's Hessian sign·∇²_yy inner (minimised)."""
        lo, hi, source = self.spectrum(self.inner)
        return (lo, hi, source) if self.sign > 0 else (-hi, -lo, source)

    def check_curvature(self):
        if not self.provided.get(self.inner):
            return
        what = "strongly convex in y" if self.kind == "bilevel" else "strongly concave in y"
        hess = "∇²_yy g" if self.kind == "bilevel" else "−∇²_yy f"

        def convex():
            lo, hi, source = self.inner_spectrum()
            note = f"λ_min = {lo:.4g}, λ_max = {hi:.4g} of {hess} ({source})"
            # relative to the largest curvature, at the accuracy of the operator's source
            accuracy = self.tol_fd if source.startswith("FD") else self.tol_exact
            margin = accuracy * max(abs(hi), abs(lo))
            return None, None, note, "pass" if lo > margin else "FAIL"

        self.run(self.inner, f"{what} at (x, y): λ_min({hess}) > 0", convex)

    def check_constants(self):
        try:
            known = check_constants(self.p.constants(), repr(getattr(self.p, "name", "problem")))
        except Exception as exc:  # noqa: BLE001
            self.add("constants", "constants() valid", verdict="FAIL", note=f"{type(exc).__name__}: {exc}")
            return
        inner_keys = ("L_g", "mu_g") if self.kind == "bilevel" else ("L_y", "mu_y")
        for key, value in known.items():
            if key in inner_keys:
                upper = key.startswith("L")

                def measured(upper=upper):
                    lo, hi, source = self.inner_spectrum()
                    return (hi if upper else lo), max(abs(lo), abs(hi)), source
            elif key in _NORM_KEYS and (key != "L_xy" or self.kind == "bilevel"):
                upper = True

                def measured(key=key):
                    return self.measured_norm(key)
            else:
                self.add("constants", f"{key} = {value:.4g}", verdict="skipped", note="not checked")
                continue

            def compare(key=key, value=value, upper=upper, measured=measured):
                level, scale, source = measured()
                violation = (level - value) if upper else (value - level)
                error = max(0.0, violation) / scale if scale > 0 else (0.0 if violation <= 0 else math.inf)
                hint = "" if error <= self.tol_fd else "; a reported constant must hold at every point"
                return error, self.tol_fd, f"measured {level:.6g} ({source}){hint}"

            bound = _NORM_KEYS.get(key, "≥ measured λ_max" if upper else "≤ measured λ_min")
            self.run("constants", f"{key} = {value:.6g} {bound}", compare)

    def measured_norm(self, key):
        """(‖block‖₂, same, source) of the verified block bounded by ``key`` (L_f, L_xy, L_phi)."""
        if key == "L_f":
            lo, hi, source = self.spectrum("f")
            norm = max(abs(lo), abs(hi))
            return norm, norm, source
        if key == "L_xy":
            if "hess_g:xy" not in self.verified:
                raise _Skip("needs a verified ∇²_xy g (hess_g)")
            norm = float(np.linalg.norm(self.dense("g")[1], 2))
            return norm, norm, "hess_g"
        if "hess_phi" not in self.verified:
            raise _Skip("needs a verified hess_phi")
        norm = float(np.max(np.abs(np.linalg.eigvalsh(_sym(self.call("hess_phi", self.x))))))
        return norm, norm, "hess_phi"

    # -- closed forms --------------------------------------------------------------------
    def inner_solve(self, x, y0):
        """A tight solve of the inner problem at ``x``: damped Newton on verified derivatives."""
        fn, sign = self.inner, self.sign
        grad_y = self.gradient_source(fn, "y")
        hess, hvp = f"hess_{fn}", f"hvp_yy_{fn}"
        if f"{hess}:yy" in self.verified and (self.dy <= 500 or hvp not in self.verified):
            def newton(t, g):
                return np.linalg.solve(sign * _sym(self.call(hess, x, t)[2]), g)
        elif hvp in self.verified:
            from .linalg.cg import cg

            def newton(t, g):
                return cg(lambda v: sign * self.call(hvp, x, t, v), g, maxiter=10 * self.dy, rtol=1e-15).x
        else:
            raise _Skip(f"needs a verified ∇²_yy {fn} (hess_{fn} or {hvp}) for the Newton solve")

        def value(t):
            return sign * self.call(fn, x, t)

        y = np.array(y0, dtype=float)
        g = sign * grad_y(x, y)
        g0 = best = _inf_norm(g)
        for _ in range(100):
            if best <= self.eps * g0:
                break
            step, t, v0 = newton(y, g), 1.0, value(y)
            for _ in range(60):   # Armijo on the value, or a halved gradient (rounding near y*)
                trial = y - t * step
                g_trial = sign * grad_y(x, trial)
                if value(trial) <= v0 - 1e-4 * t * float(g @ step) or _inf_norm(g_trial) < 0.5 * best:
                    break
                t *= 0.5
            else:
                break
            y, g = trial, g_trial
            best = min(best, _inf_norm(g))
            if _inf_norm(t * step) <= 4 * self.eps * max(1.0, _inf_norm(y)):
                break
        return y

    def check_closed_forms(self):
        fn, x = self.inner, self.x
        solve = lambda t: self.inner_solve(t, self.y)  # noqa: E731
        y_star = solve
        if self.provided.get("y_star"):
            stationarity = f"∇_y {fn}(x, y*) = 0"

            def stationary():
                ys = self.call("y_star", x)
                grad_y = self.gradient_source(fn, "y")
                scale = _inf_norm(grad_y(x, self.y))   # the gradient at the random point
                return _rel(grad_y(x, ys), 0.0 * ys, scale), self.tol_exact, ""

            self.run("y_star", stationarity, stationary, key="y_star:stationary")

            def newton():   # relative to the size of y (the solve's start): y* may vanish
                return _rel(self.call("y_star", x), solve(x), _inf_norm(self.y)), self.tol_exact, ""

            what = "minimiser of g(x, ·)" if self.kind == "bilevel" else "maximiser of f(x, ·)"
            if self.run("y_star", f"= Newton solve for the {what}", newton, key="y_star:newton") \
                    and "y_star:stationary" in self.verified:
                y_star = lambda t: self.call("y_star", t)  # noqa: E731
        if self.provided.get("phi"):
            def phi_value():
                scale = abs(self.call("f", self.x, self.y))   # the size of f's terms
                return _rel(self.call("phi", x), self.call("f", x, y_star(x)), scale), self.tol_exact, ""

            self.run("phi", "= f(x, y*(x))", phi_value, key="phi")
        if self.provided.get("grad_phi"):
            def grad_phi():
                if "phi" in self.verified:
                    phi, source = (lambda t: self.call("phi", t)), "phi"
                elif self.provided.get("phi"):
                    raise _Skip("phi did not pass its check")
                else:
                    phi, source = (lambda t: self.call("f", t, y_star(t))), "f(x, y*(x))"
                cols, size = _central(phi, x, _coordinate_directions(self.dx, self.coords("x")),
                                      self.h(x))
                value = self.call("grad_phi", x)[self.coords("x")]
                note = _join(f"FD of {source}", self.subset_note("x"))
                return _rel(value, np.array(cols), self.floor(size, x, self.tol_fd)), self.tol_fd, note

            self.run("grad_phi", "vs central FD of φ", grad_phi, key="grad_phi", fd=True)
        if self.provided.get("hess_phi"):
            def hess_phi():
                if "grad_phi" not in self.verified:
                    raise _Skip("grad_phi did not pass its check")
                cols, size = _central(lambda t: self.call("grad_phi", t), x,
                                      _coordinate_directions(self.dx, self.coords("x")), self.h(x))
                value = self.call("hess_phi", x)[:, self.coords("x")]
                return (_rel(value, np.column_stack(cols), self.floor(size, x, self.tol_fd)), self.tol_fd,
                        self.subset_note("x"))

            self.run("hess_phi", "vs central FD of grad_phi", hess_phi, key="hess_phi", fd=True)

            def symmetric():
                mat = self.call("hess_phi", x)
                return _rel(mat, mat.T), self.tol_exact, ""

            self.run("hess_phi", "symmetric", symmetric)


def check_problem(problem, x=None, y=None, *, seed=0, rtol=None):
    r"""Check every oracle ``problem`` provides against central finite differences.

    Parameters
    ----------
    problem : BilevelProblem or MinimaxProblem
        Any object implementing the protocol (``dx``, ``dy``, ``provides``, the oracles).
    x, y : array_like, optional
        The point; default standard normal draws from
        ``numpy.random.default_rng(seed)`` (x first), unit-size coordinates
        like the steps' scale ``max(1, |z|)``.
    seed : int
        Seed of the point, the random directions and the coordinate subsets.
    rtol : float, optional
        Tolerance of every comparison (default: :math:`\epsilon^{1/3}` for
        comparisons with finite differences, :math:`\sqrt\epsilon` for exact ones,
        ε of the problem's working precision).

    Returns
    -------
    ProblemCheck
        ``.ok``, ``.failures``, ``.rows``; ``.to_table()``, ``.to_json()``.

    Raises
    ------
    TypeError, ValueError
        For a ``problem`` without integer ``dx``/``dy``, a point of the wrong
        length or a bad ``rtol``.  Misbehaving oracles are never raised: they
        are FAIL rows.
    """
    from ._validation import as_vector, check_int, check_positive

    for attr in ("dx", "dy"):
        if not hasattr(problem, attr) or not hasattr(problem, "provides"):
            raise TypeError(f"problem must implement the BilevelProblem/MinimaxProblem protocol "
                            f"(dx, dy, provides), got {type(problem).__name__}")
        check_int(getattr(problem, attr), f"problem.{attr}", minimum=1)
    seed = check_int(seed, "seed", minimum=0)
    if rtol is not None:
        rtol = check_positive(rtol, "rtol")
    rng = np.random.default_rng(seed)
    x_default, y_default = rng.standard_normal(problem.dx), rng.standard_normal(problem.dy)
    x = x_default if x is None else as_vector(x, "x", problem.dx)
    y = y_default if y is None else as_vector(y, "y", problem.dy)
    checker = _Checker(problem, x, y, seed, rtol)
    checker.check_all()
    return ProblemCheck(problem=str(getattr(problem, "name", type(problem).__name__)), kind=checker.kind,
                        dx=int(problem.dx), dy=int(problem.dy), x=x, y=y, seed=seed, eps=checker.eps,
                        step=checker.step, tol_fd=checker.tol_fd, tol_exact=checker.tol_exact,
                        rows=checker.rows, not_provided=checker.not_provided)


# ---------------------------------------------------------------------------
# command line
# ---------------------------------------------------------------------------
class _UsageError(Exception):
    pass


def load_problem(spec, params=None):
    """The problem named by ``MODULE:FACTORY`` (``MODULE`` a module name or a ``.py`` path; ``FACTORY``
    a problem instance, a problem class, or a callable returning a problem or ``(problem, x0)``,
    called with the keyword arguments ``params``)."""
    module_name, sep, attr = spec.rpartition(":")
    if not sep or not module_name or not attr:
        raise _UsageError(f"expected MODULE:FACTORY, got {spec!r}")
    try:
        if module_name.endswith(".py") or os.sep in module_name:
            path = os.path.abspath(module_name)
            if not os.path.isfile(path):
                raise _UsageError(f"no such file: {module_name}")
            mod_spec = importlib.util.spec_from_file_location(os.path.splitext(os.path.basename(path))[0], path)
            module = importlib.util.module_from_spec(mod_spec)
            mod_spec.loader.exec_module(module)
        else:
            if os.getcwd() not in sys.path and "" not in sys.path:
                sys.path.insert(0, os.getcwd())   # like `python -m`: modules of the current directory
            module = importlib.import_module(module_name)
    except _UsageError:
        raise
    except Exception as exc:  # noqa: BLE001 - any import error is a usage error
        raise _UsageError(f"cannot import {module_name!r}: {type(exc).__name__}: {exc}") from None
    obj = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise _UsageError(f"{module_name!r} has no attribute {attr!r}")
        obj = getattr(obj, part)
    params = params or {}
    if not hasattr(obj, "provides") or isinstance(obj, type):
        if not callable(obj):
            raise _UsageError(f"{spec} is neither a problem nor a callable returning one")
        try:
            obj = obj(**params)
        except Exception as exc:  # noqa: BLE001
            args = ", ".join(f"{k}={v!r}" for k, v in params.items())
            raise _UsageError(f"{spec}({args}) raised {type(exc).__name__}: {exc}") from None
    elif params:
        raise _UsageError(f"{spec} is a problem instance: --param needs a factory")
    if isinstance(obj, tuple) and obj and hasattr(obj[0], "provides"):
        obj = obj[0]   # a catalog-style builder: (problem, x0)
    if not hasattr(obj, "provides") or not hasattr(obj, "dx"):
        raise _UsageError(f"{spec} did not give a problem (got {type(obj).__name__})")
    return obj


def _parse_point(text, name):
    """``--x``: comma/space separated numbers, one number (every coordinate), or a .npy/.txt file."""
    if os.path.isfile(text):
        try:
            if text.endswith(".npy"):
                return np.asarray(np.load(text), dtype=float).ravel()
            with open(text, encoding="utf-8") as fh:
                text = fh.read()
        except (OSError, ValueError) as exc:
            raise _UsageError(f"--{name}: cannot read {text!r}: {exc}") from None
    try:
        values = [float(v) for v in text.replace(",", " ").split()]
    except ValueError:
        raise _UsageError(f"--{name} must be numbers separated by commas, or a .npy/.txt file") from None
    if not values:
        raise _UsageError(f"--{name} is empty")
    return np.array(values)


def _parser():
    parser = argparse.ArgumentParser(
        prog="bilevel-ref check-problem",
        description="Check a problem's oracles against central finite differences (exit 0: all pass, "
                    "1: a check failed, 2: bad usage).")
    parser.add_argument("factory", metavar="MODULE:FACTORY",
                        help="e.g. mypkg.problems:make_problem or path/to/file.py:make_problem; FACTORY is a "
                             "problem, a problem class or a callable returning one")
    parser.add_argument("--param", action="append", metavar="KEY=VALUE",
                        help="keyword argument of FACTORY (Python literal, else string); repeatable")
    parser.add_argument("--x", help="the point x: numbers separated by commas, one number for every "
                                    "coordinate, or a .npy/.txt file (default: random)")
    parser.add_argument("--y", help="the point y, as --x (default: random)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random point and directions")
    parser.add_argument("--rtol", type=float, default=None,
                        help="tolerance of every check (default: eps^(1/3) for FD, sqrt(eps) for exact)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    return parser


def main(argv=None):
    """Entry point of ``bilevel-ref check-problem``; returns the exit status."""
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exc:   # --help (0) or a usage error (2)
        return int(exc.code or 0)
    try:
        try:
            params = parse_assignments(args.param, "--param")
        except SystemExit as exc:   # a malformed --param
            raise _UsageError(str(exc).removeprefix("bilevel-ref: ")) from None
        problem = load_problem(args.factory, params)
        point = {}
        for name in ("x", "y"):
            text = getattr(args, name)
            if text is not None:
                values = _parse_point(text, name)
                size = problem.dx if name == "x" else problem.dy
                point[name] = np.full(size, values[0]) if values.size == 1 else values.ravel()
        report = check_problem(problem, point.get("x"), point.get("y"), seed=args.seed, rtol=args.rtol)
    except (_UsageError, TypeError, ValueError) as exc:
        print(f"bilevel-ref check-problem: error: {exc}", file=sys.stderr)
        return 2
    safe_print(report.to_json() if args.json else report.to_table())
    return 0 if report.ok else 1


if __name__ == "__main__":  # pragma: no cover
    from bilevel_ref.check import main as _main   # the package's copy, not a second __main__ one

    sys.exit(_main())
