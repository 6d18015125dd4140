r"""The golden-case format: version, error type, the case record, and the conventions it states.

Every manifest carries :data:`CONVENTIONS` (the meaning of L*_λ, of the inexact
iterates y and w, of the cubic multiplier and of the hard-case sign rule) and,
per case, the definition of each output from :data:`OUTPUT_DEFINITIONS`, so a
reader needs neither this library nor its documentation.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field

__all__ = ["FORMAT_VERSION", "FORMAT_NAME", "MANIFEST", "SCHEMA_FILE", "DTYPES", "EXIT_PASS", "EXIT_MISMATCH",
           "EXIT_INPUT", "EXIT_INTERNAL", "CrosscheckInputError", "GoldenCase", "CONVENTIONS",
           "OUTPUT_DEFINITIONS", "ERROR_MEASURE"]

#: Major.minor version of the golden-case format (a reader rejects another major version).
#: 2.0: JSON Schema, provenance block with SHA-256 checksums, array shapes, per-output
#: definitions and calibrated per-dtype tolerances (float32 may be declared unsupported).
FORMAT_VERSION = "2.0"
FORMAT_NAME = "bilevel_ref-golden"
MANIFEST = "manifest.json"
#: The JSON Schema of the manifest, shipped as package data next to this module.
SCHEMA_FILE = "golden.schema.json"
DTYPES = ("float64", "float32")

#: Exit status of ``bilevel-ref crosscheck``: every checked quantity within its tolerance
EXIT_PASS = 0
#: ... a quantity outside its tolerance (or non-finite) — and nothing else
EXIT_MISMATCH = 1
#: ... damaged or malformed input (golden directory, manifest, candidate file) or a usage error
EXIT_INPUT = 2
#: ... an unexpected internal error (a bug; the traceback is printed)
EXIT_INTERNAL = 3

ERROR_MEASURE = ("max_abs = max|out - ref| over all entries; max_rel = max_abs / max|ref|; an array passes "
                 "iff max_abs <= atol + rtol * max|ref| (normwise: elementwise relative errors are "
                 "meaningless at zero entries)")


class CrosscheckInputError(ValueError):
    """Damaged or malformed crosscheck input.

    ``file`` is the offending file, ``field`` the manifest field or array name
    (None when the whole file is unreadable) and ``case`` the golden case if
    known; ``str(err)`` is one line ``<file>: [case '<case>'] <field>: <problem>``.
    """

    def __init__(self, file, field, problem, *, case=None, kind="field"):
        self.file = os.fspath(file)
        self.field = field
        self.case = case
        self.problem = " ".join(str(problem).split())      # one line
        where = ([f"case {case!r}"] if case is not None else []) + \
            ([f"{kind} {field!r}"] if field is not None else [])
        super().__init__(self.file + (": " + " ".join(where) if where else "") + ": " + self.problem)


@dataclass
class GoldenCase:
    """One golden case as built by :func:`~bilevel_ref.crosscheck.default_cases` or loaded by
    :func:`~bilevel_ref.crosscheck.load_golden`.

    ``tolerances[output]`` holds ``conditioning``, ``cancellation``, ``coupling``, ``amplification`` and, per
    dtype, ``{"dtype", "rtol", "atol"}``
    (``rtol`` None: that dtype cannot resolve the output, ``reason`` says why).
    """

    name: str
    kind: str
    family: str
    params: dict
    seed: int
    dtype: str
    data: dict
    inputs: dict
    outputs: dict
    tolerances: dict
    description: str = ""
    #: the ``.npz`` file the case was loaded from (empty for cases built in memory)
    path: str = field(default="", compare=False, repr=False)

    def arrays(self):
        """All arrays under their npz keys ``data/…``, ``input/…``, ``output/…``."""
        out = {f"data/{k}": v for k, v in self.data.items()}
        out.update({f"input/{k}": v for k, v in self.inputs.items()})
        out.update({f"output/{k}": v for k, v in self.outputs.items()})
        return out

    def manifest_entry(self):
        return {"name": self.name, "file": f"{self.name}.npz", "kind": self.kind, "family": self.family,
                "params": self.params, "seed": self.seed, "dtype": self.dtype,
                "data": sorted(self.data), "inputs": sorted(self.inputs), "outputs": sorted(self.outputs),
                "shapes": {k: list(v.shape) for k, v in sorted(self.arrays().items())},
                "definitions": {k: OUTPUT_DEFINITIONS[k] for k in sorted(self.outputs)},
                "tolerances": self.tolerances, "description": self.description}


#: The conventions every output definition relies on (written into each manifest).
CONVENTIONS = {
    "bilevel": "min_x phi(x) = f(x, y*(x)), y*(x) = argmin_y g(x, y), g strongly convex in y. Hessian blocks: "
               "A = d2/dxdx (dx x dx), B = d2/dxdy (dx x dy), D = d2/dydy (dy x dy); grad_x, grad_y the "
               "partial gradients.",
    "penalty": "L_lam(x, y) = f(x, y) + lam (g(x, y) - g*(x)), g*(x) = min_z g(x, z); L*_lam(x) = min_y "
               "L_lam(x, y) with minimiser y*_lam(x) (needs D_f + lam D_g > 0). lam is input/lam.",
    "y_and_w": "Estimator inputs: input/y approximates y*_lam(x) (minimiser of h = f + lam g), input/w "
               "approximates y*(x) (minimiser of g); they are deliberately inexact. At y = y*_lam, w = y* the "
               "estimators equal grad L*_lam and hess L*_lam.",
    "cubic": "m(s) = g's + 0.5 s'Hs + (M/6)||s||^3 (M = input/M; GALAHAD/CGT11 sigma = M/2). Global minimiser s: "
             "(H + lam I) s = -g, H + lam I >= 0, with the multiplier lam = (M/2)||s||.",
    "hard_case": "Hard case (g orthogonal to the eigenspace of lambda_min(H) and lam = -lambda_min): s = "
                 "-(H + lam I)^+ g + tau u with u a unit bottom eigenvector and tau >= 0 fixed by ||s|| = 2 lam/M; "
                 "the sign of u (hence of s's component along it) is arbitrary, so hard cases store only the "
                 "sign-free quantities model_value, lam and s_norm.",
    "minimax": "min_x max_y f(x, y), f strongly concave in y: phi(x) = P(x) = max_y f(x, y), y*(x) its maximiser.",
    "minibatch": "A minibatch oracle is the mean of the per-sample functions over the stored index array (0-based, "
                 "distinct): f_B = mean_{j in input/batch_f} f_j, g_B = mean_{i in input/batch_g} g_i; every "
                 "f-derivative uses batch_f and every g-derivative batch_g.",
}

#: The mathematical definition of every output name a case may hold.
OUTPUT_DEFINITIONS = {
    "y_star": "y*(x) = argmin_y g(x, y) (minimax: argmax_y f(x, y)).",
    "phi": "phi(x) = f(x, y*(x)) (minimax: P(x) = max_y f(x, y)).",
    "grad_phi": "grad phi(x) = grad_x f - B_g D_g^{-1} grad_y f at (x, y*) (minimax: grad_x f(x, y*), Danskin).",
    "hess_phi": "hess phi(x) (quadratic: P + R K + K'R' + K'S K with K = -A^{-1} C; minimax: "
                "A_f - B_f D_f^{-1} B_f' at y*).",
    "y_star_penalty": "y*_lam(x) = argmin_y f(x, y) + lam g(x, y).",
    "grad_penalty": "grad L*_lam(x) = grad_x f(x, y*_lam) + lam (grad_x g(x, y*_lam) - grad_x g(x, y*)) (Danskin).",
    "hess_penalty": "hess L*_lam(x) = [A_h - B_h D_h^{-1} B_h'](x, y*_lam) - lam [A_g - B_g D_g^{-1} B_g'](x, y*), "
                    "h = f + lam g (the two Schur complements are O(lam) and cancel to O(1)).",
    "penalty_grad_est": "G(x; y, w) = grad_x f(x, y) + lam (grad_x g(x, y) - grad_x g(x, w)) at the stored y, w.",
    "penalty_hess_est": "H(x; y, w) = [A_h - B_h D_h^{-1} B_h'](x, y) - lam [A_g - B_g D_g^{-1} B_g'](x, w) at the "
                        "stored y, w.",
    "penalty_hvp": "H(x; y, w) v (penalty_hess_est times input/v), meant to be computed matrix-free: "
                   "A_h v - B_h z1 - lam (A_g(w) v - B_g(w) z2), D_h z1 = B_h' v, D_g(w) z2 = B_g(w)' v "
                   "solved exactly.",
    "aid_cg_v": "v_K: exactly K = params.estimators.aid_cg.steps conjugate-gradient iterations on D_g(x, y) v = "
                "grad_y f(x, y) from v_0 = 0 (textbook CG: r_0 = p_0 = b; alpha = r'r/p'Dp; beta = r_new'r_new/r'r).",
    "aid_cg_d": "grad_x f(x, y) - B_g(x, y) v_K (AID-CG hypergradient with aid_cg_v).",
    "aid_neumann_v": "v_Q: v_0 = eta grad_y f(x, y), then Q = params.estimators.aid_neumann.steps times "
                     "v <- v - eta D_g(x, y) v + eta grad_y f(x, y).",
    "aid_neumann_d": "grad_x f(x, y) - B_g(x, y) v_Q (AID-Neumann hypergradient with aid_neumann_v).",
    "itd_y": "y_T: y_0 = input/y0, y_{t+1} = y_t - alpha grad_y g(x, y_t), T = params.estimators.itd.steps.",
    "itd_d": "d/dx f(x, y_T(x)) exactly (reverse mode through the T steps): v = grad_y f(x, y_T), "
             "d = grad_x f(x, y_T); "
             "for t = T-1..0: d <- d - alpha B_g(x, y_t) v, v <- v - alpha D_g(x, y_t) v.",
    "fd_est": "F2SA-p estimator sum_j alpha_j (j grad_x f(x, y_j) + grad_x g(x, y_j)/nu) at the stored iterates "
              "input/ys_fd[i] for offsets j = params.estimators.fd.offsets with weights alpha_j (order p).",
    "fd_exact": "The same F2SA-p estimator at the exact perturbed minimisers y_j = argmin_y g(x, y) + j nu f(x, y).",
    "grad_g_x": "grad_x g_B(x, y) (minibatch mean over input/batch_g).",
    "grad_g_y": "grad_y g_B(x, y) (minibatch mean over input/batch_g).",
    "s": "The global minimiser s of the cubic model (unique when not a hard case).",
    "model_value": "m(s) at the global minimiser.",
    "lam": "The cubic multiplier lam = (M/2)||s||.",
    "s_norm": "||s|| of the global minimiser (= 2 lam / M).",
    "s_krylov": "argmin of m over the Krylov space span{g, Hg, ..., H^(k-1) g}, k = params.krylov_dim (the iterate "
                "of a Lanczos cubic solver after k steps with full reorthogonalisation).",
    "x_traj": "The iterates x_0 ... x_T of the method in params.rule with params.options.",
}
