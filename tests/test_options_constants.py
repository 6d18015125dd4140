"""One option vocabulary and one constants policy (issue: API coherence).

Truth from outside the code: a user problem written here in plain NumPy with
its own closed forms (y*, ∇φ, ∇²φ, spectrum of ∇²_yy g), renamed options
checked against the rename table, and SO-Lazy-BiO checked against an
independent run of SOBA.
"""
import numpy as np
import pytest

import bilevel_ref as br
from bilevel_ref.constants import CONSTANT_KEYS
from bilevel_ref.options import RENAMED, VOCABULARY


class UserQuadratic(br.BilevelProblem):
    """f = ½‖y − b‖² + (c/2)‖x‖², g = ½ yᵀAy − yᵀBx with spec(A) = linspace(1, spread).

    Implements only oracles (no ``constants()``, no closed forms): what a user brings.
    """

    name = "user-quadratic"

    def __init__(self, dx=3, dy=4, seed=0, spread=2.0, constants=None):
        rng = np.random.default_rng(seed)
        self.dx, self.dy = dx, dy
        q, _ = np.linalg.qr(rng.standard_normal((dy, dy)))
        self.eigs = np.linspace(1.0, spread, dy)
        self.A = (q * self.eigs) @ q.T
        self.B = rng.standard_normal((dy, dx)) / np.sqrt(dx)
        self.b = rng.standard_normal(dy)
        self.c = 0.5
        self._constants = constants or {}

    def constants(self):
        return dict(self._constants)

    def f(self, x, y):
        return 0.5 * np.sum((y - self.b) ** 2) + 0.5 * self.c * x @ x

    def g(self, x, y):
        return 0.5 * y @ self.A @ y - y @ self.B @ x

    def grad_f(self, x, y, batch=None):
        return self.c * x, y - self.b

    def grad_g(self, x, y, batch=None):
        return -self.B.T @ y, self.A @ y - self.B @ x

    def hess_f(self, x, y, batch=None):
        return self.c * np.eye(self.dx), np.zeros((self.dx, self.dy)), np.eye(self.dy)

    def hess_g(self, x, y, batch=None):
        return np.zeros((self.dx, self.dx)), -self.B.T, self.A

    # test-side truth (not oracles the methods may use)
    def true_grad_phi(self, x):
        K = np.linalg.solve(self.A, self.B)
        return self.c * x + K.T @ (K @ x - self.b)

    def true_L_phi(self):
        K = np.linalg.solve(self.A, self.B)
        return float(np.linalg.eigvalsh(self.c * np.eye(self.dx) + K.T @ K)[-1])


# ---------------------------------------------------------------------------
# vocabulary
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("method", br.methods())
def test_no_method_uses_an_old_option_name(method):
    cls = br.get_method(method)
    old = (set(RENAMED) | set(cls.all_renamed())) & set(cls.all_options())
    assert not old, f"{method} still has renamed options {sorted(old)}"


@pytest.mark.parametrize("method", br.methods())
def test_vocabulary_options_have_their_meaning_in_the_doc(method):
    for name, opt in br.get_method(method).all_options().items():
        if name in VOCABULARY and name != "schedule":
            head = VOCABULARY[name].split(" (")[0].lower()
            assert head.split()[0] in opt.doc.lower(), (method, name, opt.doc)


