"""numba kernels of the finite-sum quadratic problem (:mod:`bilevel_ref.problems.finite_sum`).

One pass over the selected samples, reading each sample's data once, in place
(no gather copy); every index is bounds-checked inside the kernel, and each
kernel that reads the samples returns -1, or the position of the first
out-of-range index (nothing is then read).

Threads.  The streaming kernels (:func:`gather_sums` and
the ``factored_*`` kernels) take ``chunks``, the number of pieces their work is split into
(:func:`bilevel_ref._jit.kernel_threads` at the call site; 1 runs serially,
without a parallel launch).  Every ``prange`` loop writes disjoint outputs:

* :func:`gather_sums` splits the *rows* of each d×d sum; each element
  :math:`\\sum_k T_{i_k}[r, c]` is accumulated by one thread, in index order,
  from 0;
* a factored kernel first computes the per-sample scalars (the dots
  :math:`z_i\\cdot y`, ...; samples split into chunks), then splits the
  *output coordinates*; each coordinate is accumulated in index order, from
  0, and divided by m at the end.

So every element is the same sequence of roundings whatever ``chunks`` is: the
results are bit-identical for every thread count (no fastmath, no parallel
reduction: :mod:`bilevel_ref._jit`), and to the serial kernels of earlier
versions (except that float32 data are now summed in float64).

The dense ``apply`` kernels (:func:`dense_grad`, :func:`dense_value`,
:func:`dense_fused`, :func:`matvec`) work on float64 d×d sums already formed
(and possibly cached): O(d²), serial, one call per oracle, outputs written in
place.  Their indices were validated by the :func:`gather_sums` that formed the
sums.  The Hessian sums S^yy, S^xx are exactly symmetric (the samples are
stored symmetrised), so they are applied as Sᵀv, by vectorised row axpys.
"""
import numpy as np

from .. import _jit

__all__ = ["first_bad", "gather_sum", "gather_sums", "unpack_symmetric", "matvec", "dense_grad", "dense_value",
           "dense_fused", "factored_value", "factored_grad", "factored_grad_block", "factored_fused", "factored_product"]

prange = _jit.prange()


@_jit.jit(inline="always", cache=False)
def _dot(a, b):
    """a·b with four partial sums (fixed order: deterministic; no fastmath needed for ILP)."""
    n = a.shape[0]
    s0 = 0.0
    s1 = 0.0
    s2 = 0.0
    s3 = 0.0
    k = 0
    while k + 4 <= n:
        s0 += a[k] * b[k]
        s1 += a[k + 1] * b[k + 1]
        s2 += a[k + 2] * b[k + 2]
        s3 += a[k + 3] * b[k + 3]
        k += 4
    while k < n:
        s0 += a[k] * b[k]
        k += 1
    return (s0 + s1) + (s2 + s3)


@_jit.jit(inline="always", cache=False)
def _wrap(i, n):
    return i + n if i < 0 else i


@_jit.jit(nogil=True)
def first_bad(idx, n):
    """Position of the first index of ``idx`` outside ``[-n, n)``, or -1."""
    for k in range(idx.shape[0]):
        i = _wrap(idx[k], n)
        if i < 0 or i >= n:
            return k
    return -1


#: Samples added per sweep over a thread's rows in :func:`gather_sums`: 8 concurrent
#: row streams suit the hardware prefetchers (measured: 4-16 about 25% faster than
#: one sample or all 64 per sweep at d = 100, batch 64).  :func:`_sum_rows` spells
#: the eight terms out, so this is also the number of its row arguments.
SUM_GROUP = 8


