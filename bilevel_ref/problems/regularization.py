r"""Learn-to-regularize: per-feature (or per-class) ℓ2 penalties tuned on validation data.

Binary logistic regression (problems.md §4.1, benchopt ``ijcnn1``), ``dx = dy = d``:

.. math::

    g(x, y) &= \frac1n \sum_{i\in\mathrm{train}} \mathrm{softplus}(-b_i a_i^\top y)
               + \tfrac12 \sum_j r(x_j)\, y_j^2, \\
    f(x, y) &= \frac1{n_\mathrm{val}} \sum_{j\in\mathrm{val}} \mathrm{softplus}(-b_j a_j^\top y),

with :math:`r(t) = e^t` (``reg="exp"``) or :math:`r(t) = t` (``reg="lin"``,
requires :math:`x > 0`).  Multinomial logistic regression (§4.2, the
F2SA-p / F2BA ``l2reg`` task), :math:`W \in \mathbb{R}^{d\times K}`,
:math:`N = dK`, flattened row-major:

.. math::

    g(x, W) = \frac1n \sum_i \mathrm{CE}_i(W) + \frac1{2N}\sum_{j,k} r(x_j) W_{jk}^2,
    \qquad f(x, W) = \frac1{n_\mathrm{val}}\sum_j \mathrm{CE}_j(W),

or, with ``penalty="per_class"`` (benchopt covtype),
:math:`\tfrac12\sum_k r(x_k)\|W_{:,k}\|^2` and ``dx = K``.

All variants share one form: the penalty is :math:`s\sum_m r(x_{\gamma(m)}) y_m^2`
with a group map :math:`\gamma` from y-coordinates to x-coordinates and a
scale :math:`s` (½, or 1/(2N) for the per-feature multinomial penalty).  Hence

.. math::

    \nabla_x g &= s\, r'(x) \odot \textstyle\sum_{m:\gamma(m)=j} y_m^2, &
    \nabla^2_{xx} g &= \mathrm{diag}\big(s\, r''(x) \odot \textstyle\sum_{\gamma(m)=j} y_m^2\big), \\
    [\nabla^2_{xy} g]_{jm} &= 2s\, r'(x_j)\, y_m\, [\gamma(m) = j], &
    \nabla^2_{yy} g &= \nabla^2(\text{train loss}) + \mathrm{diag}(2s\, r(x_{\gamma(m)})),

and f does not depend on x.  Features may be a dense ndarray or a
``scipy.sparse`` CSR matrix (never densified: the oracles only use ``X @ V``
and ``X.T @ W`` products, :mod:`bilevel_ref.problems._logistic`); dense
Hessian blocks raise :class:`NotImplementedError` beyond ``max_dense``
entries.  Minibatch oracles (``batch=`` index arrays) average over training
rows for g (the penalty is deterministic and always included) and over
validation rows for f.

References
----------
benchopt bilevel benchmark, ``ijcnn1`` / ``covtype`` l2-regularisation problems.
J. Kwon et al., "A fully first-order method for stochastic bilevel
optimization" (F2SA), ICML 2023; Chen, Ma, Zhang, "Near-optimal fully
first-order algorithms for finding stationary points in bilevel optimization"
(F2BA) — 20 Newsgroups ``l2reg`` task.
"""
from __future__ import annotations

import numpy as np

from .._validation import as_vector, check_choice, check_int, check_positive
from ._logistic import DEFAULT_MAX_DENSE, _check_dense_size, as_rows, is_sparse, lambda_max_gram, loss_models
from ._logistic import UpperLevelFreeOfX
from .base import BilevelProblem
from .catalog import register_problem
from .datasets import synthetic_split

__all__ = [
    "LearnToRegularize", "make_logistic_regularization", "make_multinomial_regularization",
    "make_sparse_regularization",
]


