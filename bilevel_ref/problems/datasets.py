"""Datasets for the data-driven problems: bundled, svmlight files, synthetic; splits and label noise.

* :func:`load_dataset` — ``"breast-cancer"`` (scikit-learn's bundled
  ``load_breast_cancer``, 569 × 30, binary), ``"digits"`` (``load_digits``,
  1 797 × 64, 10 classes, scaled by 1/16; the offline MNIST stand-in), the
  download-only ``"20newsgroups"`` (``fetch_20newsgroups_vectorized``, sparse)
  and ``"covtype"`` (``fetch_covtype``), or the path of any LIBSVM/svmlight
  file (``sklearn.datasets.load_svmlight_file``: australian, breast-cancer,
  ijcnn1, MNIST, ... as the user has them).  Returns a :class:`DataSplit`.
* :func:`split_indices` — deterministic stratified train/validation/test
  split from a seed (default 50 % / 25 % / 25 %, problems.md §6).
* :func:`standardize` — centre and scale with *training* statistics only
  (constant features keep scale 1).
* :func:`corrupt_labels` — label noise of problems.md §3.3.
* :func:`synthetic_classification` — dense or sparse synthetic data for tests
  and benchmarks.

Degenerate data (empty, NaN/inf features, one class, a split with fewer than
:data:`MIN_SAMPLES_PER_PART` samples in a part or fewer than
:data:`MIN_TRAIN_CLASSES` classes in the training part) raise one
:class:`ValueError` naming the dataset or file before anything is computed.

Labels are always class indices ``0..K-1`` (binary problems map them to ±1).
The scikit-learn loaders need the ``data`` extra (``pip install
bilevel_ref[data]``); a clear :class:`ImportError` says so when it is missing.
Download-only datasets raise when offline; nothing falls back silently.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from .._validation import check_choice, check_int, check_nonnegative, check_rng

__all__ = [
    "DataSplit", "load_dataset", "load_arrays", "load_svmlight", "split_indices", "standardize",
    "corrupt_labels", "synthetic_classification", "synthetic_split", "make_split", "DATASETS",
    "MIN_SAMPLES_PER_PART", "MIN_TRAIN_CLASSES",
]

#: Named datasets understood by :func:`load_dataset` (any other string is a file path).
DATASETS = ("breast-cancer", "digits", "20newsgroups", "covtype")

#: Smallest train / validation / test part :func:`make_split` accepts.
MIN_SAMPLES_PER_PART = 2
#: Smallest number of classes the training part must contain.
MIN_TRAIN_CLASSES = 2

_SVMLIGHT_FORMAT = ("LIBSVM/svmlight text, one sample per line: "
                    "'<label> <index>:<value> <index>:<value> ...'")


@dataclass
class DataSplit:
    """Train / validation / test parts of a classification dataset.

    Attributes
    ----------
    X_train, X_val, X_test : ndarray or scipy.sparse CSR matrix
    y_train, y_val, y_test : ndarray of int
        Class indices ``0..n_classes-1``.
    n_classes : int
    name : str
    classes : ndarray
        The original label values, ``classes[k]`` for index ``k``.
    """

    X_train: object
    y_train: np.ndarray
    X_val: object
    y_val: np.ndarray
    X_test: object
    y_test: np.ndarray
    n_classes: int
    name: str = "data"
    classes: np.ndarray = field(default=None)

    @property
    def n_features(self):
        return self.X_train.shape[1]

    def __repr__(self):
        kind = "sparse" if sp.issparse(self.X_train) else "dense"
        return (f"<DataSplit {self.name!r}: train {self.X_train.shape[0]}, val {self.X_val.shape[0]}, "
                f"test {self.X_test.shape[0]}, {self.n_features} {kind} features, {self.n_classes} classes>")


def _sklearn_datasets():
    try:
        import sklearn.datasets as skd
    except ImportError:  # pragma: no cover - exercised only without scikit-learn
        raise ImportError(
            "this dataset needs scikit-learn: install the 'data' extra "
            "(pip install 'bilevel_ref[data]')") from None
    return skd


def _encode_labels(raw):
    classes, labels = np.unique(np.asarray(raw), return_inverse=True)
    return classes, labels.astype(np.int64)


# ---------------------------------------------------------------------------
# splits, standardisation, noise
# ---------------------------------------------------------------------------
def split_indices(labels, seed=0, fractions=(0.5, 0.25, 0.25), stratify=True):
    """Deterministic (stratified) split of ``range(n)`` into parts of the given fractions.

    Parameters
    ----------
    labels : array_like of int, shape (n,)
    seed : int or numpy.random.Generator
    fractions : sequence of float
        Positive, summing to 1 (e.g. train/val/test).
    stratify : bool, default True
        Split every class separately so that each part keeps the class proportions.

    Returns
    -------
    list of ndarray
        Sorted index arrays, one per fraction, disjoint, covering ``range(n)``.
    """
    labels = np.asarray(labels)
    fr = np.asarray(fractions, dtype=float)
    if fr.ndim != 1 or fr.size < 1 or np.any(fr <= 0) or abs(fr.sum() - 1.0) > 1e-9:
        raise ValueError(f"fractions must be positive and sum to 1, got {tuple(fractions)}")
    rng = check_rng(seed, "seed")
    groups = [np.flatnonzero(labels == c) for c in np.unique(labels)] if stratify else [np.arange(labels.size)]
    parts = [[] for _ in fr]
    for idx in groups:
        idx = rng.permutation(idx)
        cuts = np.round(np.cumsum(fr)[:-1] * idx.size).astype(int)
        for part, chunk in zip(parts, np.split(idx, cuts)):
            part.append(chunk)
    return [np.sort(np.concatenate(p)).astype(np.int64) for p in parts]


def standardize(X_train, *others):
    """Centre and scale features with the *training* mean and standard deviation.

    Sparse matrices are only scaled (centring would densify them).  Constant
    features (all training values equal) keep scale 1, and a dense constant
    feature is centred at its value exactly, so it becomes a column of zeros
    on the training part — never rounding noise blown up by a tiny standard
    deviation.  Returns the transformed ``(X_train, *others)``.
    """
    n = X_train.shape[0]
    if n == 0:
        raise ValueError("standardize needs at least one training sample, got 0")
    if sp.issparse(X_train):
        X_train = sp.csr_matrix(X_train)
        col_max = X_train.max(axis=0).toarray().ravel()
        col_min = X_train.min(axis=0).toarray().ravel()
        mean = np.asarray(X_train.mean(axis=0)).ravel()
        # variance from the centred stored values plus the implicit zeros (no sq − mean² cancellation)
        Xc = X_train.tocsc(copy=True)
        nnz = np.diff(Xc.indptr)
        Xc.data = (Xc.data - np.repeat(mean, nnz)) ** 2
        var = (np.asarray(Xc.sum(axis=0)).ravel() + (n - nnz) * mean**2) / n
        std = np.sqrt(np.maximum(var, 0.0))
        scale = sp.diags(1.0 / np.where((col_max > col_min) & (std > 0), std, 1.0))
        return tuple((sp.csr_matrix(X) @ scale).tocsr() for X in (X_train,) + others)
    const = np.max(X_train, axis=0) == np.min(X_train, axis=0)
    mean = np.where(const, X_train[0], X_train.mean(axis=0))
    std = X_train.std(axis=0)
    std = np.where(~const & (std > 0), std, 1.0)
    return tuple((X - mean) / std for X in (X_train,) + others)


def corrupt_labels(labels, p, n_classes, rng, mode="other"):
    """Inject label noise at rate ``p`` (problems.md §3.3).

    Parameters
    ----------
    labels : array_like of int, shape (n,)
        Clean class indices.
    p : float in [0, 1]
        Noise rate.
    n_classes : int
    rng : numpy.random.Generator or int
    mode : {"other", "any"}
        ``"other"``: exactly ⌊p·n⌋ samples chosen without replacement get a
        uniformly random *different* class (binary: flipped).  ``"any"``
        (benchopt's mnist): each sample is selected independently with
        probability ``p`` and gets a uniform label in ``0..K-1`` (possibly the
        same one).

    Returns
    -------
    noisy : ndarray of int
    mask : ndarray of bool
        Selected samples (for ``"other"`` exactly the samples whose label changed).
    """
    labels = np.asarray(labels, dtype=np.int64)
    p = check_nonnegative(p, "p")
    if p > 1:
        raise ValueError(f"p must be in [0, 1], got {p}")
    n_classes = check_int(n_classes, "n_classes", minimum=2)
    check_choice(mode, "mode", ("other", "any"))
    rng = check_rng(rng)
    n = labels.size
    noisy = labels.copy()
    mask = np.zeros(n, dtype=bool)
    if mode == "other":
        idx = rng.choice(n, size=int(np.floor(p * n)), replace=False)
        # a shift in 1..K-1 modulo K is a uniformly random *other* class
        noisy[idx] = (labels[idx] + rng.integers(1, n_classes, size=idx.size)) % n_classes
        mask[idx] = True
    else:
        mask = rng.random(n) < p
        noisy[mask] = rng.integers(0, n_classes, size=int(mask.sum()))
    return noisy, mask


def _check_finite_data(X, labels, what):
    """ValueError naming ``what`` if a feature value or a numeric label is NaN or inf."""
    if sp.issparse(X):
        bad = ~np.isfinite(X.data)
        bad_rows = np.unique(np.repeat(np.arange(X.shape[0]), np.diff(X.indptr))[bad]) if bad.any() else bad[:0]
    else:
        bad_rows = np.flatnonzero(~np.all(np.isfinite(X), axis=1))
    if bad_rows.size:
        raise ValueError(f"{what} has non-finite feature values (NaN or inf) in {bad_rows.size} sample(s), "
                         f"first in sample {int(bad_rows[0])} (0-based); features must be finite")
    lab = np.asarray(labels)
    if lab.dtype.kind in "fc" and not np.all(np.isfinite(lab)):
        first = int(np.flatnonzero(~np.isfinite(lab))[0])
        raise ValueError(f"{what} has a non-finite label (NaN or inf), first in sample {first} (0-based)")


def _check_split_sizes(labels, parts, n_classes, fractions, what):
    """One ValueError naming ``what`` and the minimum sizes if a part is too small."""
    sizes = [int(p.size) for p in parts]
    train_classes = int(np.unique(labels[parts[0]]).size)
    if min(sizes) >= MIN_SAMPLES_PER_PART and train_classes >= MIN_TRAIN_CLASSES:
        return
    hint = (f"; with the default fractions, 4 samples in each of {MIN_TRAIN_CLASSES} classes suffice"
            if tuple(float(f) for f in fractions) == (0.5, 0.25, 0.25) else "")
    raise ValueError(
        f"{what} is too small to split: {labels.size} sample(s) in {n_classes} class(es) give train "
        f"{sizes[0]} ({train_classes} class(es)) / validation {sizes[1]} / test {sizes[2]} with fractions "
        f"{tuple(float(f) for f in fractions)}; need at least {MIN_SAMPLES_PER_PART} samples in every part "
        f"and {MIN_TRAIN_CLASSES} classes in the training part{hint}")


def make_split(X, labels, *, seed=0, fractions=(0.5, 0.25, 0.25), standardize_features=True,
               fit_intercept=False, name="data", classes=None, n_classes=None, source=None):
    """Split ``(X, labels)`` deterministically into a :class:`DataSplit`.

    Features are standardised with training statistics when asked; with
    ``fit_intercept`` a constant column of ones is appended after that.

    The data are validated before anything is computed on them, each failure
    being one :class:`ValueError` that names the data (``source``, default
    ``"dataset '<name>'"``): at least one sample and one feature, finite
    features and labels, at least two classes, and a split with at least
    :data:`MIN_SAMPLES_PER_PART` samples in each of train / validation / test
    and :data:`MIN_TRAIN_CLASSES` classes in the training part.  Constant
    features are allowed (:func:`standardize` keeps their scale 1).
    """
    what = f"dataset {name!r}" if source is None else str(source)
    if X.ndim != 2:
        raise ValueError(f"{what}: features must be a 2-D matrix, got shape {X.shape}")
    if X.shape[0] != len(labels):
        raise ValueError(f"{what}: X has {X.shape[0]} rows but labels has {len(labels)} entries")
    if X.shape[0] == 0 or X.shape[1] == 0:
        raise ValueError(f"{what} has {X.shape[0]} sample(s) and {X.shape[1]} feature(s); need at least "
                         f"{MIN_SAMPLES_PER_PART} samples in every part of the split and at least 1 feature")
    if sp.issparse(X):
        X = sp.csr_matrix(X, dtype=np.float64)
    else:
        X = np.asarray(X, dtype=np.float64)
    _check_finite_data(X, labels, what)
    if classes is None:
        classes, labels = _encode_labels(labels)
    labels = np.asarray(labels, dtype=np.int64)
    n_classes = int(len(classes)) if n_classes is None else int(n_classes)
    if n_classes < 2:
        raise ValueError(f"{what} has a single class; classification needs at least {MIN_TRAIN_CLASSES} "
                         f"classes (and {MIN_TRAIN_CLASSES} in the training part)")
    tr, va, te = parts_idx = split_indices(labels, seed, fractions)
    _check_split_sizes(labels, parts_idx, n_classes, fractions, what)
    parts = [X[tr], X[va], X[te]]
    if standardize_features:
        parts = list(standardize(*parts))
    if fit_intercept:
        if sp.issparse(X):
            parts = [sp.hstack([P, np.ones((P.shape[0], 1))], format="csr") for P in parts]
        else:
            parts = [np.hstack([P, np.ones((P.shape[0], 1))]) for P in parts]
    return DataSplit(parts[0], labels[tr], parts[1], labels[va], parts[2], labels[te],
                     n_classes=n_classes, name=name, classes=np.asarray(classes))


# ---------------------------------------------------------------------------
# loaders
# ---------------------------------------------------------------------------
def load_svmlight(path, n_features=None):
    """Read a LIBSVM/svmlight file; returns ``(X, raw_labels)`` with X CSR.

    Raises
    ------
    FileNotFoundError
        The file does not exist (the message names it and the expected format).
    ValueError
        The file is not valid svmlight text.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"dataset file {path!r} not found; expected a {_SVMLIGHT_FORMAT} "
            f"(or one of the named datasets {list(DATASETS)})")
    skd = _sklearn_datasets()
    try:
        X, raw = skd.load_svmlight_file(path, n_features=n_features, dtype=np.float64)
    except (ValueError, UnicodeDecodeError, IndexError, TypeError) as exc:
        raise ValueError(f"could not read dataset file {path!r} as {_SVMLIGHT_FORMAT}: {exc}") from None
    if X.shape[0] == 0:
        raise ValueError(f"dataset file {path!r} has no samples (a split needs at least "
                         f"{MIN_SAMPLES_PER_PART} in each of train / validation / test); "
                         f"expected {_SVMLIGHT_FORMAT}")
    return X.tocsr(), raw


