"""``minimize``: the method registry, option validation and the outer loop.

Every method is a :class:`Solver` subclass registered with :func:`register`.
A solver holds the iterates (``x``, ``y`` and whatever else its algorithm
keeps) and implements :meth:`Solver.step`, one outer iteration that reads
like the paper's pseudo-code.  Everything that is the same for all methods
lives here, once: option validation, the counted problem, the random
generator, the iteration loop, budgets, divergence detection, callbacks,
histories and the result.
"""
from __future__ import annotations

import math
import numbers
import sys
import time
import warnings

import numpy as np

from ._validation import as_vector, check_int
from .oracles import BudgetExhausted, OracleCounter
from .problems.base import BilevelProblem, MinimaxProblem
from .result import BilevelResult, History

__all__ = ["minimize", "methods", "get_method", "register", "Solver", "Option", "show_options"]

_REGISTRY: dict = {}
_LOADED = False


# ---------------------------------------------------------------------------
# options
# ---------------------------------------------------------------------------
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


def _check_budget_option(name, value):
    if value is not None and not isinstance(value, dict):
        raise TypeError(f"{name} must be a dict such as {{'grad_g': 1000}}, got {type(value).__name__}")
    return value


# ---------------------------------------------------------------------------
# solvers
# ---------------------------------------------------------------------------
class Solver:
    """Base class of every method.

    Subclasses set the class attributes below, define ``options`` (a dict of
    :class:`Option`) and implement :meth:`step`.  Attributes available in
    ``step``: ``self.problem`` (the :class:`~bilevel_ref.oracles.OracleCounter`),
    ``self.x``, ``self.y`` (current iterates, float64), ``self.rng`` (the run's
    only random generator), ``self.opts`` (validated options, attribute access).
    """

    #: registry name (lower case, underscores)
    name: str = None
    #: other accepted names
    aliases: tuple = ()
    #: ``"bilevel"`` or ``"minimax"``
    problem_type = "bilevel"
    #: oracles the method calls (checked against ``problem.provides``)
    requires: tuple = ()
    #: uses minibatch oracles and ``problem.sample``
    stochastic = False
    #: method options (merged with :attr:`common_options`)
    options: dict = {}
    default_maxiter = 100
    default_gtol = 1e-9
    #: closed-form metrics recorded each iteration when the problem has them
    exact_metrics = ("phi", "grad_norm")

    #: options of every method (``maxiter`` and ``gtol`` are added per class
    #: from ``default_maxiter`` / ``default_gtol``)
    common_options = {
        "budget": Option.any(
            None, "Maximum oracle calls by kind, e.g. {'grad_g': 1000, 'total': 5000}; "
            "reaching it stops the run with success=False.", _check_budget_option),
        "history_every": Option.integer(1, "Record the history every this many iterations.", low=1),
        "y0": Option.vector("Starting lower-level iterate (default zeros)."),
        "record_exact": Option.boolean(
            True, "Record closed-form φ, ‖∇φ‖ (uncounted) in the history when the problem has them."),
        "progress": Option.boolean(False, "Show a tqdm progress bar on stderr."),
    }

    def __init__(self, problem, x0, y0, rng, opts):
        self.problem = problem
        self.x = x0
        self.y = y0
        self.rng = rng
        self.opts = opts
        #: λ_min of the last Hessian estimate (second-order methods set it)
        self.min_eig = None
        self.setup()

    # -- to override ---------------------------------------------------------
    def setup(self):
        """Initialise extra state (called once, before the first step)."""

    def step(self, k):
        """Perform outer iteration ``k`` (0-based); update ``self.x``, ``self.y``.

        Returns a dict of metrics for the history. Recognised keys:
        ``grad_est`` (norm of the hypergradient estimate used, compared with
        ``gtol``), ``converged`` (True to stop successfully; ``message`` says
        why) and ``failure`` (a message: stop with ``success=False``).
        """
        raise NotImplementedError

    @classmethod
    def required_oracles(cls, opts):
        """Oracles needed with these options (default: :attr:`requires`)."""
        return cls.requires

    # -- option handling -----------------------------------------------------
    @classmethod
    def all_options(cls):
        spec = {k: v for k, v in Solver.common_options.items() if v is not None}
        for klass in reversed(cls.__mro__):
            spec.update(klass.__dict__.get("options", {}))
        spec["maxiter"] = Option.integer(cls.default_maxiter, "Maximum outer iterations.", low=0)
        spec["gtol"] = Option.real(
            cls.default_gtol,
            "Stop when the norm of the method's hypergradient estimate is <= gtol (0: never).",
            low=0.0, strict=False)
        return spec

    @classmethod
    def validate_options(cls, options):
        if options is None:
            options = {}
        if not isinstance(options, dict):
            raise TypeError(f"options must be a dict, got {type(options).__name__}")
        spec = cls.all_options()
        unknown = sorted(set(options) - set(spec))
        if unknown:
            raise ValueError(
                f"unknown option(s) {unknown} for method {cls.name!r}; known: {sorted(spec)}"
            )
        values = {name: opt.validate(name, options[name]) if name in options else opt.default
                  for name, opt in spec.items()}
        cls.check_options(values)
        return _Options(values)

    @classmethod
    def check_options(cls, values):
        """Cross-option checks (override; raise ValueError naming the option)."""


