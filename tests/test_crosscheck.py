"""Golden cases: format, round trip, failure reports, and the references against outside truth."""
import json
import os
import sys

import numpy as np
import pytest

from bilevel_ref import crosscheck as X

sys.path.insert(0, os.path.dirname(__file__))
from _fd import fd_gradient  # noqa: E402


@pytest.fixture(scope="module")
def golden(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("golden"))
    X.export_golden(path)
    return path


@pytest.fixture(scope="module")
def cases(golden):
    return X.load_golden(golden)


def test_manifest_format(golden, cases):
    with open(os.path.join(golden, "manifest.json")) as fh:
        manifest = json.load(fh)
    assert manifest["format"] == "bilevel_ref-golden" and manifest["version"] == X.FORMAT_VERSION
    names = [c["name"] for c in manifest["cases"]]
    assert names == [c.name for c in X.default_cases()]
    for entry in manifest["cases"]:
        assert os.path.isfile(os.path.join(golden, entry["file"]))
        for key in ("kind", "family", "params", "seed", "dtype", "inputs", "outputs", "tolerances"):
            assert key in entry
        for arr in entry["outputs"]:
            tol = entry["tolerances"][arr]
            assert tol["float64"]["rtol"] == 1e-10 and tol["float32"]["rtol"] > tol["float64"]["rtol"]
    kinds = {c.kind for c in cases.values()}
    assert kinds == {"bilevel", "cubic", "trajectory"}
    q = cases["quadratic-5x4"]
    assert {"grad_phi", "hess_phi", "grad_penalty", "hess_penalty", "penalty_grad_est",
            "penalty_hess_est"} <= set(q.outputs)
    assert set(q.data) == {"P", "R", "S", "p", "q", "A", "C", "E", "a", "b"}


def test_round_trip_passes(golden):
    report = X.check(golden, X.reference_outputs)
    assert report.passed, report.format()
    assert all(r["status"] == "pass" and r["max_abs"] == 0.0 for r in report.rows)


@pytest.mark.parametrize("case,array", [("quadratic-5x4", "hess_penalty"), ("logistic-4", "grad_phi"),
                                        ("cubic-indefinite-6", "s"), ("aid-quadratic-5x4", "x_traj")])
def test_perturbation_fails_and_names_case_and_array(golden, cases, case, array):
    outputs = {name: dict(c.outputs) for name, c in cases.items()}
    outputs[case][array] = outputs[case][array] * (1 + 1e-6)
    report = X.check(golden, outputs)
    assert not report.passed
    assert [(r["case"], r["array"]) for r in report.failures] == [(case, array)]
    assert report.failures[0]["max_rel"] == pytest.approx(1e-6, rel=1e-3)
    text = report.format()
    assert f"case {case!r}, array {array!r}" in text and "FAILED" in text


def test_float32_candidate(golden, cases):
    outputs = {n: {k: v.astype(np.float32) for k, v in c.outputs.items()} for n, c in cases.items()}
    assert X.check(golden, outputs, dtype="float32").passed
    assert not X.check(golden, outputs, dtype="float64").passed


def test_flat_keys_missing_shape_and_nonfinite(golden, cases):
    q = cases["quadratic-5x4"]
    flat = {"quadratic-5x4/grad_phi": q.outputs["grad_phi"]}
    report = X.check(golden, flat)
    assert report.passed
    assert {r["status"] for r in report.rows} == {"pass", "missing"}
    assert not X.check(golden, flat, require_all=True).passed
    bad = X.check(golden, {"quadratic-5x4": {"grad_phi": q.outputs["grad_phi"][:-1]}})
    assert [r["status"] for r in bad.failures] == ["shape"]
    nan = X.check(golden, {"quadratic-5x4": {"grad_phi": q.outputs["grad_phi"] * np.nan}})
    assert [r["status"] for r in nan.failures] == ["nonfinite"]
    assert not X.check(golden, {}).passed  # nothing checked is not a pass


