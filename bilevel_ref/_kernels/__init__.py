"""numba kernels, each compiled under the policy of :mod:`bilevel_ref._jit`.

Importing this package imports no numba: each submodule compiles its kernels
when it is first imported, which happens inside the functions that need it,
or on first attribute access (``bilevel_ref._kernels.sampling.floyd_subset``).
"""
import importlib

__all__ = ["agd", "cg", "cubic", "finite_sum", "lazy", "sampling", "oracles", "problems", "loops"]


def __getattr__(name):
    """Import a kernel module on first access (afterwards it is a plain attribute)."""
    if name in __all__:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
