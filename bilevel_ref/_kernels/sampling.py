"""Minibatch sampling kernel: Floyd's algorithm for a uniform random subset.

``Generator.choice(n, m, replace=False)`` costs more than a batch-64 gradient
of the finite-sum problems; Floyd's algorithm draws an m-subset of range(n)
from m uniforms in O(m) work (plus an O(n) bit mask).

Reference: J. Bentley, R. Floyd, "Programming pearls: a sample of brilliance",
Commun. ACM 30(9), 1987.
"""
import numpy as np

from .. import _jit

__all__ = ["floyd_subset"]


@_jit.jit(nogil=True)
def floyd_subset(u, n):
    """A uniform random m-subset of range(n) from m uniforms u in [0, 1).

    For j = n−m, ..., n−1 draw t uniform in {0..j}; take t, or j if t was taken.
    Every m-subset is equally likely (the order is not a uniform permutation,
    which a minibatch mean does not need).
    """
    m = u.shape[0]
    out = np.empty(m, dtype=np.int64)
    seen = np.zeros(n, dtype=np.bool_)
    for k in range(m):
        j = n - m + k
        t = min(int(u[k] * (j + 1)), j)
        if seen[t]:
            t = j
        seen[t] = True
        out[k] = t
    return out
