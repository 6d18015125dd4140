r"""The stated complexity bounds, as data: :data:`THEORY` and :func:`theory_exponent`.

One row per method and setting, with the exponent :math:`a` of
:math:`\varepsilon^{-a}` for iterations, first-order calls and second-order
calls *in the row's stationarity measure*, κ exponents where the paper states
them, and the source.  Measures (``measure``):

* ``"norm"``: :math:`\|\nabla\varphi(x)\| \le \varepsilon`;
* ``"sq"``: :math:`\|\nabla\varphi(x)\|^2 \le \varepsilon` (in expectation for
  stochastic methods);
* ``"sosp"``: ``"norm"`` and :math:`\lambda_{\min}(\nabla^2\varphi(x)) \ge -\sqrt{\rho\varepsilon}`;
* ``"minimax"``: ``"sosp"`` on :math:`P(x) = \max_y f(x, y)`.

A bound :math:`O(\varepsilon^{-a})` in ``"sq"`` is :math:`O(\varepsilon^{-2a})` in
``"norm"``; :func:`theory_exponent` converts.  Rows marked "inferred" are this
library's reconstruction where the paper does not state the constant or the
measure.

κ exponents (κ = L_g/μ_g, the lower-level condition number) come at two levels,
each with a status field saying whether the exponent is an upper bound, a
tight (attained, matching) exponent, or a lower bound:

* **total** (``kappa_first_order`` / ``kappa_second_order`` /
  ``kappa_iterations``, status ``kappa_bound``): the exponent of κ in the
  paper's complexity bound.  Every method row is ``"upper"``: no deterministic
  nonconvex–strongly-convex method is known to attain its κ exponent.  The
  best known class lower bounds are the ``lower_bound_kappa_*`` rows
  (Ω(κ^{3/2}ε^{-2}), Ji 2026; Ω(κ^{5/2}ε^{-2}), Chen–Zhang 2026), far below
  the κ⁴ upper bounds: the κ dependence of bilevel optimisation is open.
* **inner** (``kappa_inner``: ``{quantity: exponent}``, status
  ``kappa_inner_bound``): the exponent of κ in the calls one inner solve
  needs at fixed accuracy δ: Θ(κ log 1/δ) for gradient descent and Neumann
  series, Θ(√κ log 1/δ) for conjugate gradients and Nesterov AGD.  These are
  ``"tight"``: Nesterov's chain quadratic
  (:class:`~bilevel_ref.problems.hard_kappa.ChainKappaBilevel`,
  ``hard-kappa-chain``) attains them, and CG/AGD's √κ matches the lower
  bound of every span-respecting method on it.

:func:`theory_kappa_exponent` returns ``(exponent, status)`` for either level.
"""
from __future__ import annotations

from ..oracles import COUNT_KINDS
from .._validation import check_choice, check_int

__all__ = ["THEORY", "MEASURES", "QUANTITIES", "KAPPA_REGIMES", "KAPPA_BOUNDS", "theory_rows",
           "theory_exponent", "theory_kappa_exponent"]

#: Stationarity measures (see the module docstring).
MEASURES = ("norm", "sq", "sosp", "minimax")
#: What can be fitted: iterations, the derived totals and every oracle kind.
QUANTITIES = ("iterations", "first_order", "second_order", "cost") + COUNT_KINDS
#: Levels of κ exponents: the paper's total bound, or one inner solve at fixed accuracy.
KAPPA_REGIMES = ("total", "inner")
#: Status of a κ exponent: an upper bound, tight (attained by a known instance), a lower bound.
KAPPA_BOUNDS = ("upper", "tight", "lower")

# inner-solve exponents (calls per solve to accuracy δ, ∝ κ^a log 1/δ), all tight on the chain
_GD_INNER = 1.0    # GD / Neumann: contraction 1 − μ/L per call
_CG_INNER = 0.5    # CG / AGD: Chebyshev rate, matches the Krylov lower bound (Nesterov 2004, Thm 2.1.13)

