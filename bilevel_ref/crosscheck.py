r"""Golden cases for cross-checking other implementations (JAX, PyTorch, CUDA, ...).

A *golden directory* holds one ``.npz`` file per case and a JSON manifest
(``manifest.json``).  Each case fixes a problem completely — by its raw data
arrays, not by our random generator, so another library can rebuild it — plus
inputs and reference outputs computed by this library in float64:

* bilevel problems (quadratic, binary logistic learn-to-regularize): ``y_star``,
  ``phi``, ``grad_phi`` (implicit function theorem at an accurate y*),
  ``hess_phi`` (quadratic), penalty quantities at a given λ — ``y_star_penalty``,
  ``grad_penalty`` = ∇L*_λ(x), ``hess_penalty`` = ∇²L*_λ(x) — and the penalty
  *estimators* at given inexact (y, w): ``penalty_grad_est`` = G(x; y, w),
  ``penalty_hess_est`` = H(x; y, w) (the FSBA estimators of Yang, Liu, Chen &
  Lui 2026, see :mod:`bilevel_ref.hypergrad.penalty`);
* cubic subproblems (g, H, M): the global minimiser ``s``, ``model_value``,
  ``lam`` = (M/2)‖s‖ and ``s_norm`` (hard cases store only the unique
  quantities: the sign of the eigenvector component of s is arbitrary);
* a short AID trajectory ``x_traj`` (iterates x_0 … x_T) with its exact
  per-iteration settings in the manifest.

npz keys are ``data/<name>`` (problem data), ``input/<name>`` and
``output/<name>``.  Manifest entry per case: ``name``, ``file``, ``kind``
(``bilevel``/``cubic``/``trajectory``), ``family``, ``params`` (generator and
its arguments, formulas), ``seed``, ``dtype``, ``inputs``, ``outputs``,
``tolerances`` (per output, for float64 and float32 candidates),
``description``.  The format is versioned (:data:`FORMAT_VERSION`); a reader
must reject a newer major version.

Damaged or malformed input — a truncated ``.npz``, a manifest that is not
JSON or lacks a required field or has one of the wrong type, an array the
manifest lists but the file lacks — raises :class:`CrosscheckInputError`
(a :class:`ValueError`) whose one-line message names the file and the field.
``bilevel-ref crosscheck`` exits with :data:`EXIT_INPUT` (2) on it;
:data:`EXIT_MISMATCH` (1) means only that a quantity is outside its tolerance.

Errors are normwise: ``max_abs`` = max|out − ref|, ``max_rel`` = max_abs /
max|ref| (elementwise relative errors are meaningless at zero entries); an
array passes iff ``max_abs <= atol + rtol * max|ref|``.

Typical use::

    export_golden("golden/")                      # or: bilevel-ref crosscheck export golden/
    outputs = {"quadratic-5x4": {"grad_phi": my_grad_phi(...), ...}, ...}
    report = check("golden/", outputs, dtype="float32")
    print(report.format()); assert report.passed
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import traceback
import zipfile
import zlib
from dataclasses import dataclass, field

import numpy as np

from ._validation import check_choice

__all__ = ["FORMAT_VERSION", "GoldenCase", "CheckReport", "CrosscheckInputError", "export_golden", "load_golden",
           "check", "reference_outputs", "rebuild_problem", "main",
           "EXIT_PASS", "EXIT_MISMATCH", "EXIT_INPUT", "EXIT_INTERNAL"]

#: Major.minor version of the golden-case format.
FORMAT_VERSION = "1.0"
MANIFEST = "manifest.json"
DTYPES = ("float64", "float32")

#: Exit status of ``bilevel-ref crosscheck``: every checked quantity within its tolerance
EXIT_PASS = 0
#: ... a quantity outside its tolerance (or non-finite) — and nothing else
EXIT_MISMATCH = 1
#: ... damaged or malformed input (golden directory, manifest, candidate file) or a usage error
EXIT_INPUT = 2
#: ... an unexpected internal error (a bug; the traceback is printed)
EXIT_INTERNAL = 3


class CrosscheckInputError(ValueError):
    """Damaged or malformed crosscheck input.

    ``file`` is the offending file, ``field`` the manifest field or array name
    (None when the whole file is unreadable) and ``case`` the golden case if
    known; ``str(err)`` is one line ``<file>: [case '<case>'] <field>: <problem>``.
    """

    def __init__(self, file, field, problem, *, case=None, kind="field"):
        self.file = os.fspath(file)
        self.field = field
        self.case = case
        self.problem = " ".join(str(problem).split())      # one line
        where = ([f"case {case!r}"] if case is not None else []) + \
            ([f"{kind} {field!r}"] if field is not None else [])
        super().__init__(self.file + (": " + " ".join(where) if where else "") + ": " + self.problem)

# Default tolerances (rtol, atol) by output name; float32 allows for single-precision
# rounding, and for the O(λ) cancellation inside the penalty Hessian (see
# bilevel_ref.hypergrad.penalty.penalty_hessian).
_TOL64 = (1e-10, 1e-13)
_TOL32 = {"default": (2e-4, 1e-6), "hess_penalty": (2e-2, 1e-4), "penalty_hess_est": (2e-2, 1e-4),
          "x_traj": (1e-3, 1e-5), "y_star_penalty": (1e-3, 1e-6), "grad_penalty": (1e-3, 1e-5)}


def _tolerances(outputs):
    return {name: {"float64": {"rtol": _TOL64[0], "atol": _TOL64[1]},
                   "float32": dict(zip(("rtol", "atol"), _TOL32.get(name, _TOL32["default"])))}
            for name in outputs}


@dataclass
class GoldenCase:
    """One golden case as loaded by :func:`load_golden`."""

    name: str
    kind: str
    family: str
    params: dict
    seed: int
    dtype: str
    data: dict
    inputs: dict
    outputs: dict
    tolerances: dict
    description: str = ""
    #: the ``.npz`` file the case was loaded from (empty for cases built in memory)
    path: str = field(default="", compare=False, repr=False)

    def manifest_entry(self):
        return {"name": self.name, "file": f"{self.name}.npz", "kind": self.kind, "family": self.family,
                "params": self.params, "seed": self.seed, "dtype": self.dtype,
                "data": sorted(self.data), "inputs": sorted(self.inputs), "outputs": sorted(self.outputs),
                "tolerances": self.tolerances, "description": self.description}


# ---------------------------------------------------------------------------
# reference computations
# ---------------------------------------------------------------------------
def _newton(grad, hess, y0, tol=1e-14, maxiter=100):
    """Newton's method on a strongly convex function to ‖∇‖ ≤ tol·max(1, ‖∇(y0)‖)."""
    y = np.array(y0, dtype=float)
    g0 = max(1.0, float(np.linalg.norm(grad(y))))
    for _ in range(maxiter):
        g = grad(y)
        if np.linalg.norm(g) <= tol * g0:
            break
        y = y - np.linalg.solve(hess(y), g)
    return y