class _Options(dict):
    """Validated options with attribute access."""

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


def _normalise(name):
    return name.strip().lower().replace("-", "_")


def register(cls):
    """Class decorator adding a :class:`Solver` subclass to the registry."""
    for name in (cls.name,) + tuple(cls.aliases):
        key = _normalise(name)
        if key in _REGISTRY and _REGISTRY[key] is not cls:
            raise RuntimeError(f"method name {key!r} registered twice")
        _REGISTRY[key] = cls
    return cls


def _load():
    global _LOADED
    if not _LOADED:
        from . import algorithms  # noqa: F401  (registers every method)

        _LOADED = True


def methods(problem_type=None):
    """Sorted names of the registered methods (optionally of one problem type)."""
    _load()
    return sorted({cls.name for cls in _REGISTRY.values()
                   if problem_type is None or cls.problem_type == problem_type})


def get_method(method):
    """The :class:`Solver` class registered under ``method``."""
    _load()
    if not isinstance(method, str):
        raise TypeError(f"method must be a string, got {type(method).__name__}")
    key = _normalise(method)
    if key not in _REGISTRY:
        raise ValueError(f"unknown method {method!r}; available: {methods()}")
    return _REGISTRY[key]


def show_options(method):
    """Text listing the options of ``method`` with defaults and descriptions."""
    cls = get_method(method)
    lines = [f"{cls.name}: " + (cls.__doc__ or "").strip().splitlines()[0]]
    for name, opt in sorted(cls.all_options().items()):
        lines.append(f"  {name} (default {opt.default!r}): {opt.doc}")
    return "\n".join(lines)


# ---------------------------------------------------------------------------
# the outer loop
# ---------------------------------------------------------------------------
_STATUS = {"converged": 0, "maxiter": 1, "budget": 2, "nonfinite": 3, "callback": 4, "failure": 5}


def _exact_metrics(problem, x, names):
    with np.errstate(over="ignore", invalid="ignore"):
        return _exact_metrics_unguarded(problem, x, names)


def _exact_metrics_unguarded(problem, x, names):
    out = {}
    if "phi" in names and problem.provides("phi"):
        out["phi"] = float(problem.phi(x))
    if "grad_norm" in names and problem.provides("grad_phi"):
        out["grad_norm"] = float(np.linalg.norm(problem.grad_phi(x)))
    if "min_eig" in names and problem.provides("hess_phi"):
        out["min_eig_exact"] = float(np.linalg.eigvalsh(problem.hess_phi(x))[0])
    return out


def _scalar_metrics(info):
    """The numeric entries of a step's info dict, as floats (history columns)."""
    return {key: float(v) for key, v in info.items()
            if isinstance(v, (float, int, np.floating, np.integer)) and not isinstance(v, bool)}


def _all_finite(arrays, scalars):
    # One reduction per array (NaN and inf propagate through a sum); an
    # overflowing sum of finite entries (|x| ~ 1e308) counts as divergence too.
    return all(math.isfinite(a.sum()) for a in arrays) and all(math.isfinite(s) for s in scalars)


