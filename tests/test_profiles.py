"""Profiles in oracle units (bilevel_ref.profiles): curves against hand-computed tables,
convergence tests with a known f_L, ECDFs on synthetic histories, determinism, CSV, CLI, bad input."""
import csv
import math

import numpy as np
import pytest
import scipy.optimize

from bilevel_ref import profiles
from bilevel_ref.oracles import COUNT_KINDS
from bilevel_ref.profiles import (BENCHOPT_COLUMNS, Run, closed_form_minimum, compute_profiles, data_profile,
                                  ecdf, performance_profile, performance_ratios, run_profiles)
from bilevel_ref.profiles.targets import first_hit, passes

INF = math.inf

# 4 problems x 3 methods; ratios by hand:
#   p1: best 10 -> (1, 2, inf); p2: best 15 -> (2, 1, 1); p3: nobody; p4: best 5 -> (1, 1, 10)
COSTS = [[10, 20, INF],
         [30, 15, 15],
         [INF, np.nan, INF],
         [5, 5, 50]]


def test_performance_ratios_by_hand():
    r = performance_ratios(COSTS)
    expected = [[1, 2, INF], [2, 1, 1], [INF, INF, INF], [1, 1, 10]]
    np.testing.assert_array_equal(r, expected)


def test_performance_profile_by_hand():
    alphas, rho = performance_profile(COSTS, [1.0, 1.5, 2.0, 9.99, 10.0, 1e6])
    np.testing.assert_array_equal(alphas, [1.0, 1.5, 2.0, 9.99, 10.0, 1e6])
    np.testing.assert_array_equal(rho[0], [2 / 4, 2 / 4, 3 / 4, 3 / 4, 3 / 4, 3 / 4])
    np.testing.assert_array_equal(rho[1], [2 / 4, 2 / 4, 3 / 4, 3 / 4, 3 / 4, 3 / 4])
    np.testing.assert_array_equal(rho[2], [1 / 4, 1 / 4, 1 / 4, 1 / 4, 2 / 4, 2 / 4])
    # default grid: the breakpoints 1, 2, 10
    alphas, rho = performance_profile(COSTS)
    np.testing.assert_array_equal(alphas, [1.0, 2.0, 10.0])
    np.testing.assert_array_equal(rho[2], [0.25, 0.25, 0.5])


def test_performance_profile_zero_costs():
    # 0/0 = 1 (both need none of the counted oracle), t/0 = inf for t > 0
    np.testing.assert_array_equal(performance_ratios([[0, 3], [0, 0], [2, 4]]), [[1, INF], [1, 1], [1, 2]])


def test_data_profile_by_hand():
    # units 2 and 5 (d_x = 1 and 4): scaled costs [[5, 10], [6, inf]]
    kappas, d = data_profile([[10, 20], [30, INF]], [4.9, 5, 6, 10, 1e9], units=[2, 5])
    np.testing.assert_array_equal(d[0], [0, 0.5, 1, 1, 1])
    np.testing.assert_array_equal(d[1], [0, 0, 0, 0.5, 0.5])
    kappas, d = data_profile([[10, 20], [30, INF]], units=[2, 5])
    np.testing.assert_array_equal(kappas, [5, 6, 10])


def test_ecdf_by_hand():
    grid, frac = ecdf([3, INF, 1, 3], [0, 1, 2, 3, 100])
    np.testing.assert_array_equal(frac, [0, 0.25, 0.25, 0.75, 0.75])
    grid, frac = ecdf([3, INF, 1, 3])
    np.testing.assert_array_equal(grid, [1, 3])
    np.testing.assert_array_equal(frac, [0.25, 0.75])


def test_value_test_with_known_f_L():
    # f(x0) = 3, f_L = 1: pass when 3 - f >= (1 - tau) * 2
    values = [3.0, 2.0, 1.1, 1.05, 1.0005, 1.0]
    assert first_hit(passes("phi", 0.1, values, f_L=1.0)) == 2       # f <= 1.2
    assert first_hit(passes("phi", 1e-3, values, f_L=1.0)) == 4      # f <= 1.002
    assert first_hit(passes("phi", 1e-6, values, f_L=1.0)) == 5
    assert first_hit(passes("phi", 1e-6, values[:5], f_L=1.0)) is None
    assert first_hit(passes("phi", 0.1, [3.0, np.nan, 1.0], f_L=1.0)) == 2  # NaN never passes
    assert first_hit(passes("grad_norm", 1e-3, [4.0, 2.0, 0.5, 0.003])) == 3  # <= 0.004


