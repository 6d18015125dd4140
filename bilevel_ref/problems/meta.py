r"""ANIL-style meta-learning head: a shared linear embedding (upper) and per-task heads (lower).

Tasks i = 1..n_t, each N-way k-shot with a support set S_i and a query set
D_i; features :math:`a \in \mathbb{R}^{d_\mathrm{in}}`; the upper variable is
a shared embedding :math:`x = E \in \mathbb{R}^{d_\mathrm{in}\times r}`, the
lower variable the task heads :math:`y = (Y_1, \dots, Y_{n_t})`,
:math:`Y_i \in \mathbb{R}^{r\times N}` (problems.md §5; FSBA paper E4 with a
linear embedding standing in for the CNN backbone):

.. math::

    g(E, Y) &= \frac1{n_t}\sum_i \Big[\frac1{|S_i|}\sum_{\xi\in S_i}
               \mathrm{CE}(Y_i^\top E^\top a_\xi, c_\xi) + \frac\mu2\|Y_i\|^2\Big], \\
    f(E, Y) &= \frac1{n_t}\sum_i \frac1{|D_i|}\sum_{\xi\in D_i} \mathrm{CE}(Y_i^\top E^\top a_\xi, c_\xi).

g is separable over tasks and :math:`(\mu/n_t)`-strongly convex in y; both
are nonconvex in E.  Per task, with :math:`Z = A E Y_i`,
:math:`G_Z = (P - T)/n_i` (P the softmax of Z, T the one-hot labels):

.. math::

    \nabla_E = A^\top G_Z Y_i^\top, \qquad \nabla_{Y_i} = (AE)^\top G_Z\ (+\mu Y_i),

and along :math:`(dE, dY)`: :math:`dZ = A\,dE\,Y_i + AE\,dY`,
:math:`dG = \tfrac1{n_i}[P\odot dZ - P\odot(\textstyle\sum_k P\odot dZ)]`,

.. math::

    d\nabla_E = A^\top dG\, Y_i^\top + A^\top G_Z\, dY^\top, \qquad
    d\nabla_{Y_i} = (A\,dE)^\top G_Z + (AE)^\top dG\ (+\mu\, dY).

The full oracles average the task terms (1/n_t); a ``batch`` is an array of
task indices (the tasks are the samples: ``n_lower = n_upper = n_t``).  The
four matrix-free products are the blocks of this joint product; dense
Hessian blocks are assembled from them column by column (reference only,
``dx·dy ≤ 1e6``).  ``E`` and each ``Y_i`` are flattened row-major; y stacks
the heads task by task.

References
----------
A. Raghu, M. Raghu, S. Bengio, O. Vinyals, "Rapid learning or feature reuse?
Towards understanding the effectiveness of MAML" (ANIL), ICLR 2020.
FSBA paper, experiment E4 (5-way 5-shot meta-learning).
"""
from __future__ import annotations

import numpy as np

from .._validation import check_int, check_positive
from ._logistic import SoftmaxLoss, as_rows, softmax, softmax_hvp_rows
from .base import BilevelProblem
from .catalog import register_problem

__all__ = ["MetaLearningHead", "make_meta_learning", "sample_tasks"]

#: largest dx·dy for which dense Hessian blocks are assembled from products
_MAX_DENSE_PRODUCT = 1_000_000


class _Task:
    """Support or query part of one task: features A (n × d_in), one-hot T (n × N)."""

    def __init__(self, A, labels, n_way):
        self.A = np.asarray(A, dtype=np.float64)
        self.labels = np.asarray(labels, dtype=np.int64)
        self.T = np.eye(n_way)[self.labels]
        self.n = self.A.shape[0]


def sample_tasks(X, labels, n_tasks, n_way, k_shot, n_query, rng):
    """Draw N-way k-shot tasks: ``[(A_S, c_S, A_Q, c_Q), ...]`` with labels relabelled 0..N-1.

    Each task picks ``n_way`` distinct classes, then ``k_shot + n_query``
    distinct samples per class (support first, query after); ``k_shot`` and
    ``n_query`` must be at least 1 and every class needs ``k_shot + n_query``
    samples (one ValueError otherwise).
    """
    k_shot = check_int(k_shot, "k_shot", minimum=1)
    n_query = check_int(n_query, "n_query", minimum=1)
    classes = np.unique(labels)
    if n_way > classes.size:
        raise ValueError(f"n_way must be <= the number of classes ({classes.size}), got {n_way}")
    by_class = {c: np.flatnonzero(labels == c) for c in classes}
    need = k_shot + n_query
    small = [c for c in classes if by_class[c].size < need]
    if small:
        raise ValueError(f"k_shot + n_query = {need} exceeds the samples of class(es) "
                         f"{[c.item() for c in small[:3]]} (smallest class: "
                         f"{min(by_class[c].size for c in small)} samples in this pool)")
    tasks = []
    for _ in range(n_tasks):
        chosen = rng.choice(classes, size=n_way, replace=False)
        sup, qry = [], []
        for new, c in enumerate(chosen):
            idx = rng.choice(by_class[c], size=need, replace=False)
            sup.append((idx[:k_shot], new))
            qry.append((idx[k_shot:], new))
        s_idx = np.concatenate([i for i, _ in sup])
        q_idx = np.concatenate([i for i, _ in qry])
        s_lab = np.concatenate([np.full(i.size, c) for i, c in sup])
        q_lab = np.concatenate([np.full(i.size, c) for i, c in qry])
        tasks.append((X[s_idx], s_lab, X[q_idx], q_lab))
    return tasks


