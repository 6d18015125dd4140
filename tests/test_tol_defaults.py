"""``tol``: the target accuracy from which the defaults follow (issue 16, parts 1–2).

Truth from outside the code: the exact ‖∇φ‖ of the quadratic's closed form, and the
derivation formulas of each method's docstring recomputed here from the problem's
closed forms (y*_λ, y*_ν, the unrolled GD map) and reported constants.
"""
import math
import re

import numpy as np
import pytest

import bilevel_ref as br
from bilevel_ref.problems import quadratic_bilevel

TOL = 1e-6
DETERMINISTIC = ("aid", "itd", "f2ba", "accf2ba", "f2sa_p", "fsba", "lfsba", "nbo")


@pytest.fixture(scope="module")
def readme():
    """The README's example problem."""
    return quadratic_bilevel(dx=10, dy=10, kappa=10.0, seed=0)


@pytest.fixture(scope="module")
def runs(readme):
    """Default runs of the README example, once per method (shared by the tests below)."""
    cache = {}

    def get(method):
        if method not in cache:
            cache[method] = br.minimize(readme, method, np.zeros(readme.dx))
        return cache[method]

    return get


def _ceil(v):
    # the library's ⌈·⌉ ignores a relative excess of 1e-9 (κ = 10.000000000000007 is 10)
    return int(math.ceil(v * (1 - 1e-9)))


def _constants(p):
    c = p.constants()
    return c["L_g"], c["mu_g"], c["L_f"], c["L_phi"], c["L_g"] / c["mu_g"]


# ---------------------------------------------------------------------------
# success with defaults on the README problem, certified by the closed form
# ---------------------------------------------------------------------------
def _check_success(p, res, method):
    exact = float(np.linalg.norm(p.grad_phi(res.x)))
    assert res.success and res.status == 0, res.message
    assert exact <= TOL, (method, exact)
    assert res.nit < br.get_method(method).default_maxiter
    assert res.options["tol"] == TOL


@pytest.mark.parametrize("method", DETERMINISTIC)
def test_defaults_reach_tol_on_readme_problem(readme, runs, method):
    _check_success(readme, runs(method), method)


@pytest.mark.slow
def test_ifsba_defaults_reach_tol_on_readme_problem(readme, runs):
    _check_success(readme, runs("ifsba"), "ifsba")


def test_stochastic_method_reports_completed_not_success(readme):
    res = br.minimize(readme, "soba", np.zeros(readme.dx), options={"maxiter": 5})
    assert not res.success and res.status == 6 and res.options["gtol"] == 0.0


# ---------------------------------------------------------------------------
# derived parameters follow the documented formulas
# ---------------------------------------------------------------------------
def _penalty_C(p, x=None):
    """C_λ = λ0‖∇L*_λ0(x) − ∇φ(x)‖ at λ0 = 20·L_f/μ_g (default x = x0 = 0), from the closed forms."""
    L_g, mu_g, L_f, _, _ = _constants(p)
    lam0 = 20 * max(L_f / mu_g, 1.0)
    x = np.zeros(p.dx) if x is None else x
    y_lam, y = p.y_star_penalty(x, lam0), p.y_star(x)
    grad_lam = p.grad_f(x, y_lam)[0] + lam0 * (p.grad_g(x, y_lam)[0] - p.grad_g(x, y)[0])
    return lam0 * np.linalg.norm(grad_lam - p.grad_phi(x))


@pytest.mark.parametrize("method", ["f2ba", "accf2ba", "fsba", "lfsba"])
def test_penalty_lambda_and_inner_steps_follow_formula(readme, runs, method):
    res = runs(method)
    L_g, mu_g, L_f, L_phi, kappa = _constants(readme)
    C = _penalty_C(readme)
    lam = max(2 * L_f / mu_g, C / (TOL / 4))          # C_λ/λ = tol/4
    assert res.constants["C_lam"] == pytest.approx(C, rel=1e-6)
    assert res.derived["lam"] == pytest.approx(lam, rel=1e-6)
    agd = method != "f2ba"
    factor = math.sqrt(2 * kappa) if agd else kappa
    assert res.derived["inner_steps"] == _ceil(factor * math.log(lam * kappa))
    if method in ("f2ba", "accf2ba"):
        assert res.derived["step_x"] == pytest.approx(1 / L_phi, rel=1e-12)
    else:
        assert res.options["eps"] == TOL


def test_itd_steps_follow_formula(readme, runs):
    res = runs("itd")
    L_g, mu_g, _, L_phi, kappa = _constants(readme)
    alpha, q = 1 / L_g, 1 - mu_g / L_g
    x, y0 = np.zeros(readme.dx), np.zeros(readme.dy)

    def itd_closed_form(T):
        # y_T = y* + Q^T (y0 − y*), dy_T/dx = (I − Q^T) K, Q = I − αA
        QT = np.linalg.matrix_power(np.eye(readme.dy) - alpha * readme.A, T)
        y_T = readme.y_star(x) + QT @ (y0 - readme.y_star(x))
        gx, gy = readme.grad_f(x, y_T)
        return gx + ((np.eye(readme.dy) - QT) @ readme.K).T @ gy

    T0 = _ceil(kappa)
    C = np.linalg.norm(itd_closed_form(T0) - readme.grad_phi(x)) / ((1 + T0) * q ** T0)
    assert res.constants["C_itd"] == pytest.approx(C, rel=1e-6)
    T = next(t for t in range(1, 10_000) if C * (1 + t) * q ** t <= TOL / 4)
    assert res.derived["inner_steps"] == T
    assert res.derived["step_x"] == pytest.approx(1 / L_phi, rel=1e-12)


