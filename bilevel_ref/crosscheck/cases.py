"""The golden cases exported by default: problem data, inputs and exact settings (outputs not computed)."""
from __future__ import annotations

import numpy as np

from ._format import GoldenCase

__all__ = ["default_cases"]

_QUAD_KEYS = ("P", "R", "S", "p", "q", "A", "C", "E", "a", "b")
_QUAD_F = "0.5 x'Px + x'Ry + 0.5 y'Sy + p'x + q'y"
_QUAD_G = "0.5 y'Ay + y'Cx + 0.5 x'Ex + a'y + b'x"


def _quadratic(dx, dy, seed, cond_phi="indefinite", S_spectrum=None):
    from ..problems.quadratic import QuadraticBilevel, make_quadratic

    prob = make_quadratic(dx, dy, mu=0.2, L=2.0, cond_phi=cond_phi, seed=seed)
    args = {"dx": dx, "dy": dy, "mu": 0.2, "L": 2.0, "cond_phi": cond_phi, "seed": seed}
    if S_spectrum is not None:
        # upper level nonconvex in y: S indefinite with the given spectrum (same generator, next draws)
        q, r = np.linalg.qr(np.random.default_rng(seed + 500).standard_normal((dy, dy)))
        q = q * np.sign(np.diag(r))
        S = (q * np.asarray(S_spectrum, dtype=float)) @ q.T
        S = 0.5 * (S + S.T)
        prob = QuadraticBilevel(prob.P, prob.R, S, prob.p, prob.q, prob.A, prob.C, prob.E, prob.a, prob.b)
        args["S"] = f"Q diag({list(map(float, S_spectrum))}) Q', Q from default_rng(seed + 500)"
    data = {k: getattr(prob, k) for k in _QUAD_KEYS}
    params = {"generator": "bilevel_ref.problems.quadratic.make_quadratic", "args": args, "f": _QUAD_F,
              "g": _QUAD_G}
    return prob, data, params


def _quadratic_case(name, dx, dy, seed, lam, cond_phi="indefinite", S_spectrum=None):
    prob, data, params = _quadratic(dx, dy, seed, cond_phi, S_spectrum)
    rng = np.random.default_rng(seed + 1000)
    x = rng.standard_normal(dx)
    # inexact inner iterates for the estimators: the exact ones plus a perturbation
    y = prob.y_star_penalty(x, lam) + 0.1 * rng.standard_normal(dy)
    w = prob.y_star(x) + 0.1 * rng.standard_normal(dy)
    inputs = {"x": x, "y": y, "w": w, "lam": np.array(float(lam))}
    family = "quadratic" if S_spectrum is None else "quadratic-nonconvex-y"
    what = "quadratic bilevel" if S_spectrum is None else "quadratic bilevel, f nonconvex in y (S indefinite)"
    return GoldenCase(name, "bilevel", family, params, seed, "float64", data, inputs, {}, {},
                      f"{what} dx={dx}, dy={dy}, penalty λ={lam:g}")


def _logistic(n_train, n_val, d, seed):
    from ..problems.regularization import make_logistic_regularization

    prob = make_logistic_regularization(n_train, n_val, d, seed=seed, reg="exp")
    data = {"X_train": np.asarray(prob.train.X, dtype=float), "b_train": prob.train.b,
            "X_val": np.asarray(prob.val.X, dtype=float), "b_val": prob.val.b}
    params = {"generator": "bilevel_ref.problems.regularization.make_logistic_regularization",
              "args": {"n_train": n_train, "n_val": n_val, "d": d, "seed": seed, "reg": "exp"},
              "f": "mean_val softplus(-b_j a_j'y)",
              "g": "mean_train softplus(-b_i a_i'y) + 0.5 * sum_j exp(x_j) y_j^2"}
    return prob, data, params