def _bilevel_outputs(problem, x, y, w, lam, exact_hess):
    """Reference outputs of a bilevel case from the problem's oracles (uncounted)."""
    from .hypergrad.exact import exact_hypergradient
    from .hypergrad.penalty import penalty_gradient

    y_st = _newton(lambda v: problem.grad_g(x, v)[1], lambda v: problem.hess_g(x, v)[2], np.zeros(problem.dy))
    y_lam = _newton(lambda v: problem.grad_f(x, v)[1] + lam * problem.grad_g(x, v)[1],
                    lambda v: problem.hess_f(x, v)[2] + lam * problem.hess_g(x, v)[2], y_st)
    out = {
        "y_star": y_st,
        "phi": np.array(problem.f(x, y_st)),
        "grad_phi": exact_hypergradient(problem, x, y_st).d,
        "y_star_penalty": y_lam,
        # Danskin at the exact inner minimisers: G(x; y*_λ, y*) = ∇L*_λ(x)
        "grad_penalty": penalty_gradient(problem, x, y_lam, y_st, lam).d,
        "penalty_grad_est": penalty_gradient(problem, x, y, w, lam).d,
    }
    if exact_hess:
        out["hess_phi"] = problem.hess_phi(x)
    try:
        from .hypergrad.penalty import penalty_hessian
    except ImportError:  # the dense penalty Hessian estimator is optional in older versions
        penalty_hessian = None
    if penalty_hessian is not None:
        out["hess_penalty"] = penalty_hessian(problem, x, y_lam, y_st, lam)
        out["penalty_hess_est"] = penalty_hessian(problem, x, y, w, lam)
    return out


def rebuild_problem(case):
    """Our :class:`~bilevel_ref.problems.base.BilevelProblem` from a bilevel case's data arrays."""
    d = case.data
    if case.family == "quadratic":
        from .problems.quadratic import QuadraticBilevel

        return QuadraticBilevel(*(d[k] for k in ("P", "R", "S", "p", "q", "A", "C", "E", "a", "b")))
    if case.family == "logistic-regularization":
        from .problems.regularization import LearnToRegularize

        return LearnToRegularize(d["X_train"], d["b_train"], d["X_val"], d["b_val"], loss="binary", reg="exp")
    raise ValueError(f"case {case.name!r}: no rebuild for family {case.family!r}")


