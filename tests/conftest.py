"""Test configuration: ``slow`` tests run in CI (CI=true), with BILEVEL_REF_SLOW=1, or --runslow."""
import os

# GALAHAD's bundled OpenMP runtime spins idle threads after import (numpy's eigh
# then runs up to 400x slower in the same process) and warns without these.
for _key, _value in (("OMP_WAIT_POLICY", "PASSIVE"), ("OMP_CANCELLATION", "TRUE"), ("OMP_PROC_BIND", "TRUE")):
    os.environ.setdefault(_key, _value)

import numpy as np  # noqa: E402
import pytest


def pytest_addoption(parser):
    parser.addoption("--runslow", action="store_true", help="also run tests marked slow")


def _run_slow(config):
    return (config.getoption("--runslow") or os.environ.get("CI", "").lower() == "true"
            or os.environ.get("BILEVEL_REF_SLOW") == "1")


def pytest_collection_modifyitems(config, items):
    if _run_slow(config):
        return
    skip = pytest.mark.skip(reason="slow: run with --runslow, CI=true or BILEVEL_REF_SLOW=1")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def rng():
    """A fresh, fixed-seed generator per test (no global RNG)."""
    return np.random.default_rng(20261123)
