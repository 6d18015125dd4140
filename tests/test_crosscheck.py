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
    assert manifest["format"] == "bilevel_ref-golden" and manifest["version"] == X.FORMAT_VERSION == "2.0"
    names = [c["name"] for c in manifest["cases"]]
    assert names == [c.name for c in X.default_cases()]
    for entry in manifest["cases"]:
        assert os.path.isfile(os.path.join(golden, entry["file"]))
        for key in ("kind", "family", "params", "seed", "dtype", "inputs", "outputs", "tolerances", "shapes",
                    "definitions"):
            assert key in entry
        for arr in entry["outputs"]:
            tol = entry["tolerances"][arr]
            assert tol["float64"]["dtype"] == "float64" and tol["float32"]["dtype"] == "float32"
            assert 0 < tol["float64"]["rtol"] <= 1e-9 and tol["amplification"] >= 1
            assert tol["float32"]["rtol"] is None or tol["float64"]["rtol"] < tol["float32"]["rtol"] <= 1e-4
            assert entry["definitions"][arr] == X.OUTPUT_DEFINITIONS[arr]
    kinds = {c.kind for c in cases.values()}
    assert kinds == {"bilevel", "estimators", "minimax", "minibatch", "cubic", "trajectory"}
    q = cases["quadratic-5x4"]
    assert {"grad_phi", "hess_phi", "grad_penalty", "hess_penalty", "penalty_grad_est",
            "penalty_hess_est"} <= set(q.outputs)
    assert set(q.data) == {"P", "R", "S", "p", "q", "A", "C", "E", "a", "b"}
    # the conventions that used to live only in the docs
    conv = manifest["conventions"]
    assert "L*_lam(x) = min_y" in conv["penalty"] and "input/y approximates y*_lam" in conv["y_and_w"]
    assert "lam = (M/2)||s||" in conv["cubic"] and "sign of u" in conv["hard_case"]


def test_provenance_and_checksums(golden):
    import hashlib

    import bilevel_ref

    with open(os.path.join(golden, "manifest.json")) as fh:
        manifest = json.load(fh)
    prov = manifest["provenance"]
    assert prov["library"] == "bilevel_ref" and prov["library_version"] == bilevel_ref.__version__
    assert prov["git_commit"] is None or len(prov["git_commit"]) == 40
    assert sorted(prov["files"]) == sorted(e["file"] for e in manifest["cases"])
    for fname, digest in prov["files"].items():
        assert hashlib.sha256((open(os.path.join(golden, fname), "rb").read())).hexdigest() == digest
    for entry in manifest["cases"]:
        assert isinstance(entry["seed"], int) and "generator" in entry["params"] or entry["kind"] == "cubic"


def test_shipped_schema_is_a_valid_json_schema_and_validates_every_case(golden):
    jsonschema = pytest.importorskip("jsonschema")
    from bilevel_ref.crosscheck.schema import schema_errors

    schema = X.load_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    with open(os.path.join(golden, "manifest.json")) as fh:
        manifest = json.load(fh)
    jsonschema.validate(manifest, schema, cls=jsonschema.Draft202012Validator)
    assert schema_errors(manifest) == []
    # the built-in validator and jsonschema agree on broken manifests
    for edit in (lambda m: m["cases"][0].pop("shapes"), lambda m: m["cases"][1].__setitem__("kind", "other"),
                 lambda m: m["cases"][0]["tolerances"]["phi"]["float32"].__setitem__("rtol", "x"),
                 lambda m: m["provenance"]["files"].__setitem__("a.npz", "nothex"),
                 lambda m: m["cases"][0]["tolerances"]["phi"]["float32"].pop("reason", None) or
                 m["cases"][0]["tolerances"]["phi"]["float32"].__setitem__("rtol", None)):
        broken = json.loads(json.dumps(manifest))
        edit(broken)
        assert schema_errors(broken), edit
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(broken, schema, cls=jsonschema.Draft202012Validator)


def _seeded(ref, how, rng):
    """``ref`` with a relative error of exactly 1 % in the max norm, of the kind ``how``."""
    if how == "scale":
        return ref * 1.01
    if how == "entry":
        out = ref.copy().reshape(-1)
        k = int(np.argmax(np.abs(out)))
        out[k] += 0.01 * abs(out[k])
        return out.reshape(ref.shape)
    noise = rng.uniform(-1.0, 1.0, ref.shape)
    return ref + 0.01 * np.max(np.abs(ref)) * noise / np.max(np.abs(noise))