def test_f2sa_p_nu_and_inner_steps_follow_formula(readme, runs):
    res = runs("f2sa_p")
    L_g, mu_g, L_f, L_phi, kappa = _constants(readme)
    x = np.zeros(readme.dx)
    nu_max = mu_g / (10 * 1 * L_f)                      # p = 2: offsets ±1

    def stencil_estimate(nu):                           # central difference, weights ±1/2
        out = 0.0
        for j, a in ((1, 0.5), (-1, -0.5)):
            y = readme.y_star_perturbed(x, j * nu)
            out = out + a * (j * readme.grad_f(x, y)[0] + readme.grad_g(x, y)[0] / nu)
        return out

    C = np.linalg.norm(stencil_estimate(nu_max) - readme.grad_phi(x)) / nu_max ** 2
    nu = min(nu_max, math.sqrt(TOL / (4 * C)))
    assert res.constants["C_nu"] == pytest.approx(C, rel=1e-5)
    assert res.derived["nu"] == pytest.approx(nu, rel=1e-5)
    kappa_nu = (L_g + nu * L_f) / (mu_g - nu * L_f)
    assert res.derived["inner_steps"] == _ceil(kappa_nu * math.log(kappa / nu))
    assert res.derived["normalize"] is False and res.options["p"] == 2
    assert res.derived["step_x"] == pytest.approx(1 / L_phi, rel=1e-12)


def test_aid_and_nbo_steps_follow_formula(readme, runs):
    _, _, _, L_phi, kappa = _constants(readme)
    aid, nbo = runs("aid"), runs("nbo")
    assert aid.derived["inner_steps"] == _ceil(kappa)
    assert aid.derived["linsys_steps"] == _ceil(math.sqrt(kappa) * math.log(4 * math.sqrt(kappa)))
    assert nbo.derived["linsys_steps"] == _ceil(kappa)
    for res in (aid, nbo):
        assert res.derived["step_x"] == pytest.approx(1 / L_phi, rel=1e-12)
        assert res.options["gtol"] == TOL


def test_tol_moves_the_derived_lambda(readme, runs):
    loose = br.minimize(readme, "f2ba", np.zeros(readme.dx), options={"tol": 1e-4, "maxiter": 1})
    assert loose.options["gtol"] == 1e-4
    assert loose.derived["lam"] == pytest.approx(runs("f2ba").derived["lam"] / 100, rel=1e-9)


def test_unreachable_tol_is_said_in_the_message(readme):
    res = br.minimize(readme, "f2ba", np.zeros(readme.dx), options={"tol": 1e-13, "maxiter": 1})
    assert "out of reach" in res.message and res.derived["lam"] == 1e9
    assert not res.success


# ---------------------------------------------------------------------------
# explicit options win; bias-limited explicit settings say so
# ---------------------------------------------------------------------------
def test_explicit_options_win(readme):
    opts = {"lam": 1e3, "inner_steps": 7, "step_x": 0.5, "gtol": 1e-3, "maxiter": 2}
    res = br.minimize(readme, "f2ba", np.zeros(readme.dx), options=opts)
    for key, value in opts.items():
        assert res.options[key] == value
    assert res.derived == {}
    res = br.minimize(readme, "fsba", np.zeros(readme.dx), options={"eps": 1e-4, "tol": 1e-5, "maxiter": 1})
    assert res.options["eps"] == 1e-4
    res = br.minimize(readme, "itd", np.zeros(readme.dx), options={"inner_steps": 12, "maxiter": 1})
    assert res.options["inner_steps"] == 12
    res = br.minimize(readme, "f2sa_p", np.zeros(readme.dx),
                      options={"nu": 0.05, "normalize": True, "maxiter": 1})
    assert res.options["nu"] == 0.05 and res.options["normalize"] is True
    assert res.derived["step_x"] == 0.1   # the normalised step's default length


def _bound_in(message, label):
    match = re.search(label + r"[^=]*= ([0-9.e+-]+)/([0-9.e+-]+) = ([0-9.e+-]+) > tol/2", message)
    assert match, message
    return float(match.group(3))


def test_explicit_small_lambda_reports_its_bias_bound(readme):
    res = br.minimize(readme, "f2ba", np.zeros(readme.dx), options={"lam": 10.0, "maxiter": 300})
    assert not res.success
    bound = _bound_in(res.message, "penalty bias bound")   # C_λ measured at the final x
    assert bound == pytest.approx(_penalty_C(readme, res.x) / 10.0, rel=1e-2)
    # the bound accounts for the error at the end point (O(1/λ²) aside: λ = 10 is small here)
    assert 0.5 * bound <= np.linalg.norm(readme.grad_phi(res.x)) <= 2 * bound
    res = br.minimize(readme, "fsba", np.zeros(readme.dx), options={"lam": 100.0})
    assert res.status == 7 and "penalty bias bound" in res.message


def test_explicit_small_itd_steps_report_their_bias_bound(readme):
    res = br.minimize(readme, "itd", np.zeros(readme.dx), options={"inner_steps": 10, "maxiter": 300})
    assert not res.success
    assert "explicit inner_steps = 10" in res.message and "ITD bias bound" in res.message


# ---------------------------------------------------------------------------
# validation
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("bad,exc", [(0.0, ValueError), (-1e-3, ValueError), (np.nan, ValueError),
                                     (np.inf, ValueError), ("1e-6", TypeError), (True, TypeError)])
def test_tol_validation(readme, bad, exc):
    with pytest.raises(exc, match=r"options\['tol'\]"):
        br.minimize(readme, "aid", np.zeros(readme.dx), options={"tol": bad})


def test_tol_is_a_common_option():
    for method in br.methods():
        assert "tol" in br.get_method(method).all_options()