@pytest.mark.parametrize("method, old, new", [
    ("aid", "hvp_steps", "linsys_steps"), ("aid", "cg_rtol", "linsys_rtol"),
    ("stocbio", "neumann_steps", "linsys_steps"), ("stocbio", "step_size", "step_y"),
    ("stocbio", "outer_ratio", "step_x"), ("vrbo", "n_inner", "inner_steps"),
    ("nbo", "T", "linsys_steps"), ("nbo", "alpha", "step_x"), ("nbo", "beta", "step_v"),
    ("so_lazy_bio", "N", "period"), ("so_lazy_bio", "beta", "step_y"), ("so_lazy_bio", "gamma", "step_v"),
    ("so_lazy_bio", "mu", "momentum"), ("ma_soba", "theta", "momentum"), ("soba", "step_z", "step_v"),
    ("lfsba", "m", "period"), ("lmcn", "m", "period"), ("ifsba", "hvp_inner_steps", "linsys_steps"),
    ("f2sa", "step_size", "step_y"),
])
def test_old_option_names_raise_an_option_error_naming_the_new_one(method, old, new):
    cls = br.get_method(method)
    problem = (br.problems.make_quadratic_minimax(dx=2, dy=2, seed=0) if cls.problem_type == "minimax"
               else UserQuadratic())
    with pytest.raises(br.OptionError, match=new) as info:
        br.minimize(problem, method, np.zeros(problem.dx), options={old: 1})
    assert isinstance(info.value, ValueError) and old in str(info.value)


def test_unknown_option_is_the_same_error_in_minimize_and_solve_cubic():
    with pytest.raises(br.OptionError):
        br.minimize(UserQuadratic(), "aid", np.zeros(3), options={"no_such": 1})
    with pytest.raises(br.OptionError):
        br.solve_cubic(np.ones(2), np.eye(2), 1.0, no_such=1)


@pytest.mark.parametrize("batch_size", [None, 2])
def test_so_lazy_bio_period_1_without_momentum_is_soba_bit_for_bit(batch_size):
    problem = br.problems.finite_sum_quadratic(n_inner=8, n_outer=8, dim_inner=4, dim_outer=3, seed=1) \
        if batch_size else UserQuadratic()
    options = {"step_x": 0.05, "step_y": 0.3, "step_v": 0.2, "schedule": "sqrt", "maxiter": 40,
               "batch_size": batch_size}
    soba = br.minimize(problem, "soba", np.ones(problem.dx), seed=3, options=options)
    lazy = br.minimize(problem, "so_lazy_bio", np.ones(problem.dx), seed=3,
                       options={**options, "period": 1, "momentum": 0.0, "mode": "hvp+jvp"})
    assert np.array_equal(soba.x, lazy.x) and np.array_equal(soba.y, lazy.y)
    assert np.array_equal(soba.history["grad_est"], lazy.history["grad_est"], equal_nan=True)
    # with the defaults too (the same family defaults, same dict)
    soba = br.minimize(problem, "soba", np.ones(problem.dx), seed=3, options={"maxiter": 20,
                                                                              "batch_size": batch_size})
    lazy = br.minimize(problem, "so_lazy_bio", np.ones(problem.dx), seed=3,
                       options={"maxiter": 20, "batch_size": batch_size, "period": 1, "momentum": 0.0,
                                "mode": "hvp+jvp"})
    assert np.array_equal(soba.x, lazy.x)
    # momentum > 0 changes the iterates (the option is live)
    other = br.minimize(problem, "so_lazy_bio", np.ones(problem.dx), seed=3,
                        options={"maxiter": 20, "batch_size": batch_size, "period": 1, "momentum": 0.5,
                                 "mode": "hvp+jvp"})
    assert not np.array_equal(other.x, lazy.x)


# ---------------------------------------------------------------------------
# constants
# ---------------------------------------------------------------------------
def test_misspelt_constant_key_is_an_error_with_a_suggestion():
    with pytest.raises(ValueError, match=r"'Lg'.*did you mean 'L_g'"):
        br.minimize(UserQuadratic(constants={"Lg": 2.0}), "aid", np.zeros(3))


@pytest.mark.parametrize("bad", [0.0, -1.0, np.nan, "2"])
def test_constant_values_must_be_finite_positive(bad):
    with pytest.raises(ValueError, match="L_g"):
        br.minimize(UserQuadratic(constants={"L_g": bad}), "aid", np.zeros(3))


