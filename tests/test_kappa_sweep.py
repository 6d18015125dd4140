"""κ-sweeps: the command line, the theory table's κ entries, the Nesterov-chain worst case.

Truth from outside the code: the chain's spectrum has a closed form (Nesterov 2004,
§2.1.4), y*, φ, ∇φ are checked against a dense solve and finite differences, and
the fitted κ exponents are compared with the tight inner-solver exponents (CG √κ,
GD/Neumann κ) that the chain attains.
"""
import json
import math

import numpy as np
import pytest

from bilevel_ref import check_problem
from bilevel_ref import complexity as C
from bilevel_ref.complexity.cli import main as complexity_main
from bilevel_ref.complexity.theory import THEORY, theory_kappa_exponent
from bilevel_ref.problems.catalog import build_problem
from bilevel_ref.problems.hard_kappa import (ChainKappaBilevel, chain_matrix, chain_spectrum,
                                             default_chain_length)

from bilevel_ref.check import fd_gradient, fd_jacobian


# ---------------------------------------------------------------------------
# the chain instance: closed forms
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("kappa", [10.0, 400.0])
def test_chain_closed_forms_against_a_dense_solve(kappa):
    p = ChainKappaBilevel(kappa)
    A = chain_matrix(p.n, p.mu, p.L)
    lam = np.linalg.eigvalsh(A)
    np.testing.assert_allclose(lam, chain_spectrum(p.n, p.mu, p.L), rtol=1e-12, atol=1e-14)
    assert lam[0] > p.L / kappa and lam[-1] < p.L  # spectrum inside [mu, L]
    assert p.constants()["mu_g"] == pytest.approx(lam[0], rel=1e-12)
    assert p.constants()["L_g"] == pytest.approx(lam[-1], rel=1e-12)
    x = np.array([0.7])
    # y* solves the stationarity condition of g: A y = sigma x e_1
    y = np.linalg.solve(A, np.eye(p.n)[0] * p.sigma * x[0])
    np.testing.assert_allclose(p.y_star(x), y, rtol=1e-10, atol=1e-14)
    assert p.y_star(x)[0] == pytest.approx(x[0], rel=1e-12)  # w_1 = 1 by the choice of sigma
    np.testing.assert_allclose(p.grad_g(x, p.y_star(x))[1], 0.0, atol=1e-12)
    assert p.phi(x) == pytest.approx(p.f(x, y), rel=1e-12)
    np.testing.assert_allclose(p.grad_phi(x), fd_gradient(p.phi, x), rtol=1e-7)
    np.testing.assert_allclose(p.hess_phi(x), fd_jacobian(p.grad_phi, x), rtol=1e-7)
    # oracles against central differences at a random point (x, y)
    rng = np.random.default_rng(0)
    yr = rng.standard_normal(p.n)
    for fun, grad in ((p.f, p.grad_f), (p.g, p.grad_g)):
        z = np.concatenate([x, yr])
        fd = fd_gradient(lambda zz: fun(zz[:1], zz[1:]), z)
        np.testing.assert_allclose(np.concatenate(grad(x, yr)), fd, rtol=1e-6, atol=1e-7)
    u = rng.standard_normal(p.n)
    np.testing.assert_allclose(p.hvp_yy_g(x, yr, u), A @ u, rtol=1e-13)
    # the AID hypergradient with the exact v = A^{-1} grad_y f is grad phi
    gx, gy = p.grad_f(x, y)
    v = np.linalg.solve(A, gy)
    np.testing.assert_allclose(gx - p.cross_g(x, y, v), p.grad_phi(x), rtol=1e-10)
    # phi's minimiser
    assert abs(p.grad_phi(p.x_star())[0]) < 1e-14


def test_chain_decays_geometrically_and_needs_its_length():
    # A^{-1} e_1 decays like q^i, q = (sqrt(k) - 1)/(sqrt(k) + 1) (infinite-chain limit)
    kappa = 400.0
    p = ChainKappaBilevel(kappa)
    q = (math.sqrt(kappa) - 1) / (math.sqrt(kappa) + 1)
    ratios = p.w[1:40] / p.w[:39]
    np.testing.assert_allclose(ratios, q, rtol=1e-6)
    assert p.n == default_chain_length(kappa) == 12 * 20 + 20
    # realised condition number close to the nominal one
    assert 0.97 * kappa < p.L_g / p.mu_g < kappa


