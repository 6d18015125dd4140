"""Datasets: deterministic stratified splits, train-only standardisation, label noise, loaders' errors."""
import warnings

import numpy as np
import pytest
import scipy.sparse as sp

from bilevel_ref.problems.datasets import (
    MIN_SAMPLES_PER_PART,
    MIN_TRAIN_CLASSES,
    corrupt_labels,
    load_dataset,
    load_svmlight,
    make_split,
    split_indices,
    standardize,
    synthetic_classification,
    synthetic_split,
)
from bilevel_ref.problems.hyper_cleaning import hyper_cleaning_from_dataset


def test_split_is_a_deterministic_stratified_partition():
    labels = np.repeat([0, 1, 2], [40, 80, 120])
    parts = split_indices(labels, seed=3)
    again = split_indices(labels, seed=3)
    other = split_indices(labels, seed=4)
    assert all(np.array_equal(a, b) for a, b in zip(parts, again))
    assert not np.array_equal(parts[0], other[0])
    allidx = np.concatenate(parts)
    assert np.array_equal(np.sort(allidx), np.arange(240))      # disjoint and covering
    assert [len(p) for p in parts] == [120, 60, 60]
    for p, frac in zip(parts, (0.5, 0.25, 0.25)):
        np.testing.assert_array_equal(np.bincount(labels[p]), frac * np.array([40, 80, 120]))
    with pytest.raises(ValueError, match="fractions"):
        split_indices(labels, fractions=(0.5, 0.6))


def test_standardize_uses_training_statistics_only(rng):
    Xtr, Xte = rng.normal(3, 2, (50, 4)), rng.normal(3, 2, (20, 4))
    Xtr[:, 2] = 1.0                                              # constant feature
    a, b = standardize(Xtr, Xte)
    np.testing.assert_allclose(a.mean(0), 0, atol=1e-14)
    np.testing.assert_allclose(a.std(0)[[0, 1, 3]], 1, rtol=1e-13)
    std = Xtr.std(0)
    std[2] = 1.0
    np.testing.assert_allclose(b, (Xte - Xtr.mean(0)) / std, rtol=1e-13)
    S = sp.random(30, 5, density=0.5, format="csr", random_state=np.random.default_rng(0))
    (Ss,) = standardize(S)
    assert sp.issparse(Ss)
    np.testing.assert_allclose(Ss.toarray().std(0)[S.toarray().std(0) > 0], 1.0, rtol=1e-12)


@pytest.mark.parametrize("p", [0.0, 0.25, 0.5, 1.0])
def test_corrupt_labels_other_mode(p):
    labels = np.arange(200) % 5
    noisy, mask = corrupt_labels(labels, p, 5, np.random.default_rng(1))
    assert mask.sum() == int(np.floor(p * 200))
    assert np.all(noisy[mask] != labels[mask]) and np.all(noisy[~mask] == labels[~mask])
    noisy2, mask2 = corrupt_labels(labels, p, 5, np.random.default_rng(1))
    assert np.array_equal(noisy, noisy2) and np.array_equal(mask, mask2)


def test_corrupt_labels_binary_flips_and_any_mode():
    labels = np.array([0, 1] * 50)
    noisy, mask = corrupt_labels(labels, 0.3, 2, 7)
    np.testing.assert_array_equal(noisy[mask], 1 - labels[mask])
    noisy, mask = corrupt_labels(np.zeros(20000, dtype=int), 0.5, 10, 0, mode="any")
    assert abs(mask.mean() - 0.5) < 0.02                          # independent selection
    assert abs(np.mean(noisy[mask] == 0) - 0.1) < 0.02            # uniform, same class allowed
    with pytest.raises(ValueError, match="p must be"):
        corrupt_labels(labels, 1.5, 2, 0)
    with pytest.raises(ValueError, match="mode"):
        corrupt_labels(labels, 0.1, 2, 0, mode="flip")


def test_bundled_datasets():
    bc = load_dataset("breast-cancer", seed=0)
    assert bc.n_classes == 2 and bc.n_features == 30
    assert bc.X_train.shape[0] + bc.X_val.shape[0] + bc.X_test.shape[0] == 569
    np.testing.assert_allclose(bc.X_train.mean(0), 0, atol=1e-12)
    dg = load_dataset("digits", seed=0)
    assert dg.n_classes == 10 and dg.n_features == 64 and dg.X_train.max() <= 1.0
    again = load_dataset("digits", seed=0)
    assert np.array_equal(dg.X_val, again.X_val) and np.array_equal(dg.y_test, again.y_test)
    assert load_dataset("breast-cancer", fit_intercept=True).n_features == 31


