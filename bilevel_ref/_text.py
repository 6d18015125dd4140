"""Text helpers of the command line: ``NAME=VALUE`` parsing, plain-text tables, JSON records.

Shared by ``bilevel-ref run`` (:mod:`bilevel_ref.cli`), ``compare``,
``complexity``, ``crosscheck`` and the ``bench`` commands.  No imports from
the rest of the package beyond :class:`~bilevel_ref.result.Status`, so every
module may use these without creating an import cycle.

JSON output goes through :func:`json_safe` (NaN and ±inf become ``null``: the
files are strict JSON that every parser reads) and files through
:func:`write_json_atomic` / :func:`atomic_path` (a temporary file in the same
directory, then :func:`os.replace`: a reader never sees half a file and an
interrupted write leaves the previous file intact).  :func:`safe_print` keeps
a command alive when its stdout pipe closes early (``... | head``);
:func:`add_threads_argument` and :func:`blas_limit` are the ``--threads``
option of ``run`` and ``compare``.
"""
from __future__ import annotations

import ast
import contextlib
import json
import math
import os
import sys
import tempfile

import numpy as np

from .result import Status

__all__ = ["parse_assignments", "format_table", "history_rows", "result_to_json", "fmt", "json_safe",
           "dumps_json", "write_json_atomic", "atomic_path", "output_path_error", "nan_for_null", "safe_print",
           "add_threads_argument", "blas_limit"]


def parse_assignments(items, what):
    """``["a=1", "b=cg"]`` -> ``{"a": 1, "b": "cg"}`` (Python literals, else strings).

    ``what`` names the flag in the error (``SystemExit``) for a malformed item.
    """
    out = {}
    for item in items or ():
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise SystemExit(f"bilevel-ref: {what} must look like NAME=VALUE, got {item!r}")
        try:
            out[key.strip()] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            out[key.strip()] = value
    return out


def fmt(value):
    """One table cell: floats in ``%.6e`` (``nan`` for non-finite), anything else ``str``."""
    if isinstance(value, (float, np.floating)):
        return "nan" if not np.isfinite(value) else f"{value:.6e}"
    return str(value)


