r"""Shared logistic / softmax math for the data-driven problem families.

One place for the formulas that hyper-cleaning, learn-to-regularize and the
meta-learning head all need:

* scalar maps: :math:`\mathrm{softplus}(t) = \log(1 + e^t)`,
  :math:`\sigma(t) = 1/(1 + e^{-t})`, :math:`\sigma' = \sigma(1-\sigma)`,
  :math:`\sigma'' = \sigma(1-\sigma)(1-2\sigma)`;
* data products ``X @ v`` and ``X.T @ w`` that work for dense ndarrays and
  ``scipy.sparse`` CSR matrices alike *without densifying* (sparse ``X``
  times a dense vector or a thin dense matrix is a dense result of the small
  size; ``X`` itself is never converted);
* two per-sample loss models on a data matrix ``X`` (n × d) with a parameter
  ``y``, each giving the per-sample losses :math:`\ell_i(y)` and the weighted
  sums :math:`\sum_i c_i \nabla\ell_i(y)`, :math:`\sum_i c_i \nabla^2\ell_i(y) v`,
  :math:`\sum_i c_i \nabla^2\ell_i(y)` (dense), and the per-sample
  directional derivatives :math:`q_i = \langle \nabla\ell_i(y), v\rangle`:

  - :class:`BinaryLogisticLoss`: labels :math:`b_i \in \{\pm 1\}`,
    :math:`z_i = b_i a_i^\top y`, :math:`\ell_i = \mathrm{softplus}(-z_i)`,
    :math:`\nabla\ell_i = -b_i\sigma(-z_i) a_i`,
    :math:`\nabla^2\ell_i = \sigma(z_i)\sigma(-z_i) a_i a_i^\top`;
  - :class:`SoftmaxLoss`: :math:`Y \in \mathbb{R}^{d\times K}` flattened
    row-major (position ``j*K + k``), logits :math:`o_i = Y^\top a_i`,
    :math:`p_i = \mathrm{softmax}(o_i)`, :math:`\ell_i = \mathrm{CE}_i =
    \mathrm{logsumexp}(o_i) - o_{i,c_i}`, :math:`\nabla\ell_i = a_i (p_i - e_i)^\top`,
    and along :math:`V`: with :math:`u_i = V^\top a_i`,
    :math:`\nabla^2\ell_i[V] = a_i r_i^\top`, :math:`r_i = p_i \odot u_i - p_i (p_i^\top u_i)`.

Every method takes ``rows=None`` (all samples) or an index array (a
minibatch; repeated indices count repeatedly) and weights ``c`` aligned with
the selected rows.  Nothing here is counted: the problems that use these
models are wrapped in the oracle counter by :func:`bilevel_ref.minimize`.
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from scipy.special import expit, logsumexp

__all__ = [
    "softplus", "sigmoid", "dsigmoid", "d2sigmoid", "softmax", "softmax_hvp_rows",
    "as_features", "as_rows", "is_sparse", "take_rows", "matvec", "rmatvec", "weighted_gram", "lambda_max_gram",
    "as_pm1", "BinaryLogisticLoss", "SoftmaxLoss", "loss_models", "DEFAULT_MAX_DENSE", "UpperLevelFreeOfX",
]

#: Largest number of entries a dense Hessian block may have (problems.md §3.2).
DEFAULT_MAX_DENSE = 50_000_000


# ---------------------------------------------------------------------------
# scalar maps
# ---------------------------------------------------------------------------
def softplus(t):
    """``log(1 + exp(t))`` computed without overflow."""
    return np.logaddexp(0.0, t)


def sigmoid(t):
    """Logistic function σ(t) (``scipy.special.expit``)."""
    return expit(t)


def dsigmoid(t):
    """σ'(t) = σ(t)σ(−t) (the symmetric form keeps precision in both tails)."""
    return expit(t) * expit(-t)


def d2sigmoid(t):
    """σ''(t) = σ(t)σ(−t)(1 − 2σ(t))."""
    s = expit(t)
    return s * expit(-t) * (1.0 - 2.0 * s)


def softmax(logits, axis=-1):
    """Row-wise softmax, stable for large logits."""
    shifted = logits - np.max(logits, axis=axis, keepdims=True)
    e = np.exp(shifted)
    return e / np.sum(e, axis=axis, keepdims=True)