@pytest.mark.parametrize("kappa", [30.0, 300.0])
def test_chain_passes_check_problem(kappa):
    p, x0 = build_problem("hard-kappa-chain", kappa=kappa)
    for x in (x0, np.array([-0.8])):
        report = check_problem(p, x, seed=2)
        assert report.ok, report.to_table()
        checked = {r.oracle for r in report.rows if r.verdict == "pass"}
        assert {"grad_g", "hvp_yy_g", "cross_g", "y_star", "grad_phi", "hess_phi"} <= checked


@pytest.mark.parametrize("bad", [dict(kappa=1.0), dict(kappa=0.5), dict(kappa=10.0, n=1),
                                 dict(kappa=10.0, alpha=0.0), dict(kappa=10.0, gamma=math.nan)])
def test_chain_rejects_bad_parameters(bad):
    name = [k for k in bad if k != "kappa"] or ["kappa"]
    with pytest.raises(ValueError, match=name[-1]):
        ChainKappaBilevel(**bad)


# ---------------------------------------------------------------------------
# theory table: status of κ exponents
# ---------------------------------------------------------------------------
def test_every_kappa_exponent_has_a_status():
    for row in THEORY:
        if any(k in row for k in ("kappa_first_order", "kappa_second_order", "kappa_iterations")):
            assert row.get("kappa_bound") in ("upper", "tight", "lower"), row["method"]
        if row.get("kappa_inner"):
            assert row.get("kappa_inner_bound") in ("upper", "tight", "lower"), row["method"]
    assert theory_kappa_exponent("aid", "first_order") == (4.0, "upper")
    assert theory_kappa_exponent("aid", "hvp_yy_g", "inner") == (0.5, "tight")
    assert theory_kappa_exponent("f2ba", "grad_g", "inner") == (1.0, "tight")
    assert theory_kappa_exponent("f2ba", "first_order") == (4.0, "upper")
    assert theory_kappa_exponent("lower_bound_kappa", "first_order") == (2.5, "lower")
    assert theory_kappa_exponent("gd", "first_order") == (None, None)
    with pytest.raises(ValueError, match="regime"):
        theory_kappa_exponent("aid", "first_order", "both")


# ---------------------------------------------------------------------------
# kappa_sweep
# ---------------------------------------------------------------------------
_KAPPAS = [10.0, 30.0, 100.0, 300.0, 1000.0]
# every option explicit: the sweep measures these configurations, not defaults derived from tol
_AID_CG = {"linsys_steps": 100_000, "linsys_rtol": 1e-10, "inner_steps": 1, "step_x": 1.0}
_AID_NEUMANN = {"inner": "neumann", "linsys_steps": 10, "inner_steps": 1, "step_x": 1.0}
_F2BA = {"inner_steps": 10, "step_x": 1.0, "lam": 10.0}


def test_aid_cg_recovers_the_tight_sqrt_kappa_exponent_on_the_chain():
    res = C.kappa_sweep("aid", _KAPPAS, 1e-6, problem="hard-kappa-chain",
                        options=_AID_CG, quantities=["second_order"], maxiter=100)
    assert res.regime == "inner" and res.bounds["second_order"] == "tight"
    assert res.theory["second_order"] == 0.5
    ver = res.verdicts["second_order"]
    assert ver["mode"] == "sharp" and ver["pass"], ver
    assert abs(res.fits["second_order"].slope - 0.5) <= 0.1
    # the fit is not forced: the counts grow, and a κ^1 theory would fail
    counts = res.quantity("second_order")[0]
    assert np.all(np.diff(counts) > 0)
    assert not C.verdict(res.fits["second_order"].slope, 1.0, "sharp")["pass"]


def test_aid_neumann_and_f2ba_report_the_gd_exponent_on_the_chain():
    aid = C.kappa_sweep("aid", _KAPPAS, 1e-8, problem="hard-kappa-chain", options=_AID_NEUMANN,
                        quantities=["second_order"], theory=1.0, mode="sharp", maxiter=20_000)
    assert aid.verdicts["second_order"]["pass"], aid.table()
    f2ba = C.kappa_sweep("f2ba", _KAPPAS, 1e-8, problem="hard-kappa-chain", options=_F2BA,
                         quantities=["first_order"], maxiter=20_000)
    assert f2ba.theory["first_order"] == 1.0 and f2ba.bounds["first_order"] == "tight"
    assert f2ba.verdicts["first_order"]["pass"], f2ba.table()
    assert abs(f2ba.fits["first_order"].slope - 1.0) <= 0.1


