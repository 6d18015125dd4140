r"""Reference outputs of the golden cases, and the error amplification of each.

Outputs come from the library's public pieces (:mod:`bilevel_ref.hypergrad`,
:mod:`bilevel_ref.linalg.cubic`, the problem classes), evaluated in float64
on a problem rebuilt from the case's stored data (:func:`rebuild_problem`), so
``reference_outputs(load_golden(d)[name])`` reproduces the stored arrays bit
for bit.

Amplification.  Next to each output, :func:`reference_with_amplification`
returns the parts of a first-order model of the relative error a
backward-stable implementation in precision ε reaches,
``{"conditioning": κ, "cancellation": c, "coupling": κ·c or 0}``:

.. math::

    c = \frac{\max_k \sum_i |t_i|_k}{\max_k |\sum_i t_i|_k},

with κ the largest condition number of the linear systems and
eigenproblems the output goes through (∇²_yy g, ∇²_yy(f + λg), H + λI, …; 0
if none) and c the cancellation ratio of the output's defining sum (0 if it
is not one) — e.g. :math:`\max(|S_1| + \lambda|S_2|)/\max|S_1 - \lambda S_2|`
for the penalty Hessian, or
:math:`\max(|\nabla_x f| + \lambda|\nabla_x g(y)| + \lambda|\nabla_x g(w)|)/\max|G|`
for the penalty gradient, both ~λ at the exact inner minimisers.  The
coupling κ·c is nonzero only for penalty quantities whose second derivatives
vary with y (checked on the data: the blocks at y and w differ), where the
inner solutions' error ~κu moves the O(λ) terms.
:mod:`~bilevel_ref.crosscheck.tolerances` turns the parts into the amplification
A = κ + (c + coupling)/2 and tolerances.
"""
from __future__ import annotations

import numpy as np

__all__ = ["newton", "rebuild_problem", "reference_outputs", "reference_with_amplification"]


def newton(grad, hess, y0, tol=1e-14, maxiter=100):
    """Newton's method on a strongly convex function to ‖∇‖ ≤ tol·max(1, ‖∇(y0)‖)."""
    y = np.array(y0, dtype=float)
    g0 = max(1.0, float(np.linalg.norm(grad(y))))
    polish = 2          # two more steps once below tol: quadratic convergence reaches the rounding floor
    for _ in range(maxiter):
        g = grad(y)
        if np.linalg.norm(g) <= tol * g0:
            if polish == 0 or not np.any(g):
                break
            polish -= 1
        y = y - np.linalg.solve(hess(y), g)
    return y


def _norm(a):
    return float(np.linalg.norm(np.asarray(a, dtype=float)))


def _cancel(total, *terms):
    """max_k Σ_i |t_i|_k / max_k |Σ_i t_i|_k: the componentwise cancellation ratio in the max norm of the
    error measure (≥ 1; a large value means cancellation)."""
    den = float(np.max(np.abs(total)))
    num = float(np.max(sum(np.abs(np.asarray(t, dtype=float)) for t in terms)))
    return max(1.0, num / den) if den > 0 else max(1.0, num)


def _amp(conditioning, cancellation=0.0, coupled=False):
    """The parts of an output's amplification: condition number κ (0 if the output goes through no solve),
    cancellation ratio c (0 if it is not a sum of terms) and the coupling κ·c (0 unless ``coupled``: the
    cancelling terms are second derivatives evaluated at inner solutions, and these derivatives vary with y)."""
    k, c = float(conditioning), float(cancellation)
    return {"conditioning": k, "cancellation": c, "coupling": k * c if coupled else 0.0}


def _curvature_varies(problem, x, y, w, batch_f=None, batch_g=None):
    """True if a second-derivative block of f or g differs between y and w (False for quadratics)."""
    return not all(np.array_equal(a, b) for hess, batch in ((problem.hess_f, batch_f), (problem.hess_g, batch_g))
                   for a, b in zip(hess(x, y, batch=batch), hess(x, w, batch=batch)))


def _cond(mat):
    """Condition number of a symmetric matrix (ratio of extreme |eigenvalues|)."""
    ev = np.abs(np.linalg.eigvalsh(0.5 * (mat + mat.T)))
    return float(ev[-1] / ev[0]) if ev[0] > 0 else float("inf")


