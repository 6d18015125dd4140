"""Text helpers of the command line: ``NAME=VALUE`` parsing, plain-text tables, JSON records.

Shared by ``bilevel-ref run`` (:mod:`bilevel_ref.cli`), ``compare``,
``complexity``, ``crosscheck`` and the ``bench`` commands.  No imports from
the rest of the package beyond :class:`~bilevel_ref.result.Status`, so every
module may use these without creating an import cycle.
"""
from __future__ import annotations

import ast

import numpy as np

from .result import Status

__all__ = ["parse_assignments", "format_table", "history_rows", "result_to_json", "fmt"]


def parse_assignments(items, what):
    """``["a=1", "b=cg"]`` -> ``{"a": 1, "b": "cg"}`` (Python literals, else strings).

    ``what`` names the flag in the error (``SystemExit``) for a malformed item.
    """
    out = {}
    for item in items or ():
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise SystemExit(f"bilevel-ref: {what} must look like NAME=VALUE, got {item!r}")
        try:
            out[key.strip()] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            out[key.strip()] = value
    return out


def fmt(value):
    """One table cell: floats in ``%.6e`` (``nan`` for non-finite), anything else ``str``."""
    if isinstance(value, (float, np.floating)):
        return "nan" if not np.isfinite(value) else f"{value:.6e}"
    return str(value)


def format_table(headers, rows):
    """Right-aligned plain-text table (cells through :func:`fmt`)."""
    cells = [[fmt(c) for c in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(headers)]
    lines = ["  ".join(h.rjust(w) for h, w in zip(headers, widths)),
             "  ".join("-" * w for w in widths)]
    lines += ["  ".join(c.rjust(w) for c, w in zip(row, widths)) for row in cells]
    return "\n".join(lines)


def history_rows(history, max_rows=20):
    """``(headers, rows)`` of a :class:`~bilevel_ref.History`: about ``max_rows``
    log-spaced iterations (first and last included), the oracle kinds used and the metrics."""
    nit = history["nit"]
    idx = np.unique(np.round(np.geomspace(1, len(nit), num=min(max_rows, len(nit)))).astype(int) - 1)
    idx = np.union1d(idx, [0, len(nit) - 1])
    counts = history.counts
    used = [k for k, v in counts.items() if v[-1] > 0]
    metric_names = [m for m in ("phi", "grad_norm", "grad_norm_est", "grad_est") if m in history]
    headers = ["iter"] + used + metric_names
    rows = [[int(nit[i])] + [int(counts[k][i]) for k in used] + [history[m][i] for m in metric_names]
            for i in idx]
    return headers, rows


def result_to_json(res, problem_name=None):
    """A JSON-ready dict of a :class:`~bilevel_ref.BilevelResult`.

    ``status`` is the integer code, ``status_label`` its word
    (:attr:`bilevel_ref.Status.label`: ``"converged"``, ``"maxiter"``, ...).
    """
    opts = {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in res.options.items()}
    return {
        "method": res.method, "problem": problem_name, "seed": res.seed,
        "success": bool(res.success), "status": int(res.status), "status_label": Status(res.status).label,
        "message": res.message,
        "nit": int(res.nit), "fun": float(res.fun), "grad_norm": float(res.grad_norm),
        "grad_norm_est": float(res.grad_norm_est),
        "min_eig": None if res.min_eig is None else float(res.min_eig),
        "oracle_calls": res.oracle_calls, "options": opts,
        "x": res.x.tolist(), "y": res.y.tolist(), "history": res.history.to_dict(),
    }