class LearnToRegularize(UpperLevelFreeOfX, BilevelProblem):
    """Learn per-feature (or per-class) ℓ2 penalties of a logistic model (module docstring).

    Parameters
    ----------
    X_train : ndarray or scipy.sparse matrix, shape (n, d)
    y_train : array_like, shape (n,)
        Labels: {0, 1} or {−1, +1} for ``loss="binary"``, class indices for
        ``"multinomial"``.
    X_val, y_val :
        Validation set (defines f).
    X_test, y_test : optional
        Test set, used only by :meth:`evaluate`.
    loss : {"binary", "multinomial"}, default "binary"
    reg : {"exp", "lin"}, default "exp"
        Penalty map r(t) = e^t or t (``"lin"`` requires x > 0).
    penalty : {"per_feature", "per_class"}, default "per_feature"
        ``"per_class"`` only for ``loss="multinomial"``.
    n_classes : int, optional
        Number of classes (multinomial; default ``max(label) + 1``).
    x_ref : array_like, optional
        Point at which :meth:`constants` evaluates the x-dependent bounds
        (mu_g, L_g); default ``x = 0``.
    max_dense : int, default 5e7
        Largest dense Hessian block (entries) :meth:`hess_g` / :meth:`hess_f` build.
    name : str, optional
    """

    name = "learn-to-regularize"

    def __init__(self, X_train, y_train, X_val, y_val, X_test=None, y_test=None, *, loss="binary",
                 reg="exp", penalty="per_feature", n_classes=None, x_ref=None,
                 max_dense=DEFAULT_MAX_DENSE, name=None):
        check_choice(loss, "loss", ("binary", "multinomial"))
        check_choice(reg, "reg", ("exp", "lin"))
        check_choice(penalty, "penalty", ("per_feature", "per_class"))
        if loss == "binary" and penalty != "per_feature":
            raise ValueError("penalty='per_class' needs loss='multinomial'")
        self.train, self.val, self.test = loss_models(loss, X_train, y_train, X_val, y_val, X_test, y_test,
                                                      n_classes)
        d = self.train.d
        K = 1 if loss == "binary" else self.train.K
        self.loss, self.reg, self.penalty = loss, reg, penalty
        self.n_features, self.n_classes = d, (2 if loss == "binary" else K)
        self.dy = d * K
        # group map γ: y-coordinate m = j*K + k -> its x-coordinate; scale s
        if penalty == "per_feature":
            self.dx = d
            self._group = np.repeat(np.arange(d), K)
            self._scale = 0.5 if loss == "binary" else 1.0 / (2.0 * self.dy)
        else:
            self.dx = K
            self._group = np.tile(np.arange(K), d)
            self._scale = 0.5
        self.n_lower, self.n_upper = self.train.n, self.val.n
        self.max_dense = check_positive(float(max_dense), "max_dense")
        self.x_ref = np.zeros(self.dx) if x_ref is None else as_vector(x_ref, "x_ref", self.dx)
        if name is not None:
            self.name = name
        self._lam_train = self._lam_val = None

    # -- the penalty map r and its derivatives ------------------------------
    def _r(self, x):
        if self.reg == "exp":
            e = np.exp(x)
            return e, e, e
        if np.any(x <= 0):
            raise ValueError("reg='lin' needs x > 0 (r(x) = x must be a positive penalty); got min(x) = "
                             f"{float(np.min(x)):.3g}")
        return x, np.ones_like(x), np.zeros_like(x)

    def _sq_by_group(self, y):
        return np.bincount(self._group, weights=y * y, minlength=self.dx)

    def _mean_weights(self, model, rows):
        n = model.n if rows is None else len(rows)
        return np.full(n, 1.0 / n)

    # -- values and gradients ------------------------------------------------
    def g(self, x, y, batch=None):
        rows = as_rows(batch)
        r = self._r(x)[0]
        return float(np.mean(self.train.losses(y, rows)) + self._scale * r[self._group] @ (y * y))

    def f(self, x, y, batch=None):
        return float(np.mean(self.val.losses(y, as_rows(batch))))

    def grad_g(self, x, y, batch=None):
        return self.grad_x_g(x, y, batch), self.grad_y_g(x, y, batch)

    def grad_f(self, x, y, batch=None):
        return np.zeros(self.dx), self.grad_y_f(x, y, batch)

    # gradient blocks: ∇_x g is the penalty's alone (no pass over the data), ∇_x f = 0
    def grad_x_g(self, x, y, batch=None):
        return self._scale * self._r(x)[1] * self._sq_by_group(y)

    def grad_y_g(self, x, y, batch=None):
        rows = as_rows(batch)
        gy = self.train.weighted_grad(y, self._mean_weights(self.train, rows), rows)
        return gy + 2.0 * self._scale * self._r(x)[0][self._group] * y

    def grad_y_f(self, x, y, batch=None):
        rows = as_rows(batch)
        return self.val.weighted_grad(y, self._mean_weights(self.val, rows), rows)

    # -- matrix-free second order ------------------------------------------
    def hvp_yy_g(self, x, y, v, batch=None):
        rows = as_rows(batch)
        r = self._r(x)[0]
        hv = self.train.weighted_hvp(y, self._mean_weights(self.train, rows), v, rows)
        return hv + 2.0 * self._scale * r[self._group] * v

    def hvp_xx_g(self, x, y, u, batch=None):
        return self._scale * self._r(x)[2] * self._sq_by_group(y) * u

    def cross_g(self, x, y, v, batch=None):
        dr = self._r(x)[1]
        return 2.0 * self._scale * dr * np.bincount(self._group, weights=y * v, minlength=self.dx)

    def cross_t_g(self, x, y, u, batch=None):
        dr = self._r(x)[1]
        return 2.0 * self._scale * (dr * u)[self._group] * y

    def fused_g(self, x, y, v, batch=None):
        """``(∇_y g, ∇²_yy g·v, ∇²_xy g·v)`` from one pass over the batch's rows."""
        rows = as_rows(batch)
        r, dr, _ = self._r(x)
        gy, hv, _ = self.train.fused(y, self._mean_weights(self.train, rows), v, rows)
        pen = 2.0 * self._scale * r[self._group]
        cross = 2.0 * self._scale * dr * np.bincount(self._group, weights=y * v, minlength=self.dx)
        return gy + pen * y, hv + pen * v, cross

    def hvp_yy_f(self, x, y, v, batch=None):
        rows = as_rows(batch)
        return self.val.weighted_hvp(y, self._mean_weights(self.val, rows), v, rows)

    # -- dense blocks --------------------------------------------------------
    def hess_g(self, x, y, batch=None):
        rows = as_rows(batch)
        _check_dense_size(self.dx * self.dy, self.max_dense, "Hessian block ∇²_xy")
        r, dr, d2r = self._r(x)
        hyy = self.train.weighted_hess(y, self._mean_weights(self.train, rows), rows, self.max_dense)
        hyy[np.diag_indices(self.dy)] += 2.0 * self._scale * r[self._group]
        hxy = np.zeros((self.dx, self.dy))
        hxy[self._group, np.arange(self.dy)] = 2.0 * self._scale * dr[self._group] * y
        hxx = np.diag(self._scale * d2r * self._sq_by_group(y))
        return hxx, hxy, hyy

    def hess_f(self, x, y, batch=None):
        rows = as_rows(batch)
        _check_dense_size(self.dx * self.dy, self.max_dense, "Hessian block ∇²_xy")
        hyy = self.val.weighted_hess(y, self._mean_weights(self.val, rows), rows, self.max_dense)
        return np.zeros((self.dx, self.dx)), np.zeros((self.dx, self.dy)), hyy

    # -- constants and metrics ------------------------------------------------
    def constants(self):
        """Bounds at ``x_ref``: ``mu_g``, ``L_g`` (in y) and ``L_f`` (in y).

        ``mu_g = 2s·min r(x_ref)``, ``L_g = c·λ_max(XᵀX)/n + 2s·max r(x_ref)``
        with c = ¼ (binary) or ½ (softmax).  They move with x: methods that
        take x far from ``x_ref`` should pass step sizes explicitly.
        """
        if self._lam_train is None:
            self._lam_train = lambda_max_gram(self.train.X)
            self._lam_val = lambda_max_gram(self.val.X)
        r = self._r(self.x_ref)[0]
        c = self.train.curvature_bound
        return {"mu_g": float(2.0 * self._scale * np.min(r)),
                "L_g": float(c * self._lam_train / self.n_lower + 2.0 * self._scale * np.max(r)),
                "L_f": float(c * self._lam_val / self.n_upper)}

    def evaluate(self, x, y):
        """Uncounted metrics: train/validation loss, validation and test accuracy.

        Returns
        -------
        dict
            ``train_loss`` (mean training loss, no penalty), ``val_loss`` (f),
            ``val_accuracy`` and, with a test set, ``test_loss`` / ``test_accuracy``.
        """
        out = {"train_loss": float(np.mean(self.train.losses(y))),
               "val_loss": float(np.mean(self.val.losses(y))),
               "val_accuracy": self.val.accuracy(y)}
        if self.test is not None:
            out["test_loss"] = float(np.mean(self.test.losses(y)))
            out["test_accuracy"] = self.test.accuracy(y)
        return out

    @property
    def sparse(self):
        """Whether the features are a scipy.sparse matrix."""
        return is_sparse(self.train.X)