def test_bad_input(golden, tmp_path):
    with pytest.raises(ValueError, match="unknown case"):
        X.check(golden, {"nope": {}})
    with pytest.raises(ValueError, match="dtype"):
        X.check(golden, {}, dtype="float16")
    with pytest.raises(TypeError, match="outputs"):
        X.check(golden, [1, 2])
    with pytest.raises(ValueError, match="unknown case"):
        X.export_golden(str(tmp_path), ["nope"])
    with pytest.raises(FileNotFoundError, match="manifest"):
        X.load_golden(str(tmp_path))
    newer = tmp_path / "newer"
    X.export_golden(str(newer), ["cubic-pd-6"])
    manifest = json.loads((newer / "manifest.json").read_text())
    manifest["version"] = "2.0"
    (newer / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match="version"):
        X.load_golden(str(newer))


def test_export_is_deterministic(golden, tmp_path):
    X.export_golden(str(tmp_path))
    for name in os.listdir(golden):
        if name.endswith(".npz"):
            with np.load(os.path.join(golden, name)) as a, np.load(tmp_path / name) as b:
                assert a.files == b.files
                for k in a.files:
                    assert np.array_equal(a[k], b[k]), (name, k)


# -- the references themselves, against truth from outside the code -------------------------
def test_quadratic_references_match_closed_forms(cases):
    for name in ("quadratic-5x4", "quadratic-3x6"):
        c = cases[name]
        d = c.data
        x, lam = c.inputs["x"], float(c.inputs["lam"])
        A, C, S, R = d["A"], d["C"], d["S"], d["R"]
        K = -np.linalg.solve(A, C)
        y_st = -np.linalg.solve(A, C @ x + d["a"])
        hess = d["P"] + R @ K + K.T @ R.T + K.T @ S @ K
        grad = d["P"] @ x + R @ y_st + d["p"] + K.T @ (R.T @ x + S @ y_st + d["q"])
        # penalty: y_λ = −(S + λA)⁻¹(Rᵀx + q + λ(Cx + a)); ∇²L*_λ by Schur complements
        y_lam = -np.linalg.solve(S + lam * A, R.T @ x + d["q"] + lam * (C @ x + d["a"]))
        Bh = R + lam * C.T
        hpen = (d["P"] + lam * d["E"] - Bh @ np.linalg.solve(S + lam * A, Bh.T)
                - lam * (d["E"] - C.T @ np.linalg.solve(A, C)))
        for arr, truth in (("y_star", y_st), ("grad_phi", grad), ("hess_phi", hess),
                           ("y_star_penalty", y_lam), ("hess_penalty", hpen)):
            ref = c.outputs[arr]
            assert np.max(np.abs(ref - truth)) <= 1e-10 * max(1.0, np.max(np.abs(truth))), (name, arr)


def test_logistic_grad_phi_matches_finite_differences(cases):
    c = cases["logistic-4"]
    prob = X.rebuild_problem(c)

    def phi(x):
        y = X._newton(lambda v: prob.grad_g(x, v)[1], lambda v: prob.hess_g(x, v)[2], np.zeros(prob.dy))
        return prob.f(x, y)

    x = c.inputs["x"]
    fd = fd_gradient(phi, x)
    assert np.max(np.abs(fd - c.outputs["grad_phi"])) <= 1e-8 * max(1.0, np.max(np.abs(fd)))
    # penalty gradient: finite differences of L*_λ(x) = min_y (f + λg) − λ min_y g
    lam = float(c.inputs["lam"])

    def l_star(x):
        y_st = X._newton(lambda v: prob.grad_g(x, v)[1], lambda v: prob.hess_g(x, v)[2], np.zeros(prob.dy))
        y_l = X._newton(lambda v: prob.grad_f(x, v)[1] + lam * prob.grad_g(x, v)[1],
                        lambda v: prob.hess_f(x, v)[2] + lam * prob.hess_g(x, v)[2], y_st)
        return prob.f(x, y_l) + lam * (prob.g(x, y_l) - prob.g(x, y_st))

    fd = fd_gradient(l_star, x)
    assert np.max(np.abs(fd - c.outputs["grad_penalty"])) <= 1e-7 * max(1.0, np.max(np.abs(fd)))