@_jit.jit(nogil=True)
def _sum_rows(tensor, idx, out, r0, r1):
    """Rows r0..r1-1 of ``out = Σ_k tensor[idx[k]]``, each element in index order from 0.

    Samples in groups of :data:`SUM_GROUP`: for each row r, each element
    ``out[r, c] + T_{i_1}[r, c] + … + T_{i_8}[r, c]`` is added left to right
    in a register and stored once, so a thread streams eight rows at a time and
    loads and stores ``out[r]`` (in L1) once per eight samples (measured:
    10–20% less time than adding one sample's row at a time, at one and two
    threads, and level with a BLAS product reading the same slab); the last
    ``m mod 8`` samples are added one at a time.  Same additions in the same
    order as one sample at a time: the same bits.
    """
    n = tensor.shape[0]
    cols = tensor.shape[2]
    m = idx.shape[0]
    for r in range(r0, r1):
        for c in range(cols):
            out[r, c] = 0.0
    g0 = 0
    while g0 + SUM_GROUP <= m:
        i0 = _wrap(idx[g0], n)
        i1 = _wrap(idx[g0 + 1], n)
        i2 = _wrap(idx[g0 + 2], n)
        i3 = _wrap(idx[g0 + 3], n)
        i4 = _wrap(idx[g0 + 4], n)
        i5 = _wrap(idx[g0 + 5], n)
        i6 = _wrap(idx[g0 + 6], n)
        i7 = _wrap(idx[g0 + 7], n)
        for r in range(r0, r1):
            t0, t1, t2, t3 = tensor[i0, r], tensor[i1, r], tensor[i2, r], tensor[i3, r]
            t4, t5, t6, t7 = tensor[i4, r], tensor[i5, r], tensor[i6, r], tensor[i7, r]
            row = out[r]
            for c in range(cols):
                s = row[c] + t0[c]
                s += t1[c]
                s += t2[c]
                s += t3[c]
                s += t4[c]
                s += t5[c]
                s += t6[c]
                s += t7[c]
                row[c] = s
        g0 += SUM_GROUP
    for k in range(g0, m):
        i = _wrap(idx[k], n)
        for r in range(r0, r1):
            for c in range(cols):
                out[r, c] += tensor[i, r, c]


