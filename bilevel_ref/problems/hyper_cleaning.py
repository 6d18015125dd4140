r"""Data hyper-cleaning: learn one weight per (possibly corrupted) training sample.

x ∈ R^n holds one weight logit per training sample, y the model
(problems.md §3; FSBA paper E2, Franceschi et al. 2017, benchopt):

.. math::

    g(x, y) = \sum_{i=1}^n w_i(x)\, \ell_i(y) + \frac\mu2\|y\|^2, \qquad
    f(x, y) = \frac1{n_\mathrm{val}}\sum_{j\in\mathrm{val}} \ell_j(y),

with the weight map ``weight="sigmoid"`` :math:`w_i(x) = \sigma(x_i)/n`
(FSBA, benchopt) or ``weight="softmax"`` :math:`w(x) = \mathrm{softmax}(x)`
(F2SA-p; weights sum to one, no 1/n), and the per-sample loss either binary
logistic :math:`\ell_i = \mathrm{softplus}(-b_i a_i^\top y)` (§3.1) or the
multinomial cross-entropy :math:`\ell_i = \mathrm{CE}_i(Y)` (§3.2).

Writing :math:`\tilde\ell(y)` for the vector of losses (scaled, see below),
:math:`J = \partial w/\partial x` and :math:`q_i = \langle\nabla\ell_i(y), v\rangle`,
every oracle is one of

.. math::

    \nabla_x g = J^\top\tilde\ell, \quad
    \nabla_y g = \textstyle\sum_i w_i\nabla\ell_i + \mu y, \quad
    \nabla^2_{xy} g\, v = J^\top \tilde q, \quad
    \nabla^2_{yx} g\, u = \textstyle\sum_i (Ju)_i \nabla\ell_i, \\
    \nabla^2_{yy} g\, v = \textstyle\sum_i w_i \nabla^2\ell_i\, v + \mu v, \quad
    \nabla^2_{xx} g\, u = \textstyle\sum_i \tilde\ell_i \nabla^2 w_i\, u,

with, for the sigmoid map, :math:`J = \mathrm{diag}(\sigma'(x))/n` and
:math:`\sum_i \tilde\ell_i\nabla^2 w_i = \mathrm{diag}(\sigma''(x)\odot\tilde\ell)/n`,
and for the softmax map :math:`J^\top l = w\odot(l - w^\top l)` and
:math:`\sum_i l_i \nabla^2 w_i = \mathrm{diag}(s) - s w^\top - w s^\top`,
:math:`s = J^\top l` (both are symmetric, so ``J = Jᵀ``).

Minibatch oracles (``batch=`` index arrays) of g estimate the sum over the
batch B without bias: the per-sample losses of B are scattered back to
length n with the factor ``n/|B|`` (so ``batch=range(n)`` is the full oracle);
f's batches average validation rows.  f does not depend on x.

:meth:`HyperCleaning.evaluate` gives the uncounted metrics a comparison
needs: validation loss, test accuracy and, when the corruption mask is
known, precision and recall of the rule "σ(x_i) < 0.5 ⇒ corrupted".

References
----------
L. Franceschi, M. Donini, P. Frasconi, M. Pontil, "Forward and reverse
gradient-based hyperparameter optimization", ICML 2017.
FSBA paper (fully first-order / second-order bilevel), experiment E2.
benchopt bilevel benchmark, ``datacleaning`` problem.
"""
from __future__ import annotations

import numpy as np

from .._validation import check_choice, check_int, check_nonnegative, check_positive
from ._logistic import (
    DEFAULT_MAX_DENSE,
    _check_dense_size,
    as_rows,
    d2sigmoid,
    dsigmoid,
    is_sparse,
    lambda_max_gram,
    loss_models,
    sigmoid,
    softmax,
)
from ._logistic import UpperLevelFreeOfX
from .base import BilevelProblem
from .catalog import register_problem
from .datasets import MIN_SAMPLES_PER_PART, MIN_TRAIN_CLASSES, corrupt_labels, load_dataset, synthetic_split

__all__ = ["HyperCleaning", "make_hyper_cleaning", "hyper_cleaning_from_dataset"]


