"""Every JSON the command line writes is strict JSON: no NaN/Infinity tokens (issue 15 item 7).

Each writer runs (cheaply) and its output is read back with a parser that
refuses the non-standard constants; non-finite floats are ``null``.
"""
import json
import math
import os

import numpy as np
import pytest

from bilevel_ref import _text
from bilevel_ref.cli import main


def _refuse(constant):
    raise ValueError(f"non-standard JSON constant {constant}")


def strict(text):
    """``json.loads`` that fails on ``NaN``, ``Infinity`` and ``-Infinity``."""
    return json.loads(text, parse_constant=_refuse)


def test_json_safe_and_the_atomic_writer(tmp_path):
    obj = {"a": [1.0, math.nan, -math.inf], "b": np.array([[np.nan, 2.0]]), "c": np.float32("inf"),
           "d": (np.int64(3), np.bool_(True), None, "x"), 4: {"e": np.array(np.nan)}}
    assert _text.json_safe(obj) == {"a": [1.0, None, None], "b": [[None, 2.0]], "c": None,
                                    "d": [3, True, None, "x"], "4": {"e": None}}
    with pytest.raises(ValueError):
        json.dumps([math.nan], allow_nan=False)
    path = tmp_path / "r.json"
    _text.write_json_atomic(path, obj)
    assert strict(path.read_text())["a"] == [1.0, None, None]
    assert _text.nan_for_null([1.0, None]) == [1.0, pytest.approx(math.nan, nan_ok=True)]
    # an object that cannot be written leaves the previous file as it was, and no temporary file
    before = path.read_bytes()
    with pytest.raises(TypeError):
        _text.write_json_atomic(path, {"bad": object()})
    assert path.read_bytes() == before and os.listdir(tmp_path) == ["r.json"]
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask  # as open() would make it, not mkstemp's 0600


@pytest.mark.filterwarnings("ignore:overflow:RuntimeWarning")
def test_run_json(capsys):
    # ITD's history has NaN entries (no estimate at iteration 0); a diverging AID has inf values
    for argv in (["--method", "itd", "--maxiter", "5"], ["--method", "aid", "--option", "step_x=1e9",
                                                         "--maxiter", "20"]):
        main(["run", "--problem", "quadratic", "--json", "--no-progress", *argv])
        record = strict(capsys.readouterr().out)
        assert record["method"] == argv[1]
    assert record["status_label"] == "diverged" and record["fun"] is None


@pytest.mark.filterwarnings("ignore:overflow:RuntimeWarning")
def test_compare_json(tmp_path, capsys):
    out = tmp_path / "out"
    rc = main(["compare", "--problem", "quadratic", "--methods", "aid,f2ba", "--option", "f2ba:step_x=1e100",
               "--option", "f2ba:inner_steps=10",  # the pre-tol K: diverges within the budget
               "--budget", "200", "--no-plot", "--no-progress", "--out", str(out)])
    assert rc == 1  # f2ba diverges
    record = strict((out / "compare-quadratic-seed0.json").read_text())
    f2ba = record["runs"]["f2ba"]
    assert f2ba["status"] == "diverged" and f2ba["final"]["phi"] is None and None in f2ba["curve"]["phi"]


def test_complexity_json(tmp_path, capsys):
    args = ["complexity", "aid", "quadratic", "--eps", "1e-1", "1e-2", "--maxiter", "3"]
    path = tmp_path / "sweep.json"
    assert main([*args, "--json", str(path)]) == 0
    from_file = strict(path.read_text())
    assert from_file["fits"]["iterations"]["slope"] is None  # no ε reached in 3 iterations: NaN slope
    assert main([*args, "--json", "-"]) == 0
    text = capsys.readouterr().out
    assert strict(text[text.index("\n{") + 1:])["fits"] == from_file["fits"]


def test_bench_json(tmp_path, capsys):
    assert main(["bench", "stochastic", "--json", "--methods", "soba", "--storage", "dense", "--n", "64",
                 "--d", "5", "--batch", "8", "--iters", "3", "--repeat", "1"]) == 0
    rows = strict(capsys.readouterr().out)
    assert rows[0]["wall"] is None and {r["method"] for r in rows} >= {"soba"}
    assert main(["bench", "second-order", "--json", "--dims", "10", "--inner-steps", "5", "--periods", "1",
                 "--repeat", "1", "--skip-ablation"]) == 0
    assert strict(capsys.readouterr().out)["lazy_vs_fresh"][0]["dx"] == 10
    path = tmp_path / "cubic.json"
    assert main(["bench", "cubic", "--json", str(path), "--sizes", "20", "--repeat", "1", "--no-jit"]) == 0
    assert strict(path.read_text())["rows"][0]["d"] == 20


def test_crosscheck_manifest(tmp_path, capsys):
    assert main(["crosscheck", "export", str(tmp_path), "--case", "cubic-pd-6"]) == 0
    manifest = strict((tmp_path / "manifest.json").read_text())
    assert [c["name"] for c in manifest["cases"]] == ["cubic-pd-6"]
    assert main(["crosscheck", "list", str(tmp_path)]) == 0


def test_unwritable_json_paths_are_refused_before_the_work(tmp_path, capsys):
    missing = tmp_path / "no-such-dir" / "out.json"
    assert main(["complexity", "aid", "quadratic", "--eps", "1e-1", "--json", str(missing)]) == 2
    captured = capsys.readouterr()
    assert "no directory" in captured.err and "aid on quadratic" not in captured.out  # no sweep ran
    assert main(["complexity", "aid", "quadratic", "--eps", "1e-1", "--plot", str(tmp_path)]) == 2
    assert "is a directory" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["bench", "cubic", "--json", str(missing), "--sizes", "20", "--no-jit"])
    assert exc.value.code == 2 and "no directory" in capsys.readouterr().err