def test_closed_form_minimum_of_the_quadratic():
    from bilevel_ref.problems.catalog import build_problem

    problem, x0 = build_problem("quadratic", seed=3, dx=5, dy=5)
    star = closed_form_minimum(problem)
    # truth from outside: scipy's BFGS on the closed-form phi
    res = scipy.optimize.minimize(problem.phi, x0, jac=problem.grad_phi, method="BFGS",
                                  options={"gtol": 1e-12, "maxiter": 10_000})
    assert star == pytest.approx(res.fun, rel=1e-10, abs=1e-12)
    assert closed_form_minimum(build_problem("quartic-quadratic", seed=0)[0]) is None


def _run(method, objective, counts, *, problem="p", seed=0, phi_star=None, grad=None, status="budget"):
    n = len(objective)
    full = {k: np.zeros(n, dtype=np.int64) for k in COUNT_KINDS}
    full.update({k: np.asarray(v, dtype=np.int64) for k, v in counts.items()})
    return Run(method, problem, seed, 3, status, "", np.arange(n), np.zeros(n), full,
               np.asarray(objective, dtype=float), "phi", None if grad is None else np.asarray(grad, float),
               phi_star)


def _synthetic():
    # f(x0) = 10, f_L = phi* = 1.  tau = 0.5: f <= 5.5; tau = 0.01: f <= 1.09.
    a = _run("A", [10, 5, 2, 1], {"grad_f": [0, 3, 6, 9], "hvp_yy_g": [0, 10, 20, 30]}, phi_star=1.0)
    b = _run("B", [10, 8, 6, 4], {"grad_f": [0, 2, 4, 6], "grad_g": [1, 2, 3, 4]}, phi_star=1.0)
    return compute_profiles([a, b], [0.5, 0.01], cost="total", data_unit="calls")


def test_costs_to_target_on_synthetic_histories():
    pset = _synthetic()
    assert pset.f_L == {("p", 0): 1.0}
    hits = {(h["method"], h["tau"]): h for h in pset.hits()}
    assert hits["A", 0.5]["nit"] == 1 and hits["A", 0.5]["cost_total"] == 13
    assert hits["A", 0.01]["nit"] == 3 and hits["A", 0.01]["cost_hvp_yy_g"] == 30
    assert hits["B", 0.5]["nit"] == 3 and hits["B", 0.5]["cost_total"] == 10
    assert hits["B", 0.5]["cost_second_order"] == 0 and hits["B", 0.5]["cost_first_order"] == 10
    assert not hits["B", 0.01]["solved"] and hits["B", 0.01]["cost_total"] == INF
    np.testing.assert_array_equal(pset.cost_matrix(0.5), [[13, 10]])
    np.testing.assert_array_equal(pset.cost_matrix(0.5, "hvp_yy_g"), [[10, 0]])


def test_ecdf_monotone_and_hits_right_counts():
    pset = _synthetic()
    curves = pset.ecdf("hvp_yy_g")
    grid, frac_a = curves["A"]
    np.testing.assert_array_equal(grid, [0, 10, 30])
    np.testing.assert_array_equal(frac_a, [0, 0.5, 1.0])           # A: 10 and 30 calls
    np.testing.assert_array_equal(curves["B"][1], [0.5, 0.5, 0.5])  # B: 0 calls, then never
    for kind in pset.ecdf_kinds():
        for _, frac in pset.ecdf(kind).values():
            assert np.all(np.diff(frac) >= 0)
    assert pset.ecdf_kinds() == ["total", "grad_f", "grad_g", "hvp_yy_g"]


def test_reference_value_is_best_found_without_closed_form():
    a = _run("A", [10, 5, 2], {"grad_f": [0, 1, 2]})
    b = _run("B", [10, 4, 3, np.nan], {"grad_f": [0, 1, 2, 3]})
    pset = compute_profiles([a, b], 0.5, data_unit="calls")
    assert pset.f_L == {("p", 0): 2.0}
    # tau = 0.5: f <= 10 - 0.5 * 8 = 6 -> both at iteration 1
    np.testing.assert_array_equal(pset.cost_matrix(0.5), [[1, 1]])


