"""Named problem instances for the command line and benchmarks.

A problem module registers builders with :func:`register_problem`; a builder
takes ``seed`` plus keyword parameters (their defaults are the documented
instance) and returns ``(problem, x0)``.  Modules of this package are
discovered automatically, so a new family only needs its own file.
"""
from __future__ import annotations

import importlib
import inspect
import pkgutil

__all__ = ["register_problem", "problem_names", "build_problem", "describe_problems"]

_BUILDERS: dict = {}
_LOADED = False


def register_problem(name, description):
    """Decorator registering ``builder(seed, **params) -> (problem, x0)`` under ``name``."""

    def decorate(builder):
        if name in _BUILDERS:
            raise RuntimeError(f"problem name {name!r} registered twice")
        _BUILDERS[name] = (builder, description)
        return builder

    return decorate


def _load():
    global _LOADED
    if not _LOADED:
        from .. import problems

        for info in pkgutil.iter_modules(problems.__path__):
            importlib.import_module(f"{problems.__name__}.{info.name}")
        _LOADED = True


def problem_names():
    """Sorted names of the registered problem instances."""
    _load()
    return sorted(_BUILDERS)


def _params(builder):
    return {k: p.default for k, p in inspect.signature(builder).parameters.items() if k != "seed"}


def describe_problems():
    """``[(name, description, {param: default})]`` for every registered instance."""
    _load()
    return [(n, _BUILDERS[n][1], _params(_BUILDERS[n][0])) for n in sorted(_BUILDERS)]


def build_problem(name, seed=0, **params):
    """Build the named instance; returns ``(problem, x0)``."""
    _load()
    if name not in _BUILDERS:
        raise ValueError(f"unknown problem {name!r}; available: {problem_names()}")
    builder = _BUILDERS[name][0]
    unknown = sorted(set(params) - set(_params(builder)))
    if unknown:
        raise ValueError(f"unknown parameter(s) {unknown} for problem {name!r}; known: {sorted(_params(builder))}")
    return builder(seed=seed, **params)