# ---------------------------------------------------------------------------
# generators
# ---------------------------------------------------------------------------
def make_logistic_regularization(n_train=200, n_val=200, d=10, *, seed=0, reg="exp", n_test=0,
                                 x_ref=None):
    """Binary learn-to-regularize (§4.1) on synthetic Gaussian data.

    Parameters
    ----------
    n_train, n_val, n_test : int
        Sizes of the training (g), validation (f) and test (metrics) sets.
    d : int
        Features (dx = dy = d).
    seed : int
    reg : {"exp", "lin"}
    x_ref : array_like, optional
        Where :meth:`LearnToRegularize.constants` is evaluated (default 0, or
        ones for ``reg="lin"``).
    """
    n_train = check_int(n_train, "n_train", minimum=1)
    n_val = check_int(n_val, "n_val", minimum=1)
    d = check_int(d, "d", minimum=1)
    (Xt, yt), (Xv, yv), (Xs, ys) = synthetic_split(n_train, n_val, check_int(n_test, "n_test", minimum=0),
                                                    d, 2, seed)
    if x_ref is None and reg == "lin":
        x_ref = np.ones(d)
    return LearnToRegularize(Xt, yt, Xv, yv, Xs if n_test else None, ys if n_test else None,
                             loss="binary", reg=reg, x_ref=x_ref, name="logistic-regularization")