def format_table(headers, rows):
    """Right-aligned plain-text table (cells through :func:`fmt`)."""
    cells = [[fmt(c) for c in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(headers)]
    lines = ["  ".join(h.rjust(w) for h, w in zip(headers, widths)),
             "  ".join("-" * w for w in widths)]
    lines += ["  ".join(c.rjust(w) for c, w in zip(row, widths)) for row in cells]
    return "\n".join(lines)


def history_rows(history, max_rows=20):
    """``(headers, rows)`` of a :class:`~bilevel_ref.History`: about ``max_rows``
    log-spaced iterations (first and last included), the oracle kinds used and the metrics."""
    nit = history["nit"]
    idx = np.unique(np.round(np.geomspace(1, len(nit), num=min(max_rows, len(nit)))).astype(int) - 1)
    idx = np.union1d(idx, [0, len(nit) - 1])
    counts = history.counts
    used = [k for k, v in counts.items() if v[-1] > 0]
    metric_names = [m for m in ("phi", "grad_norm", "grad_norm_est", "grad_est") if m in history]
    headers = ["iter"] + used + metric_names
    rows = [[int(nit[i])] + [int(counts[k][i]) for k in used] + [history[m][i] for m in metric_names]
            for i in idx]
    return headers, rows


def result_to_json(res, problem_name=None):
    """A JSON-ready dict of a :class:`~bilevel_ref.BilevelResult`.

    ``status`` is the integer code, ``status_label`` its word
    (:attr:`bilevel_ref.Status.label`: ``"converged"``, ``"maxiter"``, ...).
    """
    opts = {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in res.options.items()}
    return {
        "method": res.method, "problem": problem_name, "seed": res.seed,
        "success": bool(res.success), "status": int(res.status), "status_label": Status(res.status).label,
        "message": res.message,
        "nit": int(res.nit), "fun": float(res.fun), "grad_norm": float(res.grad_norm),
        "grad_norm_est": float(res.grad_norm_est),
        "min_eig": None if res.min_eig is None else float(res.min_eig),
        "oracle_calls": res.oracle_calls, "options": opts,
        "x": res.x.tolist(), "y": res.y.tolist(), "history": res.history.to_dict(),
    }


# ---------------------------------------------------------------------------
# strict JSON, atomic files
# ---------------------------------------------------------------------------
def json_safe(obj):
    """A copy of ``obj`` that :func:`json.dumps` writes as strict JSON.

    Recursive over dicts, lists and tuples; NumPy arrays become lists, NumPy
    scalars Python scalars; every non-finite float (NaN, ±inf, Python or
    NumPy) becomes ``None`` (``null``).  Dict keys become strings.  Other
    objects are returned unchanged (:func:`json.dumps` then raises on what it
    cannot write).
    """
    if isinstance(obj, dict):
        return {(k if isinstance(k, str) else str(k.item() if isinstance(k, np.generic) else k)): json_safe(v)
                for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return json_safe(obj.tolist())
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, complex):  # not JSON: (re, im)
        return json_safe([obj.real, obj.imag])
    return obj


def dumps_json(obj, indent=1):
    """Strict JSON text of ``obj`` (through :func:`json_safe`; never ``NaN``/``Infinity`` tokens)."""
    return json.dumps(json_safe(obj), indent=indent, allow_nan=False)


def nan_for_null(values):
    """Floats of a JSON list (or one value) with ``null`` read back as NaN: the inverse of :func:`json_safe`."""
    if isinstance(values, (list, tuple)):
        return [nan_for_null(v) for v in values]
    return math.nan if values is None else float(values)


def _file_mode():
    """Permission bits of a new file under the current umask (``mkstemp`` makes 0600 files)."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path next to ``path``; on success it replaces ``path`` (:func:`os.replace`).

    The temporary name ends with the same extension (writers that infer the
    format from it, such as matplotlib's ``savefig``, keep working).  On an
    exception the temporary file is removed and ``path`` is untouched.
    """
    path = os.fspath(path)
    directory, base = os.path.split(os.path.abspath(path))
    ext = os.path.splitext(base)[1]
    fd, tmp = tempfile.mkstemp(prefix=f".{base}.", suffix=f".tmp{ext}", dir=directory)
    os.close(fd)
    try:
        yield tmp
        os.chmod(tmp, _file_mode())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise


def output_path_error(path):
    """Why a file cannot be written at ``path`` (its directory is missing, or it is a directory), or ``None``.

    For checking an output path given on the command line before the work
    that produces the file starts.
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        return f"{path} is a directory"
    if not os.path.isdir(directory):
        return f"cannot write {path}: no directory {os.path.dirname(path) or '.'}"
    return None


def write_json_atomic(path, obj, indent=1):
    """Write ``obj`` as strict JSON (:func:`dumps_json`) to ``path`` atomically; returns ``path``.

    The text is built before anything is written (an object that cannot be
    serialised leaves no file), then written to a temporary file in the same
    directory, flushed to disk and moved over ``path`` with :func:`os.replace`.
    """
    text = dumps_json(obj, indent=indent) + "\n"
    with atomic_path(path) as tmp:
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
    return path


# ---------------------------------------------------------------------------
# stdout closed early, BLAS threads
# ---------------------------------------------------------------------------
def safe_print(*args, **kwargs):
    """:func:`print` to stdout that survives a closed pipe (``bilevel-ref compare ... | head``).

    On :class:`BrokenPipeError` stdout is pointed at ``os.devnull`` (the
    recipe of Python's :mod:`signal` documentation, so the interpreter's last
    flush does not fail either) and this and later prints are dropped: the
    command goes on, writes its files and exits with its own status.
    """
    try:
        print(*args, **kwargs)
        sys.stdout.flush()
    except BrokenPipeError:
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        except (OSError, ValueError):  # pragma: no cover - stdout without a file descriptor
            sys.stdout = open(os.devnull, "w")


def add_threads_argument(parser, default=1, help=None):
    """Add ``--threads N`` (BLAS/OpenMP/numba threads during the runs, see :func:`blas_limit`) to ``parser``.

    ``help`` replaces the default help text (commands whose ``--threads`` means something more specific).
    """
    parser.add_argument("--threads", type=int, default=default, metavar="N",
                        help=help or f"BLAS threads during the runs (threadpoolctl; default {default}, 0 = BLAS "
                                     "default). The matrices here are small: threads gain little, and on a busy "
                                     "machine oversubscribed OpenBLAS threads were measured 100x slower (FSBA on "
                                     "breast cancer: 109 s vs 0.9 s)")


def blas_limit(threads, note=None):
    """Context manager limiting threads to ``threads`` while inside it; ``0``: no limit.

    Limits every BLAS and OpenMP library threadpoolctl finds (``dsymv``/``dgemv``
    called from the numba kernels run in SciPy's BLAS, which is one of them)
    and, once numba's threading layer is running, numba's own thread count
    (:func:`numba.set_num_threads`, restored on exit); the ``prange`` kernels of
    :func:`bilevel_ref._jit.parallel_jit` follow the BLAS/OpenMP limits too.

    A :class:`ValueError` at once for a negative or non-integer ``threads``; the
    limit itself applies only on entering the ``with`` block.  Without
    threadpoolctl the BLAS/OpenMP limit is not applied and ``note`` (default: a
    line on stderr) is told so.
    """
    if isinstance(threads, bool) or not isinstance(threads, (int, np.integer)):
        raise ValueError(f"--threads must be an integer >= 0, got {threads!r}")
    if threads < 0:
        raise ValueError(f"--threads must be >= 0, got {threads}")
    return _blas_limited(int(threads), note)


@contextlib.contextmanager
def _numba_limited(threads):
    """numba's thread count limited to ``threads`` (only once numba's threading layer runs)."""
    numba = sys.modules.get("numba")
    parallel = sys.modules.get("numba.np.ufunc.parallel")
    if numba is None or parallel is None or not getattr(parallel, "_is_initialized", False):
        yield
        return
    before = numba.get_num_threads()
    numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
    try:
        yield
    finally:
        numba.set_num_threads(before)


@contextlib.contextmanager
def _blas_limited(threads, note):
    if threads == 0:
        yield
        return
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        text = ("note: threadpoolctl is not installed; BLAS threads are not limited "
                "(pip install threadpoolctl, or set OPENBLAS_NUM_THREADS)")
        (note or (lambda t: print(t, file=sys.stderr)))(text)
        with _numba_limited(threads):
            yield
        return
    with threadpool_limits(limits=threads), _numba_limited(threads):
        yield
