"""bilevel_ref.check_problem: every catalog problem passes, seeded derivative bugs are caught and
named, misbehaving oracles are FAIL rows (never tracebacks), and the command line's exit codes."""
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import bilevel_ref
from bilevel_ref import ProblemCheck, check_problem
from bilevel_ref.check import fd_directional, fd_gradient, fd_jacobian, fd_step, main
from bilevel_ref.problems import BilevelProblem, QuadraticBilevel, make_quadratic_minimax, quadratic_bilevel
from bilevel_ref.problems.catalog import build_problem, problem_names

#: catalog instances whose defaults are large, at small sizes (same code paths)
SMALL = {
    "finite-sum-quadratic": dict(n_inner=64, n_outer=64, dim_inner=12, dim_outer=8),
    "hyper-cleaning": dict(max_train=40),
    "meta-learning": dict(n_way=3, k_shot=2, n_query=3, rank=4, n_tasks=3),
    "multinomial-regularization": dict(n_train=100, n_val=100, d=8, n_classes=3),
}


def _catalog(name):
    return build_problem(name, **SMALL.get(name, {}))


# ---------------------------------------------------------------------------
# the catalog
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("name", problem_names())
def test_every_catalog_problem_passes_at_its_start(name):
    # at x0: learn-to-regularize and meta-learning report their constants at x_ref = x0
    problem, x0 = _catalog(name)
    report = check_problem(problem, x0)
    assert report.ok, report.to_table()
    checked = {r.oracle for r in report.rows if r.verdict == "pass"}
    assert {"grad_f", "hess_f"} <= checked
    if report.kind == "bilevel":
        assert {"grad_g", "hess_g", "hvp_yy_g", "cross_g", "cross_t_g", "fused_g", "g"} <= checked
    for closed in ("y_star", "phi", "grad_phi", "hess_phi"):
        if problem.provides(closed):
            assert closed in checked, (closed, report.to_table())


@pytest.mark.parametrize("name", problem_names())
def test_every_catalog_problem_derivatives_pass_away_from_its_start(name):
    # a generic point (x0 is often 0, a symmetric or special point); the reported constants of the
    # learn-to-regularize and meta-learning problems hold at x_ref only, so they are left out here
    problem, x0 = _catalog(name)
    x = x0 + 0.3 * np.random.default_rng(1).standard_normal(problem.dx)
    report = check_problem(problem, x, seed=1)
    assert not [r for r in report.failures if r.oracle != "constants"], report.to_table()


# ---------------------------------------------------------------------------
# seeded bugs (dx == dy, so that a transposed block has the right shape and a wrong value)
# ---------------------------------------------------------------------------
_BASE = quadratic_bilevel(4, 4, kappa=5.0, seed=3)


def _variant(**methods):
    """The quadratic problem _BASE with some methods replaced."""
    cls = type("Seeded", (QuadraticBilevel,), methods)
    b = _BASE
    return cls(b.P, b.R, b.S, b.p, b.q, b.A, b.C, b.E, b.a, b.b, name="seeded")


BUGS = {
    "transposed cross block": (
        dict(hess_g=lambda self, x, y, batch=None: (self.E.copy(), self.C.copy(), self.A.copy())),
        {"hess_g"}, "∇²_xy"),
    "factor 2 in an HVP": (
        dict(hvp_yy_g=lambda self, x, y, v, batch=None: 2.0 * (self.A @ v)),
        {"hvp_yy_g"}, "∇²_yy g·v"),
    # grad_x_g is derived from grad_g by the base class: it returns the same wrong block
    "sign error in grad_x g": (
        dict(grad_g=lambda self, x, y, batch=None: (-(self.C.T @ y + self.E @ x + self.b),
                                                    self.A @ y + self.C @ x + self.a)),
        {"grad_g", "grad_x_g"}, "∇_x g"),
    "asymmetric Hessian": (
        dict(hess_g=lambda self, x, y, batch=None: (self.E.copy(), self.C.T.copy(),
                                                    self.A + 0.05 * np.triu(np.ones((4, 4)), 1))),
        {"hess_g"}, "symmetric"),
    "reported mu_g too large": (
        dict(constants=lambda self: dict(QuadraticBilevel.constants(self), mu_g=1.5 * self.mu_g)),
        {"constants"}, "mu_g"),
    "transposed cross product": (
        dict(cross_g=lambda self, x, y, v, batch=None: self.C @ v),
        {"cross_g"}, "∇²_xy g·v"),
    "reported L_g too small": (
        dict(constants=lambda self: dict(QuadraticBilevel.constants(self), L_g=0.5 * self.L_g)),
        {"constants"}, "L_g"),
}


