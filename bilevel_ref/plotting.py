"""Matplotlib helpers (optional ``plot`` extra, imported lazily).

Figures are drawn on a :class:`matplotlib.figure.Figure` with the Agg canvas,
never through ``pyplot``'s global state, so plotting works headless and in
threads.  Only :mod:`bilevel_ref.compare` (and users) call these.
"""
from __future__ import annotations

import os

import numpy as np

from ._text import atomic_path

__all__ = ["require_matplotlib", "plot_compare", "METRIC_LABELS", "X_AXES"]

#: axis labels of the metrics a comparison records
METRIC_LABELS = {
    "val_loss": "validation loss f(x, y)",
    "test_accuracy": "test accuracy",
    "val_accuracy": "validation accuracy",
    "grad_norm": "‖∇φ(x)‖ (closed form)",
    "phi": "φ(x) (closed form)",
    "f": "f(x, y)",
    "precision": "precision of σ(x_i) < 0.5",
    "recall": "recall of σ(x_i) < 0.5",
    "weight_corrupted": "mean weight: corrupted (solid), clean (dashed)",
}
#: x-axes of the "calls" plots (``--x-axis``): key of the record's curve column and axis label
X_AXES = {
    "all": ("calls", "oracle calls (gradients, Hessian builds, products: 1 each)"),
    "first-order": ("calls_first_order", "gradient calls (grad_f + grad_g)"),
    "second-order": ("calls_second_order", "second-order calls (Hessian blocks, HVPs, JVPs)"),
}
#: metric -> companion metric drawn dashed in the same panel and colour
_COMPANIONS = {"weight_corrupted": "weight_clean"}
_LOG_METRICS = {"grad_norm"}


def require_matplotlib():
    """Import matplotlib's Figure, or raise an ImportError naming the ``plot`` extra."""
    try:
        from matplotlib.figure import Figure
    except ImportError:  # pragma: no cover - exercised only without matplotlib
        raise ImportError(
            "plotting needs matplotlib: install the 'plot' extra (pip install 'bilevel_ref[plot]')"
        ) from None
    return Figure


def plot_compare(record, path, metrics=None):
    """Plot a comparison record: each metric vs oracle calls (left) and vs wall time (right).

    Parameters
    ----------
    record : dict or path
        As written by ``bilevel-ref compare`` (``record["runs"][method]["curve"]``
        holds ``calls``, ``time`` and one array per metric), or the path of
        its JSON file (read with :func:`bilevel_ref.compare.read_record`;
        ``null`` values are missing points).
    path : str or path
        Output PNG, written atomically (temporary file, then :func:`os.replace`).
    metrics : sequence of str, optional
        Metrics to plot (default ``record["plot_metrics"]``).

    Returns
    -------
    str
        The path written.
    """
    Figure = require_matplotlib()
    if isinstance(record, (str, os.PathLike)):
        from .compare import read_record

        record = read_record(record)
    metrics = list(metrics or record["plot_metrics"])
    runs = {m: r for m, r in record["runs"].items() if r.get("curve")}
    fig = Figure(figsize=(11, 3.4 * len(metrics)), layout="constrained")
    axes = fig.subplots(len(metrics), 2, squeeze=False)
    calls_key, calls_label = X_AXES[record.get("x_axis", "all")]
    for row, metric in enumerate(metrics):
        for col, xkey in enumerate((calls_key, "time")):
            ax = axes[row][col]
            for method, run in runs.items():
                curve = run["curve"]
                if metric not in curve:
                    continue
                if xkey not in curve:  # records written before the per-kind columns existed
                    continue
                xs = np.asarray(curve[xkey], dtype=float)
                ys = np.asarray(curve[metric], dtype=float)
                if xkey == "time":
                    # log-scaled time axis: the starting point (t = 0) is left out
                    keep = xs > 0
                    xs, ys = xs[keep], ys[keep]
                line, = ax.plot(xs, ys, label=method, marker="." if len(xs) < 30 else None, lw=1.4)
                other = _COMPANIONS.get(metric)
                if other in curve:
                    ys2 = np.asarray(curve[other], dtype=float)
                    if xkey == "time":
                        ys2 = ys2[keep]
                    ax.plot(xs, ys2, ls="--", color=line.get_color(), lw=1.0)
            ax.set_xlabel(calls_label if xkey == calls_key else "wall time [s]")
            ax.set_ylabel(METRIC_LABELS.get(metric, metric))
            if metric in _LOG_METRICS:
                ax.set_yscale("log")
            if xkey == "time":
                ax.set_xscale("log")
            ax.grid(True, alpha=0.3)
            if row == 0 and col == 0:
                ax.legend(fontsize=8)
    fig.suptitle(record.get("title", "bilevel-ref compare"), fontsize=10)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110)
    return str(path)
