"""Problem protocols and the built-in problem families."""
from .base import EXACT_ORACLES, ORACLE_KINDS, BilevelProblem, MinimaxProblem
from .quadratic import (
    QuadraticBilevel,
    QuadraticMinimax,
    QuarticQuadraticBilevel,
    make_quadratic,
    make_quadratic_minimax,
    make_quartic_quadratic,
    quadratic_bilevel,
)

__all__ = [
    "BilevelProblem", "MinimaxProblem", "ORACLE_KINDS", "EXACT_ORACLES",
    "QuadraticBilevel", "QuarticQuadraticBilevel", "QuadraticMinimax",
    "make_quadratic", "quadratic_bilevel", "make_quartic_quadratic", "make_quadratic_minimax",
]
