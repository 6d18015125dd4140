"""numba kernels of the Lanczos cubic solver, compiled from the reference's own pieces.

Every kernel here is :func:`bilevel_ref._jit.jit` applied to a function of
:mod:`bilevel_ref.linalg.cubic._core`, the source the NumPy reference runs as
plain Python: the kernels and the reference are the same algorithm by
construction (same operations, same order; sums through the same BLAS calls).

``tridiag_secular``
    The secular Newton iteration on the Lanczos tridiagonal T_k (scalar loops,
    LDLᵀ of T_k + λI, Sturm bisection for θ_1(T_k)).
``lanczos_dense``
    The whole Lanczos loop on a dense H: full reorthogonalisation, the small
    problem on T_k after every step, the free residual β_k|e_kᵀh_k|, the pole
    refinement and the hard-case probe.  Compiled, every H product is BLAS
    ``dsymv`` (:mod:`bilevel_ref._kernels.blas`): one triangle of H per
    product, so the main and the probe product of a step together read H
    once, and the probe costs little wall time.  A single pass keeps the basis
    Q_k (k × d), so s = Q_kᵀh costs no second Lanczos pass (GLRT regenerates
    the vectors instead).

``symmetry_check``
    The input check of a dense H for ``backend="numba"`` (finite, symmetric to
    1e-12 relative: the conditions of ``as_symmetric``) in one pass, serial
    (see there why).

Threads: the products (``dsymv``, and ``dgemv`` for the reorthogonalisation)
run in SciPy's BLAS pool, so the kernel uses every core BLAS is allowed and
``threadpoolctl`` / ``OPENBLAS_NUM_THREADS`` limit it (``--threads 1`` is one
thread); no numba ``prange`` (see :func:`bilevel_ref.linalg.cubic._core.matvec_pair`
for the measurements behind that choice).  Same thread count, same bits; across
thread counts the threaded BLAS sums in another order (agreement to 1e-12 is
tested).
``lanczos_matrix_free``
    The same loop run by Python around a callable v ↦ Hv, with its small solves
    (``tridiag_secular``, ``probe_advance``, ``refine_on_pole``) compiled.

Compiled on first import, cached on disk (the policy of :mod:`bilevel_ref._jit`).
"""
from __future__ import annotations

from .. import _jit
from ..linalg.cubic import _core

__all__ = ["tridiag_secular", "refine_on_pole", "probe_advance", "lanczos_dense", "lanczos_matrix_free",
           "symmetry_check"]

tridiag_secular = _jit.jit(_core.tridiag_secular)
refine_on_pole = _jit.jit(_core.refine_on_pole)
probe_advance = _jit.jit(_core.probe_advance)
lanczos_dense = _jit.jit(_core.lanczos_loop)
symmetry_check = _jit.jit(_core.symmetry_check)
lanczos_matrix_free = _jit.rebind(_core.lanczos_loop, tridiag_secular=tridiag_secular,
                                  probe_advance=probe_advance, refine_on_pole=refine_on_pole)
