"""Input validation shared by every public entry point.

All checks raise :class:`TypeError` (wrong kind of object) or
:class:`ValueError` (right kind, wrong value) and name the offending
parameter, so that a user sees ``x0 must have shape (5,), got (4,)`` rather
than a broadcasting error ten frames deep.  Validation happens once, at entry
(``minimize``, ``solve_cubic``, problem constructors); hot loops never call
these helpers.
"""
from __future__ import annotations

import math
import numbers

import numpy as np

from .exceptions import NonFiniteError

__all__ = [
    "as_vector",
    "as_matrix",
    "as_symmetric",
    "check_positive",
    "check_nonnegative",
    "check_int",
    "check_choice",
    "check_rng",
]


def _as_float_array(value, name):
    if isinstance(value, (str, bytes)) or value is None:
        raise TypeError(f"{name} must be an array of real numbers, got {type(value).__name__}")
    try:
        arr = np.asarray(value)
    except Exception as exc:  # pragma: no cover - numpy raises many kinds
        raise TypeError(f"{name} must be an array of real numbers ({exc})") from None
    if arr.dtype == object or not (
        np.issubdtype(arr.dtype, np.floating)
        or np.issubdtype(arr.dtype, np.integer)
        or np.issubdtype(arr.dtype, np.bool_)
    ):
        raise TypeError(f"{name} must be an array of real numbers, got dtype {arr.dtype}")
    return arr


def as_vector(value, name, size=None, *, dtype=np.float64, finite=True, copy=True):
    """Return ``value`` as a 1-D array of ``dtype``, checking length and finiteness.

    Parameters
    ----------
    value : array_like
        The candidate vector.
    name : str
        Parameter name used in error messages.
    size : int, optional
        Required length.
    dtype : numpy dtype, default float64
        Output dtype (float32 only for the documented non-reference modes).
    finite : bool, default True
        Reject NaN and infinity.
    copy : bool, default True
        Always return a fresh array (so callers may update it in place).
    """
    arr = _as_float_array(value, name)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array, got shape {arr.shape}")
    if size is not None and arr.shape[0] != size:
        raise ValueError(f"{name} must have shape ({size},), got {arr.shape}")
    out = np.array(arr, dtype=dtype, copy=True) if copy else np.asarray(arr, dtype=dtype)
    if finite and not np.all(np.isfinite(out)):
        raise NonFiniteError(f"{name} must contain only finite values (no NaN or inf)")
    return out


def as_matrix(value, name, shape=None, *, finite=True):
    """Return ``value`` as a 2-D float64 array, checking shape and finiteness."""
    arr = _as_float_array(value, name)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array, got shape {arr.shape}")
    if shape is not None:
        want = tuple(arr.shape[i] if s is None else s for i, s in enumerate(shape))
        if arr.shape != want:
            raise ValueError(f"{name} must have shape {want}, got {arr.shape}")
    out = np.array(arr, dtype=np.float64, copy=True)
    if finite and not np.all(np.isfinite(out)):
        raise NonFiniteError(f"{name} must contain only finite values (no NaN or inf)")
    return out


def as_symmetric(value, name, *, rtol=1e-12, copy=True):
    """Return ``value`` as a finite, square, symmetric float64 matrix.

    Symmetry is checked to ``rtol * max(1, ||H||_max)``, block by block so that
    no d×d temporary is formed (the check costs about one pass over H).  The
    returned matrix is the input (not symmetrised), copied unless ``copy=False``
    and the input already is a float64 array.
    """
    arr = as_matrix(value, name) if copy else _as_float_array(value, name)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array, got shape {arr.shape}")
    if arr.shape[0] != arr.shape[1]:
        raise ValueError(f"{name} must be square, got shape {arr.shape}")
    arr = np.asarray(arr, dtype=np.float64)
    if not copy and not math.isfinite(float(np.sum(arr))):
        if not np.all(np.isfinite(arr)):
            raise NonFiniteError(f"{name} must contain only finite values (no NaN or inf)")
    if arr.size:
        scale = max(1.0, float(np.max(np.abs(arr))))
        d, block = arr.shape[0], 256
        for i in range(0, d, block):
            for j in range(i, d, block):
                gap = np.max(np.abs(arr[i:i + block, j:j + block] - arr[j:j + block, i:i + block].T))
                if gap > rtol * scale:
                    raise ValueError(f"{name} must be symmetric")
    return arr


def _is_real_number(value):
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def check_positive(value, name, *, allow_inf=False):
    """``value`` as a float, requiring ``value > 0`` (and finite unless allowed)."""
    if not _is_real_number(value):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    value = float(value)
    if not (value > 0) or (not allow_inf and not np.isfinite(value)):
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return value


def check_nonnegative(value, name):
    """``value`` as a float, requiring ``0 <= value < inf``."""
    if not _is_real_number(value):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    value = float(value)
    if not (value >= 0) or not np.isfinite(value):
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    return value


def check_int(value, name, *, minimum=None, maximum=None):
    """``value`` as an int (bools and non-integral floats rejected)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__} {value!r}")
    value = int(value)
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{name} must be <= {maximum}, got {value}")
    return value


def check_choice(value, name, choices):
    """``value`` must be one of ``choices`` (compared with ``==``)."""
    if not isinstance(value, str) and all(isinstance(c, str) for c in choices):
        raise TypeError(f"{name} must be a string, one of {list(choices)}, got {value!r}")
    if value not in choices:
        raise ValueError(f"{name} must be one of {list(choices)}, got {value!r}")
    return value


def check_rng(rng, name="rng"):
    """Accept a :class:`numpy.random.Generator` or an integer seed; nothing global."""
    if isinstance(rng, np.random.Generator):
        return rng
    if isinstance(rng, numbers.Integral) and not isinstance(rng, bool):
        return np.random.default_rng(int(rng))
    raise TypeError(
        f"{name} must be a numpy.random.Generator or an integer seed, got {type(rng).__name__}"
    )
