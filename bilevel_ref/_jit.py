"""The JIT policy: every numba kernel of the package is compiled through :func:`jit`.

Policy
------
``jit(...)`` is ``numba.njit(cache=True)`` and nothing more:

- ``cache=True``: machine code is written next to the source (``__pycache__``,
  or ``NUMBA_CACHE_DIR``) and reused by later processes;
- no ``fastmath``: IEEE semantics, no reassociation, no FMA contraction, so a
  kernel performs the rounding of the reference's operations in the reference's
  order;
- no ``parallel=True`` / ``prange``: a parallel reduction's order depends on the
  thread count.

Together: same inputs, same bits, on the same machine and library versions
(the determinism promise of the package).  ``jit`` refuses ``fastmath`` and
``parallel``; other ``numba.njit`` options (``nogil``, ``inline``,
``boundscheck``, signatures, ...) pass through.

Shared pieces
-------------
A kernel is compiled from the NumPy reference's own functions: the reference
calls the plain Python function, the kernel module applies :func:`jit` to the
same function.  A plain function that compiled code calls by its global name
is marked with :func:`jitable` (numba's ``register_jitable``); ``numba_impl``
gives compiled callers another body where Python needs one numba lacks
(``np.errstate``, a callable ``H``) or where a fused loop is faster.

Laziness
--------
This module does not import numba.  numba (~0.3 s) is imported when a kernel
module applies :func:`jit`, and the kernel modules are imported inside the
functions that need them (``backend="numba"``, a minibatch draw), so
``import bilevel_ref`` stays free of numba.

Switches
--------
``NUMBA_DISABLE_JIT=1`` (numba's own switch) or ``BILEVEL_REF_DISABLE_JIT=1``
in the environment, or :func:`set_enabled` (False) before the first kernel
module is imported: :func:`jit` then returns the plain Python function and numba
is not imported at all, e.g. to debug a kernel or measure its line coverage.
"""
from __future__ import annotations

import os
import types

__all__ = ["jit", "jitable", "rebind", "enabled", "set_enabled", "ENV_VAR"]

#: Environment variable that turns compilation off for this package only.
ENV_VAR = "BILEVEL_REF_DISABLE_JIT"

_FORBIDDEN = ("fastmath", "parallel")
_override = None  # set_enabled(); None: the environment decides
_numba = None  # the numba module, once a kernel module has been compiled
_pending = []  # (function, compiled body, options) for jitable, registered with numba when it is loaded


def _env_flag(name):
    """numba's reading of a flag variable: an integer, non-zero means on (junk means off)."""
    try:
        return int(os.environ.get(name, "0") or "0") != 0
    except ValueError:
        return False


def enabled():
    """True when :func:`jit` compiles (no switch above is set)."""
    if _override is not None:
        return _override
    return not (_env_flag(ENV_VAR) or _env_flag("NUMBA_DISABLE_JIT"))


def set_enabled(flag):
    """Turn compilation on or off for kernel modules imported afterwards; returns the previous state.

    Kernel modules compile when first imported, so call this before any
    ``backend="numba"`` solve (or in a fresh process).  ``None`` restores the
    environment's choice.
    """
    global _override
    previous = enabled()
    _override = None if flag is None else bool(flag)
    return previous


def _load_numba():
    global _numba
    if _numba is None:
        import numba

        _numba = numba
    while _pending:
        _register(*_pending.pop(0))
    return _numba


def _register(func, body, options):
    from numba.extending import overload

    options = dict(options)
    inline = options.pop("inline", "never")

    def typer(*args, **kwargs):
        return body

    overload(func, jit_options=options, inline=inline, strict=False)(typer)


def jit(*args, **options):
    """``numba.njit(cache=True)`` under the package policy (see the module docstring).

    Use as ``@jit``, ``@jit(nogil=True)`` or ``jit(function)``.  With JIT off
    the function itself is returned.
    """
    for name in _FORBIDDEN:
        if options.get(name):
            raise ValueError(f"the JIT policy forbids {name}=True (determinism: bilevel_ref._jit)")
    options.setdefault("cache", True)

    def decorate(func):
        if not enabled():
            return func
        return _load_numba().njit(**options)(func)

    if len(args) == 1 and isinstance(args[0], types.FunctionType):
        return decorate(args[0])
    if args:  # explicit signatures: numba.njit(sigs, **options)
        return lambda func: func if not enabled() else _load_numba().njit(*args, **options)(func)
    return decorate


def jitable(func=None, *, numba_impl=None, **options):
    """Mark a plain Python function that compiled kernels may call by its global name.

    Python callers get ``func`` unchanged; compiled callers get ``numba_impl``
    (default: ``func``'s own source), registered with numba once a kernel
    module loads it.  ``options`` are numba options for that body (e.g.
    ``inline="always"``).
    """
    def mark(f):
        _pending.append((f, f if numba_impl is None else numba_impl, options))
        if _numba is not None:
            _load_numba()
        return f

    return mark if func is None else mark(func)


def rebind(func, **names):
    """``func`` with some of the global names it calls bound to other objects (same code).

    A kernel module runs a reference driver in Python, with callables it
    cannot compile (a matrix-free H), while the inner pieces the driver calls
    by name are the compiled ones: ``rebind(driver, tridiag_secular=compiled)``.
    """
    unknown = sorted(set(names) - set(func.__code__.co_names))
    if unknown:
        raise NameError(f"{func.__qualname__} does not use the global name(s) {unknown}")
    namespace = dict(func.__globals__, **names)
    new = types.FunctionType(func.__code__, namespace, func.__name__, func.__defaults__, func.__closure__)
    new.__kwdefaults__ = func.__kwdefaults__
    new.__doc__, new.__qualname__, new.__module__ = func.__doc__, func.__qualname__, func.__module__
    return new
