r"""Fitted exponents: least squares in log–log, bootstrap over seeds, verdicts.

:func:`fit_slope` fits

.. math::

    \log N(\varepsilon) = a + b \log(1/\varepsilon)

by least squares on the grid points with :math:`N \ge 10` (smaller counts are
dominated by O(1) terms); with several seeds :func:`bootstrap_slope` fits the
per-ε median and gives a percentile interval over resampled seeds.
:func:`verdict` compares b with the theory exponent: on benign problems the
bound must hold (:math:`b \le b_{theory} + 0.15`), on worst-case instances it
should be attained (:math:`|b - b_{theory}| \le 0.1`).  Õ bounds carry log
factors that bias short grids upwards; prefer grids of ≥ 2 decades.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .._validation import as_vector, check_choice, check_int, check_positive, check_rng

__all__ = ["Fit", "fit_slope", "bootstrap_slope", "verdict", "median_over_seeds"]


@dataclass
class Fit:
    """Least-squares fit log N = a + b log(1/ε) (``slope`` = b)."""

    slope: float
    stderr: float
    intercept: float
    n_points: int
    eps: np.ndarray = field(repr=False)
    counts: np.ndarray = field(repr=False)
    ci: tuple = None

    def predict(self, eps):
        """Fitted N at ``eps``."""
        return np.exp(self.intercept + self.slope * np.log(1.0 / np.asarray(eps, dtype=float)))

    def to_dict(self):
        return {"slope": self.slope, "stderr": self.stderr, "intercept": self.intercept,
                "n_points": self.n_points, "ci": None if self.ci is None else list(self.ci),
                "eps": self.eps.tolist(), "counts": self.counts.tolist()}


def fit_slope(eps, counts, min_count=10):
    """Fit log N = a + b·log(1/ε) on the points with finite N ≥ ``min_count``.

    Parameters
    ----------
    eps, counts : array_like, same length
        Targets and hitting counts (NaN / inf = never reached: ignored).
    min_count : float, default 10
        Points with fewer calls are dominated by O(1) terms and ignored.

    Returns
    -------
    Fit
        ``slope`` b, its standard error (NaN with fewer than 3 points),
        ``intercept`` a, the number of points used.  With fewer than 2 usable
        points the slope is NaN.
    """
    eps = as_vector(eps, "eps")
    counts = np.asarray(counts, dtype=float).reshape(-1)
    if counts.size != eps.size:
        raise ValueError(f"counts must have the length of eps ({eps.size}), got {counts.size}")
    if np.any(eps <= 0):
        raise ValueError("eps must be > 0")
    keep = np.isfinite(counts) & (counts >= min_count)
    e, n = eps[keep], counts[keep]
    if e.size < 2:
        return Fit(math.nan, math.nan, math.nan, int(e.size), e, n)
    xs, ys = np.log(1.0 / e), np.log(n)
    design = np.column_stack([np.ones_like(xs), xs])
    coef, *_ = np.linalg.lstsq(design, ys, rcond=None)
    stderr = math.nan
    if e.size > 2:
        resid = ys - design @ coef
        sigma2 = float(resid @ resid) / (e.size - 2)
        stderr = math.sqrt(sigma2 / float(np.sum((xs - xs.mean()) ** 2)))
    return Fit(float(coef[1]), stderr, float(coef[0]), int(e.size), e, n)


def bootstrap_slope(eps, counts_by_seed, n_boot=1000, rng=0, level=0.95, min_count=10):
    """Bootstrap interval of the slope over seeds (median hitting count per ε).

    Parameters
    ----------
    eps : (n_eps,) array_like
    counts_by_seed : (n_seeds, n_eps) array_like
        Hitting counts of each seed (NaN = never reached).
    n_boot : int
        Resamples of the seeds (with replacement).
    rng : numpy.random.Generator or int
        Source of the resampling (no global state).
    level : float in (0, 1)

    Returns
    -------
    (Fit, (lo, hi), samples)
        The fit of the per-ε medians, the percentile interval and the
        bootstrap slopes.
    """
    rng = check_rng(rng)
    counts = np.asarray(counts_by_seed, dtype=float)
    if counts.ndim != 2:
        raise ValueError(f"counts_by_seed must be 2-D (n_seeds, n_eps), got shape {counts.shape}")
    n_boot = check_int(n_boot, "n_boot", minimum=1)
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level!r}")
    base = fit_slope(eps, median_over_seeds(counts), min_count)
    slopes = np.empty(n_boot)
    for i in range(n_boot):
        rows = rng.integers(0, counts.shape[0], counts.shape[0])
        slopes[i] = fit_slope(eps, median_over_seeds(counts[rows]), min_count).slope
    finite = slopes[np.isfinite(slopes)]
    alpha = (1 - level) / 2
    ci = ((float(np.quantile(finite, alpha)), float(np.quantile(finite, 1 - alpha)))
          if finite.size else (math.nan, math.nan))
    base.ci = ci
    return base, ci, slopes


def median_over_seeds(counts):
    """Per-column median of (n_seeds, n_points) hitting counts; NaN where more
    than half of the seeds never reached the target (no median hitting time)."""
    counts = np.asarray(counts, dtype=float)
    missed = np.mean(~np.isfinite(counts), axis=0) > 0.5
    with np.errstate(all="ignore"):
        med = np.median(np.where(np.isfinite(counts), counts, np.inf), axis=0)
    return np.where(missed, np.nan, med)


def verdict(slope, b_theory, mode="upper", tol=None):
    """Compare a fitted slope with the theory exponent.

    ``mode="upper"`` (benign problems): pass iff b ≤ b_theory + tol (tol 0.15);
    ``mode="sharp"`` (worst-case instances): pass iff ``abs(b - b_theory) <= tol`` (tol 0.1).
    Returns ``{"pass": bool | None, "mode", "tol", "slope", "theory", "text"}``
    (``pass`` is None when the slope or the theory is missing).
    """
    check_choice(mode, "mode", ("upper", "sharp"))
    tol = (0.15 if mode == "upper" else 0.1) if tol is None else check_positive(tol, "tol")
    out = {"mode": mode, "tol": tol, "slope": slope, "theory": b_theory}
    if b_theory is None or slope is None or not np.isfinite(slope):
        out.update({"pass": None, "text": "no verdict (missing slope or theory exponent)"})
        return out
    ok = slope <= b_theory + tol if mode == "upper" else abs(slope - b_theory) <= tol
    if mode == "upper":
        what = f"b = {slope:.4f} {'<=' if ok else '>'} {b_theory:.4f} + {tol:g}"
    else:
        what = f"|b - {b_theory:.4f}| = {abs(slope - b_theory):.4f} {'<=' if ok else '>'} {tol:g}"
    out.update({"pass": bool(ok), "text": ("PASS: " if ok else "FAIL: ") + what})
    return out