def reference_outputs(case):
    """Recompute a case's outputs with this library from its stored data and inputs."""
    inp = case.inputs
    if case.kind == "bilevel":
        problem = rebuild_problem(case)
        lam = float(inp["lam"])
        return _bilevel_outputs(problem, inp["x"], inp["y"], inp["w"], lam, case.family == "quadratic")
    if case.kind == "cubic":
        return _cubic_outputs(inp["g"], inp["H"], float(inp["M"]), bool(case.params.get("hard_case")))
    if case.kind == "trajectory":
        return {"x_traj": _aid_trajectory(rebuild_problem(case), inp["x0"], case.params["options"])}
    raise ValueError(f"case {case.name!r}: unknown kind {case.kind!r}")


def _cubic_outputs(g, H, M, hard):
    from .linalg.cubic import solve_cubic

    res = solve_cubic(g, H, M, method="eigh")
    out = {"model_value": np.array(res.model_value), "lam": np.array(res.lam),
           "s_norm": np.array(np.linalg.norm(res.s))}
    if not hard:
        out["s"] = res.s
    return out


def _aid_trajectory(problem, x0, options):
    from ._minimize import minimize

    traj = [np.array(x0, dtype=float)]
    minimize(problem, "aid", x0, seed=0, options=dict(options, gtol=0.0, record_exact=False),
             callback=lambda r: traj.append(r.x.copy()) and False)
    return np.array(traj)


# ---------------------------------------------------------------------------
# the default cases
# ---------------------------------------------------------------------------
def _quadratic_case(name, dx, dy, seed, lam, cond_phi="indefinite"):
    from .problems.quadratic import make_quadratic

    prob = make_quadratic(dx, dy, mu=0.2, L=2.0, cond_phi=cond_phi, seed=seed)
    rng = np.random.default_rng(seed + 1000)
    x = rng.standard_normal(dx)
    # inexact inner iterates for the estimators: the exact ones plus a perturbation
    y = prob.y_star_penalty(x, lam) + 0.1 * rng.standard_normal(dy)
    w = prob.y_star(x) + 0.1 * rng.standard_normal(dy)
    data = {k: getattr(prob, k) for k in ("P", "R", "S", "p", "q", "A", "C", "E", "a", "b")}
    inputs = {"x": x, "y": y, "w": w, "lam": np.array(float(lam))}
    params = {"generator": "bilevel_ref.problems.quadratic.make_quadratic",
              "args": {"dx": dx, "dy": dy, "mu": 0.2, "L": 2.0, "cond_phi": cond_phi, "seed": seed},
              "f": "0.5 x'Px + x'Ry + 0.5 y'Sy + p'x + q'y",
              "g": "0.5 y'Ay + y'Cx + 0.5 x'Ex + a'y + b'x"}
    return GoldenCase(name, "bilevel", "quadratic", params, seed, "float64", data, inputs, {}, {},
                      f"quadratic bilevel dx={dx}, dy={dy}, penalty λ={lam}")


def _logistic_case(name, n_train, n_val, d, seed, lam):
    from .problems.regularization import make_logistic_regularization

    prob = make_logistic_regularization(n_train, n_val, d, seed=seed, reg="exp")
    rng = np.random.default_rng(seed + 1000)
    x = 0.5 * rng.standard_normal(d)
    y = 0.3 * rng.standard_normal(d)
    w = 0.3 * rng.standard_normal(d)
    data = {"X_train": np.asarray(prob.train.X, dtype=float), "b_train": prob.train.b,
            "X_val": np.asarray(prob.val.X, dtype=float), "b_val": prob.val.b}
    inputs = {"x": x, "y": y, "w": w, "lam": np.array(float(lam))}
    params = {"generator": "bilevel_ref.problems.regularization.make_logistic_regularization",
              "args": {"n_train": n_train, "n_val": n_val, "d": d, "seed": seed, "reg": "exp"},
              "f": "mean_val softplus(-b_j a_j'y)",
              "g": "mean_train softplus(-b_i a_i'y) + 0.5 * sum_j exp(x_j) y_j^2"}
    return GoldenCase(name, "bilevel", "logistic-regularization", params, seed, "float64", data, inputs, {},
                      {}, f"binary logistic learn-to-regularize n_train={n_train}, d={d}, λ={lam}")