def _logistic_case(name, n_train, n_val, d, seed, lam):
    _, data, params = _logistic(n_train, n_val, d, seed)
    rng = np.random.default_rng(seed + 1000)
    x = 0.5 * rng.standard_normal(d)
    y = 0.3 * rng.standard_normal(d)
    w = 0.3 * rng.standard_normal(d)
    inputs = {"x": x, "y": y, "w": w, "lam": np.array(float(lam))}
    return GoldenCase(name, "bilevel", "logistic-regularization", params, seed, "float64", data, inputs, {},
                      {}, f"binary logistic learn-to-regularize n_train={n_train}, d={d}, λ={lam:g}")


def _estimator_settings(L_g, p=2, nu=0.1):
    from ..hypergrad import stencil_float

    offsets, weights = stencil_float(p)
    return {"aid_cg": {"steps": 3}, "aid_neumann": {"steps": 6, "eta": 1.0 / L_g},
            "itd": {"steps": 6, "alpha": 1.0 / L_g},
            "fd": {"p": p, "nu": nu, "offsets": [int(j) for j in offsets], "weights": [float(a) for a in weights]},
            "penalty_hvp": {"inner": "exact solves of D_h z1 = B_h'v and D_g(w) z2 = B_g(w)'v"}}


def _estimator_inputs(prob, x, rng, lam, offsets, nu, scale):
    """Inexact y, w, ITD start, stencil iterates ys_fd (exact + noise) and a direction v."""
    from .reference import newton

    def perturbed(j):
        return newton(lambda u: prob.grad_g(x, u)[1] + j * nu * prob.grad_f(x, u)[1],
                      lambda u: prob.hess_g(x, u)[2] + j * nu * prob.hess_f(x, u)[2], np.zeros(prob.dy))
    y_star = perturbed(0)
    y_lam = newton(lambda u: prob.grad_f(x, u)[1] + lam * prob.grad_g(x, u)[1],
                   lambda u: prob.hess_f(x, u)[2] + lam * prob.hess_g(x, u)[2], y_star)
    dy = prob.dy
    return {"x": x, "y": y_lam + scale * rng.standard_normal(dy), "w": y_star + scale * rng.standard_normal(dy),
            "lam": np.array(float(lam)), "v": rng.standard_normal(prob.dx),
            "y0": scale * rng.standard_normal(dy),
            "ys_fd": np.array([perturbed(j) + 1e-3 * rng.standard_normal(dy) for j in offsets])}


def _estimators_quadratic(name, dx, dy, seed, lam):
    prob, data, params = _quadratic(dx, dy, seed, "indefinite")
    est = _estimator_settings(L_g=2.0)
    rng = np.random.default_rng(seed + 1000)
    inputs = _estimator_inputs(prob, rng.standard_normal(dx), rng, lam, est["fd"]["offsets"], est["fd"]["nu"], 0.1)
    return GoldenCase(name, "estimators", "quadratic", dict(params, estimators=est), seed, "float64", data,
                      inputs, {}, {}, f"finite-step AID-CG, AID-Neumann, ITD, F2SA-p and the matrix-free "
                                      f"penalty Hessian product on quadratic dx={dx}, dy={dy}, λ={lam:g}")


def _estimators_logistic(name, n_train, n_val, d, seed, lam):
    prob, data, params = _logistic(n_train, n_val, d, seed)
    rng = np.random.default_rng(seed + 1000)
    x = 0.5 * rng.standard_normal(d)
    L_g = 0.25 * np.linalg.norm(data["X_train"], 2) ** 2 / n_train + float(np.exp(x).max())
    est = _estimator_settings(L_g=float(f"{L_g:.4g}"))
    inputs = _estimator_inputs(prob, x, rng, lam, est["fd"]["offsets"], est["fd"]["nu"], 0.1)
    return GoldenCase(name, "estimators", "logistic-regularization", dict(params, estimators=est), seed,
                      "float64", data, inputs, {}, {},
                      f"finite-step estimators on binary logistic learn-to-regularize d={d}, λ={lam:g} "
                      f"(Hessians depend on y: ITD must use the Hessian of each step)")


