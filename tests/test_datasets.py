"""Datasets: deterministic stratified splits, train-only standardisation, label noise, loaders' errors."""
import numpy as np
import pytest
import scipy.sparse as sp

from bilevel_ref.problems.datasets import (
    corrupt_labels,
    load_dataset,
    load_svmlight,
    split_indices,
    standardize,
    synthetic_classification,
    synthetic_split,
)


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