def _cubic_case(name, d, seed, M, mode):
    rng = np.random.default_rng(seed)
    q, r = np.linalg.qr(rng.standard_normal((d, d)))
    q = q * np.sign(np.diag(r))
    spectrum = {"indefinite": np.linspace(-1.0, 2.0, d), "pd": np.linspace(0.5, 3.0, d),
                "hard": np.linspace(-1.0, 2.0, d)}[mode]
    H = (q * spectrum) @ q.T
    H = 0.5 * (H + H.T)
    g = rng.standard_normal(d)
    if mode == "hard":
        # g ⟂ eigenvector of λ_min and small: the hard case, σ = −λ_min
        g = g - (g @ q[:, 0]) * q[:, 0]
        g *= 0.05 / np.linalg.norm(g)
    params = {"model": "m(s) = g's + 0.5 s'Hs + (M/6)||s||^3", "spectrum": mode, "hard_case": mode == "hard"}
    return GoldenCase(name, "cubic", "cubic-subproblem", params, seed, "float64", {},
                      {"g": g, "H": H, "M": np.array(float(M))}, {}, {},
                      f"cubic subproblem d={d}, {mode} H, M={M}")


def _aid_case(name, dx, dy, seed, iters):
    base = _quadratic_case(name, dx, dy, seed, 10.0, cond_phi="convex")
    options = {"maxiter": iters, "inner": "cg", "inner_steps": 5, "linsys_steps": 5, "step_y": 0.5,
               "step_x": 0.1, "warm_v": True, "linsys_rtol": 0.0}
    x0 = np.random.default_rng(seed + 2000).standard_normal(dx)
    params = dict(base.params, method="aid", options=options,
                  rule=("per iteration: 5 GD steps y <- y - step_y grad_y g (from y0 = 0, warm), then 5 CG "
                        "iterations on A v = grad_y f warm-started at the previous v (first: v0 = 0; "
                        "rtol 0: exactly 5), x <- x - step_x (grad_x f - C' v)"))
    return GoldenCase(name, "trajectory", "quadratic", params, seed, "float64", base.data, {"x0": x0}, {}, {},
                      f"AID trajectory, {iters} iterations, quadratic dx={dx}, dy={dy}")


def default_cases():
    """The golden cases exported by default (outputs not yet computed)."""
    return [
        _quadratic_case("quadratic-5x4", 5, 4, 0, 10.0),
        _quadratic_case("quadratic-3x6", 3, 6, 1, 100.0),
        _logistic_case("logistic-4", 40, 30, 4, 0, 10.0),
        _cubic_case("cubic-indefinite-6", 6, 0, 1.0, "indefinite"),
        _cubic_case("cubic-pd-6", 6, 1, 2.0, "pd"),
        _cubic_case("cubic-hard-5", 5, 2, 1.0, "hard"),
        _aid_case("aid-quadratic-5x4", 5, 4, 3, 8),
    ]


# ---------------------------------------------------------------------------
# export / load / check
# ---------------------------------------------------------------------------
def export_golden(directory, cases=None):
    """Write the golden cases (``.npz`` per case + ``manifest.json``) into ``directory``.

    Parameters
    ----------
    directory : str or path
        Created if missing; existing case files of the same names are overwritten.
    cases : list of str, optional
        Names from :func:`default_cases` (default: all).

    Returns
    -------
    list of GoldenCase
        The exported cases with their reference outputs.
    """
    from . import __version__

    all_cases = default_cases()
    if cases is not None:
        known = {c.name for c in all_cases}
        unknown = sorted(set(cases) - known)
        if unknown:
            raise ValueError(f"unknown case(s) {unknown}; known: {sorted(known)}")
        all_cases = [c for c in all_cases if c.name in set(cases)]
    os.makedirs(directory, exist_ok=True)
    for case in all_cases:
        case.outputs = {k: np.asarray(v, dtype=np.float64) for k, v in reference_outputs(case).items()}
        case.tolerances = _tolerances(case.outputs)
        arrays = {f"data/{k}": np.asarray(v) for k, v in case.data.items()}
        arrays.update({f"input/{k}": np.asarray(v) for k, v in case.inputs.items()})
        arrays.update({f"output/{k}": v for k, v in case.outputs.items()})
        np.savez(os.path.join(directory, f"{case.name}.npz"), **arrays)
    manifest = {"format": "bilevel_ref-golden", "version": FORMAT_VERSION, "library_version": __version__,
                "error_measure": "max_abs = max|out - ref|; max_rel = max_abs / max|ref|; "
                                 "pass iff max_abs <= atol + rtol * max|ref|",
                "cases": [c.manifest_entry() for c in all_cases]}
    from ._text import write_json_atomic

    write_json_atomic(os.path.join(directory, MANIFEST), manifest)  # strict JSON, replaced atomically
    return all_cases


# errors numpy / zipfile raise on a truncated or corrupt .npz (when opening it or reading a member)
_NPZ_ERRORS = (zipfile.BadZipFile, ValueError, EOFError, OSError, zlib.error, RuntimeError)