def test_cubic_references_satisfy_optimality(cases):
    for name in ("cubic-indefinite-6", "cubic-pd-6", "cubic-hard-5"):
        c = cases[name]
        g, H, M = c.inputs["g"], c.inputs["H"], float(c.inputs["M"])
        lam, r = float(c.outputs["lam"]), float(c.outputs["s_norm"])
        assert lam == pytest.approx(M * r / 2, rel=1e-12)
        # global optimality: H + λI ⪰ 0 (λ = (M/2)‖s‖)
        lam_min = np.linalg.eigvalsh(H)[0]
        assert lam_min + lam >= -1e-10
        if "s" in c.outputs:
            s = c.outputs["s"]
            assert np.linalg.norm(g + H @ s + lam * s) <= 1e-10 * np.linalg.norm(g)
            assert float(c.outputs["model_value"]) == pytest.approx(g @ s + 0.5 * s @ H @ s + M / 6 * r**3,
                                                                    rel=1e-12)
        else:
            # hard case: σ = −λ_min exactly; the model value of any minimiser s = −(H + σI)⁺g + τu
            assert lam == pytest.approx(-lam_min, rel=1e-9)
            w, Q = np.linalg.eigh(H)
            c_ = Q.T @ g
            s0 = -(c_[1:] / (w[1:] + lam))
            tau = np.sqrt(max(r**2 - s0 @ s0, 0.0))
            s = Q @ np.concatenate(([tau], s0))
            model = g @ s + 0.5 * s @ H @ s + M / 6 * r**3
            assert float(c.outputs["model_value"]) == pytest.approx(model, rel=1e-9)


def test_aid_trajectory_reference(cases):
    """The stored AID trajectory follows the documented rule (recomputed here independently)."""
    c = cases["aid-quadratic-5x4"]
    d, opts = c.data, c.params["options"]
    x = c.inputs["x0"].copy()
    y, v = np.zeros(d["A"].shape[0]), np.zeros(d["A"].shape[0])
    traj = [x.copy()]
    for _ in range(opts["maxiter"]):
        for _ in range(opts["inner_steps"]):
            y = y - opts["step_y"] * (d["A"] @ y + d["C"] @ x + d["a"])
        rhs = d["R"].T @ x + d["S"] @ y + d["q"]
        # plain CG, linsys_steps iterations from the previous v
        res = rhs - d["A"] @ v
        p = res.copy()
        for _ in range(opts["linsys_steps"]):
            Ap = d["A"] @ p
            alpha = (res @ res) / (p @ Ap)
            v = v + alpha * p
            new = res - alpha * Ap
            p = new + (new @ new) / (res @ res) * p
            res = new
        x = x - opts["step_x"] * (d["P"] @ x + d["R"] @ y + d["p"] - d["C"].T @ v)
        traj.append(x.copy())
    ref = c.outputs["x_traj"]
    assert np.max(np.abs(np.array(traj) - ref)) <= 1e-10 * np.max(np.abs(ref))


def test_cli(golden, tmp_path, capsys, cases):
    out = tmp_path / "g"
    assert X.main(["export", str(out), "--case", "cubic-pd-6"]) == 0
    assert X.main(["check", str(out), "self"]) == 0
    assert X.main(["list", str(out)]) == 0
    c = cases["cubic-pd-6"]
    arrays = {f"cubic-pd-6/{k}": v * (1 + 1e-6) for k, v in c.outputs.items()}
    np.savez(tmp_path / "cand.npz", **arrays)
    assert X.main(["check", str(out), str(tmp_path / "cand.npz")]) == 1
    assert "case 'cubic-pd-6', array" in capsys.readouterr().out
    assert X.main(["check", str(tmp_path / "missing"), "self"]) == 2