@pytest.mark.parametrize("how", ["scale", "entry", "direction"])
def test_one_percent_error_in_any_output_fails_its_case(golden, cases, how):
    """For every output of every case: the exact reference passes and a 1 % error fails, in float64 and —
    wherever float32 has a tolerance — in float32; outputs float32 cannot resolve are reported n/a."""
    rng = np.random.default_rng(0)
    n_checked = {"float64": 0, "float32": 0}
    for name, case in cases.items():
        for arr, ref in case.outputs.items():
            for dtype in ("float64", "float32"):
                good = X.check_cases({name: case}, {name: {arr: ref}}, dtype)
                bad = X.check_cases({name: case}, {name: {arr: _seeded(ref, how, rng)}}, dtype)
                row = [r for r in bad.rows if r["array"] == arr][0]
                if case.tolerances[arr][dtype]["rtol"] is None:
                    assert dtype == "float32" and row["status"] == "n/a"
                    continue
                n_checked[dtype] += 1
                assert good.passed, (name, arr, dtype)
                assert not bad.passed and [(r["case"], r["array"]) for r in bad.failures] == [(name, arr)], \
                    (name, arr, dtype)
                assert row["max_rel"] == pytest.approx(0.01, rel=1e-6)
    n_outputs = sum(len(c.outputs) for c in cases.values())
    assert n_checked["float64"] == n_outputs >= 90
    from bilevel_ref.crosscheck.tolerances import MEASURED_FLOAT32

    assert n_checked["float32"] == n_outputs - len(MEASURED_FLOAT32)


def test_error_model_formula_and_float32_support_line():
    from bilevel_ref.crosscheck import tolerances as T

    assert T.amplification({"conditioning": 10.0, "cancellation": 400.0, "coupling": 0.0}) == 210.0
    assert T.amplification({"conditioning": 3.0, "cancellation": 20.0, "coupling": 60.0}) == 43.0
    assert T.amplification({"conditioning": 0.0, "cancellation": 0.0}) == 1.0          # floor
    eps32 = float(np.finfo(np.float32).eps)
    line = 1e-4 / 3 / eps32                                                               # A ≈ 280
    below, above = T.tolerance(0.99 * line, "float32"), T.tolerance(1.01 * line, "float32", 560.0, 3e-5)
    assert below["rtol"] == 1e-4 and below["atol"] == 0.0                                 # capped, supported
    assert above["rtol"] is None and "u*c = 3.3e-05" in above["reason"] and "3.0e-05" in above["reason"]
    assert T.tolerance(2.0, "float32")["rtol"] == float(f"{20 * 2 * eps32:.2g}")
    assert T.tolerance(1e6, "float64")["rtol"] == float(f"{20e6 * np.finfo(float).eps:.2g}")
    for bad in ({"cancellation": -1.0}, {"conditioning": float("nan")}):
        with pytest.raises(ValueError, match="amplification parts"):
            T.amplification(bad)
    with pytest.raises(ValueError, match="dtype"):
        T.tolerance(2.0, "float16")


def test_error_model_parts_from_the_data(cases):
    """The parts recorded in the manifest, recomputed from the stored arrays by hand: the penalty gradient's
    cancellation ratio, the coupling (0 for quadratics, whose second derivatives are data; > 0 for logistic),
    and A = κ + (c + coupling)/2."""
    c = cases["quadratic-3x6"]
    d, x, lam = c.data, c.inputs["x"], float(c.inputs["lam"])
    y, w = c.outputs["y_star_penalty"], c.outputs["y_star"]
    gx_f = d["P"] @ x + d["R"] @ y + d["p"]
    gx_g = lambda u: d["C"].T @ u + d["E"] @ x + d["b"]  # noqa: E731
    G = gx_f + lam * (gx_g(y) - gx_g(w))
    ratio = np.max(np.abs(gx_f) + lam * np.abs(gx_g(y)) + lam * np.abs(gx_g(w))) / np.max(np.abs(G))
    tol = c.tolerances["grad_penalty"]
    assert np.isclose(tol["cancellation"], ratio, rtol=5e-3) and ratio > 100     # ~λ: cancellation at λ = 100
    assert tol["coupling"] == 0.0
    assert np.isclose(tol["amplification"], tol["conditioning"] + tol["cancellation"] / 2, rtol=5e-3)
    for name in ("quadratic-5x4", "nonconvex-y-4x5", "minibatch-finite-sum-3x4"):
        assert all(t.get("coupling", 0.0) == 0.0 for t in cases[name].tolerances.values())
    lt = cases["logistic-4"].tolerances["hess_penalty"]
    assert np.isclose(lt["coupling"], lt["conditioning"] * lt["cancellation"], rtol=1e-2) and lt["coupling"] > 10
    # at inexact (y, w) the λ-term is O(λ): no cancellation, float32-checkable up to λ = 10⁴
    est = cases["quadratic-lam1e4-4x5"].tolerances["penalty_grad_est"]
    assert est["float32"]["rtol"] == 1e-4 and est["cancellation"] < 1000