#: One row per method and setting.  ``first_order`` / ``second_order`` /
#: ``iterations`` are exponents a of ε^{-a} *in the row's measure*; None = not
#: applicable / not stated.  ``kappa_*`` are κ exponents where stated;
#: ``sharp`` marks bounds attained by a known worst case; ``log_eps`` /
#: ``log_kappa`` mark Õ bounds (log factors dropped).  κ fields (module
#: docstring): ``kappa_bound`` is the status of the total κ exponents,
#: ``kappa_inner`` / ``kappa_inner_bound`` the inner-solve exponents and their
#: status, ``kappa_source`` where the κ exponent comes from when it differs
#: from ``source``.
THEORY = (
    dict(method="gd", setting="L-smooth, single level", measure="norm", iterations=2.0,
         first_order=2.0, second_order=None, sharp=True,
         source="Nesterov 2004; Cartis, Gould, Toint 2010 (sharp)"),
    dict(method="cubic_newton", setting="Hessian-Lipschitz, single level", measure="norm",
         iterations=1.5, first_order=1.5, second_order=1.5, sharp=True,
         source="Nesterov, Polyak 2006; Cartis, Gould, Toint 2010 (sharp)"),
    dict(method="aid", setting="deterministic", measure="sq", iterations=1.0, first_order=1.0,
         second_order=1.0, kappa_first_order=4.0, kappa_second_order=3.5, kappa_iterations=3.0,
         kappa_bound="upper", log_kappa=True,
         kappa_inner={"first_order": _GD_INNER, "second_order": _CG_INNER}, kappa_inner_bound="tight",
         kappa_inner_note="GD on y: κ; CG for v: √κ (Neumann: κ)",
         source="Ji, Yang, Liang ICML 2021 (AID-BiO)"),
    dict(method="itd", setting="deterministic", measure="sq", iterations=1.0, first_order=1.0,
         second_order=1.0, kappa_first_order=4.0, kappa_second_order=4.0, kappa_iterations=3.0,
         kappa_bound="upper", log_kappa=True,
         kappa_inner={"first_order": _GD_INNER, "second_order": _GD_INNER}, kappa_inner_bound="tight",
         kappa_inner_note="GD on y and the reverse pass through it: κ",
         source="Ji, Yang, Liang ICML 2021 (ITD-BiO)"),
    dict(method="amigo_gd", setting="deterministic", measure="sq", iterations=1.0, first_order=1.0,
         second_order=1.0, kappa_first_order=4.0, kappa_second_order=4.0, kappa_bound="upper", log_kappa=True,
         kappa_inner={"first_order": _GD_INNER, "second_order": _GD_INNER}, kappa_inner_bound="tight",
         kappa_inner_note="GD on y and on the linear system: κ",
         source="Arbel, Mairal ICLR 2022"),
    dict(method="nbo_gd", setting="deterministic", measure="sq", iterations=1.0, first_order=1.0,
         second_order=1.0, kappa_first_order=3.0, kappa_second_order=4.0, kappa_bound="upper",
         source="Dong, Yang, Yao, Zhang ICML 2025 (NBO-GD; measure inferred)"),
    dict(method="nbo_cg", setting="deterministic", measure="sq", iterations=1.0, first_order=1.0,
         second_order=1.0, kappa_first_order=3.0, kappa_second_order=3.5, kappa_bound="upper",
         source="Dong, Yang, Yao, Zhang ICML 2025 (NBO-CG; measure inferred)"),
    dict(method="f2ba", setting="deterministic, first-order only", measure="norm", iterations=2.0,
         first_order=2.0, second_order=None, log_eps=True, kappa_first_order=4.0, kappa_bound="upper",
         log_kappa=True, kappa_inner={"first_order": _GD_INNER}, kappa_inner_bound="tight",
         kappa_inner_note="GD on y and on y_λ: κ (AGD inner loops: √κ)",
         source="Chen, Ma, Zhang arXiv 2306.14853",
         kappa_source="Õ(κ⁴ε⁻²) as cited by Chen, Zhang arXiv 2511.22331 (Chen et al., JMLR 2025); "
                      "AGD inner loops (F²BA⁺): Õ(κ^{7/2}ε⁻²)"),
    dict(method="accf2ba", setting="+ second-order smooth", measure="norm", iterations=1.75,
         first_order=1.75, second_order=None, log_eps=True, source="Chen, Ma, Zhang arXiv 2306.14853"),
    dict(method="perturbed_f2ba", setting="SOSP", measure="sosp", iterations=2.0, first_order=2.0,
         second_order=None, log_eps=True, source="Chen, Ma, Zhang arXiv 2306.14853"),
    dict(method="fsba", setting="SOSP", measure="sosp", iterations=1.5, first_order=1.5,
         second_order=1.5, kappa_first_order=3.0, kappa_bound="upper", log_eps=True,
         source="Yang, Liu, Chen, Lui 2026 (FSBA; κ exponent inferred)"),
    dict(method="lfsba", setting="SOSP", measure="sosp", iterations=1.5, first_order=1.5,
         second_order=1.5, hessian_ratio="1/m", log_eps=True,
         source="Yang, Liu, Chen, Lui 2026 (LFSBA); second-order calls ≈ iterations/m"),
    dict(method="ifsba", setting="SOSP, w.h.p.", measure="sosp", iterations=1.5, first_order=1.5,
         second_order=2.0, log_eps=True, source="Yang, Liu, Chen, Lui 2026 (IFSBA, HVP count)"),
    dict(method="mcn", setting="minimax SOSP", measure="minimax", iterations=1.5, first_order=1.5,
         second_order=1.5, kappa_first_order=2.0, kappa_second_order=1.5, kappa_bound="upper", log_eps=True,
         source="Luo, Li, Chen NeurIPS 2022 (MCN)"),
    dict(method="lmcn", setting="minimax SOSP", measure="minimax", iterations=1.5, first_order=1.5,
         second_order=1.5, hessian_ratio="1/m", log_eps=True,
         source="Yang, Liu, Chen, Lui 2026 (LMCN; iteration bound inferred)"),
    dict(method="stocbio", setting="stochastic", measure="norm", iterations=4.0, first_order=4.0,
         second_order=4.0, kappa_first_order=9.0, kappa_bound="upper", log_eps=True,
         source="Ji, Yang, Liang ICML 2021, as cited by Chen, Li, Chayti, Zhang ICLR 2026"),
    dict(method="soba", setting="stochastic", measure="sq", iterations=2.0, first_order=2.0,
         second_order=2.0, source="Dagréou, Ablin, Vaiter, Moreau NeurIPS 2022"),
    dict(method="ma_soba", setting="stochastic", measure="sq", iterations=2.0, first_order=2.0,
         second_order=2.0, source="Chen, Xiao, Balasubramanian JMLR 2024"),
    dict(method="saba", setting="finite sum", measure="sq", iterations=1.0, first_order=1.0,
         second_order=1.0, source="Dagréou et al. 2022 ((n+m)^{2/3})"),
    dict(method="srba", setting="finite sum", measure="sq", iterations=1.0, first_order=1.0,
         second_order=1.0, source="Dagréou et al. 2023 ((n+m)^{1/2})"),
    dict(method="mrbo", setting="stochastic, mean-squared smooth", measure="norm", iterations=3.0,
         first_order=3.0, second_order=3.0, log_eps=True,
         source="Yang, Ji, Liang NeurIPS 2021 (measure inferred)"),
    dict(method="vrbo", setting="stochastic, mean-squared smooth", measure="norm", iterations=3.0,
         first_order=3.0, second_order=3.0, log_eps=True,
         source="Yang, Ji, Liang NeurIPS 2021 (measure inferred)"),
    dict(method="amigo", setting="stochastic", measure="sq", iterations=2.0, first_order=2.0,
         second_order=2.0, kappa_first_order=9.0, kappa_bound="upper", log_kappa=True,
         source="Arbel, Mairal ICLR 2022"),
    dict(method="nsbo_sgd", setting="stochastic", measure="sq", iterations=2.0, first_order=2.0,
         second_order=2.0, kappa_first_order=9.0, kappa_bound="upper",
         source="Dong, Yang, Yao, Zhang ICML 2025 (NSBO-SGD)"),
    dict(method="so_lazy_bio", setting="stochastic, momentum", measure="sq", iterations=2.0,
         first_order=2.0, second_order=2.0, hessian_ratio="1/N",
         source="SO-Lazy-BiO, ICLR 2026 submission (O(N ε^-2) gradients)"),
    dict(method="f2sa", setting="stochastic, first-order only", measure="norm", iterations=7.0,
         first_order=7.0, second_order=None, log_eps=True,
         source="Kwon et al. ICML 2023 (ε^-7); ε^-6 in later analyses"),
    dict(method="f2sa_p", setting="stochastic, p-th order smooth", measure="norm", iterations="4+2/p",
         first_order="4+2/p", second_order=None, log_eps=True,
         source="Chen, Li, Chayti, Zhang ICLR 2026 (F2SA-p)"),
    dict(method="lower_bound_stochastic", setting="stochastic bilevel", measure="norm",
         first_order=4.0, second_order=None, bound="lower",
         source="Chen, Li, Chayti, Zhang ICLR 2026, Thm 4.1"),
    dict(method="lower_bound_kappa", setting="deterministic NC-SC bilevel, first-order oracles",
         measure="norm", first_order=2.0, second_order=None, bound="lower", kappa_first_order=2.5,
         kappa_bound="lower",
         source="Chen, Zhang arXiv 2511.22331 v2: Ω(κ_y^{5/2}ε⁻²) (v1: Ω(κ²ε⁻²)); "
                "Ji arXiv 2511.19656 (ICML 2026): Ω(κ^{3/2}ε⁻²); construction not reproduced here"),
    dict(method="lower_bound_kappa_stochastic", setting="stochastic NC-SC bilevel, first-order oracles",
         measure="norm", first_order=4.0, second_order=None, bound="lower", kappa_first_order=4.0,
         kappa_bound="lower",
         source="Chen, Zhang arXiv 2511.22331: Ω(κ⁴ε⁻⁴); Ji arXiv 2511.19656: Ω(κ^{5/2}ε⁻⁴); "
                "construction not reproduced here"),
    dict(method="lower_bound_first_order", setting="deterministic first-order, L-smooth", measure="norm",
         first_order=2.0, second_order=None, bound="lower",
         source="Carmon, Duchi, Hinder, Sidford, Math. Program. 2021 (Part II)"),
    dict(method="lower_bound_p_order", setting="p-th order methods", measure="norm",
         first_order="(p+1)/p", second_order=None, bound="lower",
         source="Carmon, Duchi, Hinder, Sidford, Math. Program. 2020 (Part I)"),
)