def load_arrays(name):
    """Features and raw labels ``(X, labels)`` of a named dataset, unsplit.

    ``"breast-cancer"`` and ``"digits"`` (scaled by 1/16) are bundled with
    scikit-learn; ``"20newsgroups"`` (sparse CSR, all 18 846 documents) and
    ``"covtype"`` are downloaded by scikit-learn on first use and raise when
    that is impossible.
    """
    norm = str(name).lower().replace("_", "-")
    skd = _sklearn_datasets()
    if norm == "breast-cancer":
        return skd.load_breast_cancer(return_X_y=True)
    if norm == "digits":
        X, raw = skd.load_digits(return_X_y=True)
        return X / 16.0, raw
    if norm in ("20newsgroups", "20-newsgroups", "news20"):
        bunch = _download(skd.fetch_20newsgroups_vectorized, "20newsgroups", subset="all")
        return bunch.data.tocsr(), bunch.target
    if norm == "covtype":
        return _download(skd.fetch_covtype, "covtype", return_X_y=True)
    raise ValueError(f"unknown dataset {name!r}; named datasets: {list(DATASETS)}")


def _download(fetch, name, **kwargs):
    """Call a scikit-learn fetcher; a failed download raises (never a silent fallback)."""
    try:
        return fetch(download_if_missing=True, **kwargs)
    except OSError as exc:
        raise OSError(f"dataset {name!r} is downloaded by scikit-learn on first use and the download "
                      f"failed ({exc}); connect once or use a local svmlight file") from exc