# -- damaged input: typed errors, exit 2 with one line naming the file and the field --------
@pytest.fixture
def damaged(tmp_path):
    """A fresh golden directory (two cases) and a candidate with every output, both to damage."""
    gold = tmp_path / "golden"
    cases = X.export_golden(str(gold), ["quadratic-5x4", "cubic-pd-6"])
    cand = tmp_path / "cand.npz"
    np.savez(cand, **{f"{c.name}/{k}": v for c in cases for k, v in c.outputs.items()})
    return gold, cand


def _truncate(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _edit_manifest(gold, edit):
    path = gold / "manifest.json"
    manifest = json.loads(path.read_text())
    edit(manifest)
    path.write_text(json.dumps(manifest))


def _rewrite_npz(path, edit):
    with np.load(path) as npz:
        arrays = {k: npz[k] for k in npz.files}
    edit(arrays)
    np.savez(path, **arrays)


def _exit_and_error(capsys, argv):
    capsys.readouterr()
    code = X.main(argv)
    err = capsys.readouterr().err
    return code, err


def _assert_input_error(code, err, *needles):
    assert code == X.EXIT_INPUT == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err    # one line, no traceback
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])


def test_undamaged_input_passes_and_real_mismatch_exits_1(damaged, capsys):
    gold, cand = damaged
    assert X.main(["check", str(gold), str(cand)]) == 0
    assert X.main(["check", str(gold), "self"]) == 0
    _rewrite_npz(cand, lambda a: a.__setitem__("quadratic-5x4/grad_phi", a["quadratic-5x4/grad_phi"] * (1 + 1e-6)))
    code, err = _exit_and_error(capsys, ["check", str(gold), str(cand)])
    assert code == X.EXIT_MISMATCH == 1 and err == ""
    _rewrite_npz(cand, lambda a: a.__setitem__("quadratic-5x4/grad_phi", a["quadratic-5x4/grad_phi"] * np.nan))
    assert X.main(["check", str(gold), str(cand)]) == 1          # non-finite: outside any tolerance


def test_truncated_golden_npz(damaged, capsys):
    gold, cand = damaged
    _truncate(gold / "cubic-pd-6.npz")
    for argv in (["check", str(gold), "self"], ["check", str(gold), str(cand)], ["list", str(gold)]):
        code, err = _exit_and_error(capsys, argv)
        _assert_input_error(code, err, "cubic-pd-6.npz", "truncated or corrupt")
    with pytest.raises(X.CrosscheckInputError) as info:
        X.load_golden(str(gold))
    assert info.value.file.endswith("cubic-pd-6.npz") and isinstance(info.value, ValueError)


def test_corrupt_member_of_golden_npz_names_the_array(damaged, capsys):
    gold, _ = damaged
    path = gold / "cubic-pd-6.npz"
    data = bytearray(path.read_bytes())
    with np.load(path) as npz:
        raw = npz["input/H"].tobytes()
    at = bytes(data).index(raw[:32])                  # inside the stored bytes of input/H
    data[at] ^= 0xFF
    path.write_bytes(bytes(data))
    code, err = _exit_and_error(capsys, ["check", str(gold), "self"])
    _assert_input_error(code, err, "cubic-pd-6.npz", "'input/H'")


@pytest.mark.parametrize("how", ["half", "empty"])
def test_truncated_candidate_npz(damaged, capsys, how):
    gold, cand = damaged
    if how == "half":
        _truncate(cand)
    else:
        cand.write_bytes(b"")
    code, err = _exit_and_error(capsys, ["check", str(gold), str(cand)])
    _assert_input_error(code, err, "cand.npz", "not a readable .npz")


def test_manifest_without_tolerances(damaged, capsys):
    gold, cand = damaged
    _edit_manifest(gold, lambda m: m["cases"][0].pop("tolerances"))
    for argv in (["check", str(gold), "self"], ["check", str(gold), str(cand)]):
        code, err = _exit_and_error(capsys, argv)
        _assert_input_error(code, err, "manifest.json", "'quadratic-5x4'", "'tolerances'", "missing")
    with pytest.raises(X.CrosscheckInputError, match="tolerances") as info:
        X.check(str(gold), {})
    assert info.value.field == "tolerances" and info.value.case == "quadratic-5x4"