# ---------------------------------------------------------------------------
# problems from stored data
# ---------------------------------------------------------------------------
def rebuild_problem(case):
    """Our problem object from a case's data arrays (bilevel, estimators, minimax, minibatch, trajectory)."""
    d = case.data
    if case.family in ("quadratic", "quadratic-nonconvex-y"):
        from ..problems.quadratic import QuadraticBilevel

        return QuadraticBilevel(*(d[k] for k in ("P", "R", "S", "p", "q", "A", "C", "E", "a", "b")))
    if case.family == "logistic-regularization":
        from ..problems.regularization import LearnToRegularize

        return LearnToRegularize(d["X_train"], d["b_train"], d["X_val"], d["b_val"], loss="binary", reg="exp")
    if case.family == "double-well-minimax":
        from ..problems.minimax import DoubleWellMinimax

        return DoubleWellMinimax(d["B"], float(d["mu"]))
    if case.family == "finite-sum-quadratic":
        from ..problems.finite_sum import FiniteSumQuadratic, QuadraticSamples

        def samples(level):
            return QuadraticSamples.rank_one(*(d[f"{level}_{k}"] for k in ("z", "w", "c", "e", "lin_y", "lin_x")))
        return FiniteSumQuadratic(samples("g"), samples("f"))
    raise ValueError(f"case {case.name!r}: no rebuild for family {case.family!r}")


# ---------------------------------------------------------------------------
# bilevel and penalty quantities
# ---------------------------------------------------------------------------
def _schur_parts(problem, x, y, w, lam, batch_f=None, batch_g=None):
    """(S1 at (x, y), S2 at (x, w), κ of D_h(y), κ of D_g(w)) of the penalty Hessian."""
    A_f, B_f, D_f = problem.hess_f(x, y, batch=batch_f)
    A_g, B_g, D_g = problem.hess_g(x, y, batch=batch_g)
    A_w, B_w, D_w = problem.hess_g(x, w, batch=batch_g)
    B_h, D_h = B_f + lam * B_g, D_f + lam * D_g
    S1 = A_f + lam * A_g - B_h @ np.linalg.solve(D_h, B_h.T)
    S2 = A_w - B_w @ np.linalg.solve(D_w, B_w.T)
    return S1, S2, _cond(D_h), _cond(D_w)


def _penalty_grad_amp(problem, x, y, w, lam, G, batch_f=None, batch_g=None, kappa=0.0):
    coupled = _curvature_varies(problem, x, y, w, batch_f, batch_g)
    return _amp(kappa, _cancel(G, problem.grad_f(x, y, batch=batch_f)[0], lam * problem.grad_g(x, y, batch=batch_g)[0],
                               lam * problem.grad_g(x, w, batch=batch_g)[0]), coupled)


def _hess_amp(problem, x, y, w, lam, H, batch_f=None, batch_g=None, v=None):
    S1, S2, k1, k2 = _schur_parts(problem, x, y, w, lam, batch_f, batch_g)
    coupled = _curvature_varies(problem, x, y, w, batch_f, batch_g)
    if v is None:
        return _amp(max(k1, k2), _cancel(H, S1, lam * S2), coupled)
    return _amp(max(k1, k2), _cancel(H, S1 @ v, lam * (S2 @ v)), coupled)