def test_data_unit_dim_divides_by_dx_plus_one():
    pset = compute_profiles(_synthetic().runs, [0.5], data_unit="dim")
    kappas, d = pset.data(0.5)
    np.testing.assert_array_equal(kappas, [10 / 4, 13 / 4])  # d_x = 3
    np.testing.assert_array_equal(d, [[0, 1], [1, 1]])


METHODS = ["aid", "itd", "f2ba", "f2sa_p", "fsba", "lfsba"]
# cheap closed forms (hard-gd's and hard-cubic's ∇φ cost ~10 ms a call, evaluated at every iteration)
PROBLEMS = ["quadratic[dx=4;dy=4]", "quartic-quadratic[dx=3;dy=3]", "quadratic[dx=6;dy=3;kappa=100]", "hard-ramp",
            "hard-chain[T=5]"]


@pytest.fixture(scope="module")
def small_runs():
    return run_profiles(METHODS[:3], PROBLEMS[:2], [0, 1], budget=300)


def test_runs_are_deterministic_and_independent_of_n_jobs(small_runs, tmp_path):
    again = run_profiles(METHODS[:3], PROBLEMS[:2], [0, 1], budget=300)
    parallel = run_profiles(METHODS[:3], PROBLEMS[:2], [0, 1], budget=300, n_jobs=2)
    for runs in (again, parallel):
        assert [(r.method, r.problem, r.seed) for r in runs] == [(r.method, r.problem, r.seed) for r in small_runs]
        for r, s in zip(runs, small_runs):
            np.testing.assert_array_equal(r.objective, s.objective)
            np.testing.assert_array_equal(r.grad_norm, s.grad_norm)
            for k in COUNT_KINDS:
                np.testing.assert_array_equal(r.counts[k], s.counts[k])
    texts = []
    for i, runs in enumerate((small_runs, parallel)):
        pset = compute_profiles(runs, [0.1, 1e-3])
        paths = [profiles.write_hits_csv(tmp_path / f"h{i}.csv", pset),
                 profiles.write_curves_csv(tmp_path / f"c{i}.csv", pset)]
        texts.append([open(p, encoding="utf-8").read() for p in paths])
    assert texts[0] == texts[1]


def test_runs_record_the_closed_forms(small_runs):
    run = small_runs[0]
    assert run.problem == "quadratic[dx=4;dy=4]" and run.objective_source == "phi"
    assert run.phi_star is not None and np.all(run.objective >= run.phi_star - 1e-12)
    assert run.nit[0] == 0 and np.all(np.diff(run.nit) == 1)  # every iteration recorded
    total = sum(run.counts[k] for k in COUNT_KINDS if k != "samples")
    assert np.all(np.diff(total) >= 0) and total[-1] <= 300


def test_benchopt_csv_columns(small_runs, tmp_path):
    path = profiles.write_benchopt_csv(tmp_path / "b.csv", small_runs)
    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    # benchopt's result columns (benchopt docs, "Manage benchmark results")
    for col in ("objective_name", "data_name", "solver_name", "idx_rep", "stop_val", "time", "objective_value"):
        assert col in rows[0]
    assert set(BENCHOPT_COLUMNS) <= set(rows[0])
    assert {r["solver_name"] for r in rows} == set(METHODS[:3])
    assert {int(r["idx_rep"]) for r in rows} == {0, 1}
    assert sum(len(r.nit) for r in small_runs) == len(rows)
    first = [r for r in rows if r["solver_name"] == "aid" and r["idx_rep"] == "0" and r["data_name"] == PROBLEMS[0]]
    assert [int(r["stop_val"]) for r in first] == list(small_runs[0].nit)
    np.testing.assert_array_equal([float(r["objective_value"]) for r in first], small_runs[0].objective)


def test_skipped_method_is_a_failure():
    # a minimax method cannot run on a bilevel problem: a failure (inf), not an error
    runs = run_profiles(["aid", "gda"], ["quadratic[dx=2;dy=2]"], [0], budget=200)
    assert runs[1].status == "skipped" and "MinimaxProblem" in runs[1].message
    assert len(runs[1].nit) == 0 and runs[0].ran
    pset = compute_profiles(runs, [0.5])
    assert pset.cost_matrix(0.5)[0, 1] == INF and np.isfinite(pset.cost_matrix(0.5)[0, 0])
    assert not any(r["solver_name"] == "gda" for r in profiles.benchopt_rows(runs))


