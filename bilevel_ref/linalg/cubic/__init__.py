r"""The cubic-regularised Newton subproblem: NumPy reference solvers.

We solve

.. math::

    \min_s\; m(s) = \langle g, s\rangle + \tfrac12 s^\top H s + \tfrac{M}{6}\|s\|^3,
    \qquad H = H^\top \text{ (possibly indefinite)},\; M > 0.

**Conventions.**  One table, used everywhere (``sigma_from_M`` / ``M_from_sigma``
convert, so cross-checks never hand-convert):

=========================================  ====================  ==================
source                                     regulariser           relation to our M
=========================================  ====================  ==================
this library, NP06, DCJ23, FSBA paper      (M/6)‖s‖³             M
CGT11 (ARC), GALAHAD RQS/GLRT (p=3), CD19  (σ/3)‖s‖³ (CD19: ρ)   σ = ρ = M/2
T18                                        (ρ/6)‖s‖³             ρ = M
=========================================  ====================  ==================

The gradient of (M/6)‖s‖³ is (M/2)‖s‖ s; the multiplier is λ = (M/2)‖s‖ = σ‖s‖.

**Optimality** (NP06 Thm 10; CGT11 Thm 3.1).  s* is a global minimiser iff

.. math::

    (H + \lambda I) s^* = -g,\qquad \lambda = \tfrac{M}{2}\|s^*\|,\qquad
    H + \lambda I \succeq 0 ,

so λ ≥ λ_low := max(0, −λ_1(H)); it is unique when λ > −λ_1.  ``cubic_kkt``
returns the three residuals.

**eigh** (NP06 §5, CGT11 §6.1).  With H = Q diag(λ_i) Qᵀ and c = Qᵀg,
ŝ_i(λ) = −c_i/(λ_i + λ) and the secular equation

.. math::

    \phi(\lambda) = \frac{1}{\|s(\lambda)\|} - \frac{\sigma}{\lambda} = 0,\qquad
    \phi'(\lambda) = \frac{\sum_i c_i^2/(\lambda_i+\lambda)^3}{\|s\|^3}
                     + \frac{\sigma}{\lambda^2},

φ increasing and concave on (λ_low, ∞), is solved by safeguarded Newton in
t = λ − λ_low inside the bracket λ_low ≤ λ* ≤ λ_up (``secular_eig``; the same
routine serves :class:`~bilevel_ref.linalg.lazy.LazyCubic`).  The *hard case*
(g ⟂ the λ_1-eigenspace and ‖s_rest(−λ_1)‖ ≤ −λ_1/σ) is solved in closed form,
s* = s_rest + τ q_1.

**lanczos** (GRT10, GALAHAD GLRT).  Lanczos with full reorthogonalisation
from q_1 = g/‖g‖ builds Q_k, T_k; the small problem on T_k is solved by the
same safeguarded Newton, with LDLᵀ factorisations of T_k + λI (O(k) per λ,
``tridiag_secular``); the gradient norm of the full model is β_k|e_kᵀh_k| for
free.  A Krylov space built from g misses eigenvectors orthogonal to it (hard
case): the default ``hard_case="fallback"`` detects a step sitting on the
pole and re-solves with eigh (dense H) or restarts from a perturbed g, then
removes the perturbation's error with Newton steps on the true model.  At
g = 0 (matrix-free) the answer is s = 0 if λ_1(H) ≥ 0, else ±(2|λ_1|/M)q_1,
from a Lanczos estimate of the bottom eigenpair.

**gd** (CD19).  Gradient descent from the Cauchy point with step
1/(4(β + ρR)); converges to the global minimiser whenever its linear term has
a component along the bottom eigenvector.  By default it runs on CD19's
perturbed g + σζ first, then on the true model, and reports ``converged``
only when H + (M/2)‖s‖I ⪰ 0 is verified.  ``cubic_subsolver`` /
``cubic_finalsolver`` are T18's perturbed-GD Cubic-Subsolver and
Cubic-Finalsolver used by IFSBA.

A callable H is checked on every product (:mod:`.refine`): NaN or inf is a
:class:`~bilevel_ref.exceptions.NonFiniteError` naming the operator, never a
NaN result.

Modules: :mod:`.model` (conventions, :class:`CubicResult`, :func:`cubic_model`,
:func:`cubic_kkt`), :mod:`.eigh`, :mod:`.lanczos`, :mod:`.gd`,
:mod:`.tripuraneni`, :mod:`.refine` (operator guard, bottom eigenpair, Newton
refinement), and :mod:`._core`, the numerical pieces that the numba
kernels (:mod:`bilevel_ref._kernels.cubic`, :mod:`bilevel_ref._kernels.lazy`)
compile from the same source.

References
----------
[NP06] Y. Nesterov, B. Polyak, "Cubic regularization of Newton method and its
global performance", Math. Prog. 108 (2006).
[CGT11] C. Cartis, N. Gould, Ph. Toint, "Adaptive cubic regularisation methods
for unconstrained optimization, Part I", Math. Prog. 127 (2011).
[GRT10] N. Gould, D. Robinson, H. Thorne, "On solving trust-region and other
regularised subproblems in optimization", Math. Prog. Comp. 2 (2010).
[CD19] Y. Carmon, J. Duchi, "Gradient descent finds the cubic-regularized
nonconvex Newton step", SIAM J. Optim. 29(3) (2019), arXiv 1612.00547.
[T18] N. Tripuraneni, M. Stern, C. Jin, J. Regier, M. I. Jordan, "Stochastic
cubic regularization for fast nonconvex optimization", NeurIPS 2018.
[DCJ23] N. Doikov, E. M. Chayti, M. Jaggi, "Second-order optimization with
lazy Hessians", ICML 2023, arXiv 2212.00781.
"""
from __future__ import annotations

