"""The bilevel-ref command: list, run (table and JSON), errors."""
import json
import subprocess
import sys

import numpy as np
import pytest

from bilevel_ref._text import parse_assignments
from bilevel_ref.cli import main


def test_list(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "aid" in out and "quadratic" in out and "params:" in out


def test_run_quadratic_aid_reaches_1e_8(capsys):
    assert main(["run", "--problem", "quadratic", "--method", "aid", "--option", "tol=1e-9",
                 "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "grad_norm" in out and "success (converged)" in out
    final = float(out.split("‖∇φ‖ = ")[1].split()[0])
    assert final <= 1e-8


def test_run_json_is_complete(capsys):
    code = main(["run", "--problem", "quadratic", "--method", "itd", "--maxiter", "5", "--json",
                 "--param", "dx=4", "--option", "inner_steps=3", "--seed", "2"])
    record = json.loads(capsys.readouterr().out)
    assert code == 1  # 5 iterations do not reach gtol: reported, not hidden
    assert record["method"] == "itd" and record["nit"] == 5 and record["seed"] == 2
    assert record["status"] == 1 and record["status_label"] == "maxiter"
    assert len(record["x"]) == 4 and record["oracle_calls"]["grad_g"] == 15
    assert record["options"]["inner_steps"] == 3
    assert len(record["history"]["nit"]) == 6


def test_run_errors_are_clear(capsys):
    assert main(["run", "--method", "nope", "--no-progress"]) == 2
    assert "unknown method 'nope'" in capsys.readouterr().err
    assert main(["run", "--param", "dz=3", "--no-progress"]) == 2
    assert "unknown parameter(s) ['dz']" in capsys.readouterr().err


def test_parse_assignments():
    assert parse_assignments(["a=1", "b=cg", "c=[1, 2]", "d=1e-3"], "x") == {
        "a": 1, "b": "cg", "c": [1, 2], "d": 1e-3}


def test_console_script_progress_bar_on_stderr():
    proc = subprocess.run([sys.executable, "-m", "bilevel_ref.cli", "run", "--maxiter", "30"],
                          capture_output=True, text=True, timeout=120)
    assert "iter" in proc.stdout and "aid" in proc.stderr  # tqdm writes the bar to stderr
    assert np.isfinite(float(proc.stdout.split("‖∇φ‖ = ")[1].split()[0]))


def test_run_threads_limits_blas_during_the_run(monkeypatch, capsys):
    threadpoolctl = pytest.importorskip("threadpoolctl")
    import bilevel_ref

    def blas_threads():
        return {lib["num_threads"] for lib in threadpoolctl.threadpool_info() if lib["user_api"] == "blas"}

    seen, outside, real = [], blas_threads(), bilevel_ref.minimize

    def spy(*args, **kwargs):
        seen.append(blas_threads())
        return real(*args, **kwargs)

    monkeypatch.setattr(bilevel_ref, "minimize", spy)
    for threads, expected in (("1", {1} if outside else set()), ("0", outside)):
        assert main(["run", "--maxiter", "3", "--no-progress", "--threads", threads]) in (0, 1)
        assert seen[-1] == expected
    assert blas_threads() == outside
    assert main(["run", "--threads", "-1", "--no-progress"]) == 2
    assert "--threads must be >= 0" in capsys.readouterr().err


def test_run_and_compare_share_the_threads_option(capsys):
    from bilevel_ref import compare

    helps = []
    for argv in (["run", "--help"], ["compare", "--help"]):
        with pytest.raises(SystemExit):
            main(argv)
        helps.append(" ".join(capsys.readouterr().out.split()))
    text = helps[1].split("--threads N ")[1].split(" --")[0]
    assert "threadpoolctl" in text and text in helps[0]
    assert compare._parser().get_default("threads") == 1