def test_aid_on_the_quadratic_family_respects_the_upper_bounds():
    res = C.kappa_sweep("aid", [3.0, 10.0, 30.0], 1e-4, dx=5, dy=5,
                        options={"inner_steps": 10, "linsys_steps": 10}, maxiter=20_000)
    assert res.regime == "total"
    for q, b in (("iterations", 3.0), ("first_order", 4.0), ("second_order", 3.5)):
        assert res.theory[q] == b and res.bounds[q] == "upper"
        assert res.verdicts[q]["mode"] == "upper" and res.verdicts[q]["pass"], res.table()
    assert "bound" in res.table() and "upper" in res.table()


def test_f2ba_kappa_exponent_is_reported_on_the_quadratic_family():
    # the penalty bias is ≈ 20/λ here at κ = 3 and grows with κ: λ = 1000 κ² keeps it below ε
    res = C.kappa_sweep("f2ba", [3.0, 10.0, 30.0], 1e-2, dx=4, dy=4,
                        options=lambda k: {"inner_steps": 20, "lam": 1e3 * k * k, "step_x": 0.5},
                        quantities=["first_order"], maxiter=5000)
    assert np.all(np.isfinite(res.quantity("first_order")))
    fit = res.fits["first_order"]
    assert np.isfinite(fit.slope) and res.theory["first_order"] == 4.0
    assert res.verdicts["first_order"]["pass"], res.table()


def test_kappa_dependent_options_and_seeds():
    seen = []

    def opts(kappa):
        seen.append(kappa)
        return {"inner_steps": 10, "linsys_steps": int(10 + kappa)}

    res = C.kappa_sweep("aid", [3.0, 10.0], 1e-3, dx=3, dy=3, seeds=[0, 1], options=opts, n_boot=50)
    assert seen[:2] == [3.0, 10.0]
    assert res.iterations.shape == (2, 2)
    assert res.options["10.0"]["linsys_steps"] == 20


@pytest.mark.parametrize("kappas", [[1.0, 10.0], [0.5, 10.0], [10.0], [10.0, 10.0], [10.0, math.inf],
                                    [-3.0, 10.0]])
def test_kappa_sweep_rejects_bad_kappas(kappas):
    with pytest.raises(ValueError, match="kappas"):
        C.kappa_sweep("aid", kappas, 1e-3)


def test_kappa_sweep_rejects_a_problem_without_kappa():
    with pytest.raises(ValueError, match="kappa"):
        C.kappa_sweep("aid", [3.0, 10.0], 1e-3, problem="quartic-quadratic")
    with pytest.raises(ValueError, match="regime"):
        C.kappa_sweep("aid", [3.0, 10.0], 1e-3, regime="outer")


def test_kappa_sweep_is_deterministic():
    a = C.kappa_sweep("aid", [3.0, 10.0], 1e-4, dx=3, dy=3, quantities=["first_order"])
    b = C.kappa_sweep("aid", [3.0, 10.0], 1e-4, dx=3, dy=3, quantities=["first_order"])
    assert a.to_json()["totals"] == b.to_json()["totals"]
    assert a.fits["first_order"].slope == b.fits["first_order"].slope


def test_kappa_sweep_points_are_the_eps_sweeps_of_each_kappa():
    """Each κ column is what eps_sweep gives on that κ's problem with all seeds at once (an independent
    route: eps_sweep's own multi-seed path)."""
    res = C.kappa_sweep("aid", [3.0, 10.0], 1e-4, dx=3, dy=3, seeds=[0, 1], quantities=["first_order"],
                        n_boot=20)
    for j, kappa in enumerate([3.0, 10.0]):
        ref = C.eps_sweep("aid", "quadratic", [1e-4], problem_params={"dx": 3, "dy": 3, "kappa": kappa},
                          seeds=[0, 1], quantities=[], single_run=False)
        assert np.array_equal(res.iterations[:, j], ref.iterations[:, 0])
        for kind, counts in ref.counts.items():
            assert np.array_equal(res.counts[kind][:, j], counts[:, 0]), kind


def test_kappa_sweep_in_parallel_gives_the_serial_result():
    kw = dict(dx=3, dy=3, seeds=[0, 1], quantities=["first_order"], n_boot=20)
    serial = C.kappa_sweep("aid", [3.0, 10.0, 30.0], 1e-4, **kw)
    parallel = C.kappa_sweep("aid", [3.0, 10.0, 30.0], 1e-4, n_jobs=2, progress=False, **kw)
    assert serial.to_json()["totals"] == parallel.to_json()["totals"]
    assert np.array_equal(serial.iterations, parallel.iterations)
    assert serial.fits["first_order"].slope == parallel.fits["first_order"].slope