def _bilevel_outputs(problem, x, y, w, lam, exact_hess):
    """Reference outputs of a bilevel case and their amplification."""
    from ..hypergrad import exact_hypergradient, penalty_gradient, penalty_hessian

    def solve_g(x_):
        return newton(lambda v: problem.grad_g(x_, v)[1], lambda v: problem.hess_g(x_, v)[2], np.zeros(problem.dy))

    y_st = solve_g(x)
    y_lam = newton(lambda v: problem.grad_f(x, v)[1] + lam * problem.grad_g(x, v)[1],
                   lambda v: problem.hess_f(x, v)[2] + lam * problem.hess_g(x, v)[2], y_st)
    out = {
        "y_star": y_st,
        "phi": np.array(problem.f(x, y_st)),
        "grad_phi": exact_hypergradient(problem, x, y_st).d,
        "y_star_penalty": y_lam,
        # Danskin at the exact inner minimisers: G(x; y*_λ, y*) = ∇L*_λ(x)
        "grad_penalty": penalty_gradient(problem, x, y_lam, y_st, lam).d,
        "penalty_grad_est": penalty_gradient(problem, x, y, w, lam).d,
        "hess_penalty": penalty_hessian(problem, x, y_lam, y_st, lam),
        "penalty_hess_est": penalty_hessian(problem, x, y, w, lam),
    }
    if exact_hess:
        out["hess_phi"] = problem.hess_phi(x)
    # amplification
    A_f, B_f, D_f = problem.hess_f(x, y_st)
    _, B_g, D_g = problem.hess_g(x, y_st)
    k_g = _cond(D_g)
    gx_f, gy_f = problem.grad_f(x, y_st)
    v = np.linalg.solve(D_g, gy_f)
    D_h = problem.hess_f(x, y_lam)[2] + lam * problem.hess_g(x, y_lam)[2]
    k_h = _cond(D_h)
    phi = float(out["phi"])
    amp = {
        "y_star": _amp(k_g),
        "phi": _amp(k_g, _norm(gy_f) * _norm(y_st) / abs(phi) if phi != 0 else 1.0),
        "grad_phi": _amp(k_g, _cancel(out["grad_phi"], gx_f, B_g @ v)),
        "y_star_penalty": _amp(k_h),
        "grad_penalty": _penalty_grad_amp(problem, x, y_lam, y_st, lam, out["grad_penalty"], kappa=max(k_h, k_g)),
        "penalty_grad_est": _penalty_grad_amp(problem, x, y, w, lam, out["penalty_grad_est"]),
        "hess_penalty": _hess_amp(problem, x, y_lam, y_st, lam, out["hess_penalty"]),
        "penalty_hess_est": _hess_amp(problem, x, y, w, lam, out["penalty_hess_est"]),
    }
    if exact_hess:
        K = np.linalg.solve(D_g, B_g.T)
        amp["hess_phi"] = _amp(k_g, _cancel(out["hess_phi"], A_f, B_f @ K, K.T @ B_f.T, K.T @ D_f @ K))
    return out, amp


# ---------------------------------------------------------------------------
# finite-step estimators
# ---------------------------------------------------------------------------
def _estimator_outputs(problem, inp, est):
    from ..hypergrad import (PenaltyHessianOperator, aid_cg, aid_neumann, finite_difference_hypergradient,
                             itd_hypergradient, penalty_hessian)

    x, y, w, lam, v_dir = inp["x"], inp["y"], inp["w"], float(inp["lam"]), inp["v"]
    out, amp = {}, {}
    gx_f = problem.grad_f(x, y)[0]
    D_g = problem.hess_g(x, y)[2]
    k_g = _cond(D_g)

    K = est["aid_cg"]["steps"]
    res = aid_cg(problem, x, y, K, rtol=0.0)
    out["aid_cg_v"], out["aid_cg_d"] = res.v, res.d
    amp["aid_cg_v"] = _amp(k_g)
    amp["aid_cg_d"] = _amp(k_g, _cancel(res.d, gx_f, res.d - gx_f))

    Q, eta = est["aid_neumann"]["steps"], est["aid_neumann"]["eta"]
    res = aid_neumann(problem, x, y, Q, eta)
    out["aid_neumann_v"], out["aid_neumann_d"] = res.v, res.d
    amp["aid_neumann_v"] = _amp(k_g)
    amp["aid_neumann_d"] = _amp(k_g, _cancel(res.d, gx_f, res.d - gx_f))

    T, alpha = est["itd"]["steps"], est["itd"]["alpha"]
    res = itd_hypergradient(problem, x, inp["y0"], T, alpha)
    out["itd_y"], out["itd_d"] = res.y, res.d
    amp["itd_y"] = _amp(k_g)
    gx_T = problem.grad_f(x, res.y)[0]
    amp["itd_d"] = _amp(k_g, _cancel(res.d, gx_T, res.d - gx_T))

    p, nu = est["fd"]["p"], est["fd"]["nu"]
    offsets = est["fd"]["offsets"]
    out["fd_est"] = finite_difference_hypergradient(problem, x, list(inp["ys_fd"]), nu, p).d
    ys_exact = [newton(lambda u, j=j: problem.grad_g(x, u)[1] + j * nu * problem.grad_f(x, u)[1],
                       lambda u, j=j: problem.hess_g(x, u)[2] + j * nu * problem.hess_f(x, u)[2], y)
                for j in offsets]
    out["fd_exact"] = finite_difference_hypergradient(problem, x, ys_exact, nu, p).d

    def fd_amp(ys, total):
        weights = est["fd"]["weights"]
        terms = [a * (j * problem.grad_f(x, yj)[0] + problem.grad_g(x, yj)[0] / nu)
                 for j, a, yj in zip(offsets, weights, ys)]
        return _cancel(total, *terms)
    amp["fd_est"] = _amp(0.0, fd_amp(inp["ys_fd"], out["fd_est"]))
    k_nu = max(_cond(problem.hess_g(x, yj)[2] + j * nu * problem.hess_f(x, yj)[2]) for j, yj in zip(offsets, ys_exact))
    amp["fd_exact"] = _amp(k_nu, fd_amp(ys_exact, out["fd_exact"]))

    # exact matrix-free product: inner CG run to the rounding floor
    op = PenaltyHessianOperator(problem, x, y, w, lam, steps=4 * problem.dy + 10, tol=1e-15, warm_start=False)
    out["penalty_hvp"] = op(v_dir)
    amp["penalty_hvp"] = _hess_amp(problem, x, y, w, lam, penalty_hessian(problem, x, y, w, lam) @ v_dir, v=v_dir)
    return out, amp