import numpy as np

from ..._validation import (
    as_symmetric,
    as_vector,
    check_choice,
    check_int,
    check_nonnegative,
    check_positive,
    check_rng,
)
from ...exceptions import NonFiniteError, OptionError
# The solvers' pieces stay importable from here (LazyCubic, the benchmarks and the tests use them).
from ._core import (  # noqa: F401
    POLE_REFINE,
    PROBE_AGREE,
    PROBE_MIN_STEPS,
    probe_violates,
    refine_on_pole,
    ritz_min,
    secular_eig,
    tridiag_secular,
)
from .eigh import solve_eigh, solve_in_eigenbasis  # noqa: F401
from .gd import cubic_gd, solve_gd
from .lanczos import _solve_lanczos, lanczos_cubic
from .model import (
    BACKENDS,
    METHODS,
    CubicKKT,
    CubicResult,
    CubicStep,
    M_from_sigma,
    cubic_kkt,
    cubic_model,
    sigma_from_M,
)
from .refine import bottom_eigenpair, checked_operator, newton_refine  # noqa: F401
from .tripuraneni import FinalsolverResult, SubsolverResult, cubic_finalsolver, cubic_subsolver

__all__ = [
    "CubicResult",
    "CubicStep",
    "CubicKKT",
    "SubsolverResult",
    "FinalsolverResult",
    "solve_cubic",
    "cubic_model",
    "cubic_kkt",
    "sigma_from_M",
    "M_from_sigma",
    "secular_eig",
    "tridiag_secular",
    "ritz_min",
    "refine_on_pole",
    "lanczos_cubic",
    "cubic_gd",
    "cubic_subsolver",
    "cubic_finalsolver",
]

_OPTIONS = {
    "eigh": {"tol_hard": 1e-12, "maxiter_secular": 100},
    "lanczos": {"rtol": 1e-10, "atol": 0.0, "maxiter": None, "reorth": True, "stop": "residual",
                "theta": 50.0, "hard_case": "fallback", "probe": True, "maxiter_secular": 100,
                "tol_hard": 1e-12},
    "gd": {"L": None, "tol": None, "maxiter": 100_000, "perturb": None},
}


def _validate_options(method, options):
    unknown = sorted(set(options) - set(_OPTIONS[method]))
    if unknown:
        raise OptionError(f"unknown option(s) {unknown} for method={method!r}; "
                          f"valid: {sorted(_OPTIONS[method])}")
    opts = dict(_OPTIONS[method], **options)
    if "tol_hard" in opts:
        opts["tol_hard"] = check_nonnegative(opts["tol_hard"], "tol_hard")
    if "maxiter_secular" in opts:
        opts["maxiter_secular"] = check_int(opts["maxiter_secular"], "maxiter_secular", minimum=1)
    if method == "lanczos":
        opts["rtol"] = check_nonnegative(opts["rtol"], "rtol")
        opts["atol"] = check_nonnegative(opts["atol"], "atol")
        if opts["maxiter"] is not None:
            opts["maxiter"] = check_int(opts["maxiter"], "maxiter", minimum=1)
        check_choice(opts["reorth"], "reorth", (True, False))
        check_choice(opts["stop"], "stop", ("residual", "arc"))
        opts["theta"] = check_positive(opts["theta"], "theta")
        check_choice(opts["hard_case"], "hard_case", ("fallback", "perturb", "ignore"))
        check_choice(opts["probe"], "probe", (True, False))
    if method == "gd":
        if opts["L"] is not None:
            opts["L"] = check_positive(opts["L"], "L")
        if opts["tol"] is not None:
            opts["tol"] = check_nonnegative(opts["tol"], "tol")
        opts["maxiter"] = check_int(opts["maxiter"], "maxiter", minimum=0)
        if opts["perturb"] is not None:
            opts["perturb"] = check_nonnegative(opts["perturb"], "perturb")
    return opts


def _dense_symmetric(H, backend, rtol=1e-12):
    """``as_symmetric(H, "H", copy=False)``; with ``backend="numba"`` and a C-ordered float64 square H the
    same conditions are checked by the one-pass kernel ``symmetry_check`` (same errors, same messages)."""
    if not (backend == "numba" and type(H) is np.ndarray and H.dtype == np.float64 and H.ndim == 2
            and H.shape[0] == H.shape[1] and H.shape[0] > 0 and H.flags.c_contiguous):
        return as_symmetric(H, "H", copy=False)
    from ..._kernels.cubic import symmetry_check

    finite, amax, gap = symmetry_check(H)
    if not finite:
        raise NonFiniteError("H must contain only finite values (no NaN or inf)")
    if gap > rtol * max(1.0, amax):
        raise ValueError("H must be symmetric")
    return H


