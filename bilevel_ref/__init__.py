"""bilevel_ref: reference implementations of bilevel and minimax optimization methods.

Every method is a readable NumPy implementation of its paper's update rule;
every oracle call is counted; same seed, same result.  Start with
:func:`minimize`, :func:`methods` and the problems in :mod:`bilevel_ref.problems`.
"""
from . import complexity, crosscheck, problems
from ._minimize import minimize
from ._solver import Solver, get_method, methods, register, show_options
from .options import Option
from .linalg import CubicResult, LazyCubic, cubic_kkt, solve_cubic
from .oracles import BudgetExhausted, OracleCounter
from .problems import BilevelProblem, MinimaxProblem
from .exceptions import BilevelRefWarning, OptionError
from .result import BilevelResult, History, Status

__version__ = "0.1.0.dev0"

__all__ = [
    "minimize", "methods", "show_options", "get_method", "register", "Solver", "Option",
    "BilevelProblem", "MinimaxProblem", "OracleCounter", "BudgetExhausted",
    "BilevelResult", "History", "Status", "OptionError", "BilevelRefWarning", "problems", "complexity", "crosscheck", "__version__",
    "solve_cubic", "LazyCubic", "CubicResult", "cubic_kkt",
    "check_problem", "ProblemCheck", "profiles",
]


def __getattr__(name):
    # lazy: ``python -m bilevel_ref.check`` must not find the module already imported
    if name in ("check_problem", "ProblemCheck"):
        from . import check

        return getattr(check, name)
    if name == "profiles":
        import importlib

        return importlib.import_module(f"{__name__}.profiles")
    raise AttributeError(f"module 'bilevel_ref' has no attribute {name!r}")