def _read_npz(path, role):
    """All arrays of an ``.npz`` file as a dict; :class:`CrosscheckInputError` if it is unreadable."""
    if not os.path.isfile(path):
        raise CrosscheckInputError(path, None, f"{role} file not found")
    try:
        npz = np.load(path, allow_pickle=False)
    except _NPZ_ERRORS as exc:
        raise CrosscheckInputError(path, None, f"not a readable .npz archive (truncated or corrupt?): "
                                               f"{type(exc).__name__}: {exc}") from None
    if not isinstance(npz, np.lib.npyio.NpzFile):
        raise CrosscheckInputError(path, None, "a single .npy array, not an .npz archive of named arrays")
    out = {}
    with npz:
        for key in npz.files:
            try:
                out[key] = npz[key]
            except _NPZ_ERRORS as exc:
                raise CrosscheckInputError(path, key, f"unreadable (truncated or corrupt archive?): "
                                                      f"{type(exc).__name__}: {exc}", kind="array") from None
    return out


def _json_type(value):
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean", int: "a number",
            float: "a number", type(None): "null"}.get(type(value), type(value).__name__)


# required fields of a manifest case entry: (type, description)
_ENTRY_FIELDS = (("name", str, "a string"), ("file", str, "a string"), ("kind", str, "a string"),
                 ("family", str, "a string"), ("params", dict, "an object"), ("seed", int, "an integer"),
                 ("dtype", str, "a string"), ("data", list, "an array of strings"),
                 ("inputs", list, "an array of strings"), ("outputs", list, "an array of strings"),
                 ("tolerances", dict, "an object"))


def _is_type(value, typ):
    if typ is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, typ)


def _validate_manifest(path, manifest):
    """Check the manifest schema up front; :class:`CrosscheckInputError` names the field."""
    def fail(field, problem, case=None):
        raise CrosscheckInputError(path, field, problem, case=case)

    if not isinstance(manifest, dict):
        fail(None, f"the manifest must be a JSON object, got {_json_type(manifest)}")
    for key, typ, desc in (("format", str, "a string"), ("version", str, "a string"), ("cases", list, "an array")):
        if key not in manifest:
            fail(key, "missing required field")
        if not _is_type(manifest[key], typ):
            fail(key, f"must be {desc}, got {_json_type(manifest[key])}")
    if manifest["format"] != "bilevel_ref-golden":
        fail("format", f"not a bilevel_ref golden manifest (expected 'bilevel_ref-golden', "
                       f"got {manifest['format']!r})")
    major = manifest["version"].split(".")[0]
    if not major.isdigit():
        fail("version", f"must be 'MAJOR.MINOR', got {manifest['version']!r}")
    if major != FORMAT_VERSION.split(".")[0]:
        fail("version", f"format version {manifest['version']} is not readable by this library "
                        f"(format {FORMAT_VERSION})")
    if not manifest["cases"]:
        fail("cases", "empty: the manifest lists no golden case")
    seen = set()
    for i, entry in enumerate(manifest["cases"]):
        if not isinstance(entry, dict):
            fail(f"cases[{i}]", f"must be an object, got {_json_type(entry)}")
        name = entry.get("name") if isinstance(entry.get("name"), str) else None
        case = name
        for key, typ, desc in _ENTRY_FIELDS:
            where = key if case is not None else f"cases[{i}].{key}"
            if key not in entry:
                fail(where, "missing required field", case)
            if not _is_type(entry[key], typ):
                fail(where, f"must be {desc}, got {_json_type(entry[key])}", case)
            if typ is list:
                bad = [v for v in entry[key] if not isinstance(v, str)]
                if bad:
                    fail(where, f"must be {desc}, has {_json_type(bad[0])} {bad[0]!r}", case)
        if not name:
            fail(f"cases[{i}].name", "must be a non-empty string")
        if name in seen:
            fail("name", "duplicate case name", case)
        seen.add(name)
        if "description" in entry and not isinstance(entry["description"], str):
            fail("description", f"must be a string, got {_json_type(entry['description'])}", case)
        fname = entry["file"]
        if not fname or os.path.isabs(fname) or os.path.basename(fname) != fname or fname in (".", ".."):
            fail("file", f"must be a file name inside the golden directory, got {fname!r}", case)
        for out in entry["outputs"]:
            tol = entry["tolerances"].get(out)
            if tol is None:
                fail(f"tolerances.{out}", "missing (every listed output needs tolerances)", case)
            if not isinstance(tol, dict):
                fail(f"tolerances.{out}", f"must be an object, got {_json_type(tol)}", case)
            for dt in DTYPES:
                if not isinstance(tol.get(dt), dict):
                    fail(f"tolerances.{out}.{dt}",
                         "missing required field" if dt not in tol else
                         f"must be an object, got {_json_type(tol[dt])}", case)
                for key in ("rtol", "atol"):
                    v = tol[dt].get(key)
                    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
                        fail(f"tolerances.{out}.{dt}.{key}",
                             "missing required field" if key not in tol[dt] else
                             f"must be a finite number >= 0, got {v!r}", case)