def test_cli_six_methods_five_problems(tmp_path):
    from bilevel_ref.cli import main

    out = tmp_path / "out"
    argv = ["profiles", "--methods", ",".join(METHODS), "--problems", ",".join(PROBLEMS), "--seeds", "0",
            "--tau", "1e-1,1e-3", "--budget", "300", "--out", str(out), "--no-progress"]
    assert main(argv) == 0
    for name in ("performance", "data", "ecdf"):
        with open(out / f"profiles-{name}.png", "rb") as fh:
            assert fh.read(8) == b"\x89PNG\r\n\x1a\n"
    with open(out / "profiles-hits.csv", newline="", encoding="utf-8") as fh:
        hits = list(csv.DictReader(fh))
    assert len(hits) == 6 * 5 * 2
    assert {h["method"] for h in hits} == set(METHODS) and {h["problem"] for h in hits} == set(PROBLEMS)
    before = (out / "profiles-hits.csv").read_bytes()
    assert main(argv) == 2  # existing files are kept, nothing is run
    assert (out / "profiles-hits.csv").read_bytes() == before
    small = ["profiles", "--methods", "aid", "--problems", "quadratic[dx=2;dy=2]", "--budget", "50", "--out",
             str(out), "--no-plot", "--no-progress"]
    assert main(small + ["--overwrite"]) == 0
    assert (out / "profiles-hits.csv").read_bytes() != before


@pytest.mark.parametrize("kwargs, match", [
    ({"measure": "value"}, r"measure must be one of \['phi', 'grad_norm'\]"),
    ({"cost": "seconds"}, r"cost must be one of \['total', 'first_order'"),
    ({"data_unit": "simplex"}, r"data_unit must be one of \['dim', 'calls'\]"),
    ({"tau": 0.0}, r"tau must lie in the open interval \(0, 1\)"),
    ({"tau": [0.1, 1.0]}, r"tau must lie in the open interval"),
    ({"tau": -1e-3}, r"tau must lie in the open interval"),
    ({"tau": []}, r"at least one value"),
])
def test_bad_profile_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        profiles.profile(["aid"], ["quadratic"], **kwargs)  # checked before any run
    with pytest.raises(ValueError, match=match):
        compute_profiles(_synthetic().runs, **{"tau": 0.5, **kwargs})


@pytest.mark.parametrize("kwargs, match", [
    ({"methods": ["aid", "nosuch"]}, r"unknown method\(s\) \['nosuch'\]"),
    ({"problems": ["quadratic", "nosuch"]}, r"unknown problem\(s\) \['nosuch'\]"),
    ({"problems": ["quadratic[nosuch=1]"]}, r"unknown parameter"),
    ({"seeds": [0, 0]}, r"distinct"),
    ({"budget": 0}, r"budget must be >= 1"),
])
def test_bad_run_arguments(kwargs, match):
    args = {"methods": ["aid"], "problems": ["quadratic"], "seeds": [0], **kwargs}
    with pytest.raises(ValueError, match=match):
        run_profiles(args.pop("methods"), args.pop("problems"), args.pop("seeds"), **args)


def test_grad_norm_measure_needs_closed_form():
    runs = run_profiles(["aid"], ["logistic-regularization[n_train=50;n_val=50;d=3]"], [0], budget=100)
    with pytest.raises(ValueError, match=r"grad_norm.*logistic-regularization"):
        compute_profiles(runs, 0.1, measure="grad_norm")
    assert compute_profiles(runs, 0.1, measure="phi").runs[0].objective_source == "f"


def test_bad_curve_inputs():
    with pytest.raises(ValueError, match="costs must be >= 0"):
        performance_profile([[1, -1]])
    with pytest.raises(ValueError, match="2-D"):
        performance_profile([1, 2])
    with pytest.raises(ValueError, match="units"):
        data_profile([[1, 2]], units=[0])


def test_cli_bad_measure_and_tau(tmp_path, capsys):
    from bilevel_ref.profiles.cli import main

    assert main(["--measure", "value", "--out", str(tmp_path)]) == 2
    assert "measure must be one of ['phi', 'grad_norm']" in capsys.readouterr().err
    assert main(["--tau", "1.5", "--out", str(tmp_path)]) == 2
    assert "tau must lie in the open interval (0, 1)" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())  # nothing run, nothing written
