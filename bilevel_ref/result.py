"""Results of a run: :class:`BilevelResult` and its per-iteration :class:`History`."""
from __future__ import annotations

import enum

import numpy as np
from scipy.optimize import OptimizeResult

from .oracles import COUNT_KINDS

__all__ = ["BilevelResult", "History", "Status"]


class Status(enum.IntEnum):
    """Why a run stopped: ``BilevelResult.status`` (an int, as in scipy).

    ``Status(res.status).label`` is the short word used by ``compare`` and the
    command line; ``.message`` is the generic sentence (runs may give a more
    specific ``res.message``).
    """

    CONVERGED = 0
    MAXITER = 1
    BUDGET = 2
    NONFINITE = 3
    CALLBACK = 4
    FAILURE = 5
    COMPLETED = 6
    BIASED = 7

    @property
    def label(self):
        return _STATUS_TEXT[self][0]

    @property
    def message(self):
        return _STATUS_TEXT[self][1]


#: The one table of status labels and messages.
_STATUS_TEXT = {
    Status.CONVERGED: ("converged", "the requested accuracy was reached"),
    Status.MAXITER: ("maxiter", "maximum number of iterations reached"),
    Status.BUDGET: ("budget", "oracle budget exhausted"),
    Status.NONFINITE: ("diverged", "non-finite values: the run diverged; x and y are the last finite iterates"),
    Status.CALLBACK: ("callback", "stopped by the callback"),
    Status.FAILURE: ("failed", "method-specific failure"),
    Status.BIASED: ("biased", "the stopping test was met on the method's estimate, but the certified "
                              "‖∇φ‖ exceeds the tolerance (the estimator's bias is too large)"),
    Status.COMPLETED: ("completed", "maxiter iterations completed; no stopping test was active "
                                    "(gtol = 0), so nothing certifies the accuracy"),
}


class BilevelResult(OptimizeResult):
    """Outcome of :func:`bilevel_ref.minimize` (a :class:`scipy.optimize.OptimizeResult`).

    Attributes
    ----------
    x, y : ndarray
        Final upper and lower iterates (the last finite ones if a run diverged).
    fun : float
        φ(x) from the closed form when the problem has one, else f(x, y) at
        the final iterates (an estimate of φ(x)).
    grad_norm : float
        ‖∇φ(x)‖ from the closed form when available, else ``grad_norm_est``.
    grad_norm_est : float
        Norm of the method's own last hypergradient estimate.
    min_eig : float or None
        λ_min of the last Hessian estimate (second-order methods).
    nit : int
        Outer iterations performed.
    oracle_calls : dict
        Oracle calls by kind (``grad_g``, ``hvp_yy_g``, ..., ``samples``).
    history : History
        Per-iteration records: iteration, cumulative counts, wall time and metrics.
    success : bool
    status : int
        A :class:`Status` value: 0 converged, 1 maxiter reached before the
        stopping test was met, 2 budget exhausted, 3 non-finite values, 4
        stopped by callback, 5 method-specific failure, 6 maxiter completed
        with no stopping test active (``gtol=0`` and no rule of the
        method's own, e.g. a stochastic run), 7 the stopping test was met on
        a biased estimate (the certificate failed).  ``success`` is True only
        for 0: the stopping test was met *and* certified
        (:mod:`bilevel_ref.certificate`).
    grad_norm_certified : float
        ‖∇φ(x)‖ from the certificate's tight counted solve (NaN when the run
        did not converge or could not be certified).
    message : str
    method, options, seed
        What was run (options after validation, with defaults filled in).
    derived : dict
        Parameters the method derived from ``tol`` because they were left at None
        (e.g. ``lam``, ``inner_steps``, ``step_x``); ``options`` holds them as None.
    constants, constant_sources : dict
        Problem constants the method used and where each came from
        (``"option"``, ``"problem"`` or ``"estimate"``; see :mod:`bilevel_ref.constants`).
    """

    def __repr__(self):
        return OptimizeResult.__repr__(_printable(self))


class _EmptyDict:
    def __repr__(self):
        return "{}"


def _printable(d):
    """``d`` with empty nested dicts replaced (scipy's formatter cannot print them)."""
    return OptimizeResult({k: (_EmptyDict() if not v else _printable(v)) if isinstance(v, dict) else v
                           for k, v in d.items()})


class History:
    """Per-iteration records of a run.

    Index it like a dict: ``h["grad_norm"]``, ``h["calls:hvp_yy_g"]``,
    ``h["nit"]``, ``h["time"]``.  ``h.counts[kind]`` is the cumulative count
    array of an oracle kind, ``h.metrics`` the other columns.  Iteration 0 is
    the starting point.  Wall time differs between reruns; every other column
    is bit-identical for a given seed.
    """

    def __init__(self):
        self._rows = []
        self._frozen = None

    def record(self, nit, time, counts, metrics):
        self._rows.append((nit, time, counts, metrics))
        self._frozen = None

    def __len__(self):
        return len(self._rows)

    def _freeze(self):
        if self._frozen is None:
            out = {
                "nit": np.array([r[0] for r in self._rows], dtype=np.int64),
                "time": np.array([r[1] for r in self._rows], dtype=np.float64),
            }
            for kind in COUNT_KINDS:
                out[f"calls:{kind}"] = np.array([r[2][kind] for r in self._rows], dtype=np.int64)
            names = []
            for r in self._rows:
                names.extend(k for k in r[3] if k not in names)
            for name in names:
                out[name] = np.array([r[3].get(name, np.nan) for r in self._rows], dtype=np.float64)
            self._frozen = out
        return self._frozen

    def __getitem__(self, key):
        return self._freeze()[key]

    def __contains__(self, key):
        return key in self._freeze()

    def keys(self):
        return self._freeze().keys()

    @property
    def counts(self):
        """``{kind: cumulative count array}``."""
        return {k[6:]: v for k, v in self._freeze().items() if k.startswith("calls:")}

    @property
    def metrics(self):
        """Non-count columns (``grad_norm``, ``phi``, ``grad_norm_est``, ...)."""
        return {k: v for k, v in self._freeze().items() if not k.startswith("calls:")}

    def total_calls(self, kinds=None, weights=None):
        """Cumulative weighted sum of counts (default: every oracle kind, weight 1)."""
        freeze = self._freeze()
        kinds = [k for k in COUNT_KINDS if k != "samples"] if kinds is None else list(kinds)
        weights = weights or {}
        return sum(weights.get(k, 1.0) * freeze[f"calls:{k}"] for k in kinds)

    def to_dict(self):
        """Plain ``{column: list}`` (JSON-ready)."""
        return {k: v.tolist() for k, v in self._freeze().items()}

    def __repr__(self):
        return f"<History: {len(self)} records, columns {list(self.metrics)}>"
