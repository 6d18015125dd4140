"""Problem protocols and the built-in problem families.

Closed forms: :mod:`.quadratic` (quadratic and quartic–quadratic bilevel,
quadratic minimax), :mod:`.minimax` (NC-SC double well), :mod:`.finite_sum`
(benchopt's finite-sum quadratic), :mod:`.hard` (worst-case instances for
complexity checks).  Data: :mod:`.hyper_cleaning`, :mod:`.regularization`,
:mod:`.meta`, with :mod:`.datasets`.  Named instances: :mod:`.catalog`.
"""
from ..constants import CONSTANT_KEYS
from .base import EXACT_ORACLES, ORACLE_KINDS, BilevelProblem, MinimaxProblem
from .finite_sum import FiniteSumQuadratic, finite_sum_quadratic
from .hyper_cleaning import HyperCleaning, hyper_cleaning_from_dataset, make_hyper_cleaning
from .meta import MetaLearningHead, make_meta_learning
from .minimax import DoubleWellMinimax, make_nc_sc_minimax
from .quadratic import (
    QuadraticBilevel,
    QuadraticMinimax,
    QuarticQuadraticBilevel,
    make_quadratic,
    make_quadratic_minimax,
    make_quartic_quadratic,
    quadratic_bilevel,
)
from .wrappers import SecondOrderCost
from .regularization import (
    LearnToRegularize,
    make_logistic_regularization,
    make_multinomial_regularization,
    make_sparse_regularization,
)

__all__ = [
    "CONSTANT_KEYS",
    "BilevelProblem", "MinimaxProblem", "ORACLE_KINDS", "EXACT_ORACLES",
    "QuadraticBilevel", "QuarticQuadraticBilevel", "QuadraticMinimax",
    "make_quadratic", "quadratic_bilevel", "make_quartic_quadratic", "make_quadratic_minimax",
    "DoubleWellMinimax", "make_nc_sc_minimax", "FiniteSumQuadratic", "finite_sum_quadratic",
    "HyperCleaning", "make_hyper_cleaning", "hyper_cleaning_from_dataset",
    "LearnToRegularize", "make_logistic_regularization", "make_multinomial_regularization",
    "make_sparse_regularization", "MetaLearningHead", "make_meta_learning", "SecondOrderCost",
]