def test_the_unseeded_problem_passes_everything():
    report = check_problem(_variant())
    assert report.ok and not [r for r in report.rows if r.verdict == "skipped"], report.to_table()


@pytest.mark.parametrize("bug", BUGS)
def test_seeded_bug_fails_naming_its_oracle(bug):
    methods, oracles, text = BUGS[bug]
    report = check_problem(_variant(**methods))
    assert not report.ok
    assert set(report.failed_oracles) == oracles, report.to_table()
    assert any(text in r.check for r in report.failures), report.to_table()
    for row in report.failures:
        assert row.error is not None and row.error > 100 * row.tolerance   # an O(1) error, not noise
    # everything that does not depend on the bug still passes
    untouched = {r.oracle for r in check_problem(_variant()).rows} - oracles
    for row in report.rows:
        if row.oracle in untouched and row.verdict != "skipped":
            assert row.verdict == "pass", row


def test_sign_error_skips_the_checks_that_would_difference_the_wrong_gradient():
    report = check_problem(_variant(**BUGS["sign error in grad_x g"][0]))
    skipped = {r.oracle for r in report.rows if r.verdict == "skipped"}
    assert {"hvp_xx_g", "cross_g"} <= skipped
    # ∇²_xy g is still checked, through the verified ∇_y g
    row, = [r for r in report.rows if r.oracle == "hess_g" and "∇²_xy" in r.check]
    assert row.verdict == "pass" and "from ∇_y g" in row.note


def test_factor_two_in_a_minimax_hvp_and_too_large_mu_y():
    base = make_quadratic_minimax(3, 3, seed=2)
    assert check_problem(base).ok
    cls = type("Seeded", (type(base),), {
        "hvp_yy_f": lambda self, x, y, v, batch=None: 2.0 * (-self.D @ v),
        "constants": lambda self: dict(type(base).constants(self), mu_y=2.0 * self.mu)})
    report = check_problem(cls(base.P, base.B, base.D, base.p, base.q))
    assert set(report.failed_oracles) == {"hvp_yy_f", "constants"}, report.to_table()


class _Tiny(BilevelProblem):
    """f = Σ(c|x_i|³ + x_i²) + ½‖y‖²,  g = ½yᵀAy − yᵀx: a kink in f''' at x_i = 0 when c ≠ 0."""

    name = "tiny"

    def __init__(self, A, c=0.0):
        self.A, self.c = np.asarray(A, float), c
        self.dx = self.dy = self.A.shape[0]

    def f(self, x, y, batch=None):
        return float(np.sum(self.c * np.abs(x) ** 3 + x ** 2) + 0.5 * y @ y)

    def g(self, x, y, batch=None):
        return float(0.5 * y @ self.A @ y - y @ x)

    def grad_f(self, x, y, batch=None):
        return 3 * self.c * x * np.abs(x) + 2 * x, y.copy()

    def grad_g(self, x, y, batch=None):
        return -y, self.A @ y - x

    def hess_f(self, x, y, batch=None):
        return np.diag(6 * self.c * np.abs(x) + 2), np.zeros((self.dx, self.dy)), np.eye(self.dy)

    def hess_g(self, x, y, batch=None):
        return np.zeros((self.dx, self.dx)), -np.eye(self.dx), self.A.copy()


def test_g_not_strongly_convex_in_y_fails_on_g():
    report = check_problem(_Tiny(np.diag([1.0, -0.5, 2.0])))
    assert report.failed_oracles == ["g"], report.to_table()
    row, = report.failures
    assert "strongly convex" in row.check and "λ_min = -0.5" in row.note


def test_ill_conditioned_but_strongly_convex_g_passes():
    report = check_problem(_Tiny(np.diag([1e-7, 1.0, 3.0])))
    assert report.ok, report.to_table()


def test_difference_across_a_kink_is_retried_with_a_smaller_step():
    # at x = 0, ∇(|x|³) has a kink in its derivative: the FD error is O(h), 1.5h relative here
    report = check_problem(_Tiny(np.eye(3), c=1.0), np.zeros(3))
    assert report.ok, report.to_table()
    row, = [r for r in report.rows if r.oracle == "hess_f" and "∇²_xx" in r.check and "FD" in r.check]
    assert "at step h/8" in row.note


