"""`bilevel-ref compare`: common budget, skipped methods, outputs, option overrides, errors."""
import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

from bilevel_ref import compare
from bilevel_ref.exceptions import BilevelRefWarning, OptionError
from bilevel_ref.cli import main as cli_main
from bilevel_ref.problems.catalog import build_problem


def _run(tmp_path, *args):
    out = tmp_path / "out"
    rc = compare.main(["--out", str(out), "--no-progress", *args])
    files = sorted(out.glob("*.json")) if out.exists() else []
    return rc, (json.loads(files[-1].read_text()) if files else None), out


def test_hyper_cleaning_run_respects_budget_and_skips_unknown(tmp_path, capsys):
    with pytest.warns(BilevelRefWarning, match="f2ba has no option 'linsys_steps'"):
        rc, rec, out = _run(tmp_path, "--problem", "hyper-cleaning-synthetic", "--param", "n_train=60",
                            "--param", "n_val=40", "--methods", "aid,f2ba,no-such-method", "--budget", "400",
                            "--skip-missing",
                            "--option", "aid:inner_steps=5", "--option", "linsys_steps=3")
    text = capsys.readouterr().out
    assert rc == 0
    assert "no-such-method" in text and "skipped" in text
    assert set(rec["runs"]) == {"aid", "f2ba"} and "no_such_method" in rec["skipped"]
    for name, run in rec["runs"].items():
        assert run["calls"] <= 400
        assert run["calls"] == sum(v for k, v in run["oracle_calls"].items() if k != "samples")
        calls = np.asarray(run["curve"]["calls"])
        assert calls[0] == 0 and np.all(np.diff(calls) > 0) and calls[-1] <= 400
        assert {"val_loss", "test_accuracy", "precision"} <= set(run["curve"])
        assert run["status"] == "budget"
    # option overrides: method-specific and global, on top of the per-problem defaults
    assert rec["runs"]["aid"]["options"]["inner_steps"] == 5
    assert rec["runs"]["aid"]["options"]["linsys_steps"] == 3
    assert rec["runs"]["aid"]["options"]["step_x"] == compare.DEFAULT_OPTIONS["hyper-cleaning"]["aid"]["step_x"]
    # per-iteration counts of AID (T = 5 inner steps, 3 CG steps) = 5 grad_g + 1 grad_f + 1 cross
    aid = rec["runs"]["aid"]
    assert aid["oracle_calls"]["cross_g"] == aid["nit"] or aid["oracle_calls"]["cross_g"] == aid["nit"] + 1
    assert (out / "compare-hyper-cleaning-synthetic-n_train60-n_val40-seed0.png").stat().st_size > 10_000
    # the learned weights improve the validation loss on this noisy problem
    for run in rec["runs"].values():
        assert run["final"]["val_loss"] < run["curve"]["val_loss"][0]