def test_constants_are_estimated_counted_and_reported():
    p = UserQuadratic()
    res = br.minimize(p, "aid", np.ones(3), options={"maxiter": 1})
    assert res.constant_sources == {"L_g": "estimate", "mu_g": "estimate", "L_phi": "estimate"}
    assert res.constants["L_g"] == pytest.approx(p.eigs[-1], rel=1e-10)
    assert res.constants["mu_g"] == pytest.approx(p.eigs[0], rel=1e-10)
    assert res.constants["L_phi"] == pytest.approx(p.true_L_phi(), rel=0.05)
    # the estimates are counted: more calls than one iteration of AID alone
    plain = br.minimize(p, "aid", np.ones(3), options={"maxiter": 1, "L_g": 2.0, "mu_g": 1.0,
                                                        "step_x": 1.0})
    assert res.oracle_calls["hvp_yy_g"] > plain.oracle_calls["hvp_yy_g"]
    # mu_g too: AID's default inner_steps = ⌈κ⌉ and linsys_steps follow κ = L_g/mu_g
    assert plain.constant_sources == {"L_g": "option", "mu_g": "option"}


def test_problem_constants_win_over_estimates_and_options_over_both():
    p = UserQuadratic(constants={"L_g": 2.5})
    # explicit inner_steps: the default T is derived from tol with mu_g and a measured C_itd
    res = br.minimize(p, "itd", np.ones(3), options={"maxiter": 1, "step_x": 0.5, "inner_steps": 10})
    assert res.constants == {"L_g": 2.5} and res.constant_sources == {"L_g": "problem"}
    res = br.minimize(p, "itd", np.ones(3), options={"maxiter": 1, "step_x": 0.5, "L_g": 3.0,
                                                     "inner_steps": 10})
    assert res.constants == {"L_g": 3.0} and res.constant_sources == {"L_g": "option"}


def test_large_lower_level_uses_lanczos_estimates():
    p = UserQuadratic(dy=60, spread=5.0)
    res = br.minimize(p, "soba", np.ones(3), options={"maxiter": 1})
    assert res.constants["L_g"] == pytest.approx(5.0, rel=1e-5)
    assert res.oracle_calls["hvp_yy_g"] < 60 + 200  # no dense build, a bounded Lanczos


def test_missing_oracle_for_an_estimate_is_a_clear_error():
    class NoHVP(UserQuadratic):
        def provides(self, oracle):
            return oracle not in ("hvp_yy_g", "hess_g") and super().provides(oracle)

    with pytest.raises(ValueError, match=r"options\['L_g'\] is required.*hvp_yy_g"):
        br.minimize(NoHVP(), "f2ba", np.zeros(3))


# Exact ‖∇φ‖ each deterministic method reaches on UserQuadratic (κ = 2) with
# default options from x0 = 1 (‖∇φ(x0)‖ = 1.55), as documented in docs/byo.rst.
# The penalty and finite-difference methods stop at their bias; the
# Neumann-based methods (stocBiO, MRBO, VRBO) at the truncation bias of Q = 10
# terms with benchopt's step 0.1.
DEFAULT_ACCURACY = {
    "aid": 1e-6, "itd": 1e-3, "amigo": 1e-8, "soba": 2e-3, "saba": 2e-3, "ma_soba": 2e-3,
    "so_lazy_bio": 2e-3, "nbo": 2e-3, "fsba": 5e-3, "lfsba": 5e-3, "ifsba": 5e-3, "f2ba": 5e-2,
    "accf2ba": 5e-3, "f2sa_p": 0.1, "f2sa": 0.5, "stocbio": 0.1, "mrbo": 0.1, "vrbo": 0.1,
}


@pytest.mark.parametrize("method", br.methods("bilevel"))
def test_user_problem_without_constants_runs_every_method_with_defaults(method):
    p = UserQuadratic()
    res = br.minimize(p, method, np.ones(3))
    assert method in DEFAULT_ACCURACY, f"document the default accuracy of {method}"
    assert np.linalg.norm(p.true_grad_phi(res.x)) <= DEFAULT_ACCURACY[method]
    assert set(res.constant_sources.values()) <= {"estimate"}