def test_svmlight_files(tmp_path):
    good = tmp_path / "tiny.svm"
    good.write_text("+1 1:0.5 3:1.0\n-1 2:2.0\n+1 1:1.5 2:-1\n-1 3:0.25\n" * 5)
    X, raw = load_svmlight(good)
    assert sp.issparse(X) and X.shape == (20, 3) and set(raw) == {-1.0, 1.0}
    data = load_dataset(str(good), seed=0)
    assert data.n_classes == 2 and data.n_features == 3 and not sp.issparse(data.X_train)
    with pytest.raises(FileNotFoundError, match=r"nope\.svm.*svmlight"):
        load_dataset(str(tmp_path / "nope.svm"))
    bad = tmp_path / "bad.svm"
    bad.write_text("this is not: svmlight\n1 a:b\n")
    with pytest.raises(ValueError, match=r"bad\.svm.*svmlight"):
        load_dataset(str(bad))
    empty = tmp_path / "empty.svm"
    empty.write_text("")
    with pytest.raises(ValueError, match="empty.svm"):
        load_svmlight(empty)
    with pytest.raises(TypeError, match="dataset"):
        load_dataset(3.0)


def test_synthetic_data_dense_and_sparse():
    X, lab = synthetic_classification(300, 8, 3, seed=2)
    X2, lab2 = synthetic_classification(300, 8, 3, seed=2)
    assert np.array_equal(X, X2) and np.array_equal(lab, lab2) and set(lab) == {0, 1, 2}
    S, slab = synthetic_classification(1000, 500, 4, seed=0, density=0.01)
    assert sp.issparse(S) and abs(S.nnz / (1000 * 500) - 0.01) < 0.002
    parts = synthetic_split(60, 30, 0, 4, 2, seed=0)
    assert parts[2][0].shape[0] == 0 and parts[0][0].shape[0] + parts[1][0].shape[0] == 90


def test_download_failures_raise_and_never_fall_back(monkeypatch):
    import sklearn.datasets as skd

    def offline(**kwargs):
        raise OSError("network unreachable")

    monkeypatch.setattr(skd, "fetch_20newsgroups_vectorized", offline)
    monkeypatch.setattr(skd, "fetch_covtype", offline)
    with pytest.raises(OSError, match="20newsgroups.*download"):
        load_dataset("20newsgroups")
    with pytest.raises(OSError, match="covtype.*download"):
        load_dataset("covtype")