def _read_manifest(path):
    try:
        with open(path, encoding="utf-8") as fh:
            manifest = json.load(fh)
    except UnicodeDecodeError as exc:
        raise CrosscheckInputError(path, None, f"not UTF-8 JSON text: {exc}") from None
    except json.JSONDecodeError as exc:
        raise CrosscheckInputError(path, None, f"not valid JSON (truncated or corrupt?): {exc}") from None
    except OSError as exc:
        raise CrosscheckInputError(path, None, f"cannot read: {exc}") from None
    _validate_manifest(path, manifest)
    return manifest


def load_golden(directory):
    """Read a golden directory; returns ``{name: GoldenCase}`` (in manifest order).

    Raises
    ------
    FileNotFoundError
        ``directory`` has no ``manifest.json``.
    CrosscheckInputError
        The manifest is not JSON, has a different major version, misses a
        required field or has one of the wrong type; a case file is
        unreadable (truncated, corrupt), lacks an array the manifest lists, or
        holds an output the manifest does not list or non-finite references.
        The message names the file and the field.
    """
    path = os.path.join(directory, MANIFEST)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no {MANIFEST} in {directory!r}: not a golden-case directory")
    manifest = _read_manifest(path)
    out = {}
    for entry in manifest["cases"]:
        name = entry["name"]
        fpath = os.path.join(directory, entry["file"])
        parts = {"data": {}, "input": {}, "output": {}}
        for key, arr in _read_npz(fpath, f"case {name!r}").items():
            group, sep, arr_name = key.partition("/")
            if not sep or not arr_name or group not in parts:
                raise CrosscheckInputError(fpath, key, "unexpected array name (golden arrays are data/<name>, "
                                                       "input/<name>, output/<name>)", kind="array")
            if arr.dtype.kind not in "biuf":
                raise CrosscheckInputError(fpath, key, f"not a real numeric array (dtype {arr.dtype})",
                                           kind="array")
            parts[group][arr_name] = arr
        for group, field_ in (("data", "data"), ("input", "inputs"), ("output", "outputs")):
            for arr_name in entry[field_]:
                if arr_name not in parts[group]:
                    raise CrosscheckInputError(fpath, f"{group}/{arr_name}", f"missing (the manifest lists "
                                               f"{arr_name!r} in {field_} of case {name!r})", kind="array")
        unlisted = sorted(set(parts["output"]) - set(entry["outputs"]))
        if unlisted:
            raise CrosscheckInputError(fpath, f"output/{unlisted[0]}", f"not listed in the manifest's outputs "
                                       f"of case {name!r} (it has no tolerance)", kind="array")
        for arr_name, ref in parts["output"].items():
            if not np.all(np.isfinite(ref)):
                raise CrosscheckInputError(fpath, f"output/{arr_name}", "non-finite reference values",
                                           kind="array")
        out[name] = GoldenCase(name, entry["kind"], entry["family"], entry["params"], entry["seed"],
                               entry["dtype"], parts["data"], parts["input"], parts["output"],
                               entry["tolerances"], entry.get("description", ""), path=fpath)
    return out


@dataclass
class CheckReport:
    """Per-(case, array) errors; ``rows`` are dicts with ``case``, ``array``, ``status``
    (``pass``/``FAIL``/``missing``/``shape``/``nonfinite``), ``max_abs``, ``max_rel``, ``rtol``, ``atol``."""

    rows: list = field(default_factory=list)
    dtype: str = "float64"
    require_all: bool = False

    @property
    def passed(self):
        bad = {"FAIL", "shape", "nonfinite"} | ({"missing"} if self.require_all else set())
        return bool(self.rows) and not any(r["status"] in bad for r in self.rows) and \
            any(r["status"] == "pass" for r in self.rows)

    @property
    def failures(self):
        bad = {"FAIL", "shape", "nonfinite"} | ({"missing"} if self.require_all else set())
        return [r for r in self.rows if r["status"] in bad]

    def format(self):
        """Text table plus one line per failure naming the case and the array."""
        from ._text import format_table

        rows = [[r["case"], r["array"], r["status"],
                 "-" if r["max_abs"] is None else f"{r['max_abs']:.3e}",
                 "-" if r["max_rel"] is None else f"{r['max_rel']:.3e}", f"{r['rtol']:.0e}"]
                for r in self.rows]
        text = format_table(["case", "array", "status", "max_abs", "max_rel", "rtol"], rows)
        lines = [text, f"dtype={self.dtype}: " + ("PASSED" if self.passed else "FAILED")]
        for r in self.failures:
            lines.append(f"  {r['status']}: case {r['case']!r}, array {r['array']!r}"
                         + ("" if r["max_rel"] is None else
                            f": max_rel {r['max_rel']:.3e} > rtol {r['rtol']:.0e} "
                            f"(max_abs {r['max_abs']:.3e})"))
        return "\n".join(lines)