def test_quadratic_records_closed_form_gradient_norm(tmp_path):
    # f2ba's pre-tol K = 10 explicit: its tol-derived K (⌈κ ln(λκ)⌉ = 93 at compare's λ = 1000)
    # would spend the budget of 600 in a few iterations
    rc, rec, _ = _run(tmp_path, "--problem", "quadratic", "--methods", "aid,f2ba", "--budget", "600",
                      "--option", "f2ba:inner_steps=10", "--no-plot")
    assert rc == 0 and rec["plot_metrics"] == ["grad_norm"]
    problem, x0 = build_problem("quadratic", seed=0)
    truth0 = np.linalg.norm(problem.grad_phi(x0))
    for run in rec["runs"].values():
        assert run["curve"]["grad_norm"][0] == pytest.approx(truth0, rel=1e-12)
        assert run["final"]["grad_norm"] < 0.1 * truth0
    assert rec["runs"]["aid"]["final"]["grad_norm"] < 0.02 * truth0
    # the closed-form curve decreases overall for a convergent method
    g = np.asarray(rec["runs"]["aid"]["curve"]["grad_norm"])
    assert g[-1] == pytest.approx(rec["runs"]["aid"]["final"]["grad_norm"]) and g[-1] < g[len(g) // 2] < g[0]


def test_same_seed_same_curves(tmp_path):
    args = ("--problem", "quadratic", "--methods", "f2ba", "--budget", "200", "--no-plot")
    _, a, _ = _run(tmp_path / "a", *args)
    _, b, _ = _run(tmp_path / "b", *args)
    ca, cb = a["runs"]["f2ba"]["curve"], b["runs"]["f2ba"]["curve"]
    assert ca["calls"] == cb["calls"] and ca["grad_norm"] == cb["grad_norm"]


def test_bad_input_exits_with_status_2(tmp_path, capsys):
    assert compare.main(["--problem", "nope", "--out", str(tmp_path)]) == 2
    assert "unknown problem" in capsys.readouterr().err
    assert compare.main(["--budget", "0", "--out", str(tmp_path)]) == 2
    assert compare.main(["--dataset", str(tmp_path / "missing.svm"), "--out", str(tmp_path)]) == 2
    assert "missing.svm" in capsys.readouterr().err


def test_cli_dispatch(tmp_path):
    rc = cli_main(["compare", "--problem", "quadratic", "--methods", "aid", "--budget", "100", "--no-plot",
                   "--no-progress", "--out", str(tmp_path)])
    assert rc == 0 and list(tmp_path.glob("*.json"))


def test_plotting_without_matplotlib_names_the_extra(monkeypatch):
    from bilevel_ref import plotting

    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    with pytest.raises(ImportError, match=r"'plot' extra"):
        plotting.require_matplotlib()


def test_output_names():
    assert compare._stem("hyper-cleaning", {"mu": 0.01, "dataset": "breast-cancer", "noise": 0.5},
                         {"mu": 0.01}, 0) == "compare-hyper-cleaning-breast-cancer-p0.5-seed0"
    assert compare._stem("hyper-cleaning", {"mu": 0.4, "dataset": "/data/australian_scale.svm", "noise": 0.25},
                         {"mu": 0.01}, 3) == "compare-hyper-cleaning-australian_scale-p0.25-mu0.4-seed3"


@pytest.mark.slow
def test_readme_command_main_job(tmp_path):
    # The README's first command: every method down-weights the corrupted
    # samples and beats uniform weights (0.63 test accuracy at p = 0.5).
    rc, rec, out = _run(tmp_path, "--problem", "hyper-cleaning", "--dataset", "breast-cancer", "--noise", "0.5",
                        "--methods", "fsba,lfsba,ifsba,f2ba,aid,itd")
    assert rc == 0 and (out / "compare-hyper-cleaning-breast-cancer-p0.5-seed0.png").exists()
    for name, run in rec["runs"].items():
        assert run["calls"] <= 5000
        assert run["final"]["weight_corrupted"] < run["final"]["weight_clean"] - 0.3, name
        assert run["final"]["test_accuracy"] > 0.9, name


def test_method_specs_axes_and_second_order_cost(tmp_path):
    from bilevel_ref.compare import main, parse_method_spec, split_methods

    assert split_methods("aid, nbo[inner=cg;T=5],soba") == ["aid", "nbo[inner=cg;T=5]", "soba"]
    assert parse_method_spec("NBO[inner=cg;T=5]") == ("NBO[inner=cg;T=5]", "nbo", {"inner": "cg", "T": 5})
    assert parse_method_spec("f2sa-p") == ("f2sa_p", "f2sa_p", {})
    code = main(["--problem", "quadratic", "--methods", "nbo[inner=gd],nbo[inner=cg],soba", "--budget", "300",
                 "--x-axis", "second-order", "--second-order-cost", "2", "--out", str(tmp_path),
                 "--no-progress"])
    assert code == 0
    record = json.loads(next(tmp_path.glob("*.json")).read_text())
    assert set(record["runs"]) == {"nbo[inner=gd]", "nbo[inner=cg]", "soba"}
    assert record["runs"]["nbo[inner=cg]"]["options"]["inner"] == "cg"
    soba = record["runs"]["soba"]
    # SOBA: one HVP and one JVP per iteration, counted once each despite the cost wrapper
    assert soba["curve"]["calls_second_order"][-1] == 2 * soba["curve"]["nit"][-1]
    assert soba["curve"]["calls_first_order"][-1] == 2 * soba["curve"]["nit"][-1]
    assert record["x_axis"] == "second-order" and record["second_order_cost"] == 2
    assert main(["--problem", "quadratic", "--methods", "nbo[inner=cg", "--out", str(tmp_path)]) == 2


def test_global_option_applies_where_known_and_warns_about_the_others(tmp_path, capsys):
    with pytest.warns(BilevelRefWarning) as caught:
        rc, rec, _ = _run(tmp_path, "--problem", "quadratic", "--methods", "aid,f2ba,itd", "--budget", "100",
                          "--no-plot", "--option", "linsys_steps=3", "--option", "step_x=0.5")
    assert rc == 0
    # one warning, for the option some methods lack, attributed to the caller's line
    assert [str(w.message) for w in caught] == [
        "--option linsys_steps=... applies to aid only: f2ba, itd have no option 'linsys_steps'"]
    assert caught[0].filename == __file__
    assert "note: --option linsys_steps=... applies to aid only" in capsys.readouterr().out
    assert rec["runs"]["aid"]["options"]["linsys_steps"] == 3
    assert "linsys_steps" not in rec["runs"]["f2ba"]["options"] | rec["runs"]["itd"]["options"]
    assert all(run["options"]["step_x"] == 0.5 for run in rec["runs"].values())


def test_global_option_no_method_has_is_an_error(tmp_path, capsys):
    rc, rec, _ = _run(tmp_path, "--problem", "quadratic", "--methods", "aid,f2ba", "--budget", "100", "--no-plot",
                      "--option", "nope=1")
    err = capsys.readouterr().err
    assert rc == 2 and rec is None
    assert "'nope'" in err and "aid, f2ba" in err
    # a renamed option says so
    rc, _, _ = _run(tmp_path, "--problem", "quadratic", "--methods", "aid", "--budget", "100", "--no-plot",
                    "--option", "hvp_steps=3")
    assert rc == 2 and "renamed to linsys_steps" in capsys.readouterr().err
    problem, x0 = build_problem("quadratic", seed=0)
    with pytest.raises(OptionError, match="'nope'"):
        compare.run_comparison(problem, x0, ["aid"], budget=10, options={"*": {"nope": 1}}, progress=False)


# ---------------------------------------------------------------------------
# result files are never lost (issue 15 item 1, issue 16 item 5)
# ---------------------------------------------------------------------------
QUICK = ("--problem", "quadratic", "--budget", "100", "--no-progress")


def _no_runs(monkeypatch):
    """Make any method run fail the test: the checks must come first."""
    def fail(*args, **kwargs):
        raise AssertionError("a method ran before the output checks")

    monkeypatch.setattr(compare, "run_comparison", fail)


def test_failed_compare_leaves_the_previous_record_intact(tmp_path, capsys):
    out = tmp_path / "out"
    assert compare.main(["--out", str(out), *QUICK, "--methods", "aid"]) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    assert set(before) == {"compare-quadratic-seed0.json", "compare-quadratic-seed0.png"}
    capsys.readouterr()
    # a typo: unknown method, nothing runs, nothing is written (with or without --overwrite)
    for extra in ((), ("--overwrite",), ("--overwrite", "--skip-missing")):
        assert compare.main(["--out", str(out), *QUICK, "--methods", "aidd", *extra]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "unknown method(s) aidd" in err
        assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_existing_files_need_overwrite_and_are_checked_before_any_run(tmp_path, capsys, monkeypatch):
    out = tmp_path / "out"
    assert compare.main(["--out", str(out), *QUICK, "--methods", "aid"]) == 0
    json_file = out / "compare-quadratic-seed0.json"
    old = json_file.read_bytes()
    capsys.readouterr()
    with monkeypatch.context() as m:
        _no_runs(m)
        assert compare.main(["--out", str(out), *QUICK, "--methods", "f2ba"]) == 2
        err = capsys.readouterr().err
        assert f"{json_file} already exists" in err and "--overwrite" in err
        # the PNG alone is protected too; with --no-plot only the JSON counts
        json_file.rename(out / "kept.json")
        assert compare.main(["--out", str(out), *QUICK, "--methods", "f2ba"]) == 2
        assert "compare-quadratic-seed0.png already exists" in capsys.readouterr().err
    assert compare.main(["--out", str(out), *QUICK, "--methods", "f2ba", "--no-plot"]) == 0
    assert compare.main(["--out", str(out), *QUICK, "--methods", "f2ba", "--overwrite"]) == 0
    assert set(json.loads(json_file.read_text())["runs"]) == {"f2ba"} and json_file.read_bytes() != old
    # no temporary files left behind
    assert sorted(p.name for p in out.iterdir()) == ["compare-quadratic-seed0.json", "compare-quadratic-seed0.png",
                                                     "kept.json"]


def test_output_directory_is_validated_before_any_run(tmp_path, capsys, monkeypatch):
    _no_runs(monkeypatch)
    a_file = tmp_path / "file"
    a_file.write_text("x")
    for out, why in ((a_file, "is not a directory"), (a_file / "sub", "cannot create the output directory")):
        assert compare.main(["--out", str(out), *QUICK, "--methods", "aid"]) == 2
        err = capsys.readouterr().err
        assert why in err and "Traceback" not in err and err.count("\n") == 1
    assert compare.main(["--out", str(tmp_path / "o"), *QUICK, "--threads", "-1"]) == 2
    assert "--threads must be >= 0" in capsys.readouterr().err and not (tmp_path / "o").exists()


def test_skipped_methods_exit_2_unless_skip_missing(tmp_path, capsys):
    # mcn needs a minimax problem: skipped at run time; aid's results are written all the same
    rc, rec, out = _run(tmp_path, *QUICK, "--methods", "aid,mcn", "--no-plot")
    err = capsys.readouterr().err
    assert rc == 2 and "skipped mcn" in err and "--skip-missing" in err
    assert set(rec["runs"]) == {"aid"} and "mcn" in rec["skipped"]
    rc, rec, _ = _run(tmp_path, *QUICK, "--methods", "aid,mcn,nope", "--no-plot", "--skip-missing", "--overwrite")
    assert rc == 0 and set(rec["skipped"]) == {"mcn", "nope"}
    # unknown names are refused before anything runs
    assert _run(tmp_path, *QUICK, "--methods", "aid,nope", "--overwrite")[0] == 2
    assert "unknown method(s) nope" in capsys.readouterr().err


def test_no_result_writes_nothing(tmp_path, capsys):
    rc, rec, out = _run(tmp_path, *QUICK, "--methods", "mcn", "--skip-missing")
    err = capsys.readouterr().err
    assert rc == 2 and rec is None and not out.exists()  # not even the directory made for the run
    assert err.count("\n") == 1 and "no method produced a result (mcn: TypeError" in err


def test_closed_stdout_pipe_is_quiet_and_the_files_are_written(tmp_path):
    root = pathlib.Path(compare.__file__).resolve().parents[1]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.Popen([sys.executable, "-m", "bilevel_ref.cli", "compare", *QUICK, "--methods", "aid,f2ba"],
                            cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()  # `| head -0`: the reader is gone before the first line
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 0, err
    assert "Traceback" not in err and "BrokenPipe" not in err and "Exception ignored" not in err
    out = tmp_path / "bilevel-ref-out"
    assert set(json.loads((out / "compare-quadratic-seed0.json").read_text())["runs"]) == {"aid", "f2ba"}
    assert (out / "compare-quadratic-seed0.png").stat().st_size > 10_000


def test_records_are_strict_json_and_read_back_with_nan(tmp_path):
    from bilevel_ref.plotting import plot_compare

    rc, rec, out = _run(tmp_path, *QUICK, "--methods", "aid,f2ba", "--no-plot")
    path = out / "compare-quadratic-seed0.json"
    # a metric that is NaN at some checkpoints is null in the file, NaN again through read_record
    rec["runs"]["aid"]["curve"]["phi"][1] = float("nan")
    rec["runs"]["aid"]["final"]["f"] = float("inf")
    from bilevel_ref._text import write_json_atomic

    write_json_atomic(path, rec)
    text = path.read_text()
    assert "NaN" not in text and "Infinity" not in text
    back = compare.read_record(path)
    assert np.isnan(back["runs"]["aid"]["curve"]["phi"][1]) and np.isnan(back["runs"]["aid"]["final"]["f"])
    assert isinstance(back["runs"]["aid"]["curve"]["calls"][0], int)
    assert "nan" in compare._short_table(back)
    png = plot_compare(path, tmp_path / "from-file.png")
    assert pathlib.Path(png).stat().st_size > 10_000
