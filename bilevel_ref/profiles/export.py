"""CSV files of a profile set: costs to target, curves, and the runs as a benchopt result table.

Every file is written atomically (:func:`bilevel_ref._text.atomic_path`);
non-finite floats are written ``inf`` / ``nan`` (``pandas.read_csv`` and
``float()`` read them back).  The costs and curves files are bit-identical
for a given command and seeds, whatever ``n_jobs``; the benchopt table has
wall times, which are not.

The benchopt table follows benchopt's result DataFrame (its documentation,
"Manage benchmark results"): one row per recorded iteration with
``objective_name``, ``data_name``, ``solver_name``, ``idx_rep`` (the seed),
``stop_val`` (the iteration), ``time`` (seconds), ``sampling_strategy``
(``"iteration"``) and ``objective_value`` (plus ``objective_grad_norm``
when ∇φ has a closed form), so benchopt's objective-curve plots read it;
the oracle counts of the row follow as ``oracle_calls`` (total, samples
excluded) and ``calls_<kind>``.  Read it with ``pandas.read_csv(path)``.
"""
from __future__ import annotations

import csv
import math

from .._text import atomic_path
from ..oracles import COUNT_KINDS
from .targets import COSTS

__all__ = ["BENCHOPT_COLUMNS", "write_hits_csv", "write_curves_csv", "write_benchopt_csv", "benchopt_rows"]

#: The benchopt result columns this table fills (benchopt's names).
BENCHOPT_COLUMNS = ("objective_name", "data_name", "solver_name", "idx_rep", "stop_val", "time",
                    "sampling_strategy", "objective_value", "objective_grad_norm")

_HIT_COLUMNS = ("problem", "seed", "method", "tau", "measure", "f_L", "status", "solved", "nit", "dx") + tuple(
    f"cost_{name}" for name in COSTS)
_CURVE_COLUMNS = ("profile", "tau", "cost", "method", "x", "y")


def _cell(value):
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else ("nan" if math.isnan(value) else
                                                         ("inf" if value > 0 else "-inf"))
    return str(value)


def _write(path, columns, rows):
    with atomic_path(path) as tmp:
        with open(tmp, "w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh, lineterminator="\n")
            writer.writerow(columns)
            for row in rows:
                writer.writerow([_cell(row.get(c, "")) for c in columns])
    return path


def write_hits_csv(path, pset):
    """Costs to target (``ProfileSet.hits``): one row per instance × method × τ; returns ``path``."""
    return _write(path, _HIT_COLUMNS, pset.hits())


def write_curves_csv(path, pset):
    """Every profile curve (``ProfileSet.curves``) as ``profile, tau, cost, method, x, y``; returns ``path``."""
    return _write(path, _CURVE_COLUMNS, pset.curves())


def benchopt_rows(runs):
    """The runs as benchopt result rows (module docstring); skipped runs have none."""
    rows = []
    for run in runs:
        if not run.ran:
            continue
        objective = "bilevel_ref[objective=phi]" if run.objective_source == "phi" else "bilevel_ref[objective=f]"
        total = sum(run.counts[k] for k in COSTS["total"])
        for i in range(len(run.nit)):
            row = {"objective_name": objective, "data_name": run.problem, "solver_name": run.method,
                   "idx_rep": run.seed, "stop_val": int(run.nit[i]), "time": float(run.time[i]),
                   "sampling_strategy": "iteration", "objective_value": float(run.objective[i]),
                   "objective_grad_norm": float(run.grad_norm[i]) if run.grad_norm is not None else math.nan,
                   "oracle_calls": int(total[i]), "status": run.status}
            row.update({f"calls_{k}": int(run.counts[k][i]) for k in COUNT_KINDS})
            rows.append(row)
    return rows


def write_benchopt_csv(path, runs):
    """The runs as a benchopt-readable CSV (module docstring); returns ``path``."""
    columns = BENCHOPT_COLUMNS + ("oracle_calls", "status") + tuple(f"calls_{k}" for k in COUNT_KINDS)
    return _write(path, columns, benchopt_rows(runs))
