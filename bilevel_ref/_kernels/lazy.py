"""numba kernel of the eigen-space secular solve (LazyCubic and ``eigh`` with backend="numba").

:func:`bilevel_ref.linalg.cubic._core.secular_eig` (Newton on the secular
equation, Cartis–Gould–Toint 2011 §6.1, hard case in closed form) compiled
from the reference's own source: O(d) per Newton iteration.  Compiled on first
import, cached on disk (the policy of :mod:`bilevel_ref._jit`).
"""
from __future__ import annotations

from .. import _jit
from ..linalg.cubic import _core

__all__ = ["secular_eig"]

secular_eig = _jit.jit(_core.secular_eig)