# ---------------------------------------------------------------------------
# weight maps: value, Jacobian products, second-order term
# ---------------------------------------------------------------------------
class _SigmoidWeights:
    """w_i(x) = σ(x_i)/n: diagonal Jacobian σ'(x)/n."""

    name = "sigmoid"

    def __init__(self, n):
        self.n = n

    def value(self, x):
        return sigmoid(x) / self.n

    def jvp(self, x, u):                       # J u  (= Jᵀ u: J is diagonal)
        return dsigmoid(x) * u / self.n

    vjp = jvp

    def vjp_rows(self, x, L):                  # Jᵀ L for a matrix L (n × m)
        return (dsigmoid(x) / self.n)[:, None] * L

    def hvp(self, x, ell, u):                  # Σ_i ℓ_i ∇²w_i u
        return d2sigmoid(x) * ell * u / self.n

    def hess(self, x, ell):
        return np.diag(d2sigmoid(x) * ell / self.n)


class _SoftmaxWeights:
    """w(x) = softmax(x): J = diag(w) − wwᵀ (symmetric)."""

    name = "softmax"

    def __init__(self, n):
        self.n = n

    def value(self, x):
        return softmax(x)

    def jvp(self, x, u):
        w = softmax(x)
        return w * (u - w @ u)

    vjp = jvp

    def vjp_rows(self, x, L):
        w = softmax(x)
        return w[:, None] * (L - w @ L)

    def hvp(self, x, ell, u):
        w = softmax(x)
        s = w * (ell - w @ ell)
        return s * u - s * (w @ u) - w * (s @ u)

    def hess(self, x, ell):
        w = softmax(x)
        s = w * (ell - w @ ell)
        return np.diag(s) - np.outer(s, w) - np.outer(w, s)