def _newsgroups_split(seed):
    """20 Newsgroups as in the F2SA-p / F2BA l2reg task (problems.md §4.2).

    scikit-learn's train subset (11 314 documents) split 50/50 (stratified) into
    train / validation; half of the test subset (7 532) as test.
    """
    skd = _sklearn_datasets()
    train = _download(skd.fetch_20newsgroups_vectorized, "20newsgroups", subset="train")
    test = _download(skd.fetch_20newsgroups_vectorized, "20newsgroups", subset="test")
    tr, va = split_indices(train.target, seed, (0.5, 0.5))
    te, _ = split_indices(test.target, seed, (0.5, 0.5))
    X, Xt = train.data.tocsr(), test.data.tocsr()
    return DataSplit(X[tr], train.target[tr].astype(np.int64), X[va], train.target[va].astype(np.int64),
                     Xt[te], test.target[te].astype(np.int64), n_classes=20, name="20newsgroups",
                     classes=np.arange(20))


def load_dataset(name, seed=0, *, fractions=(0.5, 0.25, 0.25), standardize_features=None,
                 fit_intercept=False, dense=None):
    """Load a named dataset or an svmlight file and split it deterministically.

    Parameters
    ----------
    name : str or path
        ``"breast-cancer"``, ``"digits"``, ``"20newsgroups"`` (its own split:
        scikit-learn's train subset 50/50 into train/validation, half its test
        subset as test; ``fractions`` and the feature options do not apply),
        ``"covtype"`` or the path of a LIBSVM/svmlight file.
    seed : int
        Seed of the split.
    fractions : (train, val, test)
    standardize_features : bool, optional
        Default: True for breast-cancer, covtype and dense svmlight data;
        False for digits (scaled by 1/16 instead) and sparse data.
    fit_intercept : bool, default False
        Append a column of ones.
    dense : bool, optional
        Convert svmlight data to a dense array (default: dense when at most
        1 000 features).

    Returns
    -------
    DataSplit

    Raises
    ------
    ValueError
        One error naming the dataset (or file) when the data are degenerate:
        no samples or features, NaN/inf features or labels, a single class,
        or fewer than :data:`MIN_SAMPLES_PER_PART` samples in a part of the
        split or fewer than :data:`MIN_TRAIN_CLASSES` classes in its training
        part (see :func:`make_split`).  No NumPy warning precedes it.
    """
    if not isinstance(name, (str, os.PathLike)):
        raise TypeError(f"dataset must be a name {list(DATASETS)} or a file path, got {type(name).__name__}")
    key = os.fspath(name)
    norm = key.lower().replace("_", "-")
    std_default = True
    if norm in ("20newsgroups", "20-newsgroups", "news20"):
        return _newsgroups_split(seed)
    if norm in ("breast-cancer", "digits", "covtype"):
        X, raw = load_arrays(norm)
        std_default = norm in ("breast-cancer", "covtype")
        source = f"dataset {norm!r}"
    else:
        source = f"dataset file {key!r}"
        X, raw = load_svmlight(key)
        if dense is None:
            dense = X.shape[1] <= 1000
        if dense:
            X = X.toarray()
        std_default = not sp.issparse(X)
        norm = os.path.basename(key)
    std = std_default if standardize_features is None else bool(standardize_features)
    return make_split(X, raw, seed=seed, fractions=fractions, standardize_features=std,
                      fit_intercept=fit_intercept, name=norm, source=source)