def test_manifest_without_the_tolerance_of_one_output(damaged, capsys):
    gold, _ = damaged
    _edit_manifest(gold, lambda m: m["cases"][0]["tolerances"].pop("y_star"))
    code, err = _exit_and_error(capsys, ["check", str(gold), "self"])
    _assert_input_error(code, err, "manifest.json", "'tolerances.y_star'")


@pytest.mark.parametrize("edit,needles", [
    (lambda m: m.pop("cases"), ["field 'cases'", "missing"]),
    (lambda m: m.__setitem__("cases", {}), ["field 'cases'", "an array"]),
    (lambda m: m.__setitem__("cases", []), ["field 'cases'", "empty"]),
    (lambda m: m.__setitem__("version", 1.0), ["field 'version'", "string"]),
    (lambda m: m.__setitem__("format", "other"), ["field 'format'"]),
    (lambda m: m["cases"][1].__setitem__("seed", "7"), ["'cubic-pd-6'", "field 'seed'", "integer"]),
    (lambda m: m["cases"][1].__setitem__("outputs", "s"), ["'cubic-pd-6'", "field 'outputs'"]),
    (lambda m: m["cases"][1].pop("file"), ["'cubic-pd-6'", "field 'file'", "missing"]),
    (lambda m: m["cases"][1].__setitem__("file", "../x.npz"), ["'cubic-pd-6'", "field 'file'"]),
    (lambda m: m["cases"][0].pop("name"), ["field 'cases[0].name'", "missing"]),
    (lambda m: m["cases"][1].__setitem__("name", "quadratic-5x4"), ["'quadratic-5x4'", "duplicate"]),
    (lambda m: m["cases"][0]["tolerances"]["phi"]["float32"].__setitem__("rtol", -1),
     ["'tolerances.phi.float32.rtol'", ">= 0"]),
    (lambda m: m["cases"][0]["tolerances"]["phi"].pop("float64"), ["'tolerances.phi.float64'", "missing"]),
])
def test_manifest_schema_is_validated_up_front(damaged, capsys, edit, needles):
    gold, _ = damaged
    _edit_manifest(gold, edit)
    code, err = _exit_and_error(capsys, ["check", str(gold), "self"])
    _assert_input_error(code, err, "manifest.json", *needles)


@pytest.mark.parametrize("text", ["truncated", "[1, 2]", "binary"])
def test_corrupt_manifest_json(damaged, capsys, text):
    gold, cand = damaged
    path = gold / "manifest.json"
    if text == "truncated":
        path.write_text(path.read_text()[:100])
    elif text == "binary":
        path.write_bytes(b"\xff\xfe\x00\x01")
    else:
        path.write_text(text)
    code, err = _exit_and_error(capsys, ["check", str(gold), str(cand)])
    _assert_input_error(code, err, "manifest.json")
    if text == "truncated":
        assert "not valid JSON" in err and "line" in err


def test_quantity_missing_from_a_golden_file(damaged, capsys):
    gold, cand = damaged
    _rewrite_npz(gold / "quadratic-5x4.npz", lambda a: a.pop("output/y_star"))
    for argv in (["check", str(gold), "self"], ["check", str(gold), str(cand)]):
        code, err = _exit_and_error(capsys, argv)
        _assert_input_error(code, err, "quadratic-5x4.npz", "'output/y_star'", "missing")
    _rewrite_npz(gold / "quadratic-5x4.npz", lambda a: a.pop("data/P"))
    code, err = _exit_and_error(capsys, ["check", str(gold), "self"])
    _assert_input_error(code, err, "quadratic-5x4.npz", "'data/P'", "missing")