# ---------------------------------------------------------------------------
# the problem
# ---------------------------------------------------------------------------
class HyperCleaning(UpperLevelFreeOfX, BilevelProblem):
    """Data hyper-cleaning with per-sample weights (module docstring).

    Parameters
    ----------
    X_train : ndarray or scipy.sparse matrix, shape (n, d)
        Training features (labels possibly corrupted).
    y_train : array_like, shape (n,)
        Training labels as given to g (the noisy ones).
    X_val, y_val :
        Clean validation set (defines f).
    X_test, y_test : optional
        Test set, used only by :meth:`evaluate`.
    loss : {"binary", "multinomial"}, default "binary"
        Logistic (labels {0,1} or ±1; y ∈ R^d) or softmax (class indices;
        y = vec(Y), Y ∈ R^{d×K} row-major).
    weight : {"sigmoid", "softmax"}, default "sigmoid"
    mu : float, optional
        ℓ2 weight of g; default 1e-2 (binary, inferred) or 0.4 (multinomial,
        benchopt's 0.2‖Y‖²).
    n_classes : int, optional
        Multinomial only (default ``max(label) + 1``).
    corrupted : array_like of bool, optional
        Mask of the corrupted training samples, for :meth:`evaluate`.
    max_dense : int, default 5e7
        Dense Hessian blocks are built only when n·(n + dy) fits.
    name : str, optional
    """

    name = "hyper-cleaning"

    def __init__(self, X_train, y_train, X_val, y_val, X_test=None, y_test=None, *, loss="binary",
                 weight="sigmoid", mu=None, n_classes=None, corrupted=None, max_dense=DEFAULT_MAX_DENSE,
                 name=None):
        check_choice(loss, "loss", ("binary", "multinomial"))
        check_choice(weight, "weight", ("sigmoid", "softmax"))
        self.train, self.val, self.test = loss_models(loss, X_train, y_train, X_val, y_val, X_test, y_test,
                                                      n_classes)
        n = self.train.n
        self.loss, self.n_classes = loss, self.train.n_classes
        if mu is None:
            mu = 0.01 if loss == "binary" else 0.4
        self.mu = check_positive(mu, "mu")
        self.weights = _SigmoidWeights(n) if weight == "sigmoid" else _SoftmaxWeights(n)
        self.weight = weight
        self.dx, self.dy = n, self.train.dim
        self.n_lower, self.n_upper = n, self.val.n
        self.corrupted = None if corrupted is None else np.asarray(corrupted, dtype=bool)
        if self.corrupted is not None and self.corrupted.shape != (n,):
            raise ValueError(f"corrupted must be a boolean mask of shape ({n},), got {self.corrupted.shape}")
        self.max_dense = check_positive(float(max_dense), "max_dense")
        if name is not None:
            self.name = name
        self._lam_train = self._lam_val = None

    # -- batches: scatter per-sample quantities of B back to length n --------
    def _scatter(self, values, rows):
        """Length-n vector: ``values`` (per row of the batch) placed at their ids, times n/|B|."""
        if rows is None:
            return values
        return np.bincount(rows, weights=values, minlength=self.dx) * (self.dx / len(rows))

    def _batch_weights(self, x, rows):
        """Weights of the selected rows, scaled so that the batch sum estimates the full sum."""
        w = self.weights.value(x)
        return w if rows is None else w[rows] * (self.dx / len(rows))

    # -- g ------------------------------------------------------------------
    def g(self, x, y, batch=None):
        rows = as_rows(batch)
        return float(self._batch_weights(x, rows) @ self.train.losses(y, rows) + 0.5 * self.mu * (y @ y))

    def grad_g(self, x, y, batch=None):
        rows = as_rows(batch)
        ell, gy = self.train.losses_and_grad(y, self._batch_weights(x, rows), rows)
        return self.weights.vjp(x, self._scatter(ell, rows)), gy + self.mu * y

    # gradient blocks: ∇_x g needs the losses only (no Xᵀ product), ∇_x f = 0
    def grad_x_g(self, x, y, batch=None):
        rows = as_rows(batch)
        return self.weights.vjp(x, self._scatter(self.train.losses(y, rows), rows))

    def grad_y_g(self, x, y, batch=None):
        rows = as_rows(batch)
        return self.train.weighted_grad(y, self._batch_weights(x, rows), rows) + self.mu * y

    def hvp_yy_g(self, x, y, v, batch=None):
        rows = as_rows(batch)
        return self.train.weighted_hvp(y, self._batch_weights(x, rows), v, rows) + self.mu * v

    def hvp_xx_g(self, x, y, u, batch=None):
        rows = as_rows(batch)
        return self.weights.hvp(x, self._scatter(self.train.losses(y, rows), rows), u)

    def cross_g(self, x, y, v, batch=None):
        rows = as_rows(batch)
        return self.weights.vjp(x, self._scatter(self.train.directional(y, v, rows), rows))

    def cross_t_g(self, x, y, u, batch=None):
        rows = as_rows(batch)
        ju = self.weights.jvp(x, u)
        c = ju if rows is None else ju[rows] * (self.dx / len(rows))
        return self.train.weighted_grad(y, c, rows)

    def fused_g(self, x, y, v, batch=None):
        """``(∇_y g, ∇²_yy g·v, ∇²_xy g·v)`` from one pass over the batch's rows."""
        rows = as_rows(batch)
        gy, hv, q = self.train.fused(y, self._batch_weights(x, rows), v, rows)
        return gy + self.mu * y, hv + self.mu * v, self.weights.vjp(x, self._scatter(q, rows))

    def hess_g(self, x, y, batch=None):
        rows = as_rows(batch)
        n = self.dx
        _check_dense_size(n * (n + self.dy), self.max_dense, "Hessian blocks of g (n·(n + dy))")
        ell = self._scatter(self.train.losses(y, rows), rows)
        hxx = self.weights.hess(x, ell)
        G = self.train.sample_grads(y, rows, self.max_dense)          # rows ∇ℓ_i, i ∈ B
        if rows is not None:
            scat = np.zeros((n, self.dy))
            np.add.at(scat, rows, G * (n / len(rows)))
            G = scat
        hxy = self.weights.vjp_rows(x, G)
        hyy = self.train.weighted_hess(y, self._batch_weights(x, rows), rows, self.max_dense)
        hyy[np.diag_indices(self.dy)] += self.mu
        return hxx, hxy, hyy

    # -- f (no x dependence) ----------------------------------------------
    def _val_weights(self, rows):
        m = self.n_upper if rows is None else len(rows)
        return np.full(m, 1.0 / m)

    def f(self, x, y, batch=None):
        return float(np.mean(self.val.losses(y, as_rows(batch))))

    def grad_f(self, x, y, batch=None):
        return np.zeros(self.dx), self.grad_y_f(x, y, batch)

    def grad_y_f(self, x, y, batch=None):
        rows = as_rows(batch)
        return self.val.weighted_grad(y, self._val_weights(rows), rows)

    def hvp_yy_f(self, x, y, v, batch=None):
        rows = as_rows(batch)
        return self.val.weighted_hvp(y, self._val_weights(rows), v, rows)

    def hess_f(self, x, y, batch=None):
        rows = as_rows(batch)
        _check_dense_size(self.dx * (self.dx + self.dy), self.max_dense, "Hessian blocks of f")
        hyy = self.val.weighted_hess(y, self._val_weights(rows), rows, self.max_dense)
        return np.zeros((self.dx, self.dx)), np.zeros((self.dx, self.dy)), hyy

    # -- constants and metrics ------------------------------------------------
    def constants(self):
        """Bounds valid for every x (problems.md §3.1, generalised to softmax and CE).

        ``mu_g = μ``; ``L_g = c·λ_max(Σ a_i a_iᵀ)/n + μ`` (sigmoid weights ≤ 1/n)
        or ``c·max_i ‖a_i‖² + μ`` (softmax weights sum to 1), c = ¼ (logistic)
        or ½ (softmax CE); ``L_xy = (c/n)·√(Σ‖a_i‖²)`` (sigmoid, as in the
        paper); ``L_f = c·λ_max(X_valᵀX_val)/n_val``.
        """
        if self._lam_train is None:
            self._lam_train = lambda_max_gram(self.train.X)
            self._lam_val = lambda_max_gram(self.val.X)
        c = self.train.curvature_bound
        X = self.train.X
        row_sq = np.asarray(X.multiply(X).sum(axis=1)).ravel() if is_sparse(X) else np.sum(X * X, axis=1)
        if self.weight == "sigmoid":
            L_g = c * self._lam_train / self.dx + self.mu
        else:
            L_g = c * float(np.max(row_sq)) + self.mu
        out = {"mu_g": self.mu, "L_g": float(L_g), "L_f": float(c * self._lam_val / self.n_upper)}
        if self.weight == "sigmoid":
            out["L_xy"] = float(c / self.dx * np.sqrt(np.sum(row_sq)))
        return out

    def sample_weights(self, x):
        """The weights w(x) rescaled to [0, 1] per sample: σ(x) (sigmoid) or n·softmax(x)."""
        return sigmoid(x) if self.weight == "sigmoid" else self.dx * softmax(x)

    def evaluate(self, x, y):
        """Uncounted metrics of (x, y).

        Returns
        -------
        dict
            ``val_loss`` (= f), ``val_accuracy``, ``train_loss`` (mean loss on
            the noisy training labels), ``test_loss`` / ``test_accuracy`` with a
            test set, and with a corruption mask: ``precision`` / ``recall`` of
            "weight < 0.5 ⇒ corrupted" (weights from :meth:`sample_weights`),
            ``weight_clean`` / ``weight_corrupted`` (mean weights).
        """
        out = {"val_loss": float(np.mean(self.val.losses(y))), "val_accuracy": self.val.accuracy(y),
               "train_loss": float(np.mean(self.train.losses(y)))}
        if self.test is not None:
            out["test_loss"] = float(np.mean(self.test.losses(y)))
            out["test_accuracy"] = self.test.accuracy(y)
        if self.corrupted is not None:
            w = self.sample_weights(x)
            flagged = w < 0.5
            hits = int(np.sum(flagged & self.corrupted))
            out["precision"] = hits / int(np.sum(flagged)) if np.any(flagged) else float("nan")
            out["recall"] = hits / int(np.sum(self.corrupted)) if np.any(self.corrupted) else float("nan")
            out["weight_clean"] = float(np.mean(w[~self.corrupted])) if np.any(~self.corrupted) else float("nan")
            out["weight_corrupted"] = float(np.mean(w[self.corrupted])) if np.any(self.corrupted) else float("nan")
        return out


