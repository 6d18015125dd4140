r"""Finite-sum quadratic bilevel problem of benchopt's ``benchmark_bilevel``.

Both levels are means of per-sample quadratics,

.. math::

    g(x, y) &= \frac{1}{n_{in}} \sum_i g_i(x, y), \qquad
    g_i(x, y) = \tfrac12 y^\top A_i y + \tfrac12 x^\top B_i x + x^\top C_i y + a_i^\top y + b_i^\top x,\\
    f(x, y) &= \frac{1}{n_{out}} \sum_j f_j(x, y), \qquad
    f_j(x, y) = \tfrac12 y^\top S_j y + \tfrac12 x^\top P_j x + x^\top R_j y + q_j^\top y + p_j^\top x,

with :math:`C_i, R_j \in \mathbb{R}^{d_x \times d_y}` (so :math:`C_i = \nabla^2_{xy} g_i`).
A minibatch oracle is the mean over the batch; the full objective is the mean
over all samples, which is the :class:`~bilevel_ref.problems.quadratic.QuadraticBilevel`
of the mean matrices (its ``C`` is :math:`\bar C^\top`, d_y×d_x).  That
problem supplies the closed forms :math:`y^*`, :math:`\varphi`,
:math:`\nabla\varphi`, :math:`\nabla^2\varphi` (attribute :attr:`FiniteSumQuadratic.mean`).

Generator (benchopt ``benchmark_utils/gen_matrices.py``, reproduced with a
NumPy Generator: same distributions, not the same random stream), called once
for g and once for f with their own constants:

* :math:`A_i = z_i z_i^\top`, :math:`z_i = H_y \xi_i`, :math:`\xi_i \sim N(0, I)`,
  :math:`H_y = U \operatorname{diag}(h) U^\top` with U the left singular vectors of
  a random d_y×1 Gaussian and h log-spaced from :math:`\sqrt{\mu}` to
  :math:`\sqrt{L}` (so :math:`E A_i = H_y^2` has spectrum [μ, L]);
* :math:`B_i = w_i w_i^\top` likewise in d_x with h = (0, log-spaced
  :math:`\sqrt{\mu} .. \sqrt{L_{outer}}`), spectrum {0} ∪ [μ, L_outer];
* :math:`C_i = (U D \xi_i)(V \xi_i)^\top` with U, V from the SVD of a random
  d_x×d_y Gaussian and D's min(d_x, d_y) diagonal entries log-spaced from μ to
  L_cross;
* :math:`a_i, b_i` standard Gaussian.

The draw is repeated (at most 20 times, same Generator) until
:math:`\lambda_{\min}(\nabla^2\varphi) \ge 10^{-12}`.  (benchopt's own check adds
the cross term :math:`R K` once instead of :math:`R K + K^\top R^\top`; the
exact Hessian is used here.)

Storage.  Every per-sample matrix is rank one.  ``storage="factored"`` keeps
the factors (:math:`z_i, w_i, c_i, e_i`), so an oracle on a batch of m samples
costs O(m·d).  ``storage="dense"`` keeps n×d×d tensors exactly like benchopt
(same memory traffic, for side-by-side timing): an oracle sums the batch's
matrices in one pass (no per-call copy of the tensors) and applies the d×d
sums.  Both give the same oracles to rounding.  The minibatch oracles are
numba kernels that read each selected sample's data once, in place (no
gather copy), with the indices bounds-checked inside the kernel; summation
order is fixed, so results are deterministic.

Batches: ``None`` (full objective, through the mean matrices), an integer
index array (NumPy semantics, negative indices allowed) or a step-1 ``slice``.
:meth:`FiniteSumQuadratic.sample` draws a uniform random subset
(``sampler="iid"``, the protocol's semantics, by Floyd's algorithm) or a
contiguous window (``sampler="window"``, benchopt's slices).

References
----------
M. Dagréou, P. Ablin, S. Vaiter, T. Moreau, "A framework for bilevel
optimization that enables stochastic and global variance reduction
algorithms", NeurIPS 2022; benchopt/benchmark_bilevel, ``datasets/quadratic.py``.
"""
from __future__ import annotations

import numbers
import sys
from collections import OrderedDict

import numpy as np

from .. import _jit, _kernels  # numba kernels (_kernels.finite_sum, .sampling), imported on first use
from .._validation import as_matrix, check_choice, check_int, check_positive
from .base import BilevelProblem
from .quadratic import QuadraticBilevel

__all__ = ["QuadraticSamples", "FiniteSumQuadratic", "finite_sum_quadratic"]

_DTYPES = {"float64": np.float64, "float32": np.float32}


def _check(status, idx, n):
    if status >= 0:
        raise IndexError(f"batch index {idx[status]} is out of range for {n} samples")


#: A factored oracle streams with several threads from this many stored values
#: read (batch × 3 × d) on: below it a parallel launch costs more than it saves
#: (measured with ``bilevel-ref bench stochastic``).
FACTORED_PARALLEL_MIN = 1 << 16
#: A dense batch sum streams with several threads from this many values (batch × d × d) on.
DENSE_PARALLEL_MIN = 1 << 16


def _read_only(arr):
    """A read-only view of ``arr`` (the caller's array stays writable)."""
    view = arr.view()
    view.flags.writeable = False
    return view


def _exactly_symmetric(arr):
    """``arr`` (n×d×d) itself when every matrix is exactly symmetric, else a copy whose strict lower
    triangles are the mirrored upper ones.

    The dense apply kernels form S v as Sᵀv (vectorised row axpys), which is S v
    only for an exactly symmetric S; inputs are checked symmetric to 1e-12
    relative (:meth:`QuadraticSamples.dense`), and mirroring moves no entry further.
    """
    if np.array_equal(arr, arr.transpose(0, 2, 1)):
        return arr
    out = arr.copy()
    lower = np.tril_indices(arr.shape[1], -1)
    out[:, lower[0], lower[1]] = arr[:, lower[1], lower[0]]
    return out