def softmax_hvp_rows(P, dZ):
    """Row-wise ``(diag(p) − ppᵀ) dz = P⊙dZ − P⊙(Σ_k P⊙dZ)``: the CE Hessian in the logits along dZ."""
    PdZ = P * dZ
    return PdZ - P * np.sum(PdZ, axis=1, keepdims=True)


# ---------------------------------------------------------------------------
# data products (dense or CSR, never densified)
# ---------------------------------------------------------------------------
def is_sparse(X):
    """True for any ``scipy.sparse`` matrix or array."""
    return sp.issparse(X)


def as_features(X, name):
    """Validate a feature matrix: CSR float64 for sparse input, else a finite 2-D float64 ndarray."""
    if sp.issparse(X):
        X = sp.csr_matrix(X, dtype=np.float64)
        if not np.all(np.isfinite(X.data)):
            raise ValueError(f"{name} must contain only finite values")
        return X
    if isinstance(X, (str, bytes)) or X is None:
        raise TypeError(f"{name} must be a 2-D array or a scipy.sparse matrix, got {type(X).__name__}")
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array, got shape {X.shape}")
    if not np.all(np.isfinite(X)):
        raise ValueError(f"{name} must contain only finite values")
    return X


def as_rows(batch):
    """``None`` (all samples) or a non-empty 1-D integer index array (a minibatch)."""
    if batch is None:
        return None
    rows = np.asarray(batch)
    if rows.ndim != 1 or (rows.size and rows.dtype.kind not in "iu"):
        raise TypeError(f"batch must be None or a 1-D integer index array, got dtype {rows.dtype}, "
                        f"shape {rows.shape}")
    if rows.size == 0:
        raise ValueError("batch must not be empty")
    return rows.astype(np.intp, copy=False)


def take_rows(X, rows):
    """``X`` itself for ``rows=None``, else the selected rows (CSR stays CSR)."""
    if rows is None:
        return X
    return X[rows]


def matvec(X, v):
    """``X @ v`` as a dense ndarray for a vector or a thin dense matrix ``v``."""
    out = X @ v
    return np.asarray(out)


def rmatvec(X, w):
    """``X.T @ w`` as a dense ndarray (CSR transposes to CSC: no copy of the data)."""
    out = X.T @ w
    return np.asarray(out)


def weighted_gram(X, w):
    """Dense ``Xᵀ diag(w) X`` (d × d); for reference/dense-Hessian use only."""
    if is_sparse(X):
        return np.asarray((X.T @ X.multiply(w[:, None]).tocsr()).toarray())
    return X.T @ (X * w[:, None])


def lambda_max_gram(X):
    """Largest eigenvalue of ``XᵀX`` (= ‖X‖₂²), deterministic for dense and sparse ``X``."""
    n, d = X.shape
    if min(n, d) == 0:
        return 0.0
    if not is_sparse(X) and min(n, d) <= 2000:
        return float(np.linalg.norm(X, 2) ** 2)
    from scipy.sparse.linalg import LinearOperator, eigsh

    op = LinearOperator((d, d), matvec=lambda v: rmatvec(X, matvec(X, v)), dtype=np.float64)
    # fixed start vector: the result is bit-reproducible run to run
    val = eigsh(op, k=1, which="LA", v0=np.ones(d), return_eigenvectors=False, tol=1e-6)
    return float(val[0]) * (1.0 + 1e-6)


def as_pm1(labels, name="labels"):
    """Binary labels in {0, 1} or {−1, +1} as a float array of ±1."""
    labels = np.asarray(labels)
    values = set(np.unique(labels).tolist())
    if values <= {-1, 1}:
        return labels.astype(np.float64)
    if values <= {0, 1}:
        return 2.0 * labels.astype(np.float64) - 1.0
    raise ValueError(f"{name} must be binary, in {{0, 1}} or {{-1, +1}}, got values {sorted(values)[:5]}")


def _check_dense_size(entries, max_dense, what):
    if entries > max_dense:
        raise NotImplementedError(
            f"the dense {what} would have {entries:.3g} entries (> max_dense={max_dense:.3g}); "
            "use a method based on Hessian-vector products, or raise max_dense")