class MetaLearningHead(BilevelProblem):
    """ANIL-style meta-learning with a linear embedding (module docstring).

    Parameters
    ----------
    tasks : sequence of (A_S, c_S, A_Q, c_Q)
        Support/query features and labels (0..n_way-1) of every training task.
    rank : int
        Embedding width r.
    n_way : int
    mu : float, default 0.1
        ℓ2 weight of the heads in g.
    test_tasks : sequence, optional
        Held-out tasks for :meth:`evaluate` (heads fitted on their support,
        accuracy on their query).
    x_ref : array_like, optional
        Where :meth:`constants` evaluates L_g (default: E = 0 gives the bound μ/n_t only).
    """

    name = "meta-learning"

    def __init__(self, tasks, rank, n_way, *, mu=0.1, test_tasks=None, x_ref=None, name=None):
        if len(tasks) < 1:
            raise ValueError("tasks must contain at least one task")
        self.n_way = check_int(n_way, "n_way", minimum=2)
        self.rank = check_int(rank, "rank", minimum=1)
        self.mu = check_positive(mu, "mu")
        self.support = [_Task(t[0], t[1], self.n_way) for t in tasks]
        self.query = [_Task(t[2], t[3], self.n_way) for t in tasks]
        self.d_in = self.support[0].A.shape[1]
        for i, (s, q) in enumerate(zip(self.support, self.query)):
            if s.A.shape[1] != self.d_in or q.A.shape[1] != self.d_in:
                raise ValueError(f"task {i} has features of width != {self.d_in}")
            if s.labels.max() >= self.n_way or q.labels.max() >= self.n_way:
                raise ValueError(f"task {i} has labels outside 0..n_way-1")
        self.n_tasks = len(tasks)
        self.head = self.rank * self.n_way
        self.dx = self.d_in * self.rank
        self.dy = self.n_tasks * self.head
        self.n_lower = self.n_upper = self.n_tasks
        self.test_tasks = list(test_tasks or [])
        self.x_ref = None if x_ref is None else np.asarray(x_ref, dtype=np.float64)
        if name is not None:
            self.name = name

    # -- layout --------------------------------------------------------------
    def _E(self, x):
        return x.reshape(self.d_in, self.rank)

    def _Y(self, y, i):
        return y[i * self.head:(i + 1) * self.head].reshape(self.rank, self.n_way)

    def _ids(self, batch):
        return range(self.n_tasks) if batch is None else as_rows(batch)

    # -- one task --------------------------------------------------------------
    @staticmethod
    def _forward(task, E, Y):
        H = task.A @ E
        Z = H @ Y
        P = softmax(Z)
        return H, Z, P, (P - task.T) / task.n

    @staticmethod
    def _ce(Z, task):
        Zs = Z - Z.max(axis=1, keepdims=True)
        return float(np.mean(np.log(np.exp(Zs).sum(axis=1)) - Zs[np.arange(task.n), task.labels]))

    def _value(self, tasks, x, y, reg, batch):
        E, ids = self._E(x), self._ids(batch)
        total = 0.0
        for i in ids:
            Y = self._Y(y, i)
            total += self._ce(tasks[i].A @ E @ Y, tasks[i]) + 0.5 * reg * float(np.sum(Y * Y))
        return total / len(ids)

    def _grad(self, tasks, x, y, reg, batch, want_x=True, want_y=True):
        """``(∇_E, ∇_Y)`` averaged over the tasks (None where not wanted)."""
        E, ids = self._E(x), self._ids(batch)
        gE = np.zeros_like(E) if want_x else None
        gY = np.zeros(self.dy) if want_y else None
        for i in ids:
            Y = self._Y(y, i)
            H, _, _, G = self._forward(tasks[i], E, Y)
            if want_x:
                gE += tasks[i].A.T @ (G @ Y.T)
            if want_y:
                gY[i * self.head:(i + 1) * self.head] += (H.T @ G + reg * Y).ravel()
        scale = 1.0 / len(ids)
        return (None if gE is None else gE.ravel() * scale), (None if gY is None else gY * scale)

    def _joint(self, tasks, x, y, dx, dy, reg, batch, want_x, want_y):
        """The joint product ∇²h · [dx; dy] as (x-part, y-part) (None where not wanted)."""
        E, ids = self._E(x), self._ids(batch)
        dE = None if dx is None else self._E(dx)
        oE = np.zeros_like(E) if want_x else None
        oY = np.zeros(self.dy) if want_y else None
        for i in ids:
            t, Y = tasks[i], self._Y(y, i)
            dYi = None if dy is None else self._Y(dy, i)
            H, _, P, G = self._forward(t, E, Y)
            AdE = None if dE is None else t.A @ dE
            dZ = (0.0 if dE is None else AdE @ Y) + (0.0 if dYi is None else H @ dYi)
            dG = softmax_hvp_rows(P, dZ) / t.n
            if want_x:
                oE += t.A.T @ (dG @ Y.T + (0.0 if dYi is None else G @ dYi.T))
            if want_y:
                blk = H.T @ dG + (0.0 if dE is None else AdE.T @ G) + (0.0 if dYi is None else reg * dYi)
                oY[i * self.head:(i + 1) * self.head] += blk.ravel()
        scale = 1.0 / len(ids)
        return (None if oE is None else oE.ravel() * scale), (None if oY is None else oY * scale)

    # -- g -----------------------------------------------------------------------
    def g(self, x, y, batch=None):
        return self._value(self.support, x, y, self.mu, batch)

    def grad_g(self, x, y, batch=None):
        return self._grad(self.support, x, y, self.mu, batch)

    def grad_x_g(self, x, y, batch=None):
        return self._grad(self.support, x, y, self.mu, batch, want_y=False)[0]

    def grad_y_g(self, x, y, batch=None):
        return self._grad(self.support, x, y, self.mu, batch, want_x=False)[1]

    def hvp_yy_g(self, x, y, v, batch=None):
        return self._joint(self.support, x, y, None, v, self.mu, batch, False, True)[1]

    def hvp_xx_g(self, x, y, u, batch=None):
        return self._joint(self.support, x, y, u, None, self.mu, batch, True, False)[0]

    def cross_g(self, x, y, v, batch=None):
        return self._joint(self.support, x, y, None, v, self.mu, batch, True, False)[0]

    def cross_t_g(self, x, y, u, batch=None):
        return self._joint(self.support, x, y, u, None, self.mu, batch, False, True)[1]

    def hess_g(self, x, y, batch=None):
        self._check_dense()
        return self._dense_from_products("g", x, y, batch)

    # -- f -----------------------------------------------------------------------
    def f(self, x, y, batch=None):
        return self._value(self.query, x, y, 0.0, batch)

    def grad_f(self, x, y, batch=None):
        return self._grad(self.query, x, y, 0.0, batch)

    def grad_x_f(self, x, y, batch=None):
        return self._grad(self.query, x, y, 0.0, batch, want_y=False)[0]

    def grad_y_f(self, x, y, batch=None):
        return self._grad(self.query, x, y, 0.0, batch, want_x=False)[1]

    def hvp_yy_f(self, x, y, v, batch=None):
        return self._joint(self.query, x, y, None, v, 0.0, batch, False, True)[1]

    def hvp_xx_f(self, x, y, u, batch=None):
        return self._joint(self.query, x, y, u, None, 0.0, batch, True, False)[0]

    def cross_f(self, x, y, v, batch=None):
        return self._joint(self.query, x, y, None, v, 0.0, batch, True, False)[0]

    def cross_t_f(self, x, y, u, batch=None):
        return self._joint(self.query, x, y, u, None, 0.0, batch, False, True)[1]

    def hess_f(self, x, y, batch=None):
        self._check_dense()
        return self._dense_from_products("f", x, y, batch)

    def _check_dense(self):
        if self.dx * self.dy > _MAX_DENSE_PRODUCT:
            raise NotImplementedError(
                f"dense Hessian blocks of {self.name!r} are assembled from products only for dx·dy <= "
                f"{_MAX_DENSE_PRODUCT:.0e} (here {self.dx * self.dy}); use Hessian-vector products")

    # -- constants and metrics ---------------------------------------------------
    def constants(self):
        """``mu_g = μ/n_t`` (exact) and, with ``x_ref``, ``L_g`` at E = x_ref.

        ``L_g = (1/n_t)·max_i(½ λ_max(HᵢᵀHᵢ)/|S_i| + μ)``, H_i = A_i E (CE curvature ≤ ½).
        """
        out = {"mu_g": self.mu / self.n_tasks}
        if self.x_ref is not None:
            E = self._E(self.x_ref)
            lam = max(np.linalg.norm(s.A @ E, 2) ** 2 / s.n for s in self.support)
            out["L_g"] = float((0.5 * lam + self.mu) / self.n_tasks)
        return out

    def fit_heads(self, x, tasks, tol=1e-10, maxiter=50):
        """Exact task heads for the embedding x: argmin of each task's support loss (uncounted).

        Each task's loss is a μ-strongly convex softmax regression on the
        embedded features A_S E (:class:`~bilevel_ref.problems._logistic.SoftmaxLoss`);
        damped Newton steps (backtracking on the value) until the gradient
        norm is <= ``tol``.
        """
        E = self._E(x)
        heads = []
        for A_s, c_s, _, _ in tasks:
            model = SoftmaxLoss(np.asarray(A_s) @ E, c_s, self.n_way)
            c = np.full(model.n, 1.0 / model.n)

            def value(w, model=model):
                return float(np.mean(model.losses(w)) + 0.5 * self.mu * w @ w)

            w = np.zeros(self.head)
            for _ in range(maxiter):
                grad = model.weighted_grad(w, c) + self.mu * w
                if np.linalg.norm(grad) <= tol:
                    break
                hess = model.weighted_hess(w, c)
                hess[np.diag_indices(self.head)] += self.mu
                step, t, v0 = np.linalg.solve(hess, grad), 1.0, value(w)
                while value(w - t * step) > v0 - 0.25 * t * (grad @ step) and t > 1e-10:
                    t *= 0.5
                w = w - t * step
            heads.append(w.reshape(self.rank, self.n_way))
        return heads

    def evaluate(self, x, y):
        """Uncounted metrics.

        Returns
        -------
        dict
            ``val_loss`` (= f, query loss of the training tasks with the current
            heads), ``val_accuracy`` (their query accuracy), ``support_loss``
            (g without the regulariser) and, with test tasks, ``test_accuracy``:
            heads fitted exactly on each held-out task's support with the
            embedding x, accuracy on its query (the meta-test protocol).
        """
        E = self._E(x)
        acc = [np.mean(np.argmax(q.A @ E @ self._Y(y, i), axis=1) == q.labels) for i, q in enumerate(self.query)]
        out = {"val_loss": self.f(x, y), "val_accuracy": float(np.mean(acc)),
               "support_loss": self._value(self.support, x, y, 0.0, None)}
        if self.test_tasks:
            heads = self.fit_heads(x, self.test_tasks)
            out["test_accuracy"] = float(np.mean([
                np.mean(np.argmax(np.asarray(t[2]) @ E @ Y, axis=1) == np.asarray(t[3]))
                for t, Y in zip(self.test_tasks, heads)]))
        return out