def minimize(problem, method, x0, seed=0, options=None, callback=None):
    """Minimise the hyper-objective of ``problem`` with ``method``.

    Parameters
    ----------
    problem : BilevelProblem or MinimaxProblem
        Any object implementing the protocol (see :mod:`bilevel_ref.problems.base`).
    method : str
        A name from :func:`methods` (case-insensitive, ``-`` and ``_`` alike).
    x0 : array_like, shape (dx,)
        Starting upper-level point.
    seed : int, default 0
        Seed of the run's single :class:`numpy.random.Generator`. Same seed,
        same inputs ⇒ bit-identical result (wall times aside).
    options : dict, optional
        Method options; see :func:`show_options`. Common to all methods:
        ``maxiter``, ``gtol``, ``budget``, ``history_every``, ``y0``,
        ``record_exact``, ``progress``.
    callback : callable, optional
        ``callback(intermediate_result)`` after every iteration, with an
        :class:`~scipy.optimize.OptimizeResult` holding ``x``, ``y``, ``nit``,
        ``oracle_calls`` and the iteration's metrics; returning True (or
        raising :class:`StopIteration`) stops the run (``status=4``).

    Returns
    -------
    BilevelResult
    """
    cls = get_method(method)
    want = BilevelProblem if cls.problem_type == "bilevel" else MinimaxProblem
    if not isinstance(problem, want):
        raise TypeError(
            f"method {cls.name!r} needs a {want.__name__} (subclass it), got {type(problem).__name__}"
        )
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise TypeError(f"seed must be a non-negative integer, got {seed!r}")
    if callback is not None and not callable(callback):
        raise TypeError("callback must be callable")
    opts = cls.validate_options(options)
    for oracle in cls.required_oracles(opts):
        if not problem.provides(oracle):
            raise ValueError(
                f"method {cls.name!r} needs the oracle {oracle!r}, which problem "
                f"{problem.name!r} does not provide"
            )
    if cls.stochastic and not problem.provides("sample") and opts.get("batch_size") is not None:
        raise ValueError(
            f"method {cls.name!r} with a batch_size needs a stochastic problem "
            f"(n_lower/n_upper and sample()); problem {problem.name!r} has none"
        )
    # Iterates in the problem's dtype: float64 unless the problem declares float32
    # storage (not the reference mode).
    dtype = np.dtype(getattr(problem, "dtype", np.float64))
    if dtype not in (np.dtype(np.float64), np.dtype(np.float32)):
        raise TypeError(f"problem.dtype must be float64 or float32, got {dtype}")
    x0 = as_vector(x0, "x0", problem.dx, dtype=dtype)
    y0 = (np.zeros(problem.dy, dtype=dtype) if opts.y0 is None
          else as_vector(opts.y0, "options['y0']", problem.dy, dtype=dtype))

    rng = np.random.default_rng(int(seed))
    counter = OracleCounter(problem, opts.budget)
    solver = cls(counter, x0, y0, rng, opts)
    exact_names = cls.exact_metrics if opts.record_exact else ()
    history = History()
    history.record(0, 0.0, counter.snapshot(), _exact_metrics(problem, solver.x, exact_names))

    bar = None
    if opts.progress and opts.maxiter > 0:
        from tqdm.auto import tqdm

        bar = tqdm(total=opts.maxiter, desc=cls.name, file=sys.stderr, leave=False)

    status, message, info, nit, elapsed = "maxiter", "maximum number of iterations reached", {}, 0, 0.0
    # Divergence is detected below (non-finite iterates), so numpy's overflow
    # warnings on the way there are noise.
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        for k in range(opts.maxiter):
            x_prev, y_prev = solver.x.copy(), solver.y.copy()
            t0 = time.perf_counter()
            try:
                info = solver.step(k) or {}
            except BudgetExhausted as exc:
                solver.x, solver.y = x_prev, y_prev
                status, message = "budget", str(exc)
                break
            except np.linalg.LinAlgError as exc:
                solver.x, solver.y = x_prev, y_prev
                status, message = "failure", f"linear algebra failure at iteration {k + 1}: {exc}"
                break
            elapsed += time.perf_counter() - t0
            grad_est = info.get("grad_est", np.nan)
            if not _all_finite((solver.x, solver.y), [v for v in info.values() if isinstance(v, float)]):
                solver.x, solver.y = x_prev, y_prev
                status = "nonfinite"
                message = (f"non-finite values at iteration {k + 1}: the run diverged "
                           "(reduce the step sizes); x and y are the last finite iterates")
                break
            nit = k + 1
            if "failure" in info:
                status, message = "failure", info["failure"]
                break
            if nit % opts.history_every == 0 or nit == opts.maxiter:
                metrics = _scalar_metrics(info)
                metrics.update(_exact_metrics(problem, solver.x, exact_names))
                history.record(nit, elapsed, counter.snapshot(), metrics)
            if bar is not None:
                bar.update(1)
                bar.set_postfix_str(f"|G|={grad_est:.2e}")
            if info.get("converged"):
                status, message = "converged", info.get("message", "converged")
                break
            if opts.gtol > 0 and grad_est <= opts.gtol:
                status, message = "converged", f"hypergradient estimate norm {grad_est:.3e} <= gtol"
                break
            if callback is not None:
                intermediate = BilevelResult(x=solver.x.copy(), y=solver.y.copy(), nit=nit,
                                             oracle_calls=counter.snapshot(), **_scalar_metrics(info))
                try:
                    stop = callback(intermediate)
                except StopIteration:
                    stop = True
                if stop:
                    status, message = "callback", "stopped by the callback"
                    break
    if bar is not None:
        bar.close()
    if history["nit"][-1] != nit:
        history.record(nit, elapsed, counter.snapshot(),
                       _exact_metrics(problem, solver.x, exact_names))

    final = _exact_metrics(problem, solver.x, ("phi", "grad_norm"))
    grad_est = float(info.get("grad_est", np.nan)) if info else np.nan
    fun = final.get("phi")
    if fun is None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fun = float(problem.f(solver.x, solver.y)) if problem.provides("f") else np.nan
    return BilevelResult(
        x=solver.x, y=solver.y, fun=fun,
        grad_norm=final.get("grad_norm", grad_est), grad_norm_est=grad_est,
        min_eig=solver.min_eig, nit=nit, oracle_calls=counter.snapshot(), history=history,
        # With gtol = 0 (stochastic methods) running to maxiter is the intended stop.
        success=status == "converged" or (status == "maxiter" and opts.gtol == 0),
        status=_STATUS[status], message=message, method=cls.name,
        options={k: v for k, v in opts.items()}, seed=int(seed),
    )