# ---------------------------------------------------------------------------
# per-sample loss models
# ---------------------------------------------------------------------------
class UpperLevelFreeOfX:
    """Mixin for data problems whose upper level f(x, y) = validation loss of y alone:
    ∇_x f, ∇²_xx f and ∇²_xy f vanish (exact zeros, no data pass)."""

    def grad_x_f(self, x, y, batch=None):
        return np.zeros(self.dx)

    def hvp_xx_f(self, x, y, u, batch=None):
        return np.zeros(self.dx)

    def cross_f(self, x, y, v, batch=None):
        return np.zeros(self.dx)

    def cross_t_f(self, x, y, u, batch=None):
        return np.zeros(self.dy)


class _LossModel:
    """Shared plumbing of the loss models: ``Xᵀ w`` through a cached transposed CSR for sparse X."""

    _Xt = None

    def _rmat(self, Xr, rows, w):
        # Xᵀw with X CSR runs scipy's CSC kernel, which scatters into the long
        # output (cache misses); the transposed matrix in CSR gathers instead
        # (measured 7x faster at 9 000 × 130 107).  Built once, for full batches.
        if rows is None and is_sparse(self.X):
            if self._Xt is None:
                self._Xt = self.X.T.tocsr()
            return np.asarray(self._Xt @ w)
        return rmatvec(Xr, w)


class BinaryLogisticLoss(_LossModel):
    r"""Per-sample logistic losses :math:`\ell_i(y) = \mathrm{softplus}(-b_i a_i^\top y)`.

    Parameters
    ----------
    X : ndarray or scipy.sparse CSR matrix, shape (n, d)
        Features (rows :math:`a_i`).
    labels : array_like, shape (n,)
        Binary labels in {0, 1} or {−1, +1}.
    """

    #: upper bound of the curvature σ(z)σ(−z) of ℓ along a_i
    curvature_bound = 0.25

    def __init__(self, X, labels):
        self.X = X
        self.b = as_pm1(labels)
        self.n, self.d = X.shape
        self.dim = self.d
        self.n_classes = 2

    def _margins(self, y, rows):
        Xr = take_rows(self.X, rows)
        b = self.b if rows is None else self.b[rows]
        return Xr, b, b * matvec(Xr, y)

    def losses(self, y, rows=None):
        """Per-sample losses ℓ_i(y) of the selected rows."""
        _, _, z = self._margins(y, rows)
        return softplus(-z)

    def weighted_grad(self, y, c, rows=None):
        """``Σ_i c_i ∇ℓ_i(y)``."""
        Xr, b, z = self._margins(y, rows)
        return self._rmat(Xr, rows, -c * b * expit(-z))

    def losses_and_grad(self, y, c, rows=None):
        """``(ℓ, Σ_i c_i ∇ℓ_i)`` with one pass over the data."""
        Xr, b, z = self._margins(y, rows)
        return softplus(-z), self._rmat(Xr, rows, -c * b * expit(-z))

    def directional(self, y, v, rows=None):
        """Per-sample ``q_i = ⟨∇ℓ_i(y), v⟩``."""
        Xr, b, z = self._margins(y, rows)
        return -b * expit(-z) * matvec(Xr, v)

    def weighted_hvp(self, y, c, v, rows=None):
        """``Σ_i c_i ∇²ℓ_i(y) v``."""
        Xr, _, z = self._margins(y, rows)
        return self._rmat(Xr, rows, c * expit(z) * expit(-z) * matvec(Xr, v))

    def fused(self, y, c, v, rows=None):
        """``(Σ c_i ∇ℓ_i, Σ c_i ∇²ℓ_i v, q)`` with ``q_i = ⟨∇ℓ_i, v⟩``, reading the rows once."""
        Xr, b, z = self._margins(y, rows)
        s_minus = expit(-z)
        Xv = matvec(Xr, v)
        grad = self._rmat(Xr, rows, -c * b * s_minus)
        hvp = self._rmat(Xr, rows, c * expit(z) * s_minus * Xv)
        return grad, hvp, -b * s_minus * Xv

    def weighted_hess(self, y, c, rows=None, max_dense=DEFAULT_MAX_DENSE):
        """Dense ``Σ_i c_i ∇²ℓ_i(y)`` (d × d)."""
        _check_dense_size(self.d * self.d, max_dense, "Hessian block ∇²_yy")
        Xr, _, z = self._margins(y, rows)
        return weighted_gram(Xr, c * expit(z) * expit(-z))

    def sample_grads(self, y, rows=None, max_dense=DEFAULT_MAX_DENSE):
        """Dense matrix of per-sample gradients (rows ∇ℓ_i(y)), shape (n_rows, d)."""
        Xr, b, z = self._margins(y, rows)
        _check_dense_size(Xr.shape[0] * self.d, max_dense, "matrix of per-sample gradients")
        coef = -b * expit(-z)
        if is_sparse(Xr):
            return np.asarray(Xr.multiply(coef[:, None]).toarray())
        return Xr * coef[:, None]

    def predict(self, y, X=None):
        """Predicted labels in {−1, +1} for the rows of ``X`` (default the model's data)."""
        X = self.X if X is None else X
        return np.where(matvec(X, y) >= 0.0, 1.0, -1.0)

    def accuracy(self, y):
        """Fraction of the model's own rows classified correctly by ``y``."""
        return float(np.mean(self.predict(y) == self.b))


