"""The counter guards what a problem returns: shapes, dtype and finiteness.

Reproductions from the "nothing lost, nothing misleading" issue: a wrong-shape
gradient used to surface as a broadcast error deep in a method, a scalar 0.0
for ∇ₓg was silently broadcast and the run "succeeded", and NaN from a user's
oracle was blamed on the step size (FSBA raised an unrelated ValueError).
"""
import re

import numpy as np
import pytest

import bilevel_ref as br
from bilevel_ref.problems import quadratic_bilevel


class Faulty(br.BilevelProblem):
    """A quadratic problem whose ``grad_g`` misbehaves as asked (public oracles only)."""

    def __init__(self, fault, after=0):
        self.inner = quadratic_bilevel(dx=3, dy=3, kappa=3.0, seed=0)
        self.dx, self.dy, self.name = 3, 3, "faulty"
        self.fault, self.after, self.calls = fault, after, 0

    def constants(self):
        return self.inner.constants()

    def f(self, x, y):
        return self.inner.f(x, y)

    def g(self, x, y):
        return self.inner.g(x, y)

    def grad_f(self, x, y, batch=None):
        return self.inner.grad_f(x, y)

    def hess_f(self, x, y, batch=None):
        return self.inner.hess_f(x, y)

    def hess_g(self, x, y, batch=None):
        return self.inner.hess_g(x, y)

    def grad_g(self, x, y, batch=None):
        self.calls += 1
        gx, gy = self.inner.grad_g(x, y)
        if self.calls <= self.after:
            return gx, gy
        if self.fault == "scalar_gx":
            return 0.0, gy
        if self.fault == "short_gy":
            return gx, gy[:-1]
        if self.fault == "nan":
            return gx, np.full_like(gy, np.nan)
        if self.fault == "complex":
            return gx.astype(complex), gy
        raise AssertionError(self.fault)


@pytest.mark.parametrize("method", ["f2ba", "fsba", "f2sa_p"])   # grad_g whole, or its ∇_x g block
def test_scalar_where_a_vector_is_due_is_an_error_naming_the_oracle(method):
    with pytest.raises(ValueError, match=r"oracle (grad_g\[0\]|grad_x_g) returned shape \(\), expected \(3,\)"):
        br.minimize(Faulty("scalar_gx"), method, np.zeros(3), options={"maxiter": 3})


def test_wrong_shape_is_an_error_naming_the_oracle_and_the_expected_shape():
    # AID reads the y block through grad_y_g (derived from the user's grad_g): named as called
    with pytest.raises(ValueError, match=r"oracle grad_y_g returned shape \(2,\), expected \(3,\)"):
        br.minimize(Faulty("short_gy"), "aid", np.zeros(3), options={"maxiter": 3})
    with pytest.raises(ValueError, match=r"oracle (grad_g\[1\]|grad_y_g) returned shape \(2,\), expected \(3,\)"):
        br.minimize(Faulty("short_gy"), "f2ba", np.zeros(3), options={"maxiter": 3})


def test_non_real_dtype_is_a_type_error():
    with pytest.raises(TypeError, match=r"(grad_g\[0\]|grad_x_g) returned dtype complex128"):
        br.minimize(Faulty("complex"), "f2ba", np.zeros(3), options={"maxiter": 3})


@pytest.mark.parametrize("method", ["aid", "itd", "f2ba", "fsba", "lfsba", "ifsba", "soba", "nbo"])
def test_nan_from_an_oracle_names_it_and_the_iteration(method):
    # the first iteration's grad_g calls pass; later ones return NaN
    clean = br.minimize(Faulty("nan", after=10**9), method, np.zeros(3), options={"maxiter": 1})
    per_iteration = clean.oracle_calls["grad_g"]
    res = br.minimize(Faulty("nan", after=per_iteration), method, np.zeros(3), options={"maxiter": 5})
    assert not res.success and res.status == br.Status.NONFINITE
    # named as the method called it: grad_g, its block grad_y_g, or the fused (∇_y g, Hv, Jv)
    assert re.search(r"\b(grad_g|grad_y_g|fused_g) returned non-finite values at iteration 2", res.message)
    assert "step size" not in res.message
    np.testing.assert_array_equal(res.x, clean.x)   # the last finite iterate: after iteration 1


def test_diverging_iterates_still_blame_the_step_size():
    p = quadratic_bilevel(dx=3, dy=3, kappa=3.0, seed=0)
    res = br.minimize(p, "aid", np.ones(3), options={"step_x": 1e6, "maxiter": 500})
    assert res.status == br.Status.NONFINITE and "reduce the step sizes" in res.message
    assert np.all(np.isfinite(res.x))


@pytest.mark.parametrize("make", [lambda a: a, lambda a: a[::2], lambda a: a.reshape(4, -1),
                                  lambda a: a[:8], lambda a: a.astype(np.float32)],
                         ids=["vector", "strided", "matrix", "small", "float32"])
def test_finiteness_guard_checks_every_entry(make):
    """The output guard's finiteness test: every NaN or ±inf is found, wherever it sits and whatever the
    array's shape or dtype; finite entries whose squares or sum overflow are finite."""
    from bilevel_ref.oracles import _finite

    base = np.linspace(-3.0, 3.0, 40)
    assert _finite(make(base))
    huge = np.full(40, 1e300)
    huge[1::2] = -1e300
    with np.errstate(over="ignore"):
        big = make(huge)                                                # float32: 1e300 is inf there
    assert _finite(big) == bool(np.isfinite(big).all())
    for position in (0, 13, 39):
        for value in (np.nan, np.inf, -np.inf):
            bad = base.copy()
            bad[position] = value
            arr = make(bad)
            assert _finite(arr) == bool(np.isfinite(arr).all())
    assert _finite(np.arange(12)) and _finite(2.5) and not _finite(float("nan"))