# ---------------------------------------------------------------------------
# generators and catalog
# ---------------------------------------------------------------------------
def hyper_cleaning_from_dataset(dataset="breast-cancer", noise=0.5, *, seed=0, weight="sigmoid", mu=None,
                                loss=None, mode="other", fractions=(0.5, 0.25, 0.25), max_train=None):
    """Hyper-cleaning on a named dataset or svmlight file with label noise on the training part.

    Parameters
    ----------
    dataset : str or path
        See :func:`bilevel_ref.problems.datasets.load_dataset`.
    noise : float in [0, 1]
        Label-noise rate p on the training set (:func:`corrupt_labels`).
    seed : int
        Seeds the split (``seed``) and the noise (``seed + 1``).
    weight : {"sigmoid", "softmax"}
    mu : float, optional
    loss : {"binary", "multinomial"}, optional
        Default: binary for two classes, multinomial otherwise.
    mode : {"other", "any"}
        Noise mode of :func:`corrupt_labels`.
    fractions : (train, val, test)
    max_train : int, optional
        Keep only the first ``max_train`` training samples (dx = n_train);
        they must still hold at least two samples of two classes.

    Raises
    ------
    ValueError
        Degenerate data (:func:`~bilevel_ref.problems.datasets.load_dataset`
        names the dataset and the minimum sizes), or a ``max_train`` that
        leaves fewer than two samples or a single class.
    """
    data = load_dataset(dataset, seed=seed, fractions=fractions)
    X_tr, y_tr = data.X_train, data.y_train
    if max_train is not None:
        keep = check_int(max_train, "max_train", minimum=1)
        X_tr, y_tr = X_tr[:keep], y_tr[:keep]
        n_cls = int(np.unique(y_tr).size)
        if y_tr.size < MIN_SAMPLES_PER_PART or n_cls < MIN_TRAIN_CLASSES:
            raise ValueError(f"dataset {data.name!r}: max_train={keep} keeps {y_tr.size} training sample(s) in "
                             f"{n_cls} class(es); need at least {MIN_SAMPLES_PER_PART} samples and "
                             f"{MIN_TRAIN_CLASSES} classes (raise max_train)")
    noisy, mask = corrupt_labels(y_tr, check_nonnegative(noise, "noise"), data.n_classes,
                                 np.random.default_rng(seed + 1), mode=mode)
    if loss is None:
        loss = "binary" if data.n_classes == 2 else "multinomial"
    return HyperCleaning(X_tr, noisy, data.X_val, data.y_val, data.X_test, data.y_test, loss=loss,
                         weight=weight, mu=mu, n_classes=data.n_classes, corrupted=mask,
                         name=f"hyper-cleaning[{data.name}, p={noise:g}]")