def make_multinomial_regularization(n_train=200, n_val=200, d=10, n_classes=3, *, seed=0, reg="exp",
                                    penalty="per_feature", n_test=0, density=None, x_ref=None,
                                    max_dense=DEFAULT_MAX_DENSE):
    """Multinomial learn-to-regularize (§4.2) on synthetic data, dense or sparse (``density``)."""
    n_train = check_int(n_train, "n_train", minimum=1)
    n_val = check_int(n_val, "n_val", minimum=1)
    d = check_int(d, "d", minimum=1)
    n_classes = check_int(n_classes, "n_classes", minimum=2)
    (Xt, yt), (Xv, yv), (Xs, ys) = synthetic_split(n_train, n_val, check_int(n_test, "n_test", minimum=0),
                                                    d, n_classes, seed, density)
    if x_ref is None and reg == "lin":
        x_ref = np.ones(d if penalty == "per_feature" else n_classes)
    return LearnToRegularize(Xt, yt, Xv, yv, Xs if n_test else None, ys if n_test else None,
                             loss="multinomial", reg=reg, penalty=penalty, n_classes=n_classes,
                             x_ref=x_ref, max_dense=max_dense, name="multinomial-regularization")


def make_sparse_regularization(n_samples=18_000, n_features=130_107, n_classes=20, *, density=1e-3,
                               seed=0, reg="exp"):
    """A 20-Newsgroups-shaped sparse multinomial instance (CSR, never densified).

    Split like the F2BA ``l2reg`` task: half train (g), a quarter validation
    (f), a quarter test.
    """
    n_samples = check_int(n_samples, "n_samples", minimum=4)
    n_train = n_samples // 2
    n_val = n_samples // 4
    return make_multinomial_regularization(n_train, n_val, n_features, n_classes, seed=seed, reg=reg,
                                           n_test=n_samples - n_train - n_val, density=density)


# ---------------------------------------------------------------------------
# catalog
# ---------------------------------------------------------------------------
@register_problem("logistic-regularization",
                  "binary logistic regression, learn per-feature ℓ2 penalties (synthetic data; stochastic)")
def _logistic_instance(seed=0, n_train=500, n_val=500, d=20, reg="exp"):
    problem = make_logistic_regularization(n_train, n_val, d, seed=seed, reg=reg, n_test=500)
    x0 = np.zeros(d) if reg == "exp" else np.ones(d)
    return problem, x0


@register_problem("multinomial-regularization",
                  "multinomial logistic regression, per-feature ℓ2 penalties (synthetic; dense or sparse)")
def _multinomial_instance(seed=0, n_train=500, n_val=500, d=20, n_classes=4, density=None,
                          penalty="per_feature"):
    problem = make_multinomial_regularization(n_train, n_val, d, n_classes, seed=seed, n_test=500,
                                              density=density, penalty=penalty)
    return problem, np.zeros(problem.dx)


@register_problem("regularization", "learn-to-regularize on a real dataset (breast-cancer, digits, svmlight path)")
def _dataset_instance(seed=0, dataset="breast-cancer", reg="exp"):
    from .datasets import load_dataset

    data = load_dataset(dataset, seed=seed)
    loss = "binary" if data.n_classes == 2 else "multinomial"
    problem = LearnToRegularize(data.X_train, data.y_train, data.X_val, data.y_val, data.X_test,
                                data.y_test, loss=loss, reg=reg, n_classes=data.n_classes,
                                x_ref=None if reg == "exp" else np.ones(data.n_features),
                                name=f"regularization[{data.name}]")
    x0 = np.zeros(problem.dx) if reg == "exp" else np.ones(problem.dx)
    return problem, x0