def theory_rows():
    """The theory table (:data:`THEORY`) as a list of dicts (copies)."""
    return [dict(row) for row in THEORY]


def _measure_factor(stated, target):
    """Exponent multiplier from the stated measure to the target one (sq → norm: ×2)."""
    stated_sq, target_sq = stated == "sq", target == "sq"
    if stated_sq == target_sq:
        return 1.0
    return 2.0 if stated_sq else 0.5


def theory_exponent(method, quantity="iterations", measure=None, p=None):
    """Theory exponent b of ε^{-b} for ``method``'s ``quantity`` in ``measure``.

    Parameters
    ----------
    method : str
        A row of :data:`THEORY` (registered method names, ``"gd"``, ``"cubic_newton"``).
    quantity : str
        ``"iterations"``, ``"first_order"``, ``"second_order"``, ``"cost"`` or
        an oracle kind (grad_* → first-order exponent, hess_*/hvp_*/cross_* →
        second-order exponent, ``cost`` → the larger of the two).
    measure : str, optional
        Target measure (default: the row's own); ``"sq"`` ⇄ ``"norm"`` converts.
    p : int, optional
        Smoothness order for ``f2sa_p`` (exponent 4 + 2/p).

    Returns
    -------
    float or None
        None when the table has no entry.
    """
    key = str(method).strip().lower().replace("-", "_")
    rows = [r for r in THEORY if r["method"] == key]
    if not rows:
        raise ValueError(f"no theory row for method {method!r}; known: {[r['method'] for r in THEORY]}")
    row = rows[0]
    if measure is not None:
        check_choice(measure, "measure", MEASURES)
    if quantity.startswith("grad_") or quantity in ("f", "g", "samples"):
        quantity = "first_order"
    elif quantity.startswith(("hess_", "hvp_", "cross_")):
        quantity = "second_order"
    if quantity == "cost":
        values = [theory_exponent(method, q, measure, p) for q in ("first_order", "second_order")]
        values = [v for v in values if v is not None]
        return max(values) if values else None
    if quantity not in ("iterations", "first_order", "second_order"):
        raise ValueError(f"quantity must be one of {list(QUANTITIES)}, got {quantity!r}")
    value = row.get(quantity)
    if value is None:
        return None
    if isinstance(value, str):
        if p is None:
            raise ValueError(f"method {method!r}: exponent {value!r} needs p")
        p = check_int(p, "p", minimum=1)
        value = {"4+2/p": 4 + 2 / p, "(p+1)/p": (p + 1) / p}[value]
    return float(value) * _measure_factor(row["measure"], measure or row["measure"])