# ---------------------------------------------------------------------------
# synthetic data
# ---------------------------------------------------------------------------
def synthetic_classification(n, d, n_classes=2, *, seed=0, density=None, separation=2.0):
    """Synthetic linear classification data ``(X, labels)``.

    ``X`` has i.i.d. standard normal entries (dense), or, with ``density``,
    is a CSR matrix with about ``density·n·d`` standard normal non-zeros at
    uniformly random positions (never materialised densely).  Labels are drawn
    from a softmax model with a random ground-truth weight matrix scaled so
    that the expected logit spread is ``separation``.

    Returns
    -------
    X : ndarray or scipy.sparse.csr_matrix, shape (n, d)
    labels : ndarray of int, shape (n,), values in 0..n_classes-1
    """
    n = check_int(n, "n", minimum=1)
    d = check_int(d, "d", minimum=1)
    n_classes = check_int(n_classes, "n_classes", minimum=2)
    rng = np.random.default_rng(check_int(seed, "seed", minimum=0))
    if density is None:
        X = rng.standard_normal((n, d))
        row_nnz = d
    else:
        density = float(density)
        if not 0 < density <= 1:
            raise ValueError(f"density must be in (0, 1], got {density}")
        nnz = max(1, int(round(density * n * d)))
        rows = rng.integers(0, n, size=nnz)
        cols = rng.integers(0, d, size=nnz)
        vals = rng.standard_normal(nnz)
        X = sp.csr_matrix((vals, (rows, cols)), shape=(n, d))
        X.sum_duplicates()
        row_nnz = max(density * d, 1.0)
    W = rng.standard_normal((d, n_classes)) * (separation / np.sqrt(row_nnz))
    logits = np.asarray(X @ W)
    # Gumbel-max trick: an exact draw from softmax(logits)
    labels = np.argmax(logits + rng.gumbel(size=logits.shape), axis=1).astype(np.int64)
    return X, labels


def synthetic_split(n_train, n_val, n_test, d, n_classes=2, seed=0, density=None):
    """Synthetic data split into ``[(X_train, labels), (X_val, labels), (X_test, labels)]``.

    One draw of :func:`synthetic_classification` with ``n_train + n_val + n_test``
    rows, split at random (:func:`split_indices`, not stratified, so the parts
    have exactly the requested sizes); an empty part is returned with zero rows.
    """
    n = n_train + n_val + n_test
    X, labels = synthetic_classification(n, d, n_classes, seed=seed, density=density)
    sizes = np.array([n_train, n_val, n_test], dtype=float)
    used = sizes > 0
    parts = iter(split_indices(labels, seed, sizes[used] / n, stratify=False))
    idx = [next(parts) if u else np.zeros(0, dtype=np.int64) for u in used]
    return [(X[p], labels[p]) for p in idx]
