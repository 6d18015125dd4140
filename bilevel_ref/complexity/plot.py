"""Log–log plot of a sweep: hitting counts vs 1/ε (or κ), fitted line, theory slope.

Needs matplotlib (the ``plot`` extra), imported when :func:`plot_sweep` is
called; the figure is a bare :class:`matplotlib.figure.Figure` (no pyplot
state), so it works headless and with any backend.
"""
from __future__ import annotations

import math

import numpy as np

__all__ = ["plot_sweep"]


def plot_sweep(result, path=None, quantities=None, ax=None, title=None):
    """Log-log plot of hitting counts vs 1/ε (or κ) with the fitted and theoretical lines.

    The theory line has the table's slope and passes through the fitted line
    at the geometric centre of the fitted points.  Returns the matplotlib Figure;
    saves it to ``path`` when given.
    """
    import matplotlib
    from matplotlib.figure import Figure

    quantities = list(quantities or result.fits)
    if ax is None:
        # a bare Figure: no pyplot state, works with any backend (and none)
        fig = Figure(figsize=(6.0, 4.2))
        ax = fig.subplots()
    else:
        fig = ax.figure
    xs = 1.0 / result.grid if result.variable == "eps" else result.grid
    colors = matplotlib.rcParams["axes.prop_cycle"].by_key()["color"]
    for n, q in enumerate(quantities):
        c = colors[n % len(colors)]
        vals = result.quantity(q)
        for row in vals:
            ax.plot(xs, row, "o", color=c, alpha=0.25 if vals.shape[0] > 1 else 1.0, ms=4)
        fit = result.fits.get(q)
        if fit is None or not np.isfinite(fit.slope):
            continue
        fx = 1.0 / fit.eps
        line = np.geomspace(fx.min(), fx.max(), 50)
        ax.plot(line, np.exp(fit.intercept) * line**fit.slope, "-", color=c,
                label=f"{q}: fitted b = {fit.slope:.3f}")
        th = result.theory.get(q)
        if th is not None:
            x_mid = math.sqrt(fx.min() * fx.max())
            y_mid = np.exp(fit.intercept) * x_mid**fit.slope
            ax.plot(line, y_mid * (line / x_mid) ** th, "--", color=c, alpha=0.7, label=f"{q}: theory {th:g}")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("1/ε" if result.variable == "eps" else "κ")
    ax.set_ylabel("calls at hitting time")
    ax.set_title(title or f"{result.method} on {result.problem} ({result.measure})")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    if path is not None:
        fig.tight_layout()
        fig.savefig(path, dpi=110)
    return fig