def _minimax_case(name, dx, dy, seed):
    from ..problems.minimax import make_nc_sc_minimax

    prob = make_nc_sc_minimax(dx, dy, mu=0.5, b_norm=0.6, seed=seed)
    x = 0.8 * np.random.default_rng(seed + 1000).standard_normal(dx)
    params = {"generator": "bilevel_ref.problems.minimax.make_nc_sc_minimax",
              "args": {"dx": dx, "dy": dy, "mu": 0.5, "b_norm": 0.6, "seed": seed},
              "f": "sum_i (x_i^4/4 - x_i^2/2) + x'By - (mu/2)||y||^2 (maximised over y)"}
    return GoldenCase(name, "minimax", "double-well-minimax", params, seed, "float64",
                      {"B": prob.B, "mu": np.array(prob.mu)}, {"x": x}, {}, {},
                      f"NC-SC double-well minimax dx={dx}, dy={dy}")


def _minibatch_case(name, n_g, n_f, dy, dx, seed, lam, batch_g, batch_f):
    from ..problems.finite_sum import finite_sum_quadratic
    from .reference import newton

    prob = finite_sum_quadratic(n_g, n_f, dy, dx, seed=seed)
    data = {}
    for level, samples in (("g", prob.lower), ("f", prob.upper)):
        Fy, Fx = samples.Fy, samples.Fx
        for k, arr in (("z", Fy[:, 0]), ("e", Fy[:, 1]), ("lin_y", Fy[:, 2]), ("w", Fx[:, 0]), ("c", Fx[:, 1]),
                       ("lin_x", Fx[:, 2])):
            data[f"{level}_{k}"] = np.array(arr, dtype=np.float64)
    rng = np.random.default_rng(seed + 1000)
    x = rng.standard_normal(dx)
    bg = np.sort(rng.choice(n_g, batch_g, replace=False)).astype(np.int64)
    bf = np.sort(rng.choice(n_f, batch_f, replace=False)).astype(np.int64)
    y_st = newton(lambda u: prob.grad_g(x, u, batch=bg)[1], lambda u: prob.hess_g(x, u, batch=bg)[2], np.zeros(dy))
    inputs = {"x": x, "y": y_st + 0.1 * rng.standard_normal(dy), "w": y_st + 0.1 * rng.standard_normal(dy),
              "lam": np.array(float(lam)), "batch_f": bf, "batch_g": bg}
    params = {"generator": "bilevel_ref.problems.finite_sum.finite_sum_quadratic",
              "args": {"n_inner": n_g, "n_outer": n_f, "dim_inner": dy, "dim_outer": dx, "seed": seed},
              "g_i": "0.5 (z_i'y)^2 + 0.5 (w_i'x)^2 + (c_i'x)(e_i'y) + lin_y_i'y + lin_x_i'x  (data g_*, row i)",
              "f_j": "the same with the f_* arrays",
              "estimators": {"aid_cg": {"steps": 3}}}
    return GoldenCase(name, "minibatch", "finite-sum-quadratic", params, seed, "float64", data, inputs, {}, {},
                      f"fixed minibatches (|B_g|={batch_g}, |B_f|={batch_f}) of a finite-sum quadratic, "
                      f"n={n_g}/{n_f}, dy={dy}, dx={dx}, λ={lam:g}")


def _cubic_case(name, d, seed, M, mode):
    rng = np.random.default_rng(seed)
    q, r = np.linalg.qr(rng.standard_normal((d, d)))
    q = q * np.sign(np.diag(r))
    spectrum = {"indefinite": np.linspace(-1.0, 2.0, d), "pd": np.linspace(0.5, 3.0, d),
                "hard": np.linspace(-1.0, 2.0, d)}[mode]
    H = (q * spectrum) @ q.T
    H = 0.5 * (H + H.T)
    g = rng.standard_normal(d)
    if mode == "hard":
        # g ⟂ eigenvector of λ_min and small: the hard case, σ = −λ_min
        g = g - (g @ q[:, 0]) * q[:, 0]
        g *= 0.05 / np.linalg.norm(g)
    params = {"model": "m(s) = g's + 0.5 s'Hs + (M/6)||s||^3", "spectrum": mode, "hard_case": mode == "hard"}
    return GoldenCase(name, "cubic", "cubic-subproblem", params, seed, "float64", {},
                      {"g": g, "H": H, "M": np.array(float(M))}, {}, {},
                      f"cubic subproblem d={d}, {mode} H, M={M}")


