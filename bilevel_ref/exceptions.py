"""Errors and warnings of the library.

:class:`OptionError` is raised for every unknown or renamed option, by
:func:`bilevel_ref.minimize` and :func:`bilevel_ref.solve_cubic` alike.  It
subclasses :class:`ValueError` (what ``minimize`` always raised) and
:class:`TypeError` (what ``solve_cubic`` raised for unknown keyword options),
so code written against either keeps working.

:class:`BilevelRefWarning` is the category of every warning the library
emits; :func:`warn` issues one with a ``stacklevel`` that points at the first
frame outside the package, i.e. at the user's call.
"""
from __future__ import annotations

import os
import sys
import warnings

__all__ = ["OptionError", "NonFiniteError", "BilevelRefWarning", "warn"]

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep


class OptionError(ValueError, TypeError):
    """An unknown, misspelt or renamed option (the message names it and the fix)."""


class NonFiniteError(ValueError):
    """An array that must be finite holds NaN or inf.

    Inside :func:`bilevel_ref.minimize` it ends the run with status
    ``NONFINITE`` (the last finite iterates are returned); elsewhere it is a
    :class:`ValueError` naming the argument.
    """


class BilevelRefWarning(UserWarning):
    """A warning from bilevel_ref (filter with ``warnings.simplefilter(..., BilevelRefWarning)``)."""


def _user_stacklevel():
    """``stacklevel`` for :func:`warnings.warn` called from :func:`warn` that
    lands on the first frame outside ``bilevel_ref`` (the user's code)."""
    frame = sys._getframe(2)  # the caller of warn()
    level = 2
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(_PACKAGE_DIR):
        frame = frame.f_back
        level += 1
    return level


def warn(message, category=BilevelRefWarning):
    """Emit ``message`` attributed to the user's line that called into the library."""
    warnings.warn(message, category, stacklevel=_user_stacklevel())
