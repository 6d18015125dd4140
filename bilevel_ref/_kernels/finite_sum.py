"""numba kernels of the finite-sum quadratic problem (:mod:`bilevel_ref.problems.finite_sum`).

One pass over the selected samples, reading each sample's data once, in place
(no gather copy); every index is bounds-checked inside the kernel, and each
kernel returns -1, or the position of the first out-of-range index.  Sums run
in a fixed order (no fastmath, no parallel reductions: :mod:`bilevel_ref._jit`),
so results are deterministic.
"""
from .. import _jit

__all__ = ["gather_sum", "factored_value", "factored_grad", "factored_grad_block", "factored_fused",
           "factored_product"]


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
def gather_sum(tensor, idx, out):
    """``out = Σ_k tensor[idx[k]]`` in index order, reading each matrix once (dense storage)."""
    n = tensor.shape[0]
    out[:, :] = 0.0
    for k in range(idx.shape[0]):
        i = _wrap(idx[k], n)
        if i < 0 or i >= n:
            return k
        for r in range(tensor.shape[1]):
            for c in range(tensor.shape[2]):
                out[r, c] += tensor[i, r, c]
    return -1


@_jit.jit(nogil=True)
def factored_value(Fy, Fx, idx, x, y):
    """Σ_i ½(z·y)² + ½(w·x)² + (c·x)(e·y) + l^y·y + l^x·x; returns (status, sum)."""
    n = Fy.shape[0]
    total = 0.0
    for k in range(idx.shape[0]):
        i = _wrap(idx[k], n)
        if i < 0 or i >= n:
            return k, total
        zy = _dot(Fy[i, 0], y)
        wx = _dot(Fx[i, 0], x)
        total += 0.5 * (zy * zy + wx * wx) + _dot(Fx[i, 1], x) * _dot(Fy[i, 1], y) \
            + _dot(Fy[i, 2], y) + _dot(Fx[i, 2], x)
    return -1, total


@_jit.jit(nogil=True)
def factored_grad(Fy, Fx, idx, x, y, gx, gy):
    """gy = mean z(z·y) + e(c·x) + l^y,  gx = mean w(w·x) + c(e·y) + l^x."""
    n = Fy.shape[0]
    gx[:] = 0.0
    gy[:] = 0.0
    for k in range(idx.shape[0]):
        i = _wrap(idx[k], n)
        if i < 0 or i >= n:
            return k
        z, e, ly = Fy[i, 0], Fy[i, 1], Fy[i, 2]
        w, c, lx = Fx[i, 0], Fx[i, 1], Fx[i, 2]
        zy, ey, wx, cx = _dot(z, y), _dot(e, y), _dot(w, x), _dot(c, x)
        for r in range(gy.shape[0]):
            gy[r] += zy * z[r] + cx * e[r] + ly[r]
        for r in range(gx.shape[0]):
            gx[r] += wx * w[r] + ey * c[r] + lx[r]
    gx /= idx.shape[0]
    gy /= idx.shape[0]
    return -1


@_jit.jit(nogil=True)
def factored_grad_block(Fa, Fb, idx, va, vb, out):
    """One gradient block: out = mean a0(a0·va) + a1(b1·vb) + a2 with a = Fa[i], b = Fb[i].

    (Fa, Fb, va, vb) = (Fy, Fx, y, x) gives ∇_y h, (Fx, Fy, x, y) gives ∇_x h.
    """
    n = Fa.shape[0]
    out[:] = 0.0
    for k in range(idx.shape[0]):
        i = _wrap(idx[k], n)
        if i < 0 or i >= n:
            return k
        a0, a1, a2 = Fa[i, 0], Fa[i, 1], Fa[i, 2]
        s0, s1 = _dot(a0, va), _dot(Fb[i, 1], vb)
        for r in range(out.shape[0]):
            out[r] += s0 * a0[r] + s1 * a1[r] + a2[r]
    out /= idx.shape[0]
    return -1


@_jit.jit(nogil=True)
def factored_fused(Fy, Fx, idx, x, y, v, gy, hv, jv):
    """gy = mean z(z·y) + e(c·x) + l^y,  hv = mean z(z·v),  jv = mean c(e·v): one read of each sample."""
    n = Fy.shape[0]
    gy[:] = 0.0
    hv[:] = 0.0
    jv[:] = 0.0
    for k in range(idx.shape[0]):
        i = _wrap(idx[k], n)
        if i < 0 or i >= n:
            return k
        z, e, ly, c = Fy[i, 0], Fy[i, 1], Fy[i, 2], Fx[i, 1]
        zy, zv, ev, cx = _dot(z, y), _dot(z, v), _dot(e, v), _dot(c, x)
        for r in range(gy.shape[0]):
            gy[r] += zy * z[r] + cx * e[r] + ly[r]
            hv[r] += zv * z[r]
        for r in range(jv.shape[0]):
            jv[r] += ev * c[r]
    gy /= idx.shape[0]
    hv /= idx.shape[0]
    jv /= idx.shape[0]
    return -1


@_jit.jit(nogil=True)
def factored_product(src, src_row, dst, dst_row, idx, vec, out):
    """out = mean_i dst[i, dst_row] (src[i, src_row]·vec): every product of a rank-one block."""
    n = src.shape[0]
    out[:] = 0.0
    for k in range(idx.shape[0]):
        i = _wrap(idx[k], n)
        if i < 0 or i >= n:
            return k
        a = src[i, src_row]
        b = dst[i, dst_row]
        s = _dot(a, vec)
        for r in range(out.shape[0]):
            out[r] += s * b[r]
    out /= idx.shape[0]
    return -1