def solve_cubic(g, H, M, method="eigh", backend="numpy", rng=None, **options):
    r"""Global minimiser of m(s) = ⟨g, s⟩ + ½sᵀHs + (M/6)‖s‖³.

    Parameters
    ----------
    g : (d,) array_like
        Gradient (finite).
    H : (d, d) array_like or callable
        Symmetric Hessian (checked to 1e-12 relative), or a callable v ↦ Hv
        (``method="lanczos"`` and ``"gd"`` only; else ``TypeError``).  A
        callable's output is checked on every call: NaN or inf raises
        :class:`~bilevel_ref.exceptions.NonFiniteError`, a wrong shape
        ``ValueError``, both naming the operator.
    M : float > 0
        Cubic constant in our (M/6)‖s‖³ convention (GALAHAD/CGT11/CD19 weight
        σ = ``sigma_from_M(M)`` = M/2).
    method : {"eigh", "lanczos", "gd"}
        ``eigh``: exact, eigendecomposition + secular equation, hard case in
        closed form (O(d³)).  ``lanczos``: Krylov with full reorthogonalisation
        (k matvecs).  ``gd``: Carmon–Duchi gradient descent (HVP only).
    backend : {"numpy", "numba"}, default "numpy"
        ``numpy`` is the reference.  ``numba``: the same code compiled
        (:mod:`bilevel_ref._kernels`): the secular solve (eigh), the whole
        Lanczos loop on a dense H (matrix-free: the loop runs in Python around
        the callable, its small solves compiled).  ``gd`` runs the NumPy code
        with either backend (its cost is the H·v products).
    rng : numpy.random.Generator or int, optional
        Source of the random vectors: lanczos probe start and restart
        perturbation (without it a fixed deterministic probe vector is used);
        gd perturbation and, for a callable H, the start of its λ_1 estimate
        (without it ``numpy.random.default_rng(0)``, so runs repeat bitwise).
    **options
        eigh: ``tol_hard`` (1e-12), ``maxiter_secular`` (100).
        lanczos: ``rtol`` (1e-10), ``atol`` (0), ``maxiter`` (d), ``reorth``
        (True), ``stop`` ("residual" | "arc"), ``theta`` (50, ARC rule
        ‖∇m‖ ≤ θ‖s‖²), ``hard_case`` ("fallback" | "perturb" | "ignore"),
        ``probe`` (True: a second Lanczos recurrence from a random start runs
        alongside, one more H·v per step, to detect the hard case, which a
        Krylov space of g alone cannot see), ``maxiter_secular``, ``tol_hard``.
        gd: ``L`` (bound on ‖H‖; default ‖H‖₂ for arrays, required for
        callables), ``tol`` (absolute bound on ‖∇m‖; default
        10⁻¹⁰(‖g‖ + L‖s‖)), ``maxiter`` (10⁵ GD steps in all), ``perturb``
        (σ of CD19's perturbation g + σζ; default None: CD19's
        σ = ρε/(L + ρR), see :mod:`.gd`; 0 turns it off).  gd reports
        ``converged=True`` only with the global-optimality certificate
        H + (M/2)‖s‖I ⪰ 0 (λ_1 from eigh for an array, Lanczos for a callable).
        Any other name raises :class:`~bilevel_ref.exceptions.OptionError`.

    Returns
    -------
    CubicResult

    Examples
    --------
    >>> import numpy as np
    >>> res = solve_cubic(np.array([1.0, 0.0]), np.diag([1.0, -1.0]), M=2.0)
    >>> bool(res.lam + res.min_eig >= 0)
    True
    """
    method = check_choice(method, "method", METHODS)
    backend = check_choice(backend, "backend", BACKENDS)
    M = check_positive(M, "M")
    opts = _validate_options(method, options)
    if callable(H):
        if method == "eigh":
            raise TypeError("H must be an array for method='eigh'; callables v -> Hv are "
                            "accepted by method='lanczos' and method='gd' only")
        g = as_vector(g, "g")
        dense = None
        H = checked_operator(H, g.shape[0])
    else:
        dense = _dense_symmetric(H, backend)
        if dense.shape[0] == 0:
            raise ValueError("H must have at least one row, got shape (0, 0)")
        g = as_vector(g, "g", dense.shape[0])
        H = dense
    if method == "eigh":
        return solve_eigh(g, dense, M, backend, opts["tol_hard"], opts["maxiter_secular"])
    if method == "gd":  # no kernel: its cost is the H·v products, so both backends run NumPy
        return solve_gd(g, H, dense, M, np.random.default_rng(0) if rng is None else check_rng(rng), opts)
    return _solve_lanczos(g, H, dense, M, backend, rng, opts)


