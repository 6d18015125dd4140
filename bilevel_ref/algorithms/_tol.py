r"""From the target accuracy ``tol`` to method parameters.

Every deterministic method stops when its estimate :math:`\hat d` of
:math:`\nabla\varphi(x)` has :math:`\|\hat d\| \le tol/2`, and its parameters are
chosen so that the estimator's bias is at most :math:`tol/4` (half of the
remaining :math:`tol/2`: the bias constants below are measured at the starting
point only, the factor 2 covers their change along the path; the certificate of
:mod:`bilevel_ref.certificate` checks the end point).  Then
:math:`\|\nabla\varphi(x)\| \le \|\hat d\| + \text{bias} \le tol`.

The bias of each estimator has the form :math:`C\,h(\theta)` given by the
method's theory, with a known rate :math:`h` in its accuracy parameter θ:

======================  ==============================  =========================================
estimator               bias                            reference
======================  ==============================  =========================================
penalty (F2BA, FSBA..)  :math:`C_\lambda/\lambda`        Kwon et al. 2023, Lemma 3.1; Chen, Ma,
                                                        Zhang 2023, Lemma 4.1 (λ ≥ 2L_f/μ_g)
F2SA-p stencil          :math:`C_\nu\,\nu^p`             Chen, Li, Chayti, Zhang 2026, Lemma 3.1
ITD, T steps from y0    :math:`C_T\,(1 + T)\,q^T`,       Grazzi et al. 2020, Thm 2.1 (ITD bound);
                        :math:`q = \max(1-\alpha\mu_g,    Ji, Yang, Liang 2021, Prop. 2
                        \alpha L_g - 1)`
======================  ==============================  =========================================

The constant C is not a problem constant anyone reports, so it is **measured**
at :math:`(x_0, y_0)` with counted oracles: the estimator at a probe value
:math:`\theta_0` with tight inner solves (AGD to ‖∇‖ ≤ 1e-12), compared with a
tight hypergradient (:func:`bilevel_ref.constants.tight_hypergradient`, when
the problem has ``hvp_yy_g`` and ``cross_g``), else with the estimator at a
refined :math:`\theta_1` (Richardson: :math:`C \approx \|\hat d(\theta_0) -
\hat d(\theta_1)\| / |h(\theta_0) - h(\theta_1)|`).  It is reported in
``res.constants`` (``C_lam``, ``C_nu``, ``C_itd``) with source ``"estimate"``.
"""
from __future__ import annotations

import math

import numpy as np

from ..constants import tight_hypergradient, tight_solve

__all__ = ["BIAS_SHARE", "LAM_MAX", "reference_gradient", "penalty_bias_constant", "derive_lam",
           "fd_bias_constant", "itd_bias_constant", "itd_steps", "step_from_L_phi", "kappa"]

#: share of ``tol`` left to the estimator's bias (the estimate gets tol/2)
BIAS_SHARE = 0.25
#: largest derived penalty λ: beyond it the cancellation in λ(∇_x g(y_λ) − ∇_x g(z)) costs
#: ~λ·1e-16·‖∇_x g‖, comparable to tol = 1e-6 for ‖∇_x g‖ ~ 10
LAM_MAX = 1e9


def kappa(solver):
    """κ = L_g/μ_g (at least 1)."""
    return max(solver.constant("L_g") / solver.constant("mu_g"), 1.0)


def ceil(value):
    """⌈value⌉, ignoring a relative excess of 1e-9 (κ = 10.000000000000007 gives 10)."""
    return int(math.ceil(value * (1.0 - 1e-9)))


def reference_gradient(solver):
    """∇φ(x0) from a tight counted solve, or None when the problem lacks the products."""
    p = solver.problem
    if not all(p.provides(o) for o in ("hvp_yy_g", "cross_g")):
        return None
    return tight_hypergradient(p, solver.x, solver.y, solver.constant("L_g"), solver.constant("mu_g"))[0]


def _record(solver, key, value):
    solver.constants_used[key] = (float(value), "estimate")
    return float(value)


def _tight_penalty_gradient(solver, lam):
    """∇L*_λ(x0) = ∇_x f(x, y*_λ) + λ(∇_x g(x, y*_λ) − ∇_x g(x, y*)) with tight AGD solves."""
    from ..hypergrad.penalty import penalty_gradient

    p, x = solver.problem, solver.x
    L_g, mu_g, L_f = solver.constant("L_g"), solver.constant("mu_g"), solver.constant("L_f")
    L_g = max(L_g, mu_g)
    y_lam = tight_solve(lambda v: p.grad_y_f(x, v) + lam * p.grad_y_g(x, v), solver.y,
                        L_f + lam * L_g, lam * mu_g / 2)
    y_star = tight_solve(lambda v: p.grad_y_g(x, v), solver.y, L_g, mu_g)
    return penalty_gradient(p, x, y_lam, y_star, lam).d


def penalty_bias_constant(solver):
    r"""C_λ with ‖∇L*_λ(x0) − ∇φ(x0)‖ ≈ C_λ/λ, measured at the probe λ0 = 20·max(L_f/μ_g, 1)
    (ten times the strong-convexity threshold 2L_f/μ_g, so the O(1/λ²) term is ~10%)."""
    if "C_lam" in solver.constants_used:
        return solver.constants_used["C_lam"][0]
    lam0 = 20.0 * max(solver.constant("L_f") / solver.constant("mu_g"), 1.0)
    d0 = _tight_penalty_gradient(solver, lam0)
    ref = reference_gradient(solver)
    if ref is not None:
        C = lam0 * float(np.linalg.norm(d0 - ref))
    else:  # Richardson: d(λ0) − d(2λ0) ≈ C/(2λ0)
        C = 2.0 * lam0 * float(np.linalg.norm(d0 - _tight_penalty_gradient(solver, 2.0 * lam0)))
    return _record(solver, "C_lam", C)