def _cubic_matrix_free_case(name, d, rank, seed, M, krylov_dim):
    """H = diag(H_diag) + H_U diag(H_ev) H_Uᵀ given only as factors (a matrix-free operator)."""
    rng = np.random.default_rng(seed)
    diag = np.linspace(0.2, 3.0, d)
    U, _ = np.linalg.qr(rng.standard_normal((d, rank)))
    ev = -np.linspace(1.5, 0.5, rank)
    g = rng.standard_normal(d)
    params = {"model": "m(s) = g's + 0.5 s'Hs + (M/6)||s||^3",
              "operator": "H v = H_diag * v + H_U (H_ev * (H_U' v)) (never formed densely by the reference)",
              "solver": "bilevel_ref.linalg.cubic.solve_cubic(method='lanczos', rtol=1e-15) on the callable",
              "hard_case": False, "krylov_dim": krylov_dim}
    return GoldenCase(name, "cubic", "cubic-matrix-free", params, seed, "float64", {},
                      {"g": g, "H_diag": diag, "H_U": U, "H_ev": ev, "M": np.array(float(M))}, {}, {},
                      f"matrix-free cubic subproblem d={d} (diagonal + rank-{rank} indefinite), M={M}; "
                      f"also the {krylov_dim}-step Krylov iterate")


def _aid_case(name, dx, dy, seed, iters):
    base = _quadratic_case(name, dx, dy, seed, 10.0, cond_phi="convex")
    options = {"maxiter": iters, "inner": "cg", "inner_steps": 5, "linsys_steps": 5, "step_y": 0.5,
               "step_x": 0.1, "warm_v": True, "linsys_rtol": 0.0}
    x0 = np.random.default_rng(seed + 2000).standard_normal(dx)
    params = dict(base.params, method="aid", options=options,
                  rule=("per iteration: 5 GD steps y <- y - step_y grad_y g (from y0 = 0, warm), then 5 CG "
                        "iterations on A v = grad_y f warm-started at the previous v (first: v0 = 0; "
                        "rtol 0: exactly 5), x <- x - step_x (grad_x f - C' v)"))
    return GoldenCase(name, "trajectory", "quadratic", params, seed, "float64", base.data, {"x0": x0}, {}, {},
                      f"AID trajectory, {iters} iterations, quadratic dx={dx}, dy={dy}")


def default_cases():
    """The golden cases exported by default (outputs not yet computed)."""
    return [
        _quadratic_case("quadratic-5x4", 5, 4, 0, 10.0),
        _quadratic_case("quadratic-3x6", 3, 6, 1, 100.0),
        _quadratic_case("quadratic-lam1e3-4x5", 4, 5, 2, 1e3),
        _quadratic_case("quadratic-lam1e4-4x5", 4, 5, 2, 1e4),
        _quadratic_case("nonconvex-y-4x5", 4, 5, 4, 1e3, S_spectrum=np.linspace(-1.0, 0.5, 5)),
        _logistic_case("logistic-4", 40, 30, 4, 0, 10.0),
        _estimators_quadratic("estimators-quadratic-5x4", 5, 4, 5, 10.0),
        _estimators_logistic("estimators-logistic-4", 40, 30, 4, 1, 10.0),
        _minimax_case("minimax-doublewell-4x3", 4, 3, 0),
        _minibatch_case("minibatch-finite-sum-3x4", 30, 25, 4, 3, 0, 10.0, 8, 6),
        _cubic_case("cubic-indefinite-6", 6, 0, 1.0, "indefinite"),
        _cubic_case("cubic-pd-6", 6, 1, 2.0, "pd"),
        _cubic_case("cubic-hard-5", 5, 2, 1.0, "hard"),
        _cubic_matrix_free_case("cubic-lanczos-40", 40, 3, 3, 1.0, 6),
        _aid_case("aid-quadratic-5x4", 5, 4, 3, 8),
    ]