class SoftmaxLoss(_LossModel):
    r"""Per-sample cross-entropies of a linear softmax model, ``Y`` (d × K) flattened row-major.

    Parameters
    ----------
    X : ndarray or scipy.sparse CSR matrix, shape (n, d)
    labels : array_like of int, shape (n,)
        Class indices in ``0..n_classes-1``.
    n_classes : int
    """

    #: upper bound of λ_max(diag(p) − ppᵀ)
    curvature_bound = 0.5

    def __init__(self, X, labels, n_classes):
        self.X = X
        self.labels = np.asarray(labels, dtype=np.int64)
        self.n, self.d = X.shape
        self.K = int(n_classes)
        self.n_classes = self.K
        self.dim = self.d * self.K
        if self.labels.size and (self.labels.min() < 0 or self.labels.max() >= self.K):
            raise ValueError(f"labels must be class indices in 0..{self.K - 1}")

    def _forward(self, y, rows):
        Xr = take_rows(self.X, rows)
        lab = self.labels if rows is None else self.labels[rows]
        logits = matvec(Xr, y.reshape(self.d, self.K))
        return Xr, lab, logits

    def _residual(self, logits, lab):
        # P − E: softmax probabilities minus the one-hot labels
        res = softmax(logits)
        res[np.arange(len(lab)), lab] -= 1.0
        return res

    def losses(self, y, rows=None):
        """Per-sample cross-entropies CE_i."""
        _, lab, logits = self._forward(y, rows)
        return logsumexp(logits, axis=1) - logits[np.arange(len(lab)), lab]

    def weighted_grad(self, y, c, rows=None):
        """``Σ_i c_i ∇CE_i = Xᵀ(c ⊙ (P − E))`` flattened."""
        Xr, lab, logits = self._forward(y, rows)
        return self._rmat(Xr, rows, c[:, None] * self._residual(logits, lab)).ravel()

    def losses_and_grad(self, y, c, rows=None):
        """``(CE, Σ_i c_i ∇CE_i)`` with one pass over the data."""
        Xr, lab, logits = self._forward(y, rows)
        ce = logsumexp(logits, axis=1) - logits[np.arange(len(lab)), lab]
        return ce, self._rmat(Xr, rows, c[:, None] * self._residual(logits, lab)).ravel()

    def directional(self, y, v, rows=None):
        """``q_i = ⟨a_i(p_i − e_i)ᵀ, V⟩ = Σ_k (XV ⊙ (P − E))_ik``."""
        Xr, lab, logits = self._forward(y, rows)
        U = matvec(Xr, v.reshape(self.d, self.K))
        return np.sum(U * self._residual(logits, lab), axis=1)

    def weighted_hvp(self, y, c, v, rows=None):
        """``Σ_i c_i ∇²CE_i[V] = Xᵀ(c ⊙ R)``, ``R = P⊙U − P⊙(Σ_k P⊙U)``, ``U = XV``."""
        Xr, _, logits = self._forward(y, rows)
        R = softmax_hvp_rows(softmax(logits), matvec(Xr, v.reshape(self.d, self.K)))
        return self._rmat(Xr, rows, c[:, None] * R).ravel()

    def fused(self, y, c, v, rows=None):
        """``(Σ c_i ∇CE_i, Σ c_i ∇²CE_i[V], q)`` with ``q_i = ⟨∇CE_i, V⟩``, one forward pass."""
        Xr, lab, logits = self._forward(y, rows)
        P = softmax(logits)
        res = P.copy()
        res[np.arange(len(lab)), lab] -= 1.0
        U = matvec(Xr, v.reshape(self.d, self.K))
        grad = self._rmat(Xr, rows, c[:, None] * res).ravel()
        hvp = self._rmat(Xr, rows, c[:, None] * softmax_hvp_rows(P, U)).ravel()
        return grad, hvp, np.sum(U * res, axis=1)

    def weighted_hess(self, y, c, rows=None, max_dense=DEFAULT_MAX_DENSE):
        r"""Dense ``Σ_i c_i (a_i a_iᵀ) ⊗ (diag(p_i) − p_i p_iᵀ)`` of size dK × dK."""
        N = self.dim
        _check_dense_size(N * N, max_dense, "Hessian block ∇²_yy")
        Xr, _, logits = self._forward(y, rows)
        P = softmax(logits)
        Xd = Xr.toarray() if is_sparse(Xr) else Xr
        # Σ_i c_i p_ik a_i a_iᵀ on the diagonal blocks (k = m), one BLAS Gram per class ...
        H = np.zeros((self.d, self.K, self.d, self.K))
        for k in range(self.K):
            H[:, k, :, k] = weighted_gram(Xd, c * P[:, k])
        # ... minus Σ_i c_i (a_i ⊗ p_i)(a_i ⊗ p_i)ᵀ
        B = (Xd[:, :, None] * P[:, None, :]).reshape(Xd.shape[0], N)
        return H.reshape(N, N) - B.T @ (B * c[:, None])

    def sample_grads(self, y, rows=None, max_dense=DEFAULT_MAX_DENSE):
        """Dense per-sample gradients, rows ``vec(a_i (p_i − e_i)ᵀ)``, shape (n_rows, dK)."""
        Xr, lab, logits = self._forward(y, rows)
        _check_dense_size(Xr.shape[0] * self.dim, max_dense, "matrix of per-sample gradients")
        Xd = Xr.toarray() if is_sparse(Xr) else Xr
        return (Xd[:, :, None] * self._residual(logits, lab)[:, None, :]).reshape(Xd.shape[0], -1)

    def predict(self, y, X=None):
        """Predicted class indices."""
        X = self.X if X is None else X
        return np.argmax(matvec(X, y.reshape(self.d, self.K)), axis=1)

    def accuracy(self, y):
        """Fraction of the model's own rows classified correctly by ``y``."""
        return float(np.mean(self.predict(y) == self.labels))



