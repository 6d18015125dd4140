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