def make_hyper_cleaning(n_train=100, n_val=100, d=5, n_classes=2, *, noise=0.3, seed=0, weight="sigmoid",
                        mu=None, n_test=0):
    """Hyper-cleaning on synthetic data (for tests): noisy training labels, clean validation."""
    n_train = check_int(n_train, "n_train", minimum=1)
    (Xt, yt), (Xv, yv), (Xs, ys) = synthetic_split(n_train, check_int(n_val, "n_val", minimum=1),
                                                    check_int(n_test, "n_test", minimum=0),
                                                    check_int(d, "d", minimum=1), n_classes, seed)
    noisy, mask = corrupt_labels(yt, noise, n_classes, np.random.default_rng(seed + 1))
    return HyperCleaning(Xt, noisy, Xv, yv, Xs if n_test else None, ys if n_test else None,
                         loss="binary" if n_classes == 2 else "multinomial", weight=weight, mu=mu,
                         n_classes=n_classes, corrupted=mask)


@register_problem("hyper-cleaning",
                  "data hyper-cleaning: per-sample weights on noisy training labels (breast-cancer, digits, "
                  "svmlight path)")
def _hyper_cleaning_instance(seed=0, dataset="breast-cancer", noise=0.5, weight="sigmoid", mu=None,
                             max_train=None):
    problem = hyper_cleaning_from_dataset(dataset, noise, seed=seed, weight=weight, mu=mu, max_train=max_train)
    return problem, np.zeros(problem.dx)


@register_problem("hyper-cleaning-synthetic", "hyper-cleaning on small synthetic data (tests, stochastic)")
def _hyper_cleaning_synthetic(seed=0, n_train=200, n_val=200, d=10, n_classes=2, noise=0.3, weight="sigmoid"):
    problem = make_hyper_cleaning(n_train, n_val, d, n_classes, noise=noise, seed=seed, weight=weight, n_test=200)
    return problem, np.zeros(problem.dx)

