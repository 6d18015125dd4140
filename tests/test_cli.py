"""The bilevel-ref command: list, run (table and JSON), errors."""
import json
import subprocess
import sys

import numpy as np

from bilevel_ref._text import parse_assignments
from bilevel_ref.cli import main


def test_list(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "aid" in out and "quadratic" in out and "params:" in out


def test_run_quadratic_aid_reaches_1e_8(capsys):
    assert main(["run", "--problem", "quadratic", "--method", "aid", "--no-progress"]) == 0
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
