"""The solver machinery: :class:`Solver`, the method registry and option validation.

Every method is a :class:`Solver` subclass registered with :func:`register`.
A solver holds the iterates (``x``, ``y`` and whatever else its algorithm
keeps) and implements :meth:`Solver.step`, one outer iteration that reads
like the paper's pseudo-code.  The loop that drives it, the same for all
methods, is :func:`bilevel_ref.minimize` (:mod:`bilevel_ref._minimize`).
"""
from __future__ import annotations

from .exceptions import OptionError
from .options import RENAMED, Option

__all__ = ["methods", "get_method", "register", "Solver", "Option", "show_options"]

_REGISTRY: dict = {}
_LOADED = False


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
    #: has a stopping test of its own besides ``gtol`` (reported via ``converged``)
    stopping_rule = False
    #: method options (merged with :attr:`common_options`)
    options: dict = {}
    #: option names this method used before 0.1.0 -> the new name (error message only)
    renamed: dict = {}
    default_maxiter = 100
    #: default of ``gtol``: None means ``tol``; ``"deterministic"`` means ``tol`` when
    #: ``batch_size`` is None and 0 (no test) otherwise; a number is that number
    default_gtol = None
    #: closed-form metrics recorded each iteration when the problem has them
    exact_metrics = ("phi", "grad_norm")

    #: options of every method (``maxiter`` and ``gtol`` are added per class
    #: from ``default_maxiter`` / ``default_gtol``)
    common_options = {
        "tol": Option.real(
            1e-6, "Target accuracy: ‖∇φ(x)‖ <= tol (‖∇P‖ for minimax) is what success certifies. "
            "The parameters a method leaves at None (penalty λ, ITD's T, F2SA-p's ν, inner steps, "
            "step_x, gtol, eps, ...) are derived from tol and the problem's constants (see each "
            "method's docstring); explicit options win.", low=0.0),
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
        #: constants used: key -> (value, source), reported in the result
        self.constants_used = {}
        #: spectra of Hessian operators estimated for constants, shared by their keys
        self._spectra = {}
        #: parameters derived from ``tol`` (name -> value), reported in ``res.derived``
        self.derived = {}
        #: sentences about reaching ``tol`` (appended to the result's message)
        self.notes = []
        self.setup()

    def derive(self, name, value):
        """Set option ``name`` (left at None by the user) to ``value`` derived from ``tol``,
        record it for ``res.derived`` and return it."""
        self.derived[name] = value
        self.opts[name] = value
        return value

    def bias_note(self):
        """A sentence bounding the bias of a user's explicit setting when it keeps the
        estimate more than tol/2 from ∇φ, else None (override; called after a run whose
        stopping test was met on a biased estimate; its oracle calls are counted)."""
        return None

    def constant(self, key):
        """Constant ``key`` by the library's one policy (:mod:`bilevel_ref.constants`):
        the option of that name, else ``problem.constants()``, else a counted
        estimate at the starting point.  Resolved once per run and reported."""
        if key not in self.constants_used:
            from .constants import resolve_constant

            self.constants_used[key] = resolve_constant(self.problem, self.opts, key, self.x, self.y,
                                                        self.rng, self.constant, self._spectra)
        return self.constants_used[key][0]

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
            None, "Stop when the norm of the method's hypergradient estimate is <= gtol/2, then "
            "certify ‖∇φ‖ <= gtol (0: never; default: " + _gtol_default_doc(cls.default_gtol) + ").",
            low=0.0, strict=False, allow_none=True)
        return spec

    @classmethod
    def all_renamed(cls):
        """Old option names of this method -> the new name (merged over the class hierarchy)."""
        out = {}
        for klass in reversed(cls.__mro__):
            out.update(klass.__dict__.get("renamed", {}))
        return out

    @classmethod
    def validate_options(cls, options):
        if options is None:
            options = {}
        if not isinstance(options, dict):
            raise TypeError(f"options must be a dict, got {type(options).__name__}")
        spec = cls.all_options()
        unknown = sorted(set(options) - set(spec))
        renamed = {**RENAMED, **cls.all_renamed()}
        for old in unknown:
            if old in renamed:
                raise OptionError(
                    f"options[{old!r}] of method {cls.name!r} was renamed to {renamed[old]} in "
                    "bilevel_ref 0.1.0 (see the rename table in CHANGELOG.md)")
        if unknown:
            raise OptionError(
                f"unknown option(s) {unknown} for method {cls.name!r}; known: {sorted(spec)}"
            )
        values = {name: opt.validate(name, options[name]) if name in options else opt.default
                  for name, opt in spec.items()}
        if values["gtol"] is None:
            values["gtol"] = cls.gtol_default(values)
        if "eps" in values and values["eps"] is None:
            values["eps"] = values["tol"]  # the cubic methods' own rule targets tol
        cls.check_options(values)
        return _Options(values)

    @classmethod
    def gtol_default(cls, values):
        """``gtol`` when the user gives none: ``tol`` (deterministic runs) or 0 (see
        :attr:`default_gtol`)."""
        if cls.default_gtol is None:
            return values["tol"]
        if cls.default_gtol == "deterministic":
            return values["tol"] if values.get("batch_size") is None else 0.0
        return float(cls.default_gtol)

    @classmethod
    def check_options(cls, values):
        """Cross-option checks (override; raise ValueError naming the option)."""


def _gtol_default_doc(default):
    if default is None:
        return "tol"
    if default == "deterministic":
        return "tol with batch_size=None, else 0"
    return f"{default:g}"


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