def theory_kappa_exponent(method, quantity="first_order", regime="total"):
    """Theory exponent of κ for ``method``'s ``quantity``, and its status.

    Parameters
    ----------
    method : str
        A row of :data:`THEORY`.
    quantity : str
        ``"iterations"``, ``"first_order"``, ``"second_order"``, ``"cost"``
        (the larger of the two) or an oracle kind (mapped as in
        :func:`theory_exponent`).
    regime : {"total", "inner"}
        ``"total"``: the κ exponent of the paper's bound (status
        ``kappa_bound``); ``"inner"``: calls of one inner solve at fixed
        accuracy (status ``kappa_inner_bound``).  See the module docstring.

    Returns
    -------
    (float or None, str or None)
        The exponent a of κ^a and its status (``"upper"``, ``"tight"`` or
        ``"lower"``); ``(None, None)`` when the table has no entry.  A κ
        exponent does not depend on the stationarity measure.
    """
    check_choice(regime, "regime", KAPPA_REGIMES)
    key = str(method).strip().lower().replace("-", "_")
    rows = [r for r in THEORY if r["method"] == key]
    if not rows:
        raise ValueError(f"no theory row for method {method!r}; known: {[r['method'] for r in THEORY]}")
    row = rows[0]
    if quantity.startswith("grad_") or quantity in ("f", "g", "samples"):
        quantity = "first_order"
    elif quantity.startswith(("hess_", "hvp_", "cross_")):
        quantity = "second_order"
    if quantity == "cost":
        pairs = [theory_kappa_exponent(method, q, regime) for q in ("first_order", "second_order")]
        pairs = [p for p in pairs if p[0] is not None]
        return max(pairs) if pairs else (None, None)
    if quantity not in ("iterations", "first_order", "second_order"):
        raise ValueError(f"quantity must be one of {list(QUANTITIES)}, got {quantity!r}")
    if regime == "total":
        value, status = row.get(f"kappa_{quantity}"), row.get("kappa_bound")
    else:
        value, status = (row.get("kappa_inner") or {}).get(quantity), row.get("kappa_inner_bound")
    if value is None:
        return None, None
    return float(value), status
