"""PNG figures of a profile set (optional ``plot`` extra, matplotlib imported lazily).

Three figures, drawn on a :class:`matplotlib.figure.Figure` (no ``pyplot``
state) and written atomically:

* performance profiles :math:`\\rho_s(\\alpha)`, one panel per τ, α on a log₂ axis;
* data profiles :math:`d_s(\\kappa)`, one panel per τ, κ on a log axis (zero costs counted from
  the first positive κ);
* runtime ECDFs, one panel per oracle kind (``total`` and each kind counted),
  over all (instance, τ) pairs, the budget axis in evaluations (symlog: a
  method that never calls a kind reaches its targets at 0).

Every curve is a right-continuous step function drawn from its breakpoints.
"""
from __future__ import annotations

import math

import numpy as np

from .._text import atomic_path
from ..plotting import require_matplotlib

__all__ = ["plot_performance", "plot_data", "plot_ecdf", "plot_profiles"]

_STYLES = ("-", "--", "-.", ":")


def _style(i):
    return {"color": f"C{i % 10}", "linestyle": _STYLES[(i // 10 + i) % len(_STYLES)], "linewidth": 1.8}


def _panels(n, ncols_max=3, size=(4.2, 3.3)):
    Figure = require_matplotlib()
    ncols = min(n, ncols_max)
    nrows = math.ceil(n / ncols)
    fig = Figure(figsize=(size[0] * ncols + 1.8, size[1] * nrows), layout="constrained")
    axes = np.atleast_1d(fig.subplots(nrows, ncols, squeeze=False)).ravel()
    for ax in axes[n:]:
        ax.set_visible(False)
    return fig, axes[:n]


def _steps(ax, xs, ys, labels, right):
    for i, (label, y) in enumerate(zip(labels, ys)):
        x = np.append(xs, right)
        ax.step(x, np.append(y, y[-1]), where="post", label=label, **_style(i))
    ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3)


def _save(fig, path, title):
    fig.suptitle(title, fontsize=10)
    handles, labels = fig.axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside right center", fontsize=8)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100)
    return path


def _subtitle(pset):
    n = len(pset.instances)
    return (f"{len(pset.methods)} methods, {n} problem instances; test: {pset.measure}; "
            f"cost: {pset.cost} oracle calls")


def plot_performance(pset, path):
    """Dolan–Moré performance profiles, one panel per τ; returns ``path``."""
    fig, axes = _panels(len(pset.taus))
    for ax, tau in zip(axes, pset.taus):
        alphas, rho = pset.performance(tau)
        right = max(2.0, float(alphas[-1]) * 2.0)
        _steps(ax, alphas, rho, pset.methods, right)
        ax.set_xscale("log", base=2)
        ax.xaxis.set_minor_formatter("")
        ax.set_xlim(1.0, right)
        ax.set_title(f"τ = {tau:g}", fontsize=9)
        ax.set_xlabel("α (cost ≤ α × best cost)")
        ax.set_ylabel("ρ_s(α): fraction of problems")
    return _save(fig, path, "Performance profiles (Dolan–Moré)\n" + _subtitle(pset))


def plot_data(pset, path):
    """Moré–Wild data profiles, one panel per τ; returns ``path``."""
    unit = "(d_x + 1) oracle calls" if pset.data_unit == "dim" else "oracle calls"
    fig, axes = _panels(len(pset.taus))
    for ax, tau in zip(axes, pset.taus):
        kappas, d = pset.data(tau)
        keep = kappas > 0  # a log axis: the value at the first positive κ already counts the zero costs
        kappas, d = (kappas[keep], d[:, keep]) if keep.any() else (np.ones(1), d[:, -1:])
        right = float(kappas[-1]) * 1.5
        _steps(ax, kappas, d, pset.methods, right)
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter("")  # short ranges: matplotlib would label the minor ticks too
        ax.set_xlim(float(kappas[0]) / 1.5, right)
        ax.set_title(f"τ = {tau:g}", fontsize=9)
        ax.set_xlabel(f"κ ({pset.cost}, in units of {unit})")
        ax.set_ylabel("d_s(κ): fraction of problems")
    return _save(fig, path, "Data profiles (Moré–Wild)\n" + _subtitle(pset))


def plot_ecdf(pset, path):
    """Fixed-target runtime ECDFs, one panel per oracle kind; returns ``path``."""
    kinds = pset.ecdf_kinds()
    fig, axes = _panels(len(kinds), ncols_max=4, size=(3.6, 3.0))
    targets = ", ".join(f"{t:g}" for t in pset.taus)
    for ax, kind in zip(axes, kinds):
        curves = pset.ecdf(kind)
        grid = next(iter(curves.values()))[0]
        right = max(10.0, float(grid[-1]) * 1.5)
        _steps(ax, grid, [c[1] for c in curves.values()], list(curves), right)
        ax.set_xscale("symlog", linthresh=1.0)
        ax.set_xlim(0.0, right)
        ax.set_title(kind, fontsize=9)
        ax.set_xlabel(f"{kind} evaluations")
        ax.set_ylabel("fraction of (problem, τ) pairs")
    return _save(fig, path, f"Runtime ECDFs by oracle kind (COCO, fixed targets τ ∈ {{{targets}}})\n"
                 + _subtitle(pset))


def plot_profiles(pset, stem):
    """All three figures as ``STEM-performance.png``, ``STEM-data.png``, ``STEM-ecdf.png``; returns the paths."""
    return [plot_performance(pset, f"{stem}-performance.png"), plot_data(pset, f"{stem}-data.png"),
            plot_ecdf(pset, f"{stem}-ecdf.png")]