def test_golden_output_unlisted_or_nonfinite(damaged, capsys):
    gold, _ = damaged
    path = gold / "cubic-pd-6.npz"
    _rewrite_npz(path, lambda a: a.__setitem__("output/extra", np.ones(2)))
    code, err = _exit_and_error(capsys, ["list", str(gold)])
    _assert_input_error(code, err, "cubic-pd-6.npz", "'output/extra'", "not listed")
    _rewrite_npz(path, lambda a: (a.pop("output/extra"), a.__setitem__("output/lam", np.array(np.nan))))
    code, err = _exit_and_error(capsys, ["list", str(gold)])
    _assert_input_error(code, err, "cubic-pd-6.npz", "'output/lam'", "non-finite")


def test_quantity_removed_from_a_candidate(damaged, capsys):
    gold, cand = damaged
    _rewrite_npz(cand, lambda a: a.pop("quadratic-5x4/y_star"))
    capsys.readouterr()
    assert X.main(["check", str(gold), str(cand)]) == 0          # documented: missing is listed and ignored
    assert "missing" in capsys.readouterr().out
    code, err = _exit_and_error(capsys, ["check", str(gold), str(cand), "--require-all"])
    _assert_input_error(code, err, "cand.npz", "'quadratic-5x4/y_star'", "--require-all")


@pytest.mark.parametrize("edit,needles", [
    (lambda a: a.__setitem__("quadratic-5x4/y_starr", a.pop("quadratic-5x4/y_star")),
     ["'quadratic-5x4/y_starr'", "no output 'y_starr'"]),
    (lambda a: a.__setitem__("nocase/phi", a["quadratic-5x4/phi"]), ["'nocase/phi'", "unknown case"]),
    (lambda a: a.__setitem__("phi", a["quadratic-5x4/phi"]), ["array 'phi'", "'case/array'"]),
    (lambda a: a.__setitem__("quadratic-5x4/y_star", a["quadratic-5x4/y_star"][:-1]),
     ["'quadratic-5x4/y_star'", "shape (3,)", "(4,)"]),
    (lambda a: a.__setitem__("quadratic-5x4/phi", np.array("1.0")), ["'quadratic-5x4/phi'", "numeric"]),
    (lambda a: a.clear(), ["no arrays"]),
])
def test_malformed_candidate(damaged, capsys, edit, needles):
    gold, cand = damaged
    _rewrite_npz(cand, edit)
    code, err = _exit_and_error(capsys, ["check", str(gold), str(cand)])
    _assert_input_error(code, err, "cand.npz", *needles)


def test_candidate_not_an_npz_archive(damaged, capsys, tmp_path):
    gold, _ = damaged
    npy = tmp_path / "single.npz"
    with open(npy, "wb") as fh:
        np.save(fh, np.ones(3))
    code, err = _exit_and_error(capsys, ["check", str(gold), str(npy)])
    _assert_input_error(code, err, "single.npz", ".npy")
    code, err = _exit_and_error(capsys, ["check", str(gold), str(tmp_path / "absent.npz")])
    _assert_input_error(code, err, "absent.npz", "not found")


def test_self_check_on_unrebuildable_data(damaged, capsys):
    gold, _ = damaged
    _rewrite_npz(gold / "quadratic-5x4.npz", lambda a: a.__setitem__("data/A", np.ones((2, 2))))
    code, err = _exit_and_error(capsys, ["check", str(gold), "self"])
    _assert_input_error(code, err, "quadratic-5x4.npz", "cannot recompute case 'quadratic-5x4'")


def test_unexpected_error_is_exit_3_not_1(damaged, capsys, monkeypatch):
    gold, cand = damaged

    def boom(*args, **kwargs):
        raise KeyError("bug")

    monkeypatch.setattr(X, "_check_cases", boom)
    code, err = _exit_and_error(capsys, ["check", str(gold), str(cand)])
    assert code == X.EXIT_INTERNAL == 3 and "Traceback" in err and "internal error" in err


def test_cli_help_documents_exit_codes(capsys):
    for argv in (["--help"], ["check", "--help"]):
        with pytest.raises(SystemExit):
            X.main(argv)
        out = capsys.readouterr().out
        assert "exit status" in out and "outside its tolerance" in out and "damaged or malformed" in out