# ---------------------------------------------------------------------------
# misbehaving oracles: a FAIL row naming them, never a traceback
# ---------------------------------------------------------------------------
BROKEN = {
    "raises": ("cross_t_g", lambda self, x, y, u, batch=None: 1 / 0, "raised ZeroDivisionError"),
    "wrong shape": ("hvp_xx_g", lambda self, x, y, u, batch=None: np.zeros(3), "shape (3,), expected (4,)"),
    "NaN": ("hvp_yy_g", lambda self, x, y, v, batch=None: np.full(4, np.nan), "NaN"),
    "inf in a tuple": ("grad_f", lambda self, x, y, batch=None: (np.full(4, np.inf), self.S @ y),
                       "grad_f ∇_x returned inf"),
    "complex dtype": ("cross_g", lambda self, x, y, v, batch=None: (self.C.T @ v).astype(complex),
                      "dtype complex128"),
    "None": ("y_star", lambda self, x: None, "returned None"),
    "short tuple": ("hess_f", lambda self, x, y, batch=None: (self.P, self.R), "tuple of 3 arrays"),
    "scalar for a vector": ("hvp_yy_f", lambda self, x, y, v, batch=None: 1.0, "shape ()"),
    "vector for a scalar": ("g", lambda self, x, y, batch=None: np.zeros(1), "shape (1,), expected ()"),
}


@pytest.mark.parametrize("case", BROKEN)
def test_misbehaving_oracle_is_a_fail_row_naming_it(case):
    oracle, method, reason = BROKEN[case]
    report = check_problem(_variant(**{oracle: method}))
    rows = [r for r in report.failures if r.oracle == oracle]
    assert rows and rows[0].check == "output" and reason in rows[0].note, report.to_table()
    assert oracle in report.failed_oracles and not report.ok


def test_checks_needing_a_broken_oracle_are_skipped_not_failed():
    report = check_problem(_variant(f=lambda self, x, y, batch=None: float("nan")))
    assert report.failed_oracles[0] == "f" and "NaN" in report.failures[0].note
    grad_rows = [r for r in report.rows if r.oracle == "grad_f"]
    assert grad_rows and all(r.verdict == "skipped" and "needs f" in r.note for r in grad_rows)


def test_invalid_constants_are_a_fail_row():
    report = check_problem(_variant(constants=lambda self: {"mu-g": 0.1}))
    row, = report.failures
    assert row.oracle == "constants" and "did you mean 'mu_g'" in row.note


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="x must have"):
        check_problem(_BASE, np.zeros(3))
    with pytest.raises(ValueError, match="rtol"):
        check_problem(_BASE, rtol=-1.0)
    with pytest.raises(TypeError, match="protocol"):
        check_problem(object())


# ---------------------------------------------------------------------------
# the result object and the tolerances
# ---------------------------------------------------------------------------
def test_result_table_and_json():
    report = check_problem(_variant(**BUGS["factor 2 in an HVP"][0]))
    assert isinstance(report, ProblemCheck) and str(report) == report.to_table()
    table = report.to_table()
    for word in ("oracle", "max rel. error", "tolerance", "verdict", "FAIL", "hvp_yy_g", "FAILED"):
        assert word in table
    data = json.loads(report.to_json())
    assert data["ok"] is False and data["failed_oracles"] == ["hvp_yy_g"]
    assert {"oracle", "check", "error", "tolerance", "verdict", "note"} == set(data["rows"][0])
    assert len(data["rows"]) == len(report.rows) and len(data["x"]) == 4


def test_default_tolerances_follow_the_precision_and_rtol_overrides():
    report = check_problem(_BASE)
    eps = np.finfo(float).eps
    assert report.eps == eps and report.step == pytest.approx(eps ** (1 / 3))
    assert report.tol_fd == pytest.approx(eps ** (1 / 3)) and report.tol_exact == pytest.approx(eps ** 0.5)
    loose = check_problem(_BASE, rtol=1e-3)
    assert {r.tolerance for r in loose.rows if r.tolerance is not None} == {1e-3}
    # a problem declaring float32 data is checked at float32 precision
    f32 = build_problem("finite-sum-quadratic", n_inner=16, n_outer=16, dim_inner=4, dim_outer=3,
                        dtype="float32")[0]
    assert check_problem(f32).eps == np.finfo(np.float32).eps


