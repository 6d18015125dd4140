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
"""
from __future__ import annotations

from ..oracles import COUNT_KINDS
from .._validation import check_choice, check_int

__all__ = ["THEORY", "MEASURES", "QUANTITIES", "theory_rows", "theory_exponent"]

#: Stationarity measures (see the module docstring).
MEASURES = ("norm", "sq", "sosp", "minimax")
#: What can be fitted: iterations, the derived totals and every oracle kind.
QUANTITIES = ("iterations", "first_order", "second_order", "cost") + COUNT_KINDS

#: One row per method and setting.  ``first_order`` / ``second_order`` /
#: ``iterations`` are exponents a of ε^{-a} *in the row's measure*; None = not
#: applicable / not stated.  ``kappa_*`` are κ exponents where stated;
#: ``sharp`` marks bounds attained by a known worst case; ``log_eps`` /
#: ``log_kappa`` mark Õ bounds (log factors dropped).
THEORY = (
    dict(method="gd", setting="L-smooth, single level", measure="norm", iterations=2.0,
         first_order=2.0, second_order=None, sharp=True,
         source="Nesterov 2004; Cartis, Gould, Toint 2010 (sharp)"),
    dict(method="cubic_newton", setting="Hessian-Lipschitz, single level", measure="norm",
         iterations=1.5, first_order=1.5, second_order=1.5, sharp=True,
         source="Nesterov, Polyak 2006; Cartis, Gould, Toint 2010 (sharp)"),
    dict(method="aid", setting="deterministic", measure="sq", iterations=1.0, first_order=1.0,
         second_order=1.0, kappa_first_order=4.0, kappa_second_order=3.5, log_kappa=True,
         source="Ji, Yang, Liang ICML 2021 (AID-BiO)"),
    dict(method="itd", setting="deterministic", measure="sq", iterations=1.0, first_order=1.0,
         second_order=1.0, kappa_first_order=4.0, kappa_second_order=4.0, log_kappa=True,
         source="Ji, Yang, Liang ICML 2021 (ITD-BiO)"),
    dict(method="amigo_gd", setting="deterministic", measure="sq", iterations=1.0, first_order=1.0,
         second_order=1.0, kappa_first_order=4.0, kappa_second_order=4.0, log_kappa=True,
         source="Arbel, Mairal ICLR 2022"),
    dict(method="nbo_gd", setting="deterministic", measure="sq", iterations=1.0, first_order=1.0,
         second_order=1.0, kappa_first_order=3.0, kappa_second_order=4.0,
         source="Dong, Yang, Yao, Zhang ICML 2025 (NBO-GD; measure inferred)"),
    dict(method="nbo_cg", setting="deterministic", measure="sq", iterations=1.0, first_order=1.0,
         second_order=1.0, kappa_first_order=3.0, kappa_second_order=3.5,
         source="Dong, Yang, Yao, Zhang ICML 2025 (NBO-CG; measure inferred)"),
    dict(method="f2ba", setting="deterministic, first-order only", measure="norm", iterations=2.0,
         first_order=2.0, second_order=None, log_eps=True, source="Chen, Ma, Zhang arXiv 2306.14853"),
    dict(method="accf2ba", setting="+ second-order smooth", measure="norm", iterations=1.75,
         first_order=1.75, second_order=None, log_eps=True, source="Chen, Ma, Zhang arXiv 2306.14853"),
    dict(method="perturbed_f2ba", setting="SOSP", measure="sosp", iterations=2.0, first_order=2.0,
         second_order=None, log_eps=True, source="Chen, Ma, Zhang arXiv 2306.14853"),
    dict(method="fsba", setting="SOSP", measure="sosp", iterations=1.5, first_order=1.5,
         second_order=1.5, kappa_first_order=3.0, log_eps=True,
         source="Yang, Liu, Chen, Lui 2026 (FSBA; κ exponent inferred)"),
    dict(method="lfsba", setting="SOSP", measure="sosp", iterations=1.5, first_order=1.5,
         second_order=1.5, hessian_ratio="1/m", log_eps=True,
         source="Yang, Liu, Chen, Lui 2026 (LFSBA); second-order calls ≈ iterations/m"),
    dict(method="ifsba", setting="SOSP, w.h.p.", measure="sosp", iterations=1.5, first_order=1.5,
         second_order=2.0, log_eps=True, source="Yang, Liu, Chen, Lui 2026 (IFSBA, HVP count)"),
    dict(method="mcn", setting="minimax SOSP", measure="minimax", iterations=1.5, first_order=1.5,
         second_order=1.5, kappa_first_order=2.0, kappa_second_order=1.5, log_eps=True,
         source="Luo, Li, Chen NeurIPS 2022 (MCN)"),
    dict(method="lmcn", setting="minimax SOSP", measure="minimax", iterations=1.5, first_order=1.5,
         second_order=1.5, hessian_ratio="1/m", log_eps=True,
         source="Yang, Liu, Chen, Lui 2026 (LMCN; iteration bound inferred)"),
    dict(method="stocbio", setting="stochastic", measure="norm", iterations=4.0, first_order=4.0,
         second_order=4.0, kappa_first_order=9.0, log_eps=True,
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
         second_order=2.0, kappa_first_order=9.0, log_kappa=True, source="Arbel, Mairal ICLR 2022"),
    dict(method="nsbo_sgd", setting="stochastic", measure="sq", iterations=2.0, first_order=2.0,
         second_order=2.0, kappa_first_order=9.0,
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