def _packed_upper(arr):
    """The upper triangles of the n symmetric d×d matrices of ``arr``, row by row (entries (r, c), c ≥ r),
    as an (n, R, d) array: d(d+1)/2 values per sample, zero-padded to R·d, R = ⌈d(d+1)/2 / d⌉.

    What the dense oracles stream for a symmetric tensor: about half the bytes
    of the full matrices, split into R rows of d values so that
    :func:`~bilevel_ref._kernels.finite_sum.gather_sums` shares them among threads;
    :func:`~bilevel_ref._kernels.finite_sum.unpack_symmetric` restores a full sum.
    """
    n, d = arr.shape[0], arr.shape[1]
    rows, cols = np.triu_indices(d)
    size = rows.shape[0]
    width = -(-size // d)
    out = np.zeros((n, width * d), dtype=arr.dtype)
    for start in range(0, n, 256):   # in blocks of samples: no n × d(d+1)/2 temporary
        out[start:start + 256, :size] = arr[start:start + 256, rows, cols]
    return out.reshape(n, width, d)


def _as_dtype(dtype):
    if isinstance(dtype, str) and dtype in _DTYPES:
        return np.dtype(_DTYPES[dtype])
    try:
        dt = np.dtype(dtype)
    except TypeError:
        dt = None
    if dt not in (np.dtype(np.float64), np.dtype(np.float32)):
        raise ValueError(f"dtype must be float64 or float32, got {dtype!r}")
    return dt


# ---------------------------------------------------------------------------
# per-sample quadratics of one level
# ---------------------------------------------------------------------------
class QuadraticSamples:
    r"""n quadratics :math:`h_i(x, y) = \tfrac12 y^\top H^{yy}_i y + \tfrac12 x^\top H^{xx}_i x + x^\top H^{xy}_i y + l^{y\top}_i y + l^{x\top}_i x`.

    Build with :meth:`rank_one` (factors; ``storage="factored"`` or
    ``"dense"``) or :meth:`dense` (arbitrary per-sample matrices).  Every
    method takes ``idx``, a non-empty integer index array (never None: full
    objectives go through the mean matrices), and returns means over the
    selected samples.

    Attributes
    ----------
    n, dx, dy : int
    storage : {"factored", "dense"}
    dtype : numpy.dtype
        Storage dtype (float64 is the reference mode).
    """

    storage = None

    @staticmethod
    def rank_one(z, w, c, e, lin_y, lin_x, *, storage="factored", dtype=np.float64):
        r"""Rank-one samples :math:`H^{yy}_i = z_i z_i^\top`, :math:`H^{xx}_i = w_i w_i^\top`, :math:`H^{xy}_i = c_i e_i^\top`.

        Parameters
        ----------
        z, e, lin_y : array_like, shape (n, dy)
        w, c, lin_x : array_like, shape (n, dx)
        storage : {"factored", "dense"}
            Keep the factors, or expand them into n×d×d tensors.
        dtype : {float64, float32}
        """
        check_choice(storage, "storage", ("factored", "dense"))
        dtype = _as_dtype(dtype)
        z = as_matrix(z, "z")
        n, dy = z.shape
        w = as_matrix(w, "w", (n, None))
        dx = w.shape[1]
        c = as_matrix(c, "c", (n, dx))
        e = as_matrix(e, "e", (n, dy))
        lin_y = as_matrix(lin_y, "lin_y", (n, dy))
        lin_x = as_matrix(lin_x, "lin_x", (n, dx))
        if storage == "factored":
            return _FactoredSamples(z, w, c, e, lin_y, lin_x, dtype)
        outer = lambda u, v: np.einsum("ni,nj->nij", u, v).astype(dtype, copy=False)  # noqa: E731
        return _DenseSamples(outer(z, z), outer(w, w), outer(c, e), lin_y, lin_x, dtype)

    @staticmethod
    def dense(hess_yy, hess_xx, cross, lin_y, lin_x, *, dtype=np.float64):
        """Samples given by dense per-sample matrices (benchopt's layout).

        Parameters
        ----------
        hess_yy : array_like, shape (n, dy, dy)
            Symmetric :math:`H^{yy}_i` (to 1e-12 relative; stored with each
            strict lower triangle mirrored from the upper one).
        hess_xx : array_like, shape (n, dx, dx)
            Symmetric :math:`H^{xx}_i` (likewise).
        cross : array_like, shape (n, dx, dy)
            :math:`H^{xy}_i` (the x-y block, as in :math:`x^\\top H^{xy}_i y`).
        lin_y, lin_x : array_like, shapes (n, dy), (n, dx)
        """
        dtype = _as_dtype(dtype)
        arrays = []
        for name, value in (("hess_yy", hess_yy), ("hess_xx", hess_xx), ("cross", cross)):
            arr = np.asarray(value)
            if arr.ndim != 3 or not np.issubdtype(arr.dtype, np.number):
                raise ValueError(f"{name} must be a real 3-D array (n, rows, cols), got shape {arr.shape}")
            if not np.all(np.isfinite(arr)):
                raise ValueError(f"{name} must contain only finite values")
            arrays.append(np.ascontiguousarray(arr, dtype=dtype))
        hyy, hxx, hxy = arrays
        n, dy = hyy.shape[0], hyy.shape[1]
        dx = hxx.shape[1]
        if hyy.shape != (n, dy, dy) or hxx.shape != (n, dx, dx) or hxy.shape != (n, dx, dy):
            raise ValueError(f"shapes must be (n, dy, dy), (n, dx, dx), (n, dx, dy); got "
                             f"{hyy.shape}, {hxx.shape}, {hxy.shape}")
        for name, arr in (("hess_yy", hyy), ("hess_xx", hxx)):
            scale = max(1.0, float(np.max(np.abs(arr))))
            if float(np.max(np.abs(arr - arr.transpose(0, 2, 1)))) > 1e-12 * scale:
                raise ValueError(f"{name} must hold symmetric matrices")
        return _DenseSamples(hyy, hxx, hxy, as_matrix(lin_y, "lin_y", (n, dy)),
                             as_matrix(lin_x, "lin_x", (n, dx)), dtype)

    # implemented by the two storages ------------------------------------------
    def means(self):
        """Float64 means ``(H^xx, H^xy, H^yy, l^x, l^y)`` over all samples."""
        raise NotImplementedError

    def value(self, x, y, idx):
        """Mean of h_i(x, y) over ``idx``."""
        raise NotImplementedError

    def grad(self, x, y, idx):
        """``(∇_x h, ∇_y h)`` over ``idx``."""
        raise NotImplementedError

    def grad_block(self, block, x, y, idx):
        """One block of the gradient, ``∇_x h`` (``block="x"``) or ``∇_y h`` (``"y"``), over ``idx``.

        Reads only that block's data (dense: 2 of the 3 tensors).
        """
        raise NotImplementedError

    def fused(self, x, y, v, idx):
        """``(∇_y h, ∇²_yy h·v, ∇²_xy h·v)`` over ``idx``, one pass over the data."""
        raise NotImplementedError

    def blocks(self, idx):
        """Dense float64 means ``(H^xx, H^xy, H^yy)`` over ``idx``."""
        raise NotImplementedError

    def product(self, kind, vec, idx):
        """``kind`` in {"hvp_yy", "hvp_xx", "cross", "cross_t"} applied to ``vec`` over ``idx``."""
        raise NotImplementedError

    def __repr__(self):
        return f"<{type(self).__name__} n={self.n} dx={self.dx} dy={self.dy} {self.dtype}>"


class _FactoredSamples(QuadraticSamples):
    """Rank-one factors, one record per sample: ``Fy[i] = (z_i, e_i, l^y_i)``, ``Fx[i] = (w_i, c_i, l^x_i)``.

    With :math:`H^{yy}_i = z_i z_i^\\top`, :math:`H^{xx}_i = w_i w_i^\\top`,
    :math:`H^{xy}_i = c_i e_i^\\top`:
    ∇_y h_i = z_i(z_i·y) + e_i(c_i·x) + l^y_i, ∇_x h_i = w_i(w_i·x) + c_i(e_i·y) + l^x_i,
    H^yy_i v = z_i(z_i·v), H^xy_i v = c_i(e_i·v), H^yx_i u = e_i(c_i·u).
    The numba kernels read each selected record once (O(m·d), no gather copy).
    """

    storage = "factored"

    def __init__(self, z, w, c, e, lin_y, lin_x, dtype):
        self.n, self.dy = z.shape
        self.dx = w.shape[1]
        self.dtype = dtype
        self.Fy = _read_only(np.ascontiguousarray(np.stack([z, e, lin_y], axis=1), dtype=dtype))
        self.Fx = _read_only(np.ascontiguousarray(np.stack([w, c, lin_x], axis=1), dtype=dtype))

    def _chunks(self, idx):
        """Threads of one call: :func:`~bilevel_ref._jit.kernel_threads` for large batches, else 1."""
        if idx.shape[0] * 3 * max(self.dx, self.dy) < FACTORED_PARALLEL_MIN:
            return 1
        _kernels.finite_sum   # noqa: B018 -- imports the kernels (and numba) before counting threads
        return _jit.kernel_threads()

    def means(self):
        Fy, Fx = self.Fy.astype(np.float64), self.Fx.astype(np.float64)
        z, e, ly = Fy[:, 0], Fy[:, 1], Fy[:, 2]
        w, c, lx = Fx[:, 0], Fx[:, 1], Fx[:, 2]
        n = self.n
        return w.T @ w / n, c.T @ e / n, z.T @ z / n, lx.mean(axis=0), ly.mean(axis=0)

    def value(self, x, y, idx):
        status, total = _kernels.finite_sum.factored_value(self.Fy, self.Fx, idx, x, y, self._chunks(idx))
        _check(status, idx, self.n)
        return float(total / idx.shape[0])

    def grad(self, x, y, idx):
        dt = self._out_dtype(x, y)
        gx, gy = np.empty(self.dx, dtype=dt), np.empty(self.dy, dtype=dt)
        _check(_kernels.finite_sum.factored_grad(self.Fy, self.Fx, idx, x, y, gx, gy, self._chunks(idx)), idx,
               self.n)
        return gx, gy

    def _out_dtype(self, *vectors):
        # float64 storage: float64 outputs whatever the inputs (skips result_type)
        return np.float64 if self.dtype == np.float64 else np.result_type(self.dtype, *vectors)

    def grad_block(self, block, x, y, idx):
        if block == "y":
            fa, fb, va, vb = self.Fy, self.Fx, y, x
        else:
            fa, fb, va, vb = self.Fx, self.Fy, x, y
        out = np.empty(fa.shape[2], dtype=self._out_dtype(x, y))
        _check(_kernels.finite_sum.factored_grad_block(fa, fb, idx, va, vb, out, self._chunks(idx)), idx,
               self.n)
        return out

    def fused(self, x, y, v, idx):
        dt = self._out_dtype(x, y, v)
        gy, hv, jv = np.empty(self.dy, dtype=dt), np.empty(self.dy, dtype=dt), np.empty(self.dx, dtype=dt)
        _check(_kernels.finite_sum.factored_fused(self.Fy, self.Fx, idx, x, y, v, gy, hv, jv,
                                                        self._chunks(idx)), idx, self.n)
        return gy, hv, jv

    def blocks(self, idx):
        Yb, Xb = self.Fy[idx].astype(np.float64), self.Fx[idx].astype(np.float64)
        m = idx.shape[0]
        z, e, w, c = Yb[:, 0], Yb[:, 1], Xb[:, 0], Xb[:, 1]
        return w.T @ w / m, c.T @ e / m, z.T @ z / m

    #: kind -> (source stack, row, destination stack, row): out = Σ dst (src·vec)
    _PRODUCTS = {"hvp_yy": ("Fy", 0, "Fy", 0), "hvp_xx": ("Fx", 0, "Fx", 0),
                 "cross": ("Fy", 1, "Fx", 1), "cross_t": ("Fx", 1, "Fy", 1)}

    def product(self, kind, vec, idx):
        src, src_row, dst, dst_row = self._PRODUCTS[kind]
        dst = getattr(self, dst)
        out = np.empty(dst.shape[2], dtype=self._out_dtype(vec))
        _check(_kernels.finite_sum.factored_product(getattr(self, src), src_row, dst, dst_row, idx, vec, out,
                                                          self._chunks(idx)), idx, self.n)
        return out


#: Dense tensors streamed as packed upper triangles (exactly symmetric samples).
_PACKED = frozenset({"hyy", "hxx"})


class _DenseSamples(QuadraticSamples):
    r"""Dense n×d×d tensors (benchopt's layout), with a cache of batch sums.

    An oracle on a batch B of m samples needs some of the sums
    :math:`S^{yy}_B = \sum_{i\in B} H^{yy}_i`, :math:`S^{xx}_B`, :math:`S^{xy}_B`;
    :func:`~bilevel_ref._kernels.finite_sum.gather_sums` forms them in a single
    read of each selected matrix (no copy of the tensors; float64 sums, also of
    float32 data; the rows split over :func:`~bilevel_ref._jit.kernel_threads`
    threads, bit-identical for every thread count), and one O(d²) kernel
    applies the sums (the linear terms are summed in the same call).  The
    Hessian samples are stored exactly symmetric (a strict lower triangle that
    differs from the mirrored upper one, within the 1e-12 that
    :meth:`QuadraticSamples.dense` accepts, is replaced by it), so their sums
    are applied as Sᵀv.

    Symmetric tensors, read half.  The oracles stream a packed copy of the
    upper triangles of :math:`H^{yy}_i` and :math:`H^{xx}_i`
    (d(d+1)/2 values per sample) and mirror each batch sum
    (:func:`~bilevel_ref._kernels.finite_sum.unpack_symmetric`): every entry is
    the same index-order sum of the same values, so the sums are bit-identical
    to those of the full matrices, for about half the bytes (measured d = 100,
    batch 64, two threads: 112 µs against 211 µs per sum).  The copies cost
    about half the memory of those two tensors; ``bytes_streamed`` counts the
    bytes the sums read.

    Batch-sum cache.  A sum depends on the batch only, not on the point, so
    the last :data:`CACHE_ENTRIES` sums (at most :data:`CACHE_BYTES` bytes)
    are kept, least recently used first out, keyed by the tensor and the
    batch's *contents* (index dtype and values: a batch array changed in place
    is a new key).  Methods that query one batch at two points (MRBO, VRBO:
    the same batches at the new and the old point, J on the y-gradient's
    batch) then read each batch's matrices once per iteration instead of once
    per call.  A cached sum is the very array the kernel computed, so results
    are bit-identical with and without the cache; oracle calls are counted as
    before (the saving is bytes read, not calls).  The tensors are read-only
    views: changing the data after construction is not supported (the
    ``mean`` problem is computed at construction too).
    """

    storage = "dense"
    #: Sums kept by the batch-sum cache (MRBO with Q = 10 needs 15 per iteration).
    CACHE_ENTRIES = 32
    #: Bytes of sums kept at most by the cache.
    CACHE_BYTES = 64 << 20

    def __init__(self, hyy, hxx, hxy, lin_y, lin_x, dtype):
        self.n, self.dy = hyy.shape[0], hyy.shape[1]
        self.dx = hxx.shape[1]
        self.dtype = dtype
        self.hyy = _read_only(_exactly_symmetric(np.ascontiguousarray(hyy, dtype=dtype)))
        self.hxx = _read_only(_exactly_symmetric(np.ascontiguousarray(hxx, dtype=dtype)))
        self.hxy = _read_only(np.ascontiguousarray(hxy, dtype=dtype))
        self.ly = _read_only(np.ascontiguousarray(lin_y, dtype=dtype))
        self.lx = _read_only(np.ascontiguousarray(lin_x, dtype=dtype))
        # what the oracles read: the symmetric tensors' upper triangles, packed; S^xy whole
        self._streamed = {"hyy": _read_only(_packed_upper(self.hyy)),
                          "hxx": _read_only(_packed_upper(self.hxx)), "hxy": self.hxy}
        self._cache = OrderedDict()   # (tensor name, index dtype, index bytes) -> float64 sum
        self._cache_bytes = 0
        self.cache_hits = 0           # sums served from the cache (diagnostics and tests)
        self.cache_misses = 0         # sums formed by gather_sums
        self.bytes_streamed = 0       # bytes of sample data those sums read

    def means(self):
        n = self.n
        return (self.hxx.sum(axis=0, dtype=np.float64) / n, self.hxy.sum(axis=0, dtype=np.float64) / n,
                self.hyy.sum(axis=0, dtype=np.float64) / n, self.lx.mean(axis=0, dtype=np.float64),
                self.ly.mean(axis=0, dtype=np.float64))

    def clear_cache(self):
        """Drop every cached batch sum."""
        self._cache.clear()
        self._cache_bytes = 0

    def _sums(self, names, idx):
        """The float64 sums over ``idx`` of the tensors ``names`` (``"hyy"``, ``"hxx"``, ``"hxy"``), cached.

        Missing sums are formed in one call
        (:func:`~bilevel_ref._kernels.finite_sum.gather_sums`: one parallel launch).
        """
        tail = (idx.dtype.str, idx.tobytes())
        out = {}
        missing = []
        for name in names:
            key = (name,) + tail
            total = self._cache.get(key)
            if total is None:
                missing.append((name, key))
                continue
            try:
                self._cache.move_to_end(key)
            except KeyError:   # evicted meanwhile by another thread: ``total`` is still valid
                pass
            self.cache_hits += 1
            out[name] = total
        if missing:
            kernels = _kernels.finite_sum                # (imports the kernels, and numba, first)
            tensors = tuple(self._streamed[name] for name, _ in missing)
            chunks = (1 if idx.shape[0] * tensors[0].shape[1] * tensors[0].shape[2] < DENSE_PARALLEL_MIN
                      else _jit.kernel_threads())
            sums = tuple(np.empty(t.shape[1:]) if name in _PACKED else self._buffer(t.shape[1:])
                         for (name, _), t in zip(missing, tensors))
            _check(kernels.gather_sums(tensors, idx, sums, chunks), idx, self.n)
            for (name, key), tensor, total in zip(missing, tensors, sums):
                self.bytes_streamed += idx.shape[0] * tensor[0].nbytes
                if name in _PACKED:
                    packed, total = total, self._buffer(getattr(self, name).shape[1:])
                    kernels.unpack_symmetric(packed, total)
                total.flags.writeable = False
                self.cache_misses += 1
                self._store(key, total)
                out[name] = total
        return [out[name] for name in names]

    def _buffer(self, shape):
        """A writable float64 array of ``shape``: the least recent cached sum when the cache is full.

        An evicted sum is reused only when nothing else refers to it (another
        thread applying it, or a sum of the current call, keeps its own
        reference), so a sum in use is never overwritten.
        """
        nbytes = 8 * shape[0] * shape[1]
        reuse = None
        while self._cache and (len(self._cache) >= self.CACHE_ENTRIES
                               or self._cache_bytes + nbytes > self.CACHE_BYTES):
            _, old = self._cache.popitem(last=False)
            self._cache_bytes -= old.nbytes
            if reuse is None and old.shape == shape and old.base is None and sys.getrefcount(old) <= 2:
                reuse = old
            del old
        if reuse is None:
            return np.empty(shape)
        reuse.flags.writeable = True
        return reuse

    def _store(self, key, total):
        if self.CACHE_ENTRIES > 0 and total.nbytes <= self.CACHE_BYTES:
            self._cache[key] = total
            self._cache_bytes += total.nbytes

    def value(self, x, y, idx):
        syy, sxx, sxy = self._sums(("hyy", "hxx", "hxy"), idx)
        return float(_kernels.finite_sum.dense_value(syy, sxx, sxy, self.ly, self.lx, idx,
                                                     _f64(x), _f64(y)))

    def grad(self, x, y, idx):
        syy, sxx, sxy = self._sums(("hyy", "hxx", "hxy"), idx)
        x, y = _f64(x), _f64(y)
        gx, gy = np.empty(self.dx), np.empty(self.dy)
        _kernels.finite_sum.dense_grad(syy, y, sxy, x, True, self.ly, idx, gy)
        _kernels.finite_sum.dense_grad(sxx, x, sxy, y, False, self.lx, idx, gx)
        return gx, gy

    def grad_block(self, block, x, y, idx):
        x, y = _f64(x), _f64(y)
        if block == "y":
            syy, sxy = self._sums(("hyy", "hxy"), idx)
            out = np.empty(self.dy)
            _kernels.finite_sum.dense_grad(syy, y, sxy, x, True, self.ly, idx, out)
        else:
            sxx, sxy = self._sums(("hxx", "hxy"), idx)
            out = np.empty(self.dx)
            _kernels.finite_sum.dense_grad(sxx, x, sxy, y, False, self.lx, idx, out)
        return out

    def fused(self, x, y, v, idx):
        syy, sxy = self._sums(("hyy", "hxy"), idx)
        gy, hv, jv = np.empty(self.dy), np.empty(self.dy), np.empty(self.dx)
        _kernels.finite_sum.dense_fused(syy, sxy, self.ly, idx, _f64(x), _f64(y), _f64(v), gy, hv, jv)
        return gy, hv, jv

    def blocks(self, idx):
        m = idx.shape[0]
        sxx, sxy, syy = self._sums(("hxx", "hxy", "hyy"), idx)
        return sxx / m, sxy / m, syy / m

    #: kind -> (tensor, applied transposed?); the exactly symmetric Hessian sums are applied as Sᵀv,
    #: the faster form (:func:`bilevel_ref._kernels.finite_sum.matvec`)
    _PRODUCTS = {"hvp_yy": ("hyy", True), "hvp_xx": ("hxx", True), "cross": ("hxy", False),
                 "cross_t": ("hxy", True)}

    def product(self, kind, vec, idx):
        name, trans = self._PRODUCTS[kind]
        (total,) = self._sums((name,), idx)
        out = np.empty(total.shape[1] if trans else total.shape[0])
        _kernels.finite_sum.matvec(total, _f64(vec), trans, idx.shape[0], out)
        return out


def _f64(v):
    """``v`` as a float64 vector (no copy when it already is one)."""
    return v if type(v) is np.ndarray and v.dtype == np.float64 else np.asarray(v, dtype=np.float64)


# ---------------------------------------------------------------------------
# the bilevel problem
# ---------------------------------------------------------------------------
def _read_only_arange(n):
    out = np.arange(n)
    out.flags.writeable = False
    return out


class FiniteSumQuadratic(BilevelProblem):
    """Finite-sum quadratic bilevel problem (module docstring).

    Parameters
    ----------
    lower, upper : QuadraticSamples
        The samples g_i and f_j (same dx, dy; same storage is not required).
    sampler : {"iid", "window"}
        ``"iid"``: :meth:`sample` draws a uniform random subset (without
        replacement, the protocol's semantics).  ``"window"``: a contiguous window
        ``[s, s + size)`` (wrapping around the end) with s uniform, so every
        sample has the same inclusion probability; the samples are i.i.d.
        draws, so fixed contiguous windows are as random as any subset, and
        the oracles use views instead of gathers (benchopt's slices).
    name : str, optional

    Attributes
    ----------
    mean : QuadraticBilevel
        The full-batch problem (mean matrices); closed forms come from it.
    lower, upper : QuadraticSamples
    """

    name = "finite-sum-quadratic"

    def __init__(self, lower, upper, *, sampler="iid", name=None):
        for label, s in (("lower", lower), ("upper", upper)):
            if not isinstance(s, QuadraticSamples):
                raise TypeError(f"{label} must be a QuadraticSamples, got {type(s).__name__}")
        if (lower.dx, lower.dy) != (upper.dx, upper.dy):
            raise ValueError(f"lower and upper dimensions differ: (dx, dy) = {(lower.dx, lower.dy)} "
                             f"vs {(upper.dx, upper.dy)}")
        self.sampler = check_choice(sampler, "sampler", ("iid", "window"))
        self.lower, self.upper = lower, upper
        self.dx, self.dy = lower.dx, lower.dy
        self.n_lower, self.n_upper = lower.n, upper.n
        self.storage = lower.storage if lower.storage == upper.storage else "mixed"
        self.dtype = lower.dtype
        if name is not None:
            self.name = name
        gxx, gxy, gyy, gx, gy = lower.means()
        fxx, fxy, fyy, fx, fy = upper.means()
        if lower.n < lower.dy:
            raise ValueError(f"n_inner = {lower.n} < dim_inner = {lower.dy}: the mean of rank-one "
                             "lower-level Hessians is singular (g not strongly convex in y)")
        # QuadraticBilevel's g is ½yᵀAy + yᵀCx + ..., C = (mean C_i)ᵀ (dy×dx)
        self.mean = QuadraticBilevel(fxx, fxy, fyy, fx, fy, gyy, gxy.T, gxx, gy, gx, name=self.name)
        self._arange = {"lower": _read_only_arange(lower.n), "upper": _read_only_arange(upper.n)}

    # -- batches -------------------------------------------------------------
    def _sel(self, batch, level):
        """The batch as an integer index array (slices and windows: no validation needed)."""
        arange = self._arange[level]
        if isinstance(batch, np.ndarray) and batch.base is arange and batch.size:
            return batch                     # a window drawn by sample(): valid by construction
        if isinstance(batch, slice):
            start, stop, step = batch.indices(arange.size)
            if step != 1 or stop <= start:
                raise ValueError(f"batch slice must be non-empty with step 1, got {batch}")
            return arange[start:stop]
        arr = np.asarray(batch)
        if arr.ndim != 1 or arr.dtype.kind not in "iu":
            raise TypeError(f"batch must be None, a slice or a 1-D integer index array, got "
                            f"{type(batch).__name__} of dtype {arr.dtype} and shape {arr.shape}")
        if arr.size == 0:
            raise ValueError("batch must not be empty")
        return arr   # bounds are checked inside the kernels (IndexError)

    def sample(self, rng, size, level):
        """Draw a minibatch of ``size`` distinct indices of one level.

        ``sampler="iid"``: a uniform random subset (Floyd's algorithm on
        ``size`` uniforms from ``rng``; about 3× cheaper than
        ``Generator.choice(replace=False)``, which matters when a method draws
        20+ minibatches per iteration).  ``"window"``: a contiguous window
        with a uniform random start, wrapping around the end.
        """
        if level not in self._arange:
            raise ValueError(f"level must be 'lower' or 'upper', got {level!r}")
        if isinstance(size, bool) or not isinstance(size, numbers.Integral) or size < 1:
            raise ValueError(f"size must be an integer >= 1, got {size!r}")
        arange = self._arange[level]
        n = arange.size
        m = min(int(size), n)
        if self.sampler == "iid":
            return _kernels.sampling.floyd_subset(rng.random(m), n)
        start = int(rng.integers(n))
        if start + m <= n:
            return arange[start:start + m]
        return np.concatenate((arange[start:], arange[:start + m - n]))

    # -- lower level g -----------------------------------------------------------
    def g(self, x, y, batch=None):
        if batch is None:
            return self.mean.g(x, y)
        return self.lower.value(x, y, self._sel(batch, "lower"))

    def grad_g(self, x, y, batch=None):
        if batch is None:
            return self.mean.grad_g(x, y)
        return self.lower.grad(x, y, self._sel(batch, "lower"))

    # One gradient block at the cost of that block only (protocol oracles: OracleCounter
    # counts a block as one call of its gradient).
    def grad_x_g(self, x, y, batch=None):
        """``∇_x g`` alone (dense: reads B_i and C_i only)."""
        if batch is None:
            return self.mean.grad_g(x, y)[0]
        return self.lower.grad_block("x", x, y, self._sel(batch, "lower"))

    def grad_y_g(self, x, y, batch=None):
        """``∇_y g`` alone (dense: reads A_i and C_i only)."""
        if batch is None:
            return self.mean.grad_g(x, y)[1]
        return self.lower.grad_block("y", x, y, self._sel(batch, "lower"))

    def hess_g(self, x, y, batch=None):
        if batch is None:
            return self.mean.hess_g(x, y)
        return self.lower.blocks(self._sel(batch, "lower"))

    def hvp_yy_g(self, x, y, v, batch=None):
        if batch is None:
            return self.mean.hvp_yy_g(x, y, v)
        return self.lower.product("hvp_yy", v, self._sel(batch, "lower"))

    def hvp_xx_g(self, x, y, u, batch=None):
        if batch is None:
            return self.mean.hvp_xx_g(x, y, u)
        return self.lower.product("hvp_xx", u, self._sel(batch, "lower"))

    def cross_g(self, x, y, v, batch=None):
        if batch is None:
            return self.mean.cross_g(x, y, v)
        return self.lower.product("cross", v, self._sel(batch, "lower"))

    def cross_t_g(self, x, y, u, batch=None):
        if batch is None:
            return self.mean.cross_t_g(x, y, u)
        return self.lower.product("cross_t", u, self._sel(batch, "lower"))

    def fused_g(self, x, y, v, batch=None):
        """``(∇_y g, ∇²_yy g·v, ∇²_xy g·v)`` reading each selected sample's data once."""
        if batch is None:
            m = self.mean
            return m.A @ y + m.C @ x + m.a, m.A @ v, m.C.T @ v
        return self.lower.fused(x, y, v, self._sel(batch, "lower"))

    # -- upper level f -----------------------------------------------------------
    def f(self, x, y, batch=None):
        if batch is None:
            return self.mean.f(x, y)
        return self.upper.value(x, y, self._sel(batch, "upper"))

    def grad_f(self, x, y, batch=None):
        if batch is None:
            return self.mean.grad_f(x, y)
        return self.upper.grad(x, y, self._sel(batch, "upper"))

    def grad_x_f(self, x, y, batch=None):
        """``∇_x f`` alone (dense: reads P_j and R_j only)."""
        if batch is None:
            return self.mean.grad_f(x, y)[0]
        return self.upper.grad_block("x", x, y, self._sel(batch, "upper"))

    def grad_y_f(self, x, y, batch=None):
        """``∇_y f`` alone (dense: reads S_j and R_j only)."""
        if batch is None:
            return self.mean.grad_f(x, y)[1]
        return self.upper.grad_block("y", x, y, self._sel(batch, "upper"))

    def hess_f(self, x, y, batch=None):
        if batch is None:
            return self.mean.hess_f(x, y)
        return self.upper.blocks(self._sel(batch, "upper"))

    def hvp_yy_f(self, x, y, v, batch=None):
        if batch is None:
            return self.mean.hvp_yy_f(x, y, v)
        return self.upper.product("hvp_yy", v, self._sel(batch, "upper"))

    def hvp_xx_f(self, x, y, u, batch=None):
        if batch is None:
            return self.mean.hvp_xx_f(x, y, u)
        return self.upper.product("hvp_xx", u, self._sel(batch, "upper"))

    def cross_f(self, x, y, v, batch=None):
        if batch is None:
            return self.mean.cross_f(x, y, v)
        return self.upper.product("cross", v, self._sel(batch, "upper"))

    def cross_t_f(self, x, y, u, batch=None):
        if batch is None:
            return self.mean.cross_t_f(x, y, u)
        return self.upper.product("cross_t", u, self._sel(batch, "upper"))

    # -- constants and closed forms (full batch) ----------------------------------
    def constants(self):
        return self.mean.constants()

    def y_star(self, x):
        return self.mean.y_star(x)

    def phi(self, x):
        return self.mean.phi(x)

    def grad_phi(self, x):
        return self.mean.grad_phi(x)

    def hess_phi(self, x):
        return self.mean.hess_phi(x)

    def __repr__(self):
        return (f"<FiniteSumQuadratic {self.name!r} dx={self.dx} dy={self.dy} n_lower={self.n_lower} "
                f"n_upper={self.n_upper} storage={self.storage} dtype={self.dtype}>")


# ---------------------------------------------------------------------------
# benchopt's generator
# ---------------------------------------------------------------------------
def _root(rng, dim, spectrum):
    """U diag(spectrum) Uᵀ, U = left singular vectors of a random dim×1 Gaussian (benchopt)."""
    u = np.linalg.svd(rng.standard_normal((dim, 1)))[0]
    return (u * spectrum) @ u.T


def _logspace_sqrt(low, high, num):
    return np.logspace(np.log10(low) / 2, np.log10(high) / 2, num)


def _rank_one_factors(rng, n, dim_inner, dim_outer, L_inner, L_outer, L_cross, mu):
    """benchopt's gen_matrices for one level: factors (z, w, c, e, lin_y, lin_x)."""
    z = rng.standard_normal((n, dim_inner)) @ _root(rng, dim_inner, _logspace_sqrt(mu, L_inner, dim_inner))
    spec_x = np.r_[0.0, _logspace_sqrt(mu, L_outer, dim_outer - 1)]
    w = rng.standard_normal((n, dim_outer)) @ _root(rng, dim_outer, spec_x)
    u, _, vh = np.linalg.svd(rng.standard_normal((dim_outer, dim_inner)))
    k = min(dim_outer, dim_inner)
    ud = u[:, :k] * np.logspace(np.log10(mu), np.log10(L_cross), k)   # U D (first k columns)
    xi = rng.standard_normal((n, dim_inner))
    c = xi[:, :k] @ ud.T          # c_i = U D ξ_i
    e = xi @ vh.T                 # e_i = V ξ_i  (benchopt: ξᵀVᵀ)
    return z, w, c, e, rng.standard_normal((n, dim_inner)), rng.standard_normal((n, dim_outer))


def _min_eig_phi(lower, upper):
    """λ_min(∇²φ) of the mean problem from factors (before any dense expansion)."""
    def means(z, w, c, e, ly, lx):
        n = z.shape[0]
        return w.T @ w / n, c.T @ e / n, z.T @ z / n
    gxx, gxy, gyy = means(*lower)
    fxx, fxy, fyy = means(*upper)
    K = -np.linalg.solve(gyy, gxy.T)      # dy×dx, y* = Kx + const
    hess = fxx + fxy @ K + K.T @ fxy.T + K.T @ fyy @ K
    return float(np.linalg.eigvalsh(0.5 * (hess + hess.T))[0])


def finite_sum_quadratic(n_inner=1024, n_outer=1024, dim_inner=100, dim_outer=100, *,
                         mu_inner=0.1, L_inner_inner=1.0, L_inner_outer=1.0, L_outer_inner=1.0,
                         L_outer_outer=1.0, L_cross_inner=0.1, L_cross_outer=0.1,
                         storage="factored", dtype=np.float64, sampler="iid", seed=0):
    """benchopt's finite-sum quadratic bilevel problem (module docstring).

    Parameter names and defaults are benchopt's ``datasets/quadratic.py``
    ("inner" = the lower variable y, "outer" = the upper variable x; the
    first word of ``L_a_b`` is the variable, the second the level).

    Parameters
    ----------
    n_inner, n_outer : int
        Samples of g and of f (``n_inner >= dim_inner``).
    dim_inner, dim_outer : int
        dy and dx.
    mu_inner : float
        Lower end of every spectrum (strong convexity of g in y).
    L_inner_inner, L_outer_inner, L_cross_inner : float
        g's y-block, x-block and cross-block scales.
    L_inner_outer, L_outer_outer, L_cross_outer : float
        f's y-block, x-block and cross-block scales.
    storage : {"factored", "dense"}
        Rank-one factors (O(batch·d) oracles) or benchopt's n×d×d tensors.
    dtype : {float64, float32, "float64", "float32"}
        Storage dtype; float32 is not the reference mode (closed forms stay
        float64, computed from the stored data).
    sampler : {"iid", "window"}
        See :class:`FiniteSumQuadratic`.
    seed : int

    Returns
    -------
    FiniteSumQuadratic
    """
    n_inner = check_int(n_inner, "n_inner", minimum=1)
    n_outer = check_int(n_outer, "n_outer", minimum=1)
    dim_inner = check_int(dim_inner, "dim_inner", minimum=1)
    dim_outer = check_int(dim_outer, "dim_outer", minimum=1)
    if n_inner < dim_inner:
        raise ValueError(f"n_inner must be >= dim_inner (= {dim_inner}) for g to be strongly convex "
                         f"in y, got {n_inner}")
    consts = {name: check_positive(value, name) for name, value in (
        ("mu_inner", mu_inner), ("L_inner_inner", L_inner_inner), ("L_inner_outer", L_inner_outer),
        ("L_outer_inner", L_outer_inner), ("L_outer_outer", L_outer_outer),
        ("L_cross_inner", L_cross_inner), ("L_cross_outer", L_cross_outer))}
    check_choice(storage, "storage", ("factored", "dense"))
    dtype = _as_dtype(dtype)
    check_choice(sampler, "sampler", ("iid", "window"))
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise TypeError(f"seed must be a non-negative integer, got {seed!r}")
    rng = np.random.default_rng(int(seed))
    mu = consts["mu_inner"]
    for _ in range(20):
        lower = _rank_one_factors(rng, n_inner, dim_inner, dim_outer, consts["L_inner_inner"],
                                  consts["L_outer_inner"], consts["L_cross_inner"], mu)
        upper = _rank_one_factors(rng, n_outer, dim_inner, dim_outer, consts["L_inner_outer"],
                                  consts["L_outer_outer"], consts["L_cross_outer"], mu)
        if _min_eig_phi(lower, upper) >= 1e-12:
            break
    else:
        raise ValueError("Could not generate a finite-sum quadratic problem with a positive "
                         "definite ∇²φ in 20 draws (change seed or the constants)")
    return FiniteSumQuadratic(QuadraticSamples.rank_one(*lower, storage=storage, dtype=dtype),
                              QuadraticSamples.rank_one(*upper, storage=storage, dtype=dtype),
                              sampler=sampler)


# ---------------------------------------------------------------------------
# named instances
# ---------------------------------------------------------------------------
from .catalog import register_problem  # noqa: E402


@register_problem("finite-sum-quadratic",
                  "benchopt's finite-sum quadratic (n 1024 per level, d 100×100; storage factored|dense)")
def _finite_sum_instance(seed=0, n_inner=1024, n_outer=1024, dim_inner=100, dim_outer=100,
                         storage="factored", dtype="float64", sampler="iid"):
    problem = finite_sum_quadratic(n_inner, n_outer, dim_inner, dim_outer, storage=storage,
                                   dtype=dtype, sampler=sampler, seed=seed)
    return problem, np.zeros(dim_outer)


@register_problem("finite-sum-quadratic-small",
                  "small finite-sum quadratic for quick stochastic runs (n 256, dy 20, dx 10)")
def _finite_sum_small(seed=0, n_inner=256, n_outer=256, dim_inner=20, dim_outer=10,
                      storage="factored", sampler="iid"):
    problem = finite_sum_quadratic(n_inner, n_outer, dim_inner, dim_outer, storage=storage,
                                   sampler=sampler, seed=seed)
    return problem, np.zeros(dim_outer)