def check(directory, outputs, dtype="float64", require_all=False):
    """Compare candidate ``outputs`` with the golden references in ``directory``.

    Parameters
    ----------
    directory : str or path
        A directory written by :func:`export_golden`.
    outputs : dict or callable
        ``{case: {array: values}}`` (also flat ``{"case/array": values}``), or
        ``outputs(case: GoldenCase) -> {array: values}``.
    dtype : {"float64", "float32"}
        Precision of the candidate: selects the tolerances.
    require_all : bool
        Treat reference arrays the candidate did not provide as failures
        (default: reported as ``missing`` and ignored).

    Returns
    -------
    CheckReport
        ``passed`` is False if any provided array is out of tolerance, has
        the wrong shape or non-finite entries (or nothing at all was checked).

    Raises
    ------
    FileNotFoundError, CrosscheckInputError
        A missing, damaged or malformed golden directory (:func:`load_golden`).
    """
    check_choice(dtype, "dtype", DTYPES)
    return _check_cases(load_golden(directory), outputs, dtype, require_all)


def _check_cases(cases, outputs, dtype, require_all):
    """:func:`check` on cases already loaded."""
    if not callable(outputs):
        if not isinstance(outputs, dict):
            raise TypeError(f"outputs must be a dict or a callable, got {type(outputs).__name__}")
        nested = {}
        for key, value in outputs.items():
            if isinstance(value, dict):
                nested.setdefault(key, {}).update(value)
            else:
                case, sep, arr = str(key).partition("/")
                if not sep:
                    raise ValueError(f"outputs key {key!r} must be a case name (dict value) or 'case/array'")
                nested.setdefault(case, {})[arr] = value
        unknown = sorted(set(nested) - set(cases))
        if unknown:
            raise ValueError(f"outputs has unknown case(s) {unknown}; golden cases: {sorted(cases)}")
    report = CheckReport(dtype=dtype, require_all=require_all)
    for name, case in cases.items():
        cand = outputs(case) if callable(outputs) else nested.get(name, {})
        for arr, ref in case.outputs.items():
            tol = case.tolerances[arr][dtype]
            row = {"case": name, "array": arr, "rtol": tol["rtol"], "atol": tol["atol"],
                   "max_abs": None, "max_rel": None}
            if arr not in cand or cand[arr] is None:
                row["status"] = "missing"
            else:
                out = np.asarray(cand[arr], dtype=np.float64)
                if out.shape != ref.shape:
                    row["status"] = "shape"
                elif not np.all(np.isfinite(out)):
                    row["status"] = "nonfinite"
                else:
                    scale = float(np.max(np.abs(ref))) if ref.size else 0.0
                    max_abs = float(np.max(np.abs(out - ref))) if ref.size else 0.0
                    row["max_abs"] = max_abs
                    row["max_rel"] = max_abs / scale if scale > 0 else (0.0 if max_abs == 0 else math.inf)
                    row["status"] = "pass" if max_abs <= tol["atol"] + tol["rtol"] * scale else "FAIL"
            report.rows.append(row)
    return report


# ---------------------------------------------------------------------------
# command line
# ---------------------------------------------------------------------------
_EXIT_HELP = """exit status:
  0  every checked quantity is within its tolerance (export, list: success)
  1  a quantity is outside its tolerance or non-finite -- and only that
  2  damaged or malformed input: a truncated/corrupt .npz, a manifest that is
     not JSON or lacks a field (e.g. 'tolerances') or has one of the wrong
     type, an array the manifest lists but a file lacks, a candidate array
     with an unknown name or the wrong shape, a quantity --require-all needs
     but the candidate lacks; or a usage error.  One line on stderr names the
     file and the field.
  3  unexpected internal error (a bug: the traceback is printed)"""


def _parser():
    fmt = argparse.RawDescriptionHelpFormatter
    ap = argparse.ArgumentParser(prog="bilevel-ref crosscheck", formatter_class=fmt, epilog=_EXIT_HELP,
                                 description="Export golden cases or check candidate outputs against them.")
    sub = ap.add_subparsers(dest="cmd", required=True)
    ex = sub.add_parser("export", help="write golden cases (.npz + manifest.json)")
    ex.add_argument("directory")
    ex.add_argument("--case", action="append", default=None, help="only these cases (repeat)")
    ck = sub.add_parser("check", help="compare an outputs .npz (keys 'case/array') with the golden cases",
                        formatter_class=fmt, epilog=_EXIT_HELP)
    ck.add_argument("directory")
    ck.add_argument("outputs", help=".npz with keys 'case/array', or 'self' to recheck this library")
    ck.add_argument("--dtype", choices=DTYPES, default="float64")
    ck.add_argument("--require-all", action="store_true",
                    help="every golden output must be in the candidate (a missing one exits 2)")
    ls = sub.add_parser("list", help="list the cases of a golden directory")
    ls.add_argument("directory")
    return ap


