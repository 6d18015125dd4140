"""The common return type of hypergradient estimators."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["Hypergradient"]


@dataclass
class Hypergradient:
    """A hypergradient estimate ``d`` with the auxiliary state that produced it.

    Attributes
    ----------
    d : ndarray
        The estimate of ∇φ(x).
    v : ndarray or None
        Linear-system variable v ≈ [∇²_yy g]⁻¹∇_y f (AID), if any.
    y : ndarray or None
        Lower-level iterate at which ``d`` was formed (ITD: y_T).
    info : dict
        Estimator-specific numbers (matvecs, residuals, ...).
    """

    d: np.ndarray
    v: np.ndarray | None = None
    y: np.ndarray | None = None
    info: dict = field(default_factory=dict)