def derive_lam(solver, tol):
    r"""λ = max(2L_f/μ_g, C_λ/(tol/4)), capped at :data:`LAM_MAX` (a note says when the cap binds)."""
    C = penalty_bias_constant(solver)
    floor = 2.0 * solver.constant("L_f") / solver.constant("mu_g")
    lam = max(floor, C / (BIAS_SHARE * tol), 1.0)
    if lam > LAM_MAX:
        solver.notes.append(f"tol = {tol:.1e} is out of reach: the derived penalty λ = C_lam/(tol/4) = "
                            f"{lam:.2e} exceeds the cap {LAM_MAX:.0e} (float64 cancellation); λ = "
                            f"{LAM_MAX:.0e} bounds the bias by {C / LAM_MAX:.2e}")
        lam = LAM_MAX
    return lam


def penalty_bias_note(solver, lam, tol):
    """Sentence for an explicit λ whose bias bound C_λ/λ exceeds tol/2 (None otherwise); called
    after the run, so C_λ is measured at the final x (counted)."""
    C = penalty_bias_constant(solver)
    if C / lam > 0.5 * tol:
        return (f"explicit lam = {lam:.3g} limits the accuracy: the penalty bias bound C_lam/lam = "
                f"{C:.3g}/{lam:.3g} = {C / lam:.2e} > tol/2 = {0.5 * tol:.1e} (C_lam measured at the final x); "
                f"leave lam unset to derive it from tol (lam = {C / (BIAS_SHARE * tol):.2e})")
    return None


def fd_bias_constant(solver, p, nu0, estimate):
    r"""C_ν with ‖Φ_ν(x0) − ∇φ(x0)‖ ≈ C_ν ν^p; ``estimate(ν)`` is the stencil estimator with
    tight perturbed solves (Richardson with ν0/2 when no tight hypergradient exists)."""
    d0 = estimate(nu0)
    ref = reference_gradient(solver)
    if ref is not None:
        C = float(np.linalg.norm(d0 - ref)) / nu0 ** p
    else:
        C = float(np.linalg.norm(d0 - estimate(0.5 * nu0))) / (nu0 ** p * (1.0 - 0.5 ** p))
    return _record(solver, "C_nu", C)


def _itd_rate(alpha, L_g, mu_g):
    return max(1.0 - alpha * mu_g, alpha * L_g - 1.0)


def itd_bias_constant(solver, start, alpha):
    r"""C_T with ‖∇φ_T(x0) − ∇φ(x0)‖ ≤ C_T (1 + T) q^T, measured at T0 = ⌈κ⌉."""
    from ..hypergrad import itd_hypergradient

    if "C_itd" in solver.constants_used:
        return solver.constants_used["C_itd"][0]
    T0 = ceil(kappa(solver))
    q = _itd_rate(alpha, solver.constant("L_g"), solver.constant("mu_g"))
    d0 = itd_hypergradient(solver.problem, solver.x, start, T0, alpha).d
    ref = reference_gradient(solver)
    C = float(np.linalg.norm(d0 - ref)) / ((1.0 + T0) * q ** T0)
    return _record(solver, "C_itd", C)


def itd_bias(solver, T, alpha, C):
    q = _itd_rate(alpha, solver.constant("L_g"), solver.constant("mu_g"))
    return C * (1.0 + T) * q ** T


def itd_steps(solver, tol, alpha, C, cap=100_000):
    r"""Smallest T with C_T (1 + T) q^T ≤ tol/4 (q < 1 needed; capped, with a note)."""
    q = _itd_rate(alpha, solver.constant("L_g"), solver.constant("mu_g"))
    if not q < 1.0:
        solver.notes.append(f"tol is out of reach: the ITD step {alpha:.3g} does not contract "
                            f"(q = {q:.3g} >= 1)")
        return 10
    T = 1
    while C * (1.0 + T) * q ** T > BIAS_SHARE * tol:
        if T >= cap:
            solver.notes.append(f"tol = {tol:.1e} is out of reach: ITD needs more than {cap} inner steps")
            break
        T += 1
    return T


def step_from_L_phi(solver, fallback, name="step_x"):
    """``1/L_phi`` (φ's gradient step, Nesterov 2004 §1.2.3) if L_phi resolves, else ``fallback``
    with a note (first-order problems without L_phi in constants() and without HVPs)."""
    try:
        return solver.derive(name, 1.0 / solver.constant("L_phi"))
    except ValueError:
        solver.notes.append(f"{name} = {fallback:g} (L_phi unknown: report it in constants() or give "
                            f"{name}); reaching tol within maxiter is not guaranteed")
        return solver.derive(name, fallback)


def derive_or(solver, name, fn, fallback):
    """``fn()`` recorded as the derived ``name``; on a ValueError (a constant that is neither
    reported nor estimable) the legacy default ``fallback`` with a note."""
    try:
        value = fn()
    except ValueError as exc:
        solver.notes.append(f"{name} = {fallback!r} is not derived from tol ({exc}); reaching tol is "
                            "not guaranteed")
        value = fallback
    return solver.derive(name, value)