@_jit.parallel_jit(nogil=True)
def gather_sums(tensors, idx, outs, chunks):
    """``outs[j] = Σ_k tensors[j][idx[k]]`` for a tuple of tensors with the same number of samples
    (dense storage), in one call, i.e. one parallel launch, the rows of each split into ``chunks`` threads.

    Each thread adds, for each of its rows r and a group of :data:`SUM_GROUP`
    samples at a time, the rows r of the selected matrices into ``out[r]``
    (which stays in L1).  An ``out`` may be wider than its tensor (float32
    data, float64 sums).  Returns -1, the position of the first bad index, or
    0 when the tensors' sample counts differ.
    """
    n = tensors[0].shape[0]
    status = first_bad(idx, n)
    if status >= 0:
        return status
    for j in range(len(tensors)):
        if tensors[j].shape[0] != n:
            return 0
    if chunks <= 1:
        for j in range(len(tensors)):
            _sum_rows(tensors[j], idx, outs[j], 0, tensors[j].shape[1])
    else:
        for t in prange(chunks):
            for j in range(len(tensors)):
                rows = tensors[j].shape[1]
                _sum_rows(tensors[j], idx, outs[j], rows * t // chunks, rows * (t + 1) // chunks)
    return -1


@_jit.jit(nogil=True)
def unpack_symmetric(packed, out):
    """``out`` (d×d) = the symmetric matrix whose upper triangle ``packed`` holds row by row
    (entries (r, c), c ≥ r, in that order over the rows of ``packed``: the layout of the dense
    problem's packed tensors, :func:`bilevel_ref.problems.finite_sum._packed_upper`)."""
    d = out.shape[0]
    width = packed.shape[1]
    pr = 0
    pc = 0
    for r in range(d):
        for c in range(r, d):
            value = packed[pr, pc]
            out[r, c] = value
            out[c, r] = value
            pc += 1
            if pc == width:
                pr += 1
                pc = 0


def gather_sum(tensor, idx, out, chunks):
    """``out = Σ_k tensor[idx[k]]``: :func:`gather_sums` of one tensor."""
    return gather_sums((tensor,), idx, (out,), chunks)


@_jit.jit(inline="always")
def _matvec_into(S, v, trans, out):
    """``out = Sᵀ v`` (``trans``) or ``S v``, each element a sum in index order from 0.

    ``Sᵀ v``: row axpys in row order (vectorised).  ``S v``: eight rows at a
    time, each row's products added in column order (eight independent sums
    per sweep over v; measured d = 100: 6 µs against 11 µs for one
    four-way-split dot per row).  A symmetric S (the Hessian sums, exactly
    symmetric: :class:`bilevel_ref.problems.finite_sum.QuadraticSamples`) is
    applied as ``Sᵀ v``, 3 µs.
    """
    if trans:
        for c in range(out.shape[0]):
            out[c] = 0.0
        for r in range(S.shape[0]):
            vr = v[r]
            for c in range(S.shape[1]):
                out[c] += vr * S[r, c]
    else:
        _rows_matvec_into(S, v, out)


@_jit.jit(inline="always")
def _rows_matvec_into(S, v, out):
    """``out = S v``, eight rows at a time (see :func:`_matvec_into`)."""
    rows = S.shape[0]
    cols = S.shape[1]
    r = 0
    while r + 8 <= rows:
        a0 = a1 = a2 = a3 = a4 = a5 = a6 = a7 = 0.0
        for c in range(cols):
            vc = v[c]
            a0 += S[r, c] * vc
            a1 += S[r + 1, c] * vc
            a2 += S[r + 2, c] * vc
            a3 += S[r + 3, c] * vc
            a4 += S[r + 4, c] * vc
            a5 += S[r + 5, c] * vc
            a6 += S[r + 6, c] * vc
            a7 += S[r + 7, c] * vc
        out[r] = a0
        out[r + 1] = a1
        out[r + 2] = a2
        out[r + 3] = a3
        out[r + 4] = a4
        out[r + 5] = a5
        out[r + 6] = a6
        out[r + 7] = a7
        r += 8
    for k in range(r, rows):
        acc = 0.0
        for c in range(cols):
            acc += S[k, c] * v[c]
        out[k] = acc


@_jit.jit(nogil=True)
def matvec(S, v, trans, m, out):
    """``out = S v / m`` (``trans``: ``Sᵀ v / m``)."""
    _matvec_into(S, v, trans, out)
    for r in range(out.shape[0]):
        out[r] = out[r] / m


@_jit.jit(inline="always")
def _grad_into(sa, va, sb, vb, trans_b, lin, idx, out, tmp_a, tmp_b):
    """``out = (sa va + (sbᵀ vb if trans_b else sb vb) + Σ_k lin[idx[k]]) / m`` for a symmetric ``sa``.

    ``sa va`` is formed as ``saᵀ va`` (row axpys).  The linear terms are
    added sample by sample into ``out`` (contiguous rows of ``lin``; each
    element still in index order from 0), then combined.
    """
    n = lin.shape[0]
    m = idx.shape[0]
    _matvec_into(sa, va, True, tmp_a)
    _matvec_into(sb, vb, trans_b, tmp_b)
    for r in range(out.shape[0]):
        out[r] = 0.0
    for k in range(m):
        i = _wrap(idx[k], n)
        for r in range(out.shape[0]):
            out[r] += lin[i, r]
    for r in range(out.shape[0]):
        out[r] = ((tmp_a[r] + tmp_b[r]) + out[r]) / m


@_jit.jit(nogil=True)
def dense_grad(sa, va, sb, vb, trans_b, lin, idx, out):
    """One gradient block from the sums: ∇_y h = (S^yy y + (S^xy)ᵀ x + Σ l^y) / m
    (``trans_b`` True), ∇_x h = (S^xx x + S^xy y + Σ l^x) / m (False)."""
    _grad_into(sa, va, sb, vb, trans_b, lin, idx, out, np.empty(out.shape[0]), np.empty(out.shape[0]))


@_jit.jit(nogil=True)
def dense_fused(syy, sxy, ly, idx, x, y, v, gy, hv, jv):
    """``gy = (S^yy y + (S^xy)ᵀ x + Σ l^y)/m``, ``hv = S^yy v / m``, ``jv = S^xy v / m``."""
    m = idx.shape[0]
    _grad_into(syy, y, sxy, x, True, ly, idx, gy, hv, np.empty(gy.shape[0]))   # hv as scratch, overwritten below
    _matvec_into(syy, v, True, hv)
    _matvec_into(sxy, v, False, jv)
    for r in range(hv.shape[0]):
        hv[r] = hv[r] / m
    for r in range(jv.shape[0]):
        jv[r] = jv[r] / m


@_jit.jit(nogil=True)
def dense_value(syy, sxx, sxy, ly, lx, idx, x, y):
    """(½ yᵀS^yy y + ½ xᵀS^xx x + xᵀS^xy y + Σ l^y·y + Σ l^x·x) / m."""
    n = ly.shape[0]
    m = idx.shape[0]
    qyy = 0.0
    for r in range(syy.shape[0]):
        qyy += y[r] * _dot(syy[r], y)
    qxx = 0.0
    qxy = 0.0
    for r in range(sxx.shape[0]):
        qxx += x[r] * _dot(sxx[r], x)
        qxy += x[r] * _dot(sxy[r], y)
    lin = 0.0
    for k in range(m):
        i = _wrap(idx[k], n)
        lin += _dot(ly[i], y) + _dot(lx[i], x)
    return ((0.5 * (qyy + qxx) + qxy) + lin) / m


# --------------------------------------------------------------------------- factored storage
# Each kernel: phase 1 computes per-sample scalars (samples split into chunks,
# one sample's scalars by one thread), phase 2 accumulates the outputs
# (coordinates split into chunks), each coordinate in index order: the same
# roundings for every ``chunks``.
@_jit.jit(inline="always")
def _span(t, chunks, d):
    return d * t // chunks, d * (t + 1) // chunks


@_jit.jit(nogil=True)
def _value_terms(Fy, Fx, idx, x, y, terms, k0, k1):
    n = Fy.shape[0]
    for k in range(k0, k1):
        i = _wrap(idx[k], n)
        zy = _dot(Fy[i, 0], y)
        wx = _dot(Fx[i, 0], x)
        terms[k] = 0.5 * (zy * zy + wx * wx) + _dot(Fx[i, 1], x) * _dot(Fy[i, 1], y) \
            + _dot(Fy[i, 2], y) + _dot(Fx[i, 2], x)


@_jit.parallel_jit(nogil=True)
def factored_value(Fy, Fx, idx, x, y, chunks):
    """Σ_i ½(z·y)² + ½(w·x)² + (c·x)(e·y) + l^y·y + l^x·x; returns (status, sum)."""
    n = Fy.shape[0]
    status = first_bad(idx, n)
    if status >= 0:
        return status, 0.0
    m = idx.shape[0]
    terms = np.empty(m)
    if chunks <= 1:
        _value_terms(Fy, Fx, idx, x, y, terms, 0, m)
    else:
        for t in prange(chunks):
            k0, k1 = _span(t, chunks, m)
            _value_terms(Fy, Fx, idx, x, y, terms, k0, k1)
    total = 0.0
    for k in range(m):
        total += terms[k]
    return -1, total


@_jit.jit(nogil=True)
def _dots(Fa, a_row, va, Fb, b_row, vb, idx, s, col, k0, k1):
    """``s[k, col] = Fa[i_k, a_row]·va`` and ``s[k, col + 1] = Fb[i_k, b_row]·vb`` for k in [k0, k1)."""
    n = Fa.shape[0]
    for k in range(k0, k1):
        i = _wrap(idx[k], n)
        s[k, col] = _dot(Fa[i, a_row], va)
        s[k, col + 1] = _dot(Fb[i, b_row], vb)


@_jit.jit(nogil=True)
def _grad_rows(Fy, Fx, idx, s, gx, gy, t, chunks):
    n = Fy.shape[0]
    m = idx.shape[0]
    a0, a1 = _span(t, chunks, gy.shape[0])
    b0, b1 = _span(t, chunks, gx.shape[0])
    gy[a0:a1] = 0.0
    gx[b0:b1] = 0.0
    for k in range(m):
        i = _wrap(idx[k], n)
        zy, ey, wx, cx = s[k, 0], s[k, 1], s[k, 2], s[k, 3]
        for r in range(a0, a1):
            gy[r] += zy * Fy[i, 0, r] + cx * Fy[i, 1, r] + Fy[i, 2, r]
        for r in range(b0, b1):
            gx[r] += wx * Fx[i, 0, r] + ey * Fx[i, 1, r] + Fx[i, 2, r]
    for r in range(a0, a1):
        gy[r] = gy[r] / m
    for r in range(b0, b1):
        gx[r] = gx[r] / m


@_jit.parallel_jit(nogil=True)
def factored_grad(Fy, Fx, idx, x, y, gx, gy, chunks):
    """gy = mean z(z·y) + e(c·x) + l^y,  gx = mean w(w·x) + c(e·y) + l^x."""
    n = Fy.shape[0]
    status = first_bad(idx, n)
    if status >= 0:
        return status
    m = idx.shape[0]
    s = np.empty((m, 4))   # z·y, e·y, w·x, c·x
    if chunks <= 1:
        _dots(Fy, 0, y, Fy, 1, y, idx, s, 0, 0, m)
        _dots(Fx, 0, x, Fx, 1, x, idx, s, 2, 0, m)
        _grad_rows(Fy, Fx, idx, s, gx, gy, 0, 1)
    else:
        for t in prange(chunks):
            k0, k1 = _span(t, chunks, m)
            _dots(Fy, 0, y, Fy, 1, y, idx, s, 0, k0, k1)
            _dots(Fx, 0, x, Fx, 1, x, idx, s, 2, k0, k1)
        for t in prange(chunks):
            _grad_rows(Fy, Fx, idx, s, gx, gy, t, chunks)
    return -1


@_jit.jit(nogil=True)
def _block_rows(Fa, idx, s, out, t, chunks):
    n = Fa.shape[0]
    m = idx.shape[0]
    r0, r1 = _span(t, chunks, out.shape[0])
    out[r0:r1] = 0.0
    for k in range(m):
        i = _wrap(idx[k], n)
        s0, s1 = s[k, 0], s[k, 1]
        for r in range(r0, r1):
            out[r] += s0 * Fa[i, 0, r] + s1 * Fa[i, 1, r] + Fa[i, 2, r]
    for r in range(r0, r1):
        out[r] = out[r] / m


@_jit.parallel_jit(nogil=True)
def factored_grad_block(Fa, Fb, idx, va, vb, out, chunks):
    """One gradient block: out = mean a0(a0·va) + a1(b1·vb) + a2 with a = Fa[i], b = Fb[i].

    (Fa, Fb, va, vb) = (Fy, Fx, y, x) gives ∇_y h, (Fx, Fy, x, y) gives ∇_x h.
    """
    status = first_bad(idx, Fa.shape[0])
    if status >= 0:
        return status
    m = idx.shape[0]
    s = np.empty((m, 2))
    if chunks <= 1:
        _dots(Fa, 0, va, Fb, 1, vb, idx, s, 0, 0, m)
        _block_rows(Fa, idx, s, out, 0, 1)
    else:
        for t in prange(chunks):
            k0, k1 = _span(t, chunks, m)
            _dots(Fa, 0, va, Fb, 1, vb, idx, s, 0, k0, k1)
        for t in prange(chunks):
            _block_rows(Fa, idx, s, out, t, chunks)
    return -1


@_jit.jit(nogil=True)
def _fused_rows(Fy, Fx, idx, s, gy, hv, jv, t, chunks):
    n = Fy.shape[0]
    m = idx.shape[0]
    a0, a1 = _span(t, chunks, gy.shape[0])
    b0, b1 = _span(t, chunks, jv.shape[0])
    gy[a0:a1] = 0.0
    hv[a0:a1] = 0.0
    jv[b0:b1] = 0.0
    for k in range(m):
        i = _wrap(idx[k], n)
        zy, zv, ev, cx = s[k, 0], s[k, 1], s[k, 2], s[k, 3]
        for r in range(a0, a1):
            gy[r] += zy * Fy[i, 0, r] + cx * Fy[i, 1, r] + Fy[i, 2, r]
            hv[r] += zv * Fy[i, 0, r]
        for r in range(b0, b1):
            jv[r] += ev * Fx[i, 1, r]
    for r in range(a0, a1):
        gy[r] = gy[r] / m
        hv[r] = hv[r] / m
    for r in range(b0, b1):
        jv[r] = jv[r] / m


@_jit.parallel_jit(nogil=True)
def factored_fused(Fy, Fx, idx, x, y, v, gy, hv, jv, chunks):
    """gy = mean z(z·y) + e(c·x) + l^y,  hv = mean z(z·v),  jv = mean c(e·v): one read of each sample."""
    n = Fy.shape[0]
    status = first_bad(idx, n)
    if status >= 0:
        return status
    m = idx.shape[0]
    s = np.empty((m, 4))   # z·y, z·v, e·v, c·x
    if chunks <= 1:
        _dots(Fy, 0, y, Fy, 0, v, idx, s, 0, 0, m)
        _dots(Fy, 1, v, Fx, 1, x, idx, s, 2, 0, m)
        _fused_rows(Fy, Fx, idx, s, gy, hv, jv, 0, 1)
    else:
        for t in prange(chunks):
            k0, k1 = _span(t, chunks, m)
            _dots(Fy, 0, y, Fy, 0, v, idx, s, 0, k0, k1)
            _dots(Fy, 1, v, Fx, 1, x, idx, s, 2, k0, k1)
        for t in prange(chunks):
            _fused_rows(Fy, Fx, idx, s, gy, hv, jv, t, chunks)
    return -1


@_jit.jit(nogil=True)
def _product_dots(src, src_row, idx, vec, s, k0, k1):
    n = src.shape[0]
    for k in range(k0, k1):
        s[k] = _dot(src[_wrap(idx[k], n), src_row], vec)


@_jit.jit(nogil=True)
def _product_rows(dst, dst_row, idx, s, out, t, chunks):
    n = dst.shape[0]
    m = idx.shape[0]
    r0, r1 = _span(t, chunks, out.shape[0])
    out[r0:r1] = 0.0
    for k in range(m):
        i = _wrap(idx[k], n)
        sk = s[k]
        for r in range(r0, r1):
            out[r] += sk * dst[i, dst_row, r]
    for r in range(r0, r1):
        out[r] = out[r] / m


@_jit.parallel_jit(nogil=True)
def factored_product(src, src_row, dst, dst_row, idx, vec, out, chunks):
    """out = mean_i dst[i, dst_row] (src[i, src_row]·vec): every product of a rank-one block."""
    status = first_bad(idx, src.shape[0])
    if status >= 0:
        return status
    m = idx.shape[0]
    s = np.empty(m)
    if chunks <= 1:
        _product_dots(src, src_row, idx, vec, s, 0, m)
        _product_rows(dst, dst_row, idx, s, out, 0, 1)
    else:
        for t in prange(chunks):
            k0, k1 = _span(t, chunks, m)
            _product_dots(src, src_row, idx, vec, s, k0, k1)
        for t in prange(chunks):
            _product_rows(dst, dst_row, idx, s, out, t, chunks)
    return -1
