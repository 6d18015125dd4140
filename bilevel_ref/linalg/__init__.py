"""NumPy reference linear algebra: inner solvers (AGD, GD, CG) and cubic subproblems."""
from .agd import InnerResult, agd, gd
from .cg import CGResult, cg
from .cubic import (
    CubicKKT,
    CubicResult,
    FinalsolverResult,
    M_from_sigma,
    SubsolverResult,
    cubic_finalsolver,
    cubic_kkt,
    cubic_model,
    cubic_subsolver,
    sigma_from_M,
    solve_cubic,
)
from .lazy import LazyCubic

__all__ = [
    "agd", "gd", "cg", "InnerResult", "CGResult",
    "solve_cubic", "LazyCubic", "CubicResult", "CubicKKT", "cubic_kkt", "cubic_model",
    "sigma_from_M", "M_from_sigma", "cubic_subsolver", "cubic_finalsolver",
    "SubsolverResult", "FinalsolverResult",
]
