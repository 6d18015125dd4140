"""Steps shared by several methods: resolving smoothness constants for step sizes."""
from __future__ import annotations

__all__ = ["lower_constants", "problem_constant"]


def problem_constant(problem, opts, option, key, *, what):
    """An explicit option value, else ``problem.constants()[key]``, else a clear error."""
    value = opts.get(option)
    if value is not None:
        return value
    known = problem.constants()
    if key in known:
        return float(known[key])
    raise ValueError(
        f"options[{option!r}] is required: problem {problem.name!r} does not report "
        f"{key!r} in constants() ({what})"
    )


def lower_constants(problem, opts):
    """``(L_g, mu_g)`` of the lower level from options ``L_g``/``mu_g`` or the problem."""
    L_g = problem_constant(problem, opts, "L_g", "L_g", what="smoothness of g in y")
    mu_g = problem_constant(problem, opts, "mu_g", "mu_g", what="strong convexity of g in y")
    return L_g, mu_g