def test_kappa_sweep_checks_its_parallel_arguments():
    with pytest.raises(ValueError, match="n_jobs"):
        C.kappa_sweep("aid", [3.0, 10.0], 1e-3, n_jobs=0)
    with pytest.raises(ValueError, match="parallel"):
        C.kappa_sweep("aid", [3.0, 10.0], 1e-3, parallel="threads")


# ---------------------------------------------------------------------------
# command line
# ---------------------------------------------------------------------------
def test_cli_kappa_sweep_writes_table_json_and_plot(tmp_path, capsys):
    out_json, out_png = tmp_path / "k.json", tmp_path / "k.png"
    rc = complexity_main(["aid", "hard-kappa-chain", "--sweep", "kappa", "--kappas", "10,30,100,300",
                          "--eps", "1e-6", "--option", "linsys_steps=100000", "--option", "inner_steps=1",
                          "--option", "linsys_rtol=1e-10", "--option", "step_x=1.0",
                          "--quantity", "second_order", "--json", str(out_json), "--plot", str(out_png),
                          "--strict"])
    text = capsys.readouterr().out
    assert rc == 0, text
    assert "regime=inner" in text and "tight" in text and "PASS" in text
    data = json.loads(out_json.read_text())
    assert data["variable"] == "kappa" and data["grid"] == [10.0, 30.0, 100.0, 300.0]
    assert data["bounds"] == {"second_order": "tight"} and data["eps"] == 1e-6
    assert abs(data["fits"]["second_order"]["slope"] - 0.5) <= 0.1
    assert out_png.stat().st_size > 1000


def test_cli_kappa_option_and_regime(capsys):
    rc = complexity_main(["aid", "quadratic", "--sweep", "kappa", "--kappas", "3,10", "--eps", "1e-3",
                          "--param", "dx=3", "--param", "dy=3",
                          "--kappa-option", "linsys_steps=ceil(5*sqrt(kappa))",
                          "--regime", "inner", "--quantity", "second_order"])
    text = capsys.readouterr().out
    assert rc == 0 and "regime=inner" in text and "0.5000" in text


def test_cli_kappa_sweep_takes_n_jobs(capsys):
    """--n-jobs reaches the κ-sweep (no longer ignored): a parallel run prints the serial table."""
    base = ["aid", "quadratic", "--sweep", "kappa", "--kappas", "3,10", "--eps", "1e-3", "--param", "dx=3",
            "--param", "dy=3", "--quantity", "first_order"]
    assert complexity_main(base) == 0
    serial = capsys.readouterr().out.splitlines()[1:]   # the first line holds the elapsed time
    assert complexity_main(base + ["--n-jobs", "2"]) == 0
    out = capsys.readouterr()
    assert out.out.splitlines()[1:] == serial and "ignored" not in out.err
    assert complexity_main(base + ["--n-jobs", "0"]) == 2
    assert "n_jobs" in capsys.readouterr().err


@pytest.mark.parametrize("value, words", [("1,10", "> 1"), ("0.5,10", "> 1"), ("-2,10", "> 1"),
                                          ("10,abc", "numbers"), ("abc", "numbers"), ("10", "two")])
def test_cli_rejects_bad_kappas_naming_the_option(value, words, capsys):
    with pytest.raises(SystemExit) as info:
        complexity_main(["aid", "quadratic", "--sweep", "kappa", f"--kappas={value}"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "--kappas" in err and words in err


def test_cli_kappa_sweep_rejects_several_eps_and_eps_options(capsys):
    assert complexity_main(["aid", "quadratic", "--sweep", "kappa", "--kappas", "3,10",
                            "--eps", "1e-3", "1e-4"]) == 2
    assert "one --eps" in capsys.readouterr().err
    assert complexity_main(["aid", "quadratic", "--sweep", "kappa", "--kappas", "3,10",
                            "--eps-option", "lam=1/eps"]) == 2
    assert "--kappa-option" in capsys.readouterr().err


def test_cli_names_a_malformed_swept_option(capsys):
    base = ["aid", "quadratic", "--param", "dx=3", "--param", "dy=3"]
    rc = complexity_main(base + ["--sweep", "kappa", "--kappas", "3,10", "--kappa-option", "linsys_steps"])
    assert rc == 2 and "--kappa-option must look like NAME=EXPR, got 'linsys_steps'" in capsys.readouterr().err
    with pytest.raises(SystemExit, match="--eps-option must look like NAME=EXPR, got 'lam'"):
        complexity_main(base + ["--eps", "1e-2", "1e-3", "--eps-option", "lam"])