def make_meta_learning(dataset="digits", *, n_way=5, k_shot=5, n_query=15, rank=16, n_tasks=8, n_test_tasks=8,
                       mu=0.1, seed=0):
    """The §5 default instance: few-shot tasks from digits, training and test pools disjoint.

    The samples are split 50/50 (stratified, seeded) into a meta-training
    pool (the ``n_tasks`` tasks of the problem) and a meta-test pool (the
    ``n_test_tasks`` tasks of :meth:`MetaLearningHead.evaluate`).  Returns
    ``(problem, x0)`` with x0 a random embedding N(0, 1/d_in) (E = 0 is a
    stationary point of φ).
    """
    from .datasets import load_arrays, split_indices

    if dataset != "digits":
        raise ValueError(f"dataset must be 'digits' (the bundled stand-in), got {dataset!r}")
    X, labels = load_arrays("digits")
    rng = np.random.default_rng(check_int(seed, "seed", minimum=0))
    train_idx, test_idx = split_indices(labels, rng, (0.5, 0.5))
    tasks = sample_tasks(X[train_idx], labels[train_idx], n_tasks, n_way, k_shot, n_query, rng)
    test = sample_tasks(X[test_idx], labels[test_idx], n_test_tasks, n_way, k_shot, n_query, rng)
    x0 = rng.standard_normal(X.shape[1] * rank) / np.sqrt(X.shape[1])
    problem = MetaLearningHead(tasks, rank, n_way, mu=mu, test_tasks=test, x_ref=x0,
                               name=f"meta-learning[{dataset}, {n_way}-way {k_shot}-shot]")
    return problem, x0


@register_problem("meta-learning", "ANIL-style few-shot meta-learning head on digits (linear embedding)")
def _meta_instance(seed=0, n_way=5, k_shot=5, n_query=15, rank=16, n_tasks=8, mu=0.1):
    return make_meta_learning(n_way=n_way, k_shot=k_shot, n_query=n_query, rank=rank, n_tasks=n_tasks, mu=mu,
                              seed=seed)
