"""Algorithms, one module per family; importing this package registers every method."""
from . import (  # noqa: F401
    curvature,
    first_order,
    hypergradient,
    lazy,
    minimax,
    second_order,
    single_loop,
)