def test_float64_tolerance_is_lambda_and_condition_aware(cases):
    rt = {n: cases[n].tolerances["hess_penalty"]["float64"]["rtol"]
          for n in ("quadratic-5x4", "quadratic-lam1e3-4x5", "quadratic-lam1e4-4x5")}
    assert rt["quadratic-5x4"] < rt["quadratic-lam1e3-4x5"] < rt["quadratic-lam1e4-4x5"]
    # roughly linear in λ at large λ (the cancellation ratio ~ λ)
    assert 5 < rt["quadratic-lam1e4-4x5"] / rt["quadratic-lam1e3-4x5"] < 20
    # y* (one solve with κ = 10) gets ~κ·eps, not a flat 1e-10
    assert cases["quadratic-5x4"].tolerances["y_star"]["float64"]["rtol"] < 1e-13


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
    manifest["version"] = "3.0"
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
        y = X.newton(lambda v: prob.grad_g(x, v)[1], lambda v: prob.hess_g(x, v)[2], np.zeros(prob.dy))
        return prob.f(x, y)

    x = c.inputs["x"]
    fd = fd_gradient(phi, x)
    assert np.max(np.abs(fd - c.outputs["grad_phi"])) <= 1e-8 * max(1.0, np.max(np.abs(fd)))
    # penalty gradient: finite differences of L*_λ(x) = min_y (f + λg) − λ min_y g
    lam = float(c.inputs["lam"])

    def l_star(x):
        y_st = X.newton(lambda v: prob.grad_g(x, v)[1], lambda v: prob.hess_g(x, v)[2], np.zeros(prob.dy))
        y_l = X.newton(lambda v: prob.grad_f(x, v)[1] + lam * prob.grad_g(x, v)[1],
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


def _update_checksum(gold, fname):
    from bilevel_ref.crosscheck.golden_io import sha256

    _edit_manifest(gold, lambda m: m["provenance"]["files"].__setitem__(fname, sha256(gold / fname)))


def test_self_check_on_unrebuildable_data(damaged, capsys):
    gold, _ = damaged
    _rewrite_npz(gold / "quadratic-5x4.npz", lambda a: a.__setitem__("data/A", -np.eye(4)))
    _update_checksum(gold, "quadratic-5x4.npz")
    code, err = _exit_and_error(capsys, ["check", str(gold), "self"])
    _assert_input_error(code, err, "quadratic-5x4.npz", "cannot recompute case 'quadratic-5x4'")


# -- `check DIR`: validation of a golden directory alone ------------------------------------
def test_check_dir_validates_a_good_directory(damaged, capsys):
    gold, _ = damaged
    capsys.readouterr()
    assert X.main(["check", str(gold)]) == 0
    assert "valid golden directory" in capsys.readouterr().out


def test_check_dir_missing_quantity(damaged, capsys):
    gold, _ = damaged
    _rewrite_npz(gold / "cubic-pd-6.npz", lambda a: a.pop("output/lam"))
    _update_checksum(gold, "cubic-pd-6.npz")
    code, err = _exit_and_error(capsys, ["check", str(gold)])
    _assert_input_error(code, err, "cubic-pd-6.npz", "'output/lam'", "missing", "outputs of case 'cubic-pd-6'")
    # listed in the manifest without a definition or tolerance: the manifest is at fault
    _edit_manifest(gold, lambda m: m["cases"][1]["definitions"].pop("s"))
    code, err = _exit_and_error(capsys, ["check", str(gold)])
    _assert_input_error(code, err, "manifest.json", "'cubic-pd-6'", "'definitions.s'", "missing")


def test_check_dir_wrong_shape(damaged, capsys):
    gold, _ = damaged
    _rewrite_npz(gold / "cubic-pd-6.npz", lambda a: a.__setitem__("output/s", a["output/s"][:-1]))
    code, err = _exit_and_error(capsys, ["check", str(gold)])
    _assert_input_error(code, err, "cubic-pd-6.npz", "'output/s'", "wrong shape (5,)", "(6,)")
    _edit_manifest(gold, lambda m: m["cases"][1]["shapes"].pop("input/g"))
    code, err = _exit_and_error(capsys, ["check", str(gold)])
    _assert_input_error(code, err, "manifest.json", "'shapes.input/g'", "missing")


def test_check_dir_checksum_mismatch(damaged, capsys):
    gold, _ = damaged
    _rewrite_npz(gold / "cubic-pd-6.npz", lambda a: a.__setitem__("output/s", a["output/s"] * (1 + 1e-12)))
    code, err = _exit_and_error(capsys, ["check", str(gold)])
    _assert_input_error(code, err, "cubic-pd-6.npz", "case 'cubic-pd-6'", "checksum mismatch")
    assert X.load_golden(str(gold), verify_checksums=False)["cubic-pd-6"].outputs["s"] is not None


@pytest.mark.parametrize("version", ["1.0", "3.0"])
def test_check_dir_version_mismatch(damaged, capsys, version):
    gold, _ = damaged
    _edit_manifest(gold, lambda m: m.__setitem__("version", version))
    code, err = _exit_and_error(capsys, ["check", str(gold)])
    _assert_input_error(code, err, "manifest.json", "field 'version'", f"format version {version}",
                        "not readable")


def test_unexpected_error_is_exit_3_not_1(damaged, capsys, monkeypatch):
    gold, cand = damaged

    def boom(*args, **kwargs):
        raise KeyError("bug")

    monkeypatch.setattr(X, "check_cases", boom)
    code, err = _exit_and_error(capsys, ["check", str(gold), str(cand)])
    assert code == X.EXIT_INTERNAL == 3 and "Traceback" in err and "internal error" in err


def test_cli_help_documents_exit_codes(capsys):
    for argv in (["--help"], ["check", "--help"]):
        with pytest.raises(SystemExit):
            X.main(argv)
        out = capsys.readouterr().out
        assert "exit status" in out and "outside its tolerance" in out and "damaged or malformed" in out


# -- the new families' references against truth from outside the code -----------------------
def _quad_closed_forms(c):
    d = c.data
    x, lam = c.inputs["x"], float(c.inputs["lam"])
    A, C, S, R = d["A"], d["C"], d["S"], d["R"]
    y_lam = -np.linalg.solve(S + lam * A, R.T @ x + d["q"] + lam * (C @ x + d["a"]))
    Bh = R + lam * C.T
    hpen = (d["P"] + lam * d["E"] - Bh @ np.linalg.solve(S + lam * A, Bh.T)
            - lam * (d["E"] - C.T @ np.linalg.solve(A, C)))
    return y_lam, hpen


@pytest.mark.parametrize("name", ["quadratic-lam1e3-4x5", "quadratic-lam1e4-4x5", "nonconvex-y-4x5"])
def test_large_lambda_and_nonconvex_y_references(cases, name):
    c = cases[name]
    y_lam, hpen = _quad_closed_forms(c)
    tol = c.tolerances
    for arr, truth in (("y_star_penalty", y_lam), ("hess_penalty", hpen)):
        err = np.max(np.abs(c.outputs[arr] - truth)) / np.max(np.abs(truth))
        assert err <= tol[arr]["float64"]["rtol"], (name, arr, err)
    if name == "nonconvex-y-4x5":
        assert np.linalg.eigvalsh(c.data["S"])[0] < -0.9         # f(x, ·) is nonconvex
    # ∇L*_λ against finite differences of L*_λ(x) = min_y f + λ(g − min g) (closed-form minimisers)
    prob = X.rebuild_problem(c)
    lam = float(c.inputs["lam"])

    def l_star(x):
        d = c.data
        y_l = -np.linalg.solve(d["S"] + lam * d["A"], d["R"].T @ x + d["q"] + lam * (d["C"] @ x + d["a"]))
        y_s = -np.linalg.solve(d["A"], d["C"] @ x + d["a"])
        return prob.f(x, y_l) + lam * (prob.g(x, y_l) - prob.g(x, y_s))
    fd = fd_gradient(l_star, c.inputs["x"])
    assert np.max(np.abs(fd - c.outputs["grad_penalty"])) <= 1e-5 * lam * max(1.0, np.max(np.abs(fd)))


def test_estimator_references(cases):
    c = cases["estimators-quadratic-5x4"]
    d, inp, est = c.data, c.inputs, c.params["estimators"]
    x, y = inp["x"], inp["y"]
    A, Ct = d["A"], d["C"].T                   # ∇²_yy g = A, ∇²_xy g = Cᵀ
    gy_f = d["R"].T @ x + d["S"] @ y + d["q"]
    gx_f = d["P"] @ x + d["R"] @ y + d["p"]
    # K textbook CG steps from 0
    v, r = np.zeros_like(gy_f), gy_f.copy()
    p = r.copy()
    for _ in range(est["aid_cg"]["steps"]):
        a = (r @ r) / (p @ A @ p)
        v, r_new = v + a * p, r - a * (A @ p)
        p, r = r_new + (r_new @ r_new) / (r @ r) * p, r_new
    assert np.allclose(c.outputs["aid_cg_v"], v, rtol=1e-12, atol=0)
    assert np.allclose(c.outputs["aid_cg_d"], gx_f - Ct @ v, rtol=1e-12, atol=1e-14)
    # Neumann: η Σ_{q=0}^{Q} (I − ηA)^q ∇_y f
    eta, Q = est["aid_neumann"]["eta"], est["aid_neumann"]["steps"]
    M = np.eye(len(y)) - eta * A
    v = eta * sum(np.linalg.matrix_power(M, q) @ gy_f for q in range(Q + 1))
    assert np.allclose(c.outputs["aid_neumann_v"], v, rtol=1e-12, atol=0)

    # ITD: finite differences of x ↦ f(x, y_T(x))
    def f_T(xx):
        yy = inp["y0"].copy()
        for _ in range(est["itd"]["steps"]):
            yy = yy - est["itd"]["alpha"] * (A @ yy + d["C"] @ xx + d["a"])
        return 0.5 * xx @ d["P"] @ xx + xx @ d["R"] @ yy + 0.5 * yy @ d["S"] @ yy + d["p"] @ xx + d["q"] @ yy
    assert np.max(np.abs(fd_gradient(f_T, x) - c.outputs["itd_d"])) <= 1e-7 * np.max(np.abs(c.outputs["itd_d"]))
    # F2SA-p at the exact perturbed minimisers approximates ∇φ to O(ν^p)
    K = -np.linalg.solve(A, d["C"])
    y_st = -np.linalg.solve(A, d["C"] @ x + d["a"])
    grad_phi = d["P"] @ x + d["R"] @ y_st + d["p"] + K.T @ (d["R"].T @ x + d["S"] @ y_st + d["q"])
    nu, fd = est["fd"]["nu"], est["fd"]

    def stencil_estimate(nu_):       # closed-form y*_{jν} = −(A + jνS)⁻¹(Cx + a + jν(Rᵀx + q))
        out = 0.0
        for j, a in zip(fd["offsets"], fd["weights"]):
            yj = -np.linalg.solve(A + j * nu_ * d["S"], d["C"] @ x + d["a"] + j * nu_ * (d["R"].T @ x + d["q"]))
            out = out + a * (j * (d["P"] @ x + d["R"] @ yj + d["p"]) + (Ct @ yj + d["E"] @ x + d["b"]) / nu_)
        return out
    assert np.max(np.abs(c.outputs["fd_exact"] - stencil_estimate(nu))) <= 1e-12 * np.max(np.abs(grad_phi))
    # ... and it is an order-p approximation of ∇φ: halving ν divides the error by ≈ 2^p
    e1, e2 = (np.max(np.abs(stencil_estimate(n) - grad_phi)) for n in (nu / 10, nu / 20))
    assert fd["p"] == 2 and 3.5 < e1 / e2 < 4.5
    # matrix-free penalty Hessian product = closed-form H(x; y, w) v (quadratic: independent of y, w)
    lam = float(inp["lam"])
    _, hpen = _quad_closed_forms(c)
    assert np.max(np.abs(c.outputs["penalty_hvp"] - hpen @ inp["v"])) <= 1e-11 * np.max(np.abs(hpen @ inp["v"]))
    assert lam == 10.0


def test_minimax_minibatch_and_cubic_references(cases):
    c = cases["minimax-doublewell-4x3"]
    B, mu, x = c.data["B"], float(c.data["mu"]), c.inputs["x"]

    def P(xx):
        y = B.T @ xx / mu
        return np.sum(xx**4 / 4 - xx**2 / 2) + xx @ B @ y - 0.5 * mu * y @ y
    assert np.max(np.abs(fd_gradient(P, x) - c.outputs["grad_phi"])) <= 1e-8
    assert float(c.outputs["phi"]) == pytest.approx(P(x), rel=1e-14)

    c = cases["minibatch-finite-sum-3x4"]
    d, inp = c.data, c.inputs
    bg = inp["batch_g"]
    z, w, cc, e = (d[f"g_{k}"][bg] for k in ("z", "w", "c", "e"))
    x, y = inp["x"], inp["y"]
    gx = np.mean(w * (w @ x)[:, None] + cc * (e @ y)[:, None] + d["g_lin_x"][bg], axis=0)
    gy = np.mean(z * (z @ y)[:, None] + e * (cc @ x)[:, None] + d["g_lin_y"][bg], axis=0)
    assert np.allclose(c.outputs["grad_g_x"], gx, rtol=1e-13, atol=1e-15)
    assert np.allclose(c.outputs["grad_g_y"], gy, rtol=1e-13, atol=1e-15)

    from bilevel_ref.crosscheck.reference import cubic_operator
    from bilevel_ref.linalg.cubic import solve_cubic

    c = cases["cubic-lanczos-40"]
    g, M = c.inputs["g"], float(c.inputs["M"])
    _, H = cubic_operator(c)
    s = solve_cubic(g, H, M, method="eigh").s
    assert np.max(np.abs(c.outputs["s"] - s)) <= 1e-13 * np.max(np.abs(s))
    # Krylov iterate: minimiser of m on span{g, ..., H^(k-1) g}, by projecting onto an orthonormal basis
    k = c.params["krylov_dim"]
    Qb, _ = np.linalg.qr(np.stack([np.linalg.matrix_power(H, j) @ g for j in range(k)], axis=1))
    sk = Qb @ solve_cubic(Qb.T @ g, Qb.T @ H @ Qb, M, method="eigh").s
    assert np.max(np.abs(c.outputs["s_krylov"] - sk)) <= 1e-9 * np.max(np.abs(sk))


def test_docs_consumer_needs_no_bilevel_ref(tmp_path):
    """docs/examples/crosscheck_2_consumer.py reproduces three quantities with bilevel_ref unimportable."""
    import subprocess

    X.export_golden(str(tmp_path), ["quadratic-3x6"])
    script = os.path.join(os.path.dirname(__file__), "..", "docs", "examples", "crosscheck_2_consumer.py")
    blocker = ("import sys, runpy; sys.modules['bilevel_ref'] = None; sys.argv = sys.argv[1:]; "
               "runpy.run_path(sys.argv[0], run_name='__main__')")
    proc = subprocess.run([sys.executable, "-c", blocker, script, str(tmp_path)], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    lines = [ln for ln in proc.stdout.splitlines() if ln.rstrip().endswith("pass")]
    assert [ln.split()[0] for ln in lines] == ["y_star", "grad_phi", "hess_penalty"]
    # and it can fail: a corrupted reference makes it exit 1
    _rewrite_npz(tmp_path / "quadratic-3x6.npz",
                 lambda a: a.__setitem__("output/grad_phi", a["output/grad_phi"] * 1.01))
    _edit_manifest(tmp_path, lambda m: m["provenance"]["files"].__setitem__(
        "quadratic-3x6.npz", __import__("hashlib").sha256((tmp_path / "quadratic-3x6.npz").read_bytes()).hexdigest()))
    proc = subprocess.run([sys.executable, "-c", blocker, script, str(tmp_path)], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 1 and "grad_phi" in proc.stdout and "FAIL" in proc.stdout
