r"""BLAS ``dsymv`` for compiled kernels: y = Hx for a symmetric H, reading one triangle of H.

numba's ``H @ x`` calls ``dgemv`` (the whole of H); there is no numba route to
``dsymv``, which reads only one triangle, i.e. half the bytes of a dense
product.  This module binds SciPy's ``scipy.linalg.cython_blas.dsymv`` — the
BLAS library numba's own ``np.dot`` uses — as an external symbol
(``llvmlite.binding.add_symbol`` + :class:`numba.types.ExternalFunction`), so
compiled callers stay cacheable (the symbol is resolved by name in every
process, not baked in as an address; :func:`bilevel_ref._jit.blas_function`).

Threads
-------
The call runs in that BLAS library's own thread pool: it uses every core the
library is allowed, and ``threadpoolctl.threadpool_limits`` (or
``OPENBLAS_NUM_THREADS``) governs it like any NumPy product; ``--threads 1``
of the command line means one thread.  For a fixed thread count the result is
bit-identical run to run (OpenBLAS partitions statically); across thread
counts the partial sums of the threaded ``dsymv`` are added in a different
order, so results differ at rounding level (tested to 1e-12 relative in
``tests/test_cubic.py``).

The Fortran view of a C-ordered H is Hᵀ = H; ``uplo = "L"`` of that view is the
upper triangle of H as NumPy sees it.  H must be symmetric: the triangle below
the diagonal is not read (``solve_cubic`` checks symmetry to 1e-12 relative).

With compilation off (``NUMBA_DISABLE_JIT=1``, :mod:`bilevel_ref._jit`) numba is
not imported and :func:`symv` calls the same routine through
``scipy.linalg.blas.dsymv`` (same library, same bits).
"""
from __future__ import annotations

import numpy as np

from .. import _jit

__all__ = ["symv", "symv_pair"]

if _jit.enabled():
    # dsymv(uplo, n, alpha, a, lda, x, incx, beta, y, incy), every argument by pointer.
    _dsymv = _jit.blas_function("dsymv", 10)

    def _symv(H, x):
        """y = Hx for a symmetric, C-contiguous float64 H by BLAS ``dsymv`` (one triangle of H read)."""
        n = H.shape[0]
        x = np.ascontiguousarray(x)
        y = np.empty(n)
        ints = np.empty(2, np.int32)
        ints[0] = n  # n and lda
        ints[1] = 1  # incx and incy
        scal = np.empty(2)
        scal[0] = 1.0  # alpha
        scal[1] = 0.0  # beta
        uplo = np.empty(1, np.uint8)
        uplo[0] = 76  # "L"
        one = ints[1:]
        _dsymv(uplo.ctypes, ints.ctypes, scal.ctypes, H.ctypes, ints.ctypes, x.ctypes, one.ctypes,
               scal[1:].ctypes, y.ctypes, one.ctypes)
        return y
else:
    def _symv(H, x):
        """y = Hx for a symmetric, C-contiguous float64 H by BLAS ``dsymv`` (one triangle of H read)."""
        from scipy.linalg.blas import dsymv

        return dsymv(1.0, H.T, np.ascontiguousarray(x), lower=1)


def _symv_pair(H, q, p):
    """(Hq, Hp) by two ``dsymv`` calls: together one pass over H, the bytes of one dense H·v."""
    return symv(H, q), symv(H, p)


symv = _jit.jit(_symv)
symv_pair = _jit.jit(_symv_pair)