def loss_models(loss, X_train, y_train, X_val, y_val, X_test=None, y_test=None, n_classes=None):
    """Validated train / validation / (optional) test loss models of one kind.

    Parameters
    ----------
    loss : {"binary", "multinomial"}
    X_train, y_train, X_val, y_val, X_test, y_test :
        Features (dense or sparse) and labels; the test pair may be None.
    n_classes : int, optional
        Multinomial only (default ``max(label) + 1`` over train and validation).

    Returns
    -------
    train, val, test : BinaryLogisticLoss or SoftmaxLoss (test may be None)
    """
    if loss not in ("binary", "multinomial"):
        raise ValueError(f"loss must be one of ['binary', 'multinomial'], got {loss!r}")
    X_train = as_features(X_train, "X_train")
    X_val = as_features(X_val, "X_val")
    parts = [(X_train, y_train, "train"), (X_val, y_val, "val")]
    if X_test is not None:
        parts.append((as_features(X_test, "X_test"), y_test, "test"))
    d = X_train.shape[1]
    for X, lab, nm in parts:
        if X.shape[1] != d:
            raise ValueError(f"X_{nm} must have {d} columns like X_train, got {X.shape[1]}")
        if lab is None or len(np.asarray(lab)) != X.shape[0]:
            got = None if lab is None else len(np.asarray(lab))
            raise ValueError(f"y_{nm} must have {X.shape[0]} entries, got {got}")
    if loss == "binary":
        models = [BinaryLogisticLoss(X, lab) for X, lab, _ in parts]
    else:
        if n_classes is None:
            n_classes = int(max(np.max(y_train), np.max(y_val))) + 1
        if isinstance(n_classes, bool) or not isinstance(n_classes, (int, np.integer)) or n_classes < 2:
            raise ValueError(f"n_classes must be an integer >= 2, got {n_classes!r}")
        models = [SoftmaxLoss(X, lab, int(n_classes)) for X, lab, _ in parts]
    return models[0], models[1], (models[2] if len(models) > 2 else None)