def _read_candidate(path, cases, require_all):
    """A candidate ``.npz`` (keys ``case/array``) as ``{case: {array: values}}``, validated against the
    golden cases: every key a known case and output, real numeric, of the golden shape (and with
    ``require_all`` every golden output present); :class:`CrosscheckInputError` otherwise."""
    arrays = _read_npz(path, "candidate")
    if not arrays:
        raise CrosscheckInputError(path, None, "the archive holds no arrays (expected keys 'case/array')")
    out = {}
    for key, arr in arrays.items():
        case, sep, name = key.partition("/")
        if not sep or not name:
            raise CrosscheckInputError(path, key, "array names must be 'case/array'", kind="array")
        if case not in cases:
            raise CrosscheckInputError(path, key, f"unknown case {case!r}; golden cases: {list(cases)}",
                                       kind="array")
        ref = cases[case].outputs.get(name)
        if ref is None:
            raise CrosscheckInputError(path, key, f"case {case!r} has no output {name!r}; its outputs: "
                                                  f"{sorted(cases[case].outputs)}", kind="array")
        if arr.dtype.kind not in "biuf":
            raise CrosscheckInputError(path, key, f"not a real numeric array (dtype {arr.dtype})", kind="array")
        if arr.shape != ref.shape:
            raise CrosscheckInputError(path, key, f"shape {arr.shape} differs from the golden shape {ref.shape}",
                                       kind="array")
        out.setdefault(case, {})[name] = arr
    if require_all:
        for case_name, case in cases.items():
            for name in case.outputs:
                if name not in out.get(case_name, {}):
                    raise CrosscheckInputError(path, f"{case_name}/{name}", "missing (--require-all needs "
                                               "every golden output)", kind="array")
    return out


def _self_outputs(case):
    """:func:`reference_outputs` for ``check ... self``; data that cannot be rebuilt is an input error."""
    try:
        return reference_outputs(case)
    except (ValueError, KeyError, IndexError, TypeError, ArithmeticError) as exc:
        raise CrosscheckInputError(case.path or f"{case.name}.npz", None,
                                   f"cannot recompute case {case.name!r} from its data and inputs: "
                                   f"{type(exc).__name__}: {exc}") from None


def main(argv=None):
    """``bilevel-ref crosscheck export|check|list``; returns the exit status.

    :data:`EXIT_PASS` (0), :data:`EXIT_MISMATCH` (1: a quantity outside its
    tolerance, nothing else), :data:`EXIT_INPUT` (2: damaged or malformed
    input, one line on stderr naming the file and the field; usage errors),
    :data:`EXIT_INTERNAL` (3: an unexpected error, traceback printed).
    """
    args = _parser().parse_args(argv)
    try:
        if args.cmd == "export":
            cases = export_golden(args.directory, args.case)
            for c in cases:
                print(f"{c.name}: {c.kind}, {c.family}, outputs {sorted(c.outputs)}")
            print(f"wrote {len(cases)} case(s) and {MANIFEST} to {args.directory}")
            return EXIT_PASS
        if args.cmd == "list":
            for name, c in load_golden(args.directory).items():
                print(f"{name}: {c.kind}, {c.family} — {c.description}; outputs {sorted(c.outputs)}")
            return EXIT_PASS
        cases = load_golden(args.directory)
        if args.outputs == "self":
            outputs = _self_outputs
        else:
            outputs = _read_candidate(args.outputs, cases, args.require_all)
        report = _check_cases(cases, outputs, args.dtype, args.require_all)
    except (CrosscheckInputError, OSError, ValueError) as exc:
        # damaged input (CrosscheckInputError), a missing directory or manifest, an unknown --case
        print(f"bilevel-ref crosscheck: error: {' '.join(str(exc).split())}", file=sys.stderr)
        return EXIT_INPUT
    except Exception:  # noqa: BLE001 - exit 1 must keep meaning "outside tolerance" only
        traceback.print_exc()
        print("bilevel-ref crosscheck: internal error (a bug in bilevel_ref; please report the traceback above)",
              file=sys.stderr)
        return EXIT_INTERNAL
    print(report.format())
    return EXIT_PASS if report.passed else EXIT_MISMATCH
