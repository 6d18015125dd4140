"""NumPy reference linear algebra: inner solvers (AGD, GD, CG) and cubic subproblems."""
from .agd import InnerResult, agd, gd
from .cg import CGResult, cg

__all__ = ["agd", "gd", "cg", "InnerResult", "CGResult"]
