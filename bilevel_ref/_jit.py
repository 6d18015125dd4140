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

Cache failures
--------------
A cache file that cannot be read (truncated or overwritten: ``UnpicklingError``,
``EOFError``, a compiled overload whose signature is not the requested one, or
any other error while loading it) is a cache miss, not a failure: the kernel
is recompiled, the unreadable index and data files *of that function only* are
removed (the fresh compilation writes them again), and one
:class:`~bilevel_ref.exceptions.BilevelRefWarning` per cache directory names the
directory and how to clear it.  An error while writing the cache is reported
the same way; the compiled kernel is used regardless.

Threads (:func:`parallel_jit`)
------------------------------
A kernel whose ``prange`` loops write *disjoint* outputs (each output element
is computed by one iteration, in a fixed order; no reduction across
iterations) returns the same bits for every thread count, so the determinism
promise holds.  Such kernels, and only those, are compiled with
:func:`parallel_jit` (``numba.njit(parallel=True, cache=True)``).  They split
their work into ``chunks`` explicit pieces, ``chunks`` being
:func:`kernel_threads`: the smallest of numba's thread count
(``NUMBA_NUM_THREADS``, :func:`numba.set_num_threads`) and the current
threadpoolctl limits of the BLAS and OpenMP libraries, so that
``threadpool_limits(1)`` or ``--threads 1`` means one thread.

numba's OpenMP workers spin after each parallel region by default; on a
machine busy with other processes the spinning workers took the cores from
the threads doing the work, and a 2-thread dense batch sum ran 5 to 15 times
slower than on one thread (2 cores, load average 11; equal with sleeping
workers).  So unless ``OMP_WAIT_POLICY`` or ``GOMP_SPINCOUNT`` is set, the
first kernel module to load numba sets ``OMP_WAIT_POLICY=PASSIVE`` in the
environment, before numba loads its OpenMP runtime (set
``OMP_WAIT_POLICY=ACTIVE`` for the lowest launch latency on an idle machine).
An OpenMP runtime loaded earlier in the process keeps its own setting.

