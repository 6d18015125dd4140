"""Writing and reading golden directories: ``.npz`` per case, ``manifest.json``, checksums, provenance."""
from __future__ import annotations

import hashlib
import json
import os
import platform
import subprocess
import zipfile
import zlib

import numpy as np

from ._format import (CONVENTIONS, ERROR_MEASURE, FORMAT_NAME, FORMAT_VERSION, MANIFEST, SCHEMA_FILE,
                      CrosscheckInputError, GoldenCase)
from .schema import validate_manifest

__all__ = ["export_golden", "load_golden", "read_npz", "read_manifest", "sha256", "provenance"]


def sha256(path):
    """Hex SHA-256 of a file."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _git(*args):
    """Output of a read-only git command in the package's checkout, or None (not a checkout, no git)."""
    here = os.path.dirname(os.path.abspath(__file__))
    try:
        proc = subprocess.run(["git", "--no-optional-locks", *args], cwd=here, capture_output=True, text=True,
                              timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return proc.stdout if proc.returncode == 0 else None


def provenance(files):
    """The manifest's provenance block: library, version, git commit (None outside a checkout), whether the
    package sources differ from it, NumPy and Python versions, and ``files`` (name → SHA-256)."""
    from .. import __version__

    commit = _git("rev-parse", "HEAD")
    status = _git("status", "--porcelain", "--untracked-files=no", "--", ".") if commit else None
    return {"library": "bilevel_ref", "library_version": __version__,
            "git_commit": commit.strip() if commit else None,
            "git_dirty": None if status is None else bool(status.strip()),
            "numpy_version": np.__version__, "python_version": platform.python_version(),
            "files": dict(sorted(files.items()))}


def export_golden(directory, cases=None):
    """Write the golden cases (``.npz`` per case + ``manifest.json``) into ``directory``.

    Parameters
    ----------
    directory : str or path
        Created if missing; existing case files of the same names are overwritten.
    cases : list of str, optional
        Names from :func:`~bilevel_ref.crosscheck.default_cases` (default: all).

    Returns
    -------
    list of GoldenCase
        The exported cases with their reference outputs and tolerances.
    """
    from .cases import default_cases
    from .reference import reference_with_amplification
    from .tolerances import TOLERANCE_MODEL, tolerances
    from .._text import write_json_atomic

    all_cases = default_cases()
    if cases is not None:
        known = {c.name for c in all_cases}
        unknown = sorted(set(cases) - known)
        if unknown:
            raise ValueError(f"unknown case(s) {unknown}; known: {sorted(known)}")
        all_cases = [c for c in all_cases if c.name in set(cases)]
    os.makedirs(directory, exist_ok=True)
    files = {}
    for case in all_cases:
        outputs, amp = reference_with_amplification(case)
        case.outputs = {k: np.asarray(v, dtype=np.float64) for k, v in outputs.items()}
        case.tolerances = tolerances(amp, case.name)
        fname = f"{case.name}.npz"
        np.savez(os.path.join(directory, fname), **case.arrays())
        files[fname] = sha256(os.path.join(directory, fname))
    manifest = {"format": FORMAT_NAME, "version": FORMAT_VERSION, "schema": f"bilevel_ref/crosscheck/{SCHEMA_FILE}",
                "provenance": provenance(files), "error_measure": ERROR_MEASURE, "tolerance_model": TOLERANCE_MODEL,
                "conventions": CONVENTIONS, "cases": [c.manifest_entry() for c in all_cases]}
    write_json_atomic(os.path.join(directory, MANIFEST), manifest)  # strict JSON, replaced atomically
    return all_cases


# errors numpy / zipfile raise on a truncated or corrupt .npz (when opening it or reading a member)
_NPZ_ERRORS = (zipfile.BadZipFile, ValueError, EOFError, OSError, zlib.error, RuntimeError)


def read_npz(path, role):
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


def read_manifest(path):
    """The parsed and validated manifest (:func:`~bilevel_ref.crosscheck.schema.validate_manifest`)."""
    try:
        with open(path, encoding="utf-8") as fh:
            manifest = json.load(fh)
    except UnicodeDecodeError as exc:
        raise CrosscheckInputError(path, None, f"not UTF-8 JSON text: {exc}") from None
    except json.JSONDecodeError as exc:
        raise CrosscheckInputError(path, None, f"not valid JSON (truncated or corrupt?): {exc}") from None
    except OSError as exc:
        raise CrosscheckInputError(path, None, f"cannot read: {exc}") from None
    validate_manifest(path, manifest)
    return manifest


def load_golden(directory, verify_checksums=True):
    """Read a golden directory; returns ``{name: GoldenCase}`` (in manifest order).

    Parameters
    ----------
    directory : str or path
    verify_checksums : bool, default True
        Compare every case file with its SHA-256 in ``provenance.files``.

    Raises
    ------
    FileNotFoundError
        ``directory`` has no ``manifest.json``.
    CrosscheckInputError
        The manifest is not JSON, has another major version or violates the
        schema; a case file is unreadable (truncated, corrupt), lacks an array
        the manifest lists, holds an array of another shape than the manifest
        states, an output the manifest does not list or non-finite
        references, or does not match its checksum.  The message names the
        file and the field.
    """
    path = os.path.join(directory, MANIFEST)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no {MANIFEST} in {directory!r}: not a golden-case directory")
    manifest = read_manifest(path)
    out = {}
    for entry in manifest["cases"]:
        name = entry["name"]
        fpath = os.path.join(directory, entry["file"])
        parts = {"data": {}, "input": {}, "output": {}}
        for key, arr in read_npz(fpath, f"case {name!r}").items():
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
                key = f"{group}/{arr_name}"
                if arr_name not in parts[group]:
                    raise CrosscheckInputError(fpath, key, f"missing (the manifest lists {arr_name!r} in "
                                               f"{field_} of case {name!r})", kind="array")
                shape = tuple(entry["shapes"][key])
                if parts[group][arr_name].shape != shape:
                    raise CrosscheckInputError(fpath, key, f"wrong shape {parts[group][arr_name].shape}: the "
                                               f"manifest states {shape}", kind="array")
        unlisted = sorted(set(parts["output"]) - set(entry["outputs"]))
        if unlisted:
            raise CrosscheckInputError(fpath, f"output/{unlisted[0]}", f"not listed in the manifest's outputs "
                                       f"of case {name!r} (it has no tolerance)", kind="array")
        for arr_name, ref in parts["output"].items():
            if not np.all(np.isfinite(ref)):
                raise CrosscheckInputError(fpath, f"output/{arr_name}", "non-finite reference values",
                                           kind="array")
        if verify_checksums:
            digest, expected = sha256(fpath), manifest["provenance"]["files"][entry["file"]]
            if digest != expected:
                raise CrosscheckInputError(fpath, None, f"checksum mismatch: SHA-256 {digest[:16]}… differs from "
                                           f"provenance.files {expected[:16]}… (file modified or replaced)",
                                           case=name)
        out[name] = GoldenCase(name, entry["kind"], entry["family"], entry["params"], entry["seed"],
                               entry["dtype"], parts["data"], parts["input"], parts["output"],
                               entry["tolerances"], entry.get("description", ""), path=fpath)
    return out