# ---------------------------------------------------------------------------
# minimax, fixed minibatch
# ---------------------------------------------------------------------------
def _minimax_outputs(problem, x):
    y = problem.y_star(x)
    out = {"y_star": y, "phi": np.array(problem.phi(x)), "grad_phi": problem.grad_phi(x),
           "hess_phi": problem.hess_phi(x)}
    A_f, B, D = problem.hess_f(x, y)
    k = _cond(D)
    w_terms = x**4 / 4 - x**2 / 2
    amp = {"y_star": _amp(k),
           "phi": _amp(k, _cancel(out["phi"], w_terms, x @ B @ y, 0.5 * problem.mu * (y @ y))),
           "grad_phi": _amp(k, _cancel(out["grad_phi"], x**3, x, B @ y)),
           "hess_phi": _amp(k, _cancel(out["hess_phi"], A_f, B @ np.linalg.solve(D, B.T)))}
    return out, amp


def _minibatch_outputs(problem, inp, est):
    from ..hypergrad import aid_cg, penalty_gradient, penalty_hessian

    x, y, w, lam = inp["x"], inp["y"], inp["w"], float(inp["lam"])
    bf, bg = inp["batch_f"], inp["batch_g"]
    gx, gy = problem.grad_g(x, y, batch=bg)
    A_g, B_g, D_g = problem.hess_g(x, y, batch=bg)
    K = est["aid_cg"]["steps"]
    res = aid_cg(problem, x, y, K, rtol=0.0, batch_f=bf, batch_g=bg)
    out = {"grad_g_x": gx, "grad_g_y": gy, "aid_cg_d": res.d,
           "penalty_grad_est": penalty_gradient(problem, x, y, w, lam, batch_f=bf, batch_g=bg).d,
           "penalty_hess_est": penalty_hessian(problem, x, y, w, lam, batch_f=bf, batch_g=bg)}
    gx_f = problem.grad_f(x, y, batch=bf)[0]
    amp = {"grad_g_x": _amp(0.0, _cancel(gx, A_g @ x, B_g @ y, gx - A_g @ x - B_g @ y)),
           "grad_g_y": _amp(0.0, _cancel(gy, D_g @ y, B_g.T @ x, gy - D_g @ y - B_g.T @ x)),
           "aid_cg_d": _amp(_cond(D_g), _cancel(res.d, gx_f, res.d - gx_f)),
           "penalty_grad_est": _penalty_grad_amp(problem, x, y, w, lam, out["penalty_grad_est"], bf, bg),
           "penalty_hess_est": _hess_amp(problem, x, y, w, lam, out["penalty_hess_est"], bf, bg)}
    return out, amp


