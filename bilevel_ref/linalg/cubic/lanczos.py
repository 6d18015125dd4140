r"""``method="lanczos"``: the Krylov solver with a hard-case probe.

Lanczos with full reorthogonalisation from q_1 = g/‖g‖ builds Q_k and the
tridiagonal T_k; the model restricted to the Krylov space,
min_h ‖g‖ e_1ᵀh + ½hᵀT_k h + (σ/3)‖h‖³, is solved after every step by the
secular Newton iteration of CGT11 §6.1 on LDLᵀ factors of T_k + λI (O(k) per
λ, ``tridiag_secular``), and the gradient norm of the full model is
β_k|e_kᵀh_k| for free.  This is the generalised Lanczos method of GLTR
(Gould, Lucidi, Roma, Toint 1999) carried over to the cubic model (GRT10;
GALAHAD GLRT; CGT11 §6), keeping Q_k instead of regenerating it.

A Krylov space built from g misses eigenvectors orthogonal to it (the hard
case).  A second, plain Lanczos recurrence from a random start (the probe)
runs alongside: its smallest Ritz value θ_p ≥ λ_1(H) certifies H + λI ⋡ 0 when
θ_p < −λ.  On that certificate, or when λ sits on the pole of T_k, the
default ``hard_case="fallback"`` re-solves with eigh (dense H) or restarts
from a perturbed g (matrix-free), whose O(10⁻⁸) error Newton steps on the
true model then remove (:func:`~.refine.newton_refine`).  At g = 0 there is no
Krylov space of g: the bottom eigenpair (θ, u) of H from a Lanczos run on the
probe's start gives s = 0 when θ ≥ 0, else s = (|θ|/σ)u.

The loop itself is :func:`bilevel_ref.linalg.cubic._core.lanczos_loop`, which
the numba backend compiles for a dense H (``bilevel_ref._kernels.cubic``).
"""
from __future__ import annotations

import math

import numpy as np

from ..._validation import check_rng
from ._core import lanczos_loop, probe_violates
from .eigh import solve_eigh
from .model import CubicResult, unit_sphere
from .refine import EIG_RTOL, bottom_eigenpair, newton_refine

__all__ = ["lanczos_cubic"]

#: λ + θ_1(T_k) ≤ ON_POLE·λ: the step sits on the pole of T_k (the near-hard signature GLRT also reports).
ON_POLE = 1e-8
#: Matrix-free restart from g + RESTART_PERTURB·‖g‖ζ after a suspected hard case.
RESTART_PERTURB = 1e-8


def _krylov_summary(alpha, beta, k, gamma, h, sigma):
    """Model value γh_1 + ½hᵀT_kh + (σ/3)‖h‖³ and ‖∇m‖ = β_k|h_k| on the Krylov space (free)."""
    a, b = alpha[:k], beta[: k - 1]
    hth = float(a @ (h * h) + 2.0 * (b @ (h[:-1] * h[1:])))
    h_norm = float(np.linalg.norm(h))
    return gamma * float(h[0]) + 0.5 * hth + sigma / 3.0 * h_norm**3, float(beta[k - 1] * abs(h[-1]))


def lanczos_cubic(g, H, sigma, *, rtol=1e-10, atol=0.0, maxiter=None, reorth=True,
                  stop="residual", theta=50.0, maxiter_secular=100, probe=None, backend="numpy"):
    """One Lanczos solve of the cubic subproblem from g (no hard-case decision).

    ``g`` (‖g‖ > 0) and ``H`` (array or callable) are validated by the caller.
    ``backend="numpy"`` runs :func:`~bilevel_ref.linalg.cubic._core.lanczos_loop`
    as Python (the reference); ``"numba"`` runs it compiled for a dense H, or
    in Python with its small solves compiled for a callable H.  ``probe`` is
    the probe's start vector (None: no probe).

    Returns
    -------
    s, lam, theta_1, theta_probe, k, n_matvec, converged, model_value, grad_norm
    """
    d = g.shape[0]
    kmax = d if maxiter is None else min(d, maxiter)
    loop = lanczos_loop
    if backend == "numba":
        from ..._kernels import cubic as kernels

        if callable(H):
            loop = kernels.lanczos_matrix_free
        else:
            loop, H = kernels.lanczos_dense, np.ascontiguousarray(H)
    s, lam, theta1, theta_p, k, n_matvec, converged, alpha, beta, h, breakdown = loop(
        H, g, sigma, rtol, atol, kmax, bool(reorth), stop == "arc", theta, maxiter_secular,
        g if probe is None else probe, probe is not None)
    model, grad_norm = _krylov_summary(alpha, beta, k, float(np.linalg.norm(g)), h, sigma)
    if breakdown:
        grad_norm = 0.0
    return s, lam, theta1, theta_p, k, n_matvec, converged, model, grad_norm


def _fixed_probe(d):
    """Deterministic probe start when no Generator is given: generic (no zero
    pattern, no symmetry), hence not orthogonal to a given eigenvector except on
    a measure-zero set of problems."""
    v = np.sin(np.arange(1, d + 1) * 2.399963229728653 + 0.5)  # golden-angle phases
    return v / np.linalg.norm(v)


