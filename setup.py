"""Install bilevel_ref: ``pip install -e .`` (core) or ``pip install -e ".[test]"``."""
from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent

EXTRAS = {
    "plot": ["matplotlib>=3.6"],
    "data": ["scikit-learn>=1.2"],
    "crosscheck": ["jax>=0.4.20", "jsonschema>=4.18"],  # jsonschema: tests cross-validate the shipped schema
    "bench": ["asv>=0.6", "galahad-optrove>=5.0"],
    "docs": ["sphinx>=7", "numpydoc>=1.6"],
    # complexity sweeps in parallel: --n-jobs N (local processes) and --parallel dask (a Dask cluster)
    "parallel": ["joblib>=1.3", "threadpoolctl>=3.1"],
    "dask": ["joblib>=1.3", "threadpoolctl>=3.1", "dask[distributed]>=2023.1"],
}
# The test suite exercises the bundled datasets and the plotting paths too.
EXTRAS["test"] = ["pytest>=7", "hypothesis>=6", "coverage>=7"] + EXTRAS["plot"] + EXTRAS["data"] + EXTRAS["parallel"]

setup(
    name="bilevel_ref",
    version="0.1.0.dev0",
    description="Reference implementations of bilevel and minimax optimization methods "
    "with counted oracles and numba kernels",
    long_description=(HERE / "README.md").read_text(encoding="utf-8") if (HERE / "README.md").exists() else "",
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(include=["bilevel_ref", "bilevel_ref.*"]),
    package_data={"bilevel_ref.crosscheck": ["golden.schema.json"]},   # also listed in MANIFEST.in
    install_requires=["numpy>=1.24", "scipy>=1.10", "numba>=0.58", "tqdm>=4.60"],
    extras_require=EXTRAS,
    entry_points={"console_scripts": ["bilevel-ref=bilevel_ref.cli:main"]},
    license="BSD-3-Clause",
)