Switches
--------
``NUMBA_DISABLE_JIT=1`` (numba's own switch) or ``BILEVEL_REF_DISABLE_JIT=1``
in the environment, or :func:`set_enabled` (False) before the first kernel
module is imported: :func:`jit` then returns the plain Python function and numba
is not imported at all, e.g. to debug a kernel or measure its line coverage.
"""
from __future__ import annotations

import glob
import importlib
import os
import sys
import types
import warnings

from .exceptions import BilevelRefWarning

__all__ = ["jit", "jitable", "rebind", "enabled", "set_enabled", "ENV_VAR", "parallel_jit", "prange",
           "kernel_threads", "check_threads", "blas_function"]

#: Environment variable that turns compilation off for this package only.
ENV_VAR = "BILEVEL_REF_DISABLE_JIT"

_FORBIDDEN = ("fastmath", "parallel")
_override = None  # set_enabled(); None: the environment decides
_numba = None  # the numba module, once a kernel module has been compiled
_pending = []  # (function, compiled body, options) for jitable, registered with numba when it is loaded
_registering = False  # _load_numba is registering _pending (the import of a named body may call it again)
_warned_cache_dirs = set()  # cache directories already named in a cache-failure warning
_recovering_classes = {}  # numba cache class -> its recovering subclass


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
        # idle OpenMP workers of parallel_jit kernels sleep instead of spinning,
        # unless the user chose (module docstring, "Threads")
        if "GOMP_SPINCOUNT" not in os.environ:
            os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
        import numba

        _numba = numba
    global _registering
    if not _registering:  # a "module:attribute" body being imported may load numba again: not re-entered
        _registering = True
        deferred = []
        try:
            while _pending:
                entry = _pending.pop(0)
                if not _register(*entry):
                    deferred.append(entry)
        finally:
            _pending[:0] = deferred  # bodies of a module still being imported: registered on a later load
            _registering = False
    return _numba


def _register(func, body, options):
    from numba.extending import overload

    if isinstance(body, str):  # "module:attribute", a body that needs numba itself: imported now
        module, _, attr = body.partition(":")
        body = getattr(importlib.import_module(module), attr, None)
        if body is None:  # that module is the one being imported (it loaded numba first): not yet
            return False
    options = dict(options)
    inline = options.pop("inline", "never")

    def typer(*args, **kwargs):
        return body

    overload(func, jit_options=options, inline=inline, strict=False)(typer)
    return True


def jit(*args, **options):
    """``numba.njit(cache=True)`` under the package policy (see the module docstring).

    Use as ``@jit``, ``@jit(nogil=True)`` or ``jit(function)``.  With JIT off
    the function itself is returned.
    """
    for name in _FORBIDDEN:
        if options.get(name):
            raise ValueError(f"the JIT policy forbids {name}=True (determinism: bilevel_ref._jit)")
    options.setdefault("cache", True)

    sigs = ()
    if len(args) == 1 and isinstance(args[0], types.FunctionType):
        func, args = args[0], ()
    else:
        func = None
    if args:  # explicit signatures, as numba.njit(sigs, **options): compiled eagerly below
        if len(args) != 1:
            raise TypeError(f"jit takes one signature or a list of signatures, got {len(args)} arguments")
        sigs = list(args[0]) if isinstance(args[0], (list, tuple)) else [args[0]]

    closure_cache = _closure_cache_requested(options)

    def decorate(func):
        if not enabled():
            return func
        dispatcher = _dispatcher(func, options, closure_cache)
        if sigs:  # numba.njit(sigs) compiles these and no others; here after the cache is guarded
            for sig in sigs:
                dispatcher.compile(sig)
            dispatcher.disable_compile()
        return dispatcher

    return decorate if func is None else decorate(func)


# --------------------------------------------------------------------------- closures on disk
def _closure_cache_requested(options):
    """True for ``cache="closure"`` (then numba's own cache is off: :func:`_enable_closure_cache`)."""
    if options.get("cache") != "closure":
        return False
    options["cache"] = False
    return True


def _dispatcher(func, options, closure_cache):
    """``numba.njit(**options)(func)`` with the package's cache handling."""
    dispatcher = _load_numba().njit(**options)(func)
    if closure_cache and func.__closure__:
        _enable_closure_cache(dispatcher)
    _recover_cache_failures(dispatcher)
    return dispatcher


class _NoStableKey(Exception):
    """A closure cell holds a jitted function without a source file: no key is stable across processes."""


def _stable_description(value, seen=None):
    """What a closure cell holds, described without process-specific identities.

    numba keys a closure's cache entry by pickling its cells, and a pickled
    dispatcher carries a per-process UUID: such entries never hit in a new
    process.  A dispatcher is described here by its function's module,
    qualified name, bytecode, the SHA-256 of its source file and (recursively)
    its own closure, so an edit to an oracle's module gives a new key.
    """
    import hashlib
    import inspect
    import pickle

    seen = set() if seen is None else seen
    py_func = getattr(value, "py_func", None)
    if py_func is not None:
        if id(py_func) in seen:
            return ("recursive", py_func.__qualname__)
        seen.add(id(py_func))
        try:
            with open(inspect.getsourcefile(py_func), "rb") as fh:
                source = hashlib.sha256(fh.read()).hexdigest()
        except (OSError, TypeError):
            raise _NoStableKey(py_func.__qualname__) from None  # e.g. defined in an interactive session
        cells = tuple(_stable_description(c.cell_contents, seen) for c in py_func.__closure__ or ())
        code = py_func.__code__
        return ("dispatcher", py_func.__module__, py_func.__qualname__,
                hashlib.sha256(code.co_code + repr(code.co_consts).encode()).hexdigest(), source, cells)
    if isinstance(value, tuple):
        return tuple(_stable_description(v, seen) for v in value)
    return ("value", hashlib.sha256(pickle.dumps(value)).hexdigest())


def _callee_sources(func, seen=None):
    """SHA-256 of the source files of the package functions and modules ``func`` names as globals,
    recursively: an edit to a shared body called by name (e.g. linalg.cg.cg_step) gives a new key."""
    import hashlib
    import inspect

    seen = set() if seen is None else seen
    out = []
    code = getattr(func, "__code__", None)
    if code is None:
        return out
    names = set(code.co_names)
    for const in code.co_consts:  # nested functions (closures) of func
        if isinstance(const, types.CodeType):
            names.update(const.co_names)
    for name in sorted(names):
        value = func.__globals__.get(name)
        value = getattr(value, "py_func", value)
        module = value.__name__ if isinstance(value, types.ModuleType) else getattr(value, "__module__", None)
        if not isinstance(module, str) or not module.startswith(__package__ + ".") or id(value) in seen:
            continue
        seen.add(id(value))
        try:
            path = inspect.getsourcefile(value)
        except TypeError:
            continue
        if path and path not in seen:
            seen.add(path)
            with open(path, "rb") as fh:
                out.append((module, hashlib.sha256(fh.read()).hexdigest()))
        if isinstance(value, types.FunctionType):
            out.extend(_callee_sources(value, seen))
    return out


def _enable_closure_cache(dispatcher):
    """Cache a kernel built by a factory (a closure over jitted oracles) on disk.

    Used through ``jit(cache="closure")`` by the method kernels of
    :mod:`bilevel_ref._kernels.loops`, which bind a problem family's compiled
    oracles as constants: without this, every process would compile them again
    (seconds per method and family).  The entry is keyed by the closure's
    stable description (:func:`_stable_description`); numba's usual rule
    applies besides: edits to modules other than the kernel's and the oracles'
    own files are not detected (clear the cache, module docstring).
    """
    import hashlib

    from numba.core.caching import FunctionCache

    func = dispatcher.py_func
    try:
        cells = tuple(_stable_description(c.cell_contents) for c in func.__closure__ or ())
    except _NoStableKey:
        return  # compiled once per process, as without a cache
    cells_digest = hashlib.sha256((repr(cells) + repr(_callee_sources(func))).encode()).hexdigest()

    class ClosureFunctionCache(FunctionCache):
        def _index_key(self, sig, codegen):
            code = hashlib.sha256(self._py_func.__code__.co_code).hexdigest()
            return (sig, codegen.magic_tuple(), (code, cells_digest))

    try:
        dispatcher._cache = ClosureFunctionCache(dispatcher.py_func)
    except Exception:  # noqa: BLE001 -- no locatable cache directory: stay in memory, as before
        pass


# --------------------------------------------------------------------------- cache failures
def _recover_cache_failures(dispatcher):
    """Make an unreadable on-disk cache of ``dispatcher`` a warned cache miss (module docstring)."""
    cache = getattr(dispatcher, "_cache", None)
    base = type(cache)
    if cache is None or not hasattr(cache, "_cache_file") or not hasattr(base, "load_overload"):
        return  # NullCache (cache=False) or a numba without the file cache this guards
    cls = _recovering_classes.get(base)
    if cls is None:
        cls = type(f"Recovering{base.__name__}", (base,), {
            "__doc__": f"{base.__name__} whose read/write errors are warned cache misses (bilevel_ref._jit).",
            "load_overload": _guarded_load, "save_overload": _guarded_save, "_recovering_base": base,
        })
        _recovering_classes[base] = cls
    cache.__class__ = cls


def _guarded_load(self, sig, target_context):
    """``Cache.load_overload``, with any error (or an overload of another signature) a cache miss."""
    try:
        cres = self._recovering_base.load_overload(self, sig, target_context)
        if cres is not None:
            from numba.core import sigutils

            wanted = tuple(sigutils.normalize_signature(sig)[0])
            if tuple(cres.signature.args) != wanted:
                raise TypeError(f"the cached overload has signature {cres.signature}, "
                                f"not the requested {wanted}")
        return cres
    except Exception as exc:  # noqa: BLE001 -- a cache that cannot be read is a miss, whatever the reason
        _cache_failed(self, "read", exc)
        return None


def _guarded_save(self, sig, data):
    """``Cache.save_overload``; an error is warned and the compiled kernel used regardless."""
    try:
        self._recovering_base.save_overload(self, sig, data)
    except Exception as exc:  # noqa: BLE001
        _cache_failed(self, "written", exc)


def _cache_file_paths(cache):
    """The index (.nbi) and data (.nbc) files of one function's cache."""
    files = cache._cache_file
    head, _, tail = files._data_name_pattern.partition("{number:d}")  # "<function>-<line>.pyXY.{n}.nbc"
    pattern = glob.escape(os.path.join(cache.cache_path, head)) + "*" + glob.escape(tail)
    return [files._index_path] + sorted(glob.glob(pattern))


def _cache_failed(cache, action, exc):
    """Remove one function's cache files and warn once per cache directory."""
    removed = []
    for path in _cache_file_paths(cache):
        try:
            os.remove(path)
            removed.append(os.path.basename(path))
        except OSError:
            pass
    directory = cache.cache_path
    if directory in _warned_cache_dirs:
        return
    _warned_cache_dirs.add(directory)
    func = cache._py_func
    _warn_at_user(f"the numba cache of {func.__module__}.{func.__qualname__} could not be {action} "
                  f"({type(exc).__name__}: {exc}); the kernel was recompiled without it and its cache "
                  f"files {removed or '(none)'} were removed. Cache directory: {directory}. If this "
                  f"recurs, clear the cache: delete that directory (or the *.nbi and *.nbc files in "
                  f"it), or set NUMBA_CACHE_DIR to a fresh directory.")


def _warn_at_user(message):
    """A :class:`BilevelRefWarning` attributed to the first frame outside bilevel_ref and numba
    (:func:`bilevel_ref.exceptions.warn` stops at the first frame outside bilevel_ref, which
    here is numba's dispatcher)."""
    inside = (os.path.dirname(os.path.abspath(__file__)) + os.sep,
              os.path.dirname(os.path.abspath(_numba.__file__)) + os.sep)
    frame, level = sys._getframe(0), 1
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(inside):
        frame, level = frame.f_back, level + 1
    warnings.warn(message, BilevelRefWarning, stacklevel=level)


def jitable(func=None, *, numba_impl=None, **options):
    """Mark a plain Python function that compiled kernels may call by its global name.

    Python callers get ``func`` unchanged; compiled callers get ``numba_impl``
    (default: ``func``'s own source), registered with numba once a kernel
    module loads it.  ``numba_impl`` may be a string ``"module:attribute"``
    naming a body that itself needs numba (e.g. a BLAS binding): that module is
    imported only then, so the module marking ``func`` stays free of numba.
    ``options`` are numba options for that body (e.g. ``inline="always"``).
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


# --------------------------------------------------------------------------- BLAS for kernels
def blas_function(name, nargs):
    """SciPy's BLAS routine ``name`` (``scipy.linalg.cython_blas``) as a function compiled kernels call.

    Every one of the ``nargs`` arguments is a pointer (the Fortran interface;
    pass ``array.ctypes``).  The routine's address is registered with LLVM
    under a symbol name (``llvmlite.binding.add_symbol``) and called through
    :class:`numba.types.ExternalFunction`, so the machine code of a caller
    names the symbol, not an address, and stays cacheable (the registration
    runs again in every process, before any cached kernel is loaded).  It runs
    in SciPy's BLAS thread pool — the library numba's own ``np.dot`` calls —
    which threadpoolctl governs.  Needs compilation on (:func:`enabled`).
    """
    numba = _load_numba()
    import llvmlite.binding as llvm
    from numba.extending import get_cython_function_address

    symbol = f"bilevel_ref_cython_blas_{name}"
    llvm.add_symbol(symbol, get_cython_function_address("scipy.linalg.cython_blas", name))
    return numba.types.ExternalFunction(symbol, numba.types.void(*([numba.types.voidptr] * nargs)))


# --------------------------------------------------------------------------- threads
def parallel_jit(*args, **options):
    """``numba.njit(parallel=True, cache=True)`` for kernels with disjoint-output ``prange`` loops.

    Only for kernels whose result does not depend on the thread count (module
    docstring, "Threads"); ``fastmath`` is refused as in :func:`jit`.  With JIT
    off the function itself is returned (``prange`` is then ``range``).
    Use as ``@parallel_jit`` or ``@parallel_jit(nogil=True)``.
    """
    if options.get("fastmath"):
        raise ValueError("the JIT policy forbids fastmath=True (determinism: bilevel_ref._jit)")
    options.setdefault("cache", True)
    options["parallel"] = True

    closure_cache = _closure_cache_requested(options)

    def decorate(func):
        if not enabled():
            return func
        dispatcher = _dispatcher(func, options, closure_cache)
        dispatcher.disjoint_parallel = True   # the policy test accepts parallel=True only with this mark
        return dispatcher

    if len(args) == 1 and isinstance(args[0], types.FunctionType):
        return decorate(args[0])
    if args:
        raise TypeError("parallel_jit takes a function or keyword options only")
    return decorate


def prange():
    """``numba.prange`` when :func:`jit` compiles, else ``range`` (bind it at a kernel module's import)."""
    return _load_numba().prange if enabled() else range


def check_threads(value, name="threads"):
    """``value`` as a positive ``int``; a :class:`ValueError` naming ``name`` otherwise (bools too)."""
    import numbers

    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


_thread_getters = None  # get_num_threads callables of the BLAS and OpenMP libraries (threadpoolctl)
_scanned_with_layer = False  # scanned again once numba's threading layer (its OpenMP runtime) was loaded


def _getter(controller):
    """The C ``get_num_threads`` function of a threadpoolctl controller (ctypes, ~0.3 µs a call);
    the controller's own method (~1 µs) where that function cannot be found."""
    func = None
    try:
        if controller.internal_api == "openblas":
            func = controller._get_symbol("omp_get_max_threads" if controller.threading_layer == "openmp"
                                          else "openblas_get_num_threads")
        elif controller.user_api == "openmp":
            func = getattr(controller.dynlib, "omp_get_max_threads", None)
    except Exception:  # noqa: BLE001 -- a threadpoolctl without these internals: use its method
        func = None
    return func if func is not None else controller.get_num_threads


def _numba_threads():
    """``numba.get_num_threads()``; after the first parallel launch its C getter directly (~0.2 µs, not ~2)."""
    global _numba_getter
    if _numba_getter is not None:
        return _numba_getter()
    n = _numba.get_num_threads()
    try:
        from numba.np.ufunc import parallel

        if parallel._is_initialized:
            getter = parallel._get_num_threads
            if getter() == n:
                _numba_getter = getter
    except Exception:  # noqa: BLE001 -- another numba: keep the public function
        pass
    return n


_numba_getter = None


def _getters():
    global _thread_getters, _scanned_with_layer
    if _thread_getters is None or not _scanned_with_layer:
        try:
            _numba.threading_layer()      # ValueError until the first parallel launch
            layer = True
        except ValueError:
            layer = False
        if _thread_getters is None or layer:
            try:
                from threadpoolctl import ThreadpoolController
            except ImportError:  # pragma: no cover - threadpoolctl is a dependency
                _thread_getters = ()
            else:
                _thread_getters = tuple(_getter(c) for c in ThreadpoolController().lib_controllers
                                        if c.user_api in ("blas", "openmp"))
            _scanned_with_layer = layer
    return _thread_getters


def kernel_threads(limit=None):
    """Threads a :func:`parallel_jit` kernel may use now (1 with JIT off).

    The smallest of numba's thread count (``NUMBA_NUM_THREADS``,
    :func:`numba.set_num_threads`), the live threadpoolctl limits of the BLAS
    and OpenMP libraries (found by threadpoolctl at the first call, and again
    once numba has loaded its OpenMP runtime; so ``threadpool_limits(1)``
    means one thread) and ``limit`` (a positive integer,
    :func:`check_threads`).  Costs about 2 µs.
    """
    if limit is not None:
        limit = check_threads(limit, "limit")
    if _numba is None:   # no kernel compiled (JIT off, or none loaded yet): nothing runs in parallel
        return 1
    n = _numba_threads()
    for get in _getters():
        k = get()
        if k is not None and 0 < k < n:
            n = k
    if limit is not None and limit < n:
        n = limit
    return max(int(n), 1)