def test_same_seed_same_report_and_large_dimensions_are_subsampled():
    problem = quadratic_bilevel(80, 5, seed=0)
    a, b = check_problem(problem, seed=4), check_problem(problem, seed=4)
    assert a.to_json() == b.to_json() and a.ok
    assert any("on 64 random x-coordinates of 80" in r.note for r in a.rows)


def test_fd_helpers():
    fun = lambda z: np.sin(z[0]) * z[1] ** 2  # noqa: E731
    z = np.array([0.3, -2.0])
    exact = np.array([np.cos(0.3) * 4.0, 2 * np.sin(0.3) * -2.0])
    np.testing.assert_allclose(fd_gradient(fun, z), exact, rtol=1e-9)
    grad = lambda t: np.array([np.cos(t[0]) * t[1] ** 2, 2 * np.sin(t[0]) * t[1]])  # noqa: E731
    jac = fd_jacobian(grad, z)
    np.testing.assert_allclose(jac, jac.T, rtol=1e-8)
    np.testing.assert_allclose(fd_directional(grad, z, np.array([1.0, 0.0])), jac[:, 0], rtol=1e-8)
    assert fd_step(np.array([0.5, -3.0])) == pytest.approx(3 * np.finfo(float).eps ** (1 / 3))
    assert fd_step(np.zeros(2), np.array([0.0, 4.0])) == pytest.approx(np.finfo(float).eps ** (1 / 3) / 4)


# ---------------------------------------------------------------------------
# command line
# ---------------------------------------------------------------------------
def test_cli_passes_on_a_library_factory(capsys):
    code = main(["bilevel_ref.problems:quadratic_bilevel", "--param", "dx=3", "--param", "dy=3",
                 "--seed", "2"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "hvp_yy_g" in out and "OK:" in out and "verdict" in out


@pytest.fixture
def factories(tmp_path, monkeypatch):
    (tmp_path / "my_factories.py").write_text(textwrap.dedent("""
        from bilevel_ref.problems import QuadraticBilevel, quadratic_bilevel

        class Buggy(QuadraticBilevel):
            def hvp_yy_g(self, x, y, v, batch=None):
                return 2.0 * (self.A @ v)

        def good():
            return quadratic_bilevel(4, 4, seed=0)

        def buggy():
            b = quadratic_bilevel(4, 4, seed=0)
            return Buggy(b.P, b.R, b.S, b.p, b.q, b.A, b.C, b.E, b.a, b.b)

        instance = good()

        def broken():
            raise RuntimeError("no data")
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


def test_cli_exit_codes(factories, capsys):
    assert main(["my_factories:good"]) == 0
    assert main(["my_factories:instance", "--x", "0.5", "--y", "1,2,3,4"]) == 0
    (factories / "x.txt").write_text("0.1, 0.2\n0.3 0.4\n")
    np.save(factories / "y.npy", np.ones(4))
    assert main(["my_factories:good", "--x", str(factories / "x.txt"), "--y", str(factories / "y.npy")]) == 0
    assert main(["my_factories:buggy"]) == 1
    out = capsys.readouterr().out
    assert "FAIL" in out and "hvp_yy_g" in out
    assert main([str(factories / "my_factories.py") + ":buggy", "--json"]) == 1
    assert json.loads(capsys.readouterr().out)["failed_oracles"] == ["hvp_yy_g"]
    for argv in (["my_factories"], ["no_such_module_xyz:make"], ["my_factories:missing"],
                 ["my_factories:broken"], ["my_factories:good", "--x", "1,2"], ["my_factories:good", "--x", "a"],
                 ["my_factories:instance", "--param", "dx=3"], ["my_factories:good", "--param", "seed"], []):
        assert main(argv) == 2, argv
    assert "error" in capsys.readouterr().err


def test_python_m_runs_the_command(factories):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(Path(bilevel_ref.__file__).parents[1]),
                                                        str(factories)]))
    proc = subprocess.run([sys.executable, "-W", "ignore::RuntimeWarning", "-m", "bilevel_ref.check",
                           "my_factories:buggy"], capture_output=True, text=True, env=env, cwd=factories,
                          timeout=120)
    assert proc.returncode == 1, proc.stderr
    assert "hvp_yy_g" in proc.stdout and "FAILED" in proc.stdout


def test_cli_dispatches_check_problem(capsys):
    from bilevel_ref.cli import main as cli_main

    assert cli_main(["check-problem", "bilevel_ref.problems:quadratic_bilevel",
                     "--param", "dx=3", "--param", "dy=2"]) == 0
    assert "grad_g" in capsys.readouterr().out