# ---------------------------------------------------------------------------
# cubic subproblems, trajectories
# ---------------------------------------------------------------------------
def cubic_operator(case):
    """H of a cubic case: the stored dense ``input/H``, or the matrix-free ``diag(d) + U diag(ev) Uᵀ``
    as a callable (family ``cubic-matrix-free``) together with its dense form."""
    inp = case.inputs
    if "H" in inp:
        return inp["H"], inp["H"]
    d, U, ev = inp["H_diag"], inp["H_U"], inp["H_ev"]
    dense = np.diag(d) + (U * ev) @ U.T
    return (lambda v: d * v + U @ (ev * (U.T @ v))), dense


def _cubic_outputs(case):
    from ..linalg.cubic import solve_cubic

    g, M = case.inputs["g"], float(case.inputs["M"])
    hard = bool(case.params.get("hard_case"))
    H, dense = cubic_operator(case)
    # matrix-free: Lanczos to the rounding floor (its default rtol 1e-10 would leave ~1e-11 in s)
    res = solve_cubic(g, H, M, method="lanczos", rtol=1e-15) if callable(H) else solve_cubic(g, H, M, method="eigh")
    r = float(np.linalg.norm(res.s))
    out = {"model_value": np.array(res.model_value), "lam": np.array(res.lam), "s_norm": np.array(r)}
    if not hard:
        out["s"] = res.s
    ev = np.linalg.eigvalsh(dense)
    shifted = ev + res.lam
    scale = max(abs(ev).max(), res.lam)
    live = shifted[shifted > 1e-8 * scale]          # hard case: the bottom direction is not a solve
    k_c = float(live.max() / live.min())
    s_terms = (g @ res.s, 0.5 * res.s @ (dense @ res.s), M / 6 * r**3)
    amp = {"model_value": _amp(k_c, _cancel(res.model_value, *s_terms)), "lam": _amp(k_c), "s_norm": _amp(k_c),
           "s": _amp(k_c)}
    k = case.params.get("krylov_dim")
    if k:
        kr = solve_cubic(g, H, M, method="lanczos", maxiter=k, rtol=0.0, hard_case="ignore")
        out["s_krylov"] = kr.s
        amp["s_krylov"] = _amp(k_c + k)
    return out, {name: amp[name] for name in out}


def _aid_trajectory(problem, x0, options):
    from .._minimize import minimize

    traj = [np.array(x0, dtype=float)]
    minimize(problem, "aid", x0, seed=0, options=dict(options, gtol=0.0, record_exact=False),
             callback=lambda r: traj.append(r.x.copy()) and False)
    return np.array(traj)


def reference_with_amplification(case):
    """``(outputs, amplification)`` of a case, recomputed from its stored data and inputs."""
    inp = case.inputs
    if case.kind == "bilevel":
        problem = rebuild_problem(case)
        return _bilevel_outputs(problem, inp["x"], inp["y"], inp["w"], float(inp["lam"]),
                                case.family in ("quadratic", "quadratic-nonconvex-y"))
    if case.kind == "estimators":
        return _estimator_outputs(rebuild_problem(case), inp, case.params["estimators"])
    if case.kind == "minimax":
        return _minimax_outputs(rebuild_problem(case), inp["x"])
    if case.kind == "minibatch":
        return _minibatch_outputs(rebuild_problem(case), inp, case.params["estimators"])
    if case.kind == "cubic":
        return _cubic_outputs(case)
    if case.kind == "trajectory":
        problem = rebuild_problem(case)
        opts = case.params["options"]
        traj = _aid_trajectory(problem, inp["x0"], opts)
        k_g = _cond(problem.hess_g(inp["x0"], np.zeros(problem.dy))[2])
        return {"x_traj": traj}, {"x_traj": _amp(k_g)}
    raise ValueError(f"case {case.name!r}: unknown kind {case.kind!r}")


def reference_outputs(case):
    """Recompute a case's outputs with this library from its stored data and inputs."""
    return reference_with_amplification(case)[0]
