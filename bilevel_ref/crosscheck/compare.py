"""Comparing candidate outputs with golden references: :func:`check` and :class:`CheckReport`."""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .._validation import check_choice
from ._format import DTYPES
from .golden_io import load_golden

__all__ = ["CheckReport", "check", "check_cases"]

_BAD = {"FAIL", "shape", "nonfinite"}


@dataclass
class CheckReport:
    """Per-(case, array) errors; ``rows`` are dicts with ``case``, ``array``, ``status``
    (``pass``/``FAIL``/``missing``/``shape``/``nonfinite``/``n/a`` — the last for an output the
    candidate's dtype cannot resolve, see :mod:`~bilevel_ref.crosscheck.tolerances`), ``max_abs``,
    ``max_rel``, ``rtol``, ``atol``."""

    rows: list = field(default_factory=list)
    dtype: str = "float64"
    require_all: bool = False

    @property
    def failures(self):
        bad = _BAD | ({"missing"} if self.require_all else set())
        return [r for r in self.rows if r["status"] in bad]

    @property
    def passed(self):
        return bool(self.rows) and not self.failures and any(r["status"] == "pass" for r in self.rows)

    def format(self):
        """Text table plus one line per failure naming the case and the array."""
        from .._text import format_table

        rows = [[r["case"], r["array"], r["status"],
                 "-" if r["max_abs"] is None else f"{r['max_abs']:.3e}",
                 "-" if r["max_rel"] is None else f"{r['max_rel']:.3e}",
                 "-" if r["rtol"] is None else f"{r['rtol']:.1e}"]
                for r in self.rows]
        text = format_table(["case", "array", "status", "max_abs", "max_rel", "rtol"], rows)
        lines = [text, f"dtype={self.dtype}: " + ("PASSED" if self.passed else "FAILED")]
        for r in self.failures:
            lines.append(f"  {r['status']}: case {r['case']!r}, array {r['array']!r}"
                         + ("" if r["max_rel"] is None else
                            f": max_rel {r['max_rel']:.3e} > rtol {r['rtol']:.1e} "
                            f"(max_abs {r['max_abs']:.3e})"))
        return "\n".join(lines)


def check(directory, outputs, dtype="float64", require_all=False):
    """Compare candidate ``outputs`` with the golden references in ``directory``.

    Parameters
    ----------
    directory : str or path
        A directory written by :func:`~bilevel_ref.crosscheck.export_golden`.
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
        Outputs whose tolerance for ``dtype`` is null are reported ``n/a``.

    Raises
    ------
    FileNotFoundError, CrosscheckInputError
        A missing, damaged or malformed golden directory (:func:`load_golden`).
    """
    check_choice(dtype, "dtype", DTYPES)
    return check_cases(load_golden(directory), outputs, dtype, require_all)


def _nest(outputs, cases):
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
    return nested


def check_cases(cases, outputs, dtype="float64", require_all=False):
    """:func:`check` on cases already loaded (``{name: GoldenCase}``)."""
    check_choice(dtype, "dtype", DTYPES)
    if not callable(outputs):
        if not isinstance(outputs, dict):
            raise TypeError(f"outputs must be a dict or a callable, got {type(outputs).__name__}")
        nested = _nest(outputs, cases)
    report = CheckReport(dtype=dtype, require_all=require_all)
    for name, case in cases.items():
        cand = outputs(case) if callable(outputs) else nested.get(name, {})
        for arr, ref in case.outputs.items():
            tol = case.tolerances[arr][dtype]
            row = {"case": name, "array": arr, "rtol": tol["rtol"], "atol": tol.get("atol"),
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
                    if tol["rtol"] is None:
                        row["status"] = "n/a"
                    else:
                        row["status"] = "pass" if max_abs <= tol["atol"] + tol["rtol"] * scale else "FAIL"
            report.rows.append(row)
    return report
