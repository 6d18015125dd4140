"""Transitional re-export (removed at the end of the layout change)."""
from ._minimize import minimize  # noqa: F401
from ._solver import Option, Solver, get_method, methods, register, show_options  # noqa: F401