def _lanczos_run(g, H, sigma, backend, opts, probe):
    """One Lanczos solve from g with the validated options of ``solve_cubic``."""
    kw = {key: opts[key] for key in ("rtol", "atol", "maxiter", "reorth", "stop", "theta", "maxiter_secular")}
    return lanczos_cubic(g, H, sigma, probe=probe, backend=backend, **kw)


def _solve_lanczos(g, H, dense, M, backend, rng, opts):
    """Lanczos with a hard-case policy (GLTR/GLRT's Krylov space cannot see the hard case).

    The step is suspected not to be global when λ sits on the pole of T_k
    (λ + θ_1(T_k) ≤ 1e-8 λ, the near-hard signature GLRT also reports) or when
    the probe's Ritz value certifies λ_1(H) < −λ.  Then ``"fallback"`` re-solves
    with eigh (dense H) or, matrix-free, restarts from g + 1e-8‖g‖ζ and refines
    on the true model; ``"perturb"`` always restarts; ``"ignore"`` returns the
    Krylov minimiser.  After a restart, a probe that still certifies
    H + λI ⋡ 0 makes the result ``converged=False``.
    """
    sigma = M / 2.0
    mode = opts["hard_case"]
    d = g.shape[0]
    if rng is not None:
        rng = check_rng(rng)
    if float(np.linalg.norm(g)) == 0.0:
        # The Krylov space of g is empty.  s = 0 is the answer iff H ⪰ 0.
        if mode == "ignore":
            return CubicResult(np.zeros(d), 0.0, 0.0, 0.0, None, 0, 0, False, True, "lanczos")
        if dense is not None and mode == "fallback":
            return _eigh_fallback(g, dense, M, backend, opts, 0, 0)
        return _zero_gradient(H, d, sigma, rng)
    probe = None
    if mode != "ignore" and opts["probe"]:
        probe = unit_sphere(rng, d) if rng is not None else _fixed_probe(d)
    n_matvec = 0
    g_run = g
    detected = False
    for attempt in range(2):
        s, lam, theta1, theta_p, k, n_mv, converged, model, grad_norm = _lanczos_run(
            g_run, H, sigma, backend, opts, probe)
        on_pole = theta1 < 0.0 and lam + theta1 <= ON_POLE * lam
        suspect = on_pole or probe_violates(theta_p, lam)
        detected = detected or suspect
        n_matvec += n_mv
        if attempt == 1 and probe_violates(theta_p, lam):
            converged = False  # the restart did not reach H + λI ⪰ 0 either
        if mode == "ignore" or not suspect or attempt == 1:
            break
        if mode == "fallback" and dense is not None:
            return _eigh_fallback(g, dense, M, backend, opts, k, n_matvec)
        # Matrix-free (or "perturb"): restart from g + 1e-8‖g‖ζ so that the Krylov
        # space sees the bottom eigenvector; the model stays the one of g.
        zeta = unit_sphere(rng, d) if rng is not None else _fixed_probe(d)
        g_run = g + RESTART_PERTURB * float(np.linalg.norm(g)) * zeta
    if g_run is not g:
        # s minimises the model of g_run: Newton steps on the model of g remove the O(1e-8) error.
        s, _, grad_norm, model, n_mv = newton_refine(g, H, sigma, s)
        n_matvec += n_mv
        lam = sigma * float(np.linalg.norm(s))
    converged = converged and math.isfinite(model)
    return CubicResult(
        s=s, lam=float(lam), model_value=float(model), grad_norm=float(grad_norm),
        min_eig=float(min(theta1, theta_p)), n_iter=int(k), n_matvec=int(n_matvec),
        hard_case=bool(detected), converged=bool(converged), method="lanczos",
    )


def _zero_gradient(H, d, sigma, rng):
    """g = 0 without a dense H: s = 0 if θ_1 ≥ 0, else s = (|θ_1|/σ)u, from the bottom Ritz pair (θ_1, u)
    of a Lanczos run on the probe's start (converged: an invariant Krylov space, or ‖Hu − θu‖ ≤ 1e-10‖T‖,
    the documented KKT level; the run itself stops at EIG_RTOL = 1e-12)."""
    pair = bottom_eigenpair(H, unit_sphere(rng, d) if rng is not None else _fixed_probe(d), rtol=EIG_RTOL)
    converged = pair.exact or pair.residual <= 1e-10 * pair.h_norm
    if pair.theta >= 0.0:
        return CubicResult(np.zeros(d), 0.0, 0.0, 0.0, pair.theta, pair.n_matvec, pair.n_matvec, False,
                           converged, "lanczos")
    lam = -pair.theta
    s = (lam / sigma) * pair.u
    Hs = (lam / sigma) * pair.Hu
    s_norm = float(np.linalg.norm(s))
    model = float(0.5 * (s @ Hs) + sigma / 3.0 * s_norm**3)
    return CubicResult(s, lam, model, float(np.linalg.norm(Hs + sigma * s_norm * s)), pair.theta,
                       pair.n_matvec, pair.n_matvec, True, converged and math.isfinite(model), "lanczos")


def _eigh_fallback(g, dense, M, backend, opts, k, n_matvec):
    res = solve_eigh(g, dense, M, backend, opts["tol_hard"], opts["maxiter_secular"], "lanczos")
    return CubicResult(res.s, res.lam, res.model_value, res.grad_norm, res.min_eig, int(k), int(n_matvec),
                       True, res.converged, "lanczos")
