"""A golden-case consumer with no bilevel_ref import: plain json, hashlib and NumPy.

It reads the manifest, checks the format version and the file's SHA-256,
rebuilds the quadratic bilevel problem from the stored arrays using only the
formulas in the manifest, computes three outputs — y*(x), ∇φ(x) and the
penalty Hessian ∇²L*_λ(x) — and compares each with the reference at the
manifest's float64 tolerance (normwise, as the manifest's error_measure says).
"""
import hashlib
import json
import sys

import numpy as np

directory = sys.argv[1] if len(sys.argv) > 1 else "_output/golden"
with open(f"{directory}/manifest.json", encoding="utf-8") as fh:
    manifest = json.load(fh)
assert manifest["format"] == "bilevel_ref-golden" and manifest["version"].split(".")[0] == "2", manifest["version"]

entry = next(e for e in manifest["cases"] if e["name"] == "quadratic-3x6")
path = f"{directory}/{entry['file']}"
with open(path, "rb") as fh:
    assert hashlib.sha256(fh.read()).hexdigest() == manifest["provenance"]["files"][entry["file"]], "checksum"
with np.load(path) as z:
    d = {k.split("/", 1)[1]: z[k] for k in z.files if k.startswith("data/")}
    x, lam = z["input/x"], float(z["input/lam"])
    ref = {k.split("/", 1)[1]: z[k] for k in z.files if k.startswith("output/")}

print("f =", entry["params"]["f"])
print("g =", entry["params"]["g"])
A, C, R, S, E = d["A"], d["C"], d["R"], d["S"], d["E"]
y_star = -np.linalg.solve(A, C @ x + d["a"])                           # argmin_y g: A y + C x + a = 0
grad_x_f = d["P"] @ x + R @ y_star + d["p"]
grad_y_f = R.T @ x + S @ y_star + d["q"]
grad_phi = grad_x_f - C.T @ np.linalg.solve(A, grad_y_f)                # B_g = C' (dx x dy), D_g = A


def schur(Axx, Bxy, Dyy):
    return Axx - Bxy @ np.linalg.solve(Dyy, Bxy.T)


# hess L*_lam = Schur of h = f + lam g at y*_lam minus lam * Schur of g at y* (Hessians constant here)
hess_penalty = schur(d["P"] + lam * E, R + lam * C.T, S + lam * A) - lam * schur(E, C.T, A)

failed = False
for name, value in (("y_star", y_star), ("grad_phi", grad_phi), ("hess_penalty", hess_penalty)):
    tol = entry["tolerances"][name]["float64"]
    max_abs = float(np.max(np.abs(value - ref[name])))
    scale = float(np.max(np.abs(ref[name])))
    ok = max_abs <= tol["atol"] + tol["rtol"] * scale
    failed |= not ok
    print(f"{name:13s} max_rel {max_abs / scale:.1e}  rtol {tol['rtol']:.1e}  {'pass' if ok else 'FAIL'}")
    print(f"{'':13s} {entry['definitions'][name]}")
sys.exit(1 if failed else 0)