# -- degenerate data: one ValueError naming the file and the minimum sizes, no warning flood ----------
def _no_warnings(fn, *args, **kwargs):
    """``fn(*args, **kwargs)``, asserting that it emitted no warning (whether it returns or raises)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            return fn(*args, **kwargs)
        finally:
            assert [str(w.message) for w in caught] == []


def _one_error_no_warnings(fn, *args, **kwargs):
    """The message of the one ValueError ``fn`` raises without any warning before it."""
    with pytest.raises(ValueError) as info:
        _no_warnings(fn, *args, **kwargs)
    return str(info.value)


def test_two_line_svmlight_file_is_one_clear_error(tmp_path):
    path = tmp_path / "two.svm"
    path.write_text("1 1:0.5\n-1 2:0.3\n")
    msg = _one_error_no_warnings(load_dataset, str(path))
    assert "two.svm" in msg and "too small" in msg
    assert f"at least {MIN_SAMPLES_PER_PART} samples in every part" in msg
    assert f"{MIN_TRAIN_CLASSES} classes in the training part" in msg
    assert "train 0" in msg                                        # the sizes the split produced
    msg = _one_error_no_warnings(hyper_cleaning_from_dataset, str(path))
    assert "two.svm" in msg and "too small" in msg


def test_two_line_file_through_the_compare_cli(tmp_path, capsys):
    from bilevel_ref.cli import main

    path = tmp_path / "two.svm"
    path.write_text("1 1:0.5\n-1 2:0.3\n")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        code = main(["compare", "--problem", "hyper-cleaning", "--dataset", str(path), "--methods", "aid",
                     "--maxiter", "2", "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2 and not [w for w in caught if issubclass(w.category, RuntimeWarning)]
    lines = [ln for ln in err.splitlines() if "error" in ln]
    assert len(lines) == 1 and "two.svm" in lines[0] and "too small" in lines[0], err


def test_empty_file(tmp_path):
    path = tmp_path / "empty.svm"
    path.write_text("")
    msg = _one_error_no_warnings(load_dataset, str(path))
    assert "empty.svm" in msg and "no samples" in msg and f"at least {MIN_SAMPLES_PER_PART}" in msg


def test_single_class_file(tmp_path):
    path = tmp_path / "one.svm"
    path.write_text("".join(f"1 1:{i} 2:{i % 3}\n" for i in range(20)))
    msg = _one_error_no_warnings(load_dataset, str(path))
    assert "one.svm" in msg and "single class" in msg and f"at least {MIN_TRAIN_CLASSES} classes" in msg


def test_single_class_in_the_training_part(tmp_path):
    X = np.arange(12.0)[:, None]
    labels = np.array([0] * 11 + [1])           # class 1 has one sample: it lands outside the training part
    msg = _one_error_no_warnings(make_split, X, labels, name="lopsided")
    assert "'lopsided'" in msg and "train 6 (1 class(es))" in msg


def test_non_finite_features_and_labels(tmp_path):
    path = tmp_path / "nan.svm"
    path.write_text("1 1:0.5\n-1 1:nan\n" * 8)
    msg = _one_error_no_warnings(load_dataset, str(path))
    assert "nan.svm" in msg and "non-finite feature" in msg and "sample 1" in msg
    msg = _one_error_no_warnings(make_split, np.ones((8, 2)), np.array([0, 1] * 3 + [np.nan, 1]))
    assert "non-finite label" in msg and "sample 6" in msg


def test_constant_column_file_loads_without_warnings(tmp_path):
    path = tmp_path / "const.svm"
    # feature 1 constant 0.1 (its float std is ~1e-17, not 0), feature 2 informative
    path.write_text("".join(f"{1 if i % 2 else -1} 1:0.1 2:{i * 0.3:.1f}\n" for i in range(16)))
    data = _no_warnings(load_dataset, str(path), seed=0)
    problem = _no_warnings(hyper_cleaning_from_dataset, str(path), seed=0)
    assert data.n_features == 2 and data.X_train.shape[0] == 8
    for part in (data.X_train, data.X_val, data.X_test):
        assert np.all(part[:, 0] == 0.0)        # constant: centred exactly, scale 1 (not noise / 1e-17)
    np.testing.assert_allclose(data.X_train[:, 1].std(), 1.0, rtol=1e-12)
    assert problem.dx == 8


def test_standardize_constant_columns_dense_and_sparse():
    X = np.column_stack([np.full(7, 0.1), np.arange(7.0), np.zeros(7)])
    (Z,) = standardize(X)
    assert np.all(Z[:, 0] == 0) and np.all(Z[:, 2] == 0)
    S = sp.csr_matrix(np.column_stack([np.full(7, 0.1), np.arange(7.0), np.zeros(7)]))
    (T,) = standardize(S)
    np.testing.assert_array_equal(T.toarray()[:, 0], 0.1)            # sparse: scaled only, scale 1
    np.testing.assert_allclose(T.toarray()[:, 1], np.arange(7.0) / np.arange(7.0).std(), rtol=1e-13)
    # sparse variance without sq - mean^2 cancellation
    big = sp.csr_matrix(np.array([[1e8], [1e8 + 1], [1e8], [1e8 + 1]]))
    (B,) = standardize(big)
    np.testing.assert_allclose(B.toarray().ravel(), big.toarray().ravel() / 0.5, rtol=1e-12)


def test_max_train_too_small():
    with pytest.raises(ValueError, match=r"max_train=1 keeps 1 training sample.*at least 2 samples and 2 classes"):
        hyper_cleaning_from_dataset("breast-cancer", max_train=1)


def test_smallest_accepted_file_has_no_warnings(tmp_path):
    path = tmp_path / "eight.svm"
    path.write_text("".join(f"{1 if i < 4 else -1} 1:{i * 0.25} 2:{(i * 7) % 5}\n" for i in range(8)))
    data = _no_warnings(load_dataset, str(path), seed=0)
    assert (data.X_train.shape[0], data.X_val.shape[0], data.X_test.shape[0]) == (4, 2, 2)
    assert set(data.y_train) == {0, 1}
