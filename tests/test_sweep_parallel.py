"""Parallel and distributed sweeps (complexity.parallel): same results whatever n_jobs / parallel,
BLAS limited to one thread per worker, progress bar, bad input before any work."""
import subprocess
import sys

import numpy as np
import pytest

from bilevel_ref import complexity as C
from bilevel_ref.complexity import parallel as P
from bilevel_ref.complexity.cli import main as complexity_main
from bilevel_ref.problems.quadratic import quadratic_bilevel

pytest.importorskip("joblib")

# AID on the quadratic: 2 seeds x 3 eps, one run per eps (6 tasks, ~0.1 s each).  The NumPy
# backend keeps fresh loky workers from compiling numba kernels (seconds each); what is tested
# here is the dispatch, whatever the backend.
AID = dict(eps=[1e-1, 3e-2, 1e-2], seeds=[0, 1], problem_params={"dx": 6, "dy": 6},
           options={"inner_steps": 5, "linsys_steps": 5, "backend": "numpy"}, single_run=False, n_boot=50)


def _ramp(eps, seed):
    # an eps-dependent callable problem (pickled by cloudpickle for the workers)
    from bilevel_ref.problems.catalog import build_problem

    return build_problem("hard-ramp", seed=seed, eps=eps, order="cubic", dx=2, dy=2)


def assert_same(a, b):
    """Same hitting values, counts by kind, totals, fitted slopes and bit-identical final iterates."""
    np.testing.assert_array_equal(a.iterations, b.iterations)
    assert a.counts.keys() == b.counts.keys()
    for k in a.counts:
        np.testing.assert_array_equal(a.counts[k], b.counts[k])
    for k in a.totals:
        np.testing.assert_array_equal(a.totals[k], b.totals[k])
    assert a.fits.keys() == b.fits.keys()
    for q in a.fits:
        assert a.fits[q].slope == b.fits[q].slope or (np.isnan(a.fits[q].slope) and np.isnan(b.fits[q].slope))
        assert a.fits[q].ci == b.fits[q].ci
    assert len(a.runs) == len(b.runs)
    for ra, rb in zip(a.runs, b.runs):
        assert ra["seed"] == rb["seed"] and ra["eps"] == rb["eps"] and ra["nit"] == rb["nit"]
        assert ra["x"] is not None and ra["x"] == rb["x"]  # float lists: bit for bit


@pytest.fixture(scope="module")
def serial():
    return C.eps_sweep("aid", "quadratic", **AID)


def test_loky_two_jobs_equals_serial(serial):
    par = C.eps_sweep("aid", "quadratic", n_jobs=2, parallel="loky", **AID)
    assert_same(serial, par)
    assert np.isfinite(serial.iterations).all() and serial.iterations.shape == (2, 3)
    # the iterate is the method's: a different seed gives a different problem and run
    assert serial.runs[0]["x"] != serial.runs[3]["x"]


def test_loky_callable_problem_and_eps_options_and_driver():
    # eps-dependent callable problem and callable options, and a reference driver (per-eps runs)
    kw = dict(eps=[1e-1, 3e-2], seeds=[0, 1], options=lambda e: {"M": 1.0, "backend": "numpy"})
    a = C.eps_sweep("cubic_newton", _ramp, **kw)
    b = C.eps_sweep("cubic_newton", _ramp, n_jobs=2, **kw)
    assert_same(a, b)
    # the ramp's hitting time is Δ√M/(4ε^{3/2}) + O(1) (problems.hard.ramp_hitting_time_estimate)
    assert 0.9 < a.iterations[0, 1] / (1.0 / (4 * 3e-2 ** 1.5)) < 1.3


def test_workers_limit_blas_to_one_thread():
    out = P.run_tasks(_blas_threads, [0, 1, 2, 3], n_jobs=2)
    assert [i for i, _ in out] == [0, 1, 2, 3]  # task order, whatever finished first
    assert all(t == 1 for _, t in out)


def _blas_threads(i):
    from threadpoolctl import threadpool_info

    blas = [p["num_threads"] for p in threadpool_info() if p.get("user_api") == "blas"]
    return i, (max(blas) if blas else 1)


def test_progress_bar_counts_runs(capsys):
    out = P.run_tasks(abs, [-1, -2, -3], n_jobs=1, progress=True, desc="demo")
    assert out == [1, 2, 3]
    err = capsys.readouterr().err
    assert "demo" in err and "3/3" in err


@pytest.mark.parametrize("n_jobs", [0, -2, -10])
def test_bad_n_jobs(n_jobs):
    with pytest.raises(ValueError, match="n_jobs"):
        C.eps_sweep("aid", "quadratic", n_jobs=n_jobs, **AID)


def test_bad_parallel_arguments():
    with pytest.raises(TypeError, match="n_jobs"):
        P.check_parallel(1.5)
    with pytest.raises(ValueError, match="parallel"):
        P.check_parallel(2, "threads")
    with pytest.raises(ValueError, match="scheduler"):
        P.check_parallel(2, "loky", "tcp://127.0.0.1:8786")
    assert P.check_parallel(-1) == (-1, "loky")
    assert complexity_main(["aid", "quadratic", "--n-jobs", "0"]) == 2


def test_dask_missing_is_a_clear_error_before_any_work(monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed -> ImportError
    calls = []
    with pytest.raises(ImportError, match=r"bilevel_ref\[dask\]"):
        P.run_tasks(calls.append, [1, 2], n_jobs=2, parallel="dask", scheduler="tcp://127.0.0.1:8786")
    assert calls == []
    assert complexity_main(["aid", "quadratic", "--n-jobs", "2", "--parallel", "dask",
                            "--scheduler", "tcp://127.0.0.1:8786"]) == 2


def test_n_jobs_one_needs_no_joblib():
    code = ("import sys; sys.modules['joblib'] = None; sys.modules['threadpoolctl'] = None\n"
            "from bilevel_ref import complexity as C\n"
            "r = C.eps_sweep('gd', 'hard-ramp', [1e-1, 3e-2], problem_params={'dx': 1, 'dy': 1},\n"
            "                options={'backend': 'numpy'})\n"
            "assert r.iterations.shape == (1, 2)\n"
            "try:\n    C.eps_sweep('gd', 'hard-ramp', [1e-1], n_jobs=2)\nexcept ImportError as e:\n"
            "    assert 'bilevel_ref[parallel]' in str(e)\nelse:\n    raise SystemExit('no error')\n")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


# --- Dask ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def cluster():
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as c:
        yield c


def test_dask_equals_serial(serial, cluster):
    par = C.eps_sweep("aid", "quadratic", n_jobs=2, parallel="dask", scheduler=cluster.scheduler_address, **AID)
    assert_same(serial, par)


def test_dask_default_client(serial, cluster):
    distributed = pytest.importorskip("distributed")
    with distributed.Client(cluster):
        par = C.eps_sweep("aid", "quadratic", n_jobs=-1, parallel="dask", **AID)
    assert_same(serial, par)


def test_dask_without_scheduler_or_client(monkeypatch):
    distributed = pytest.importorskip("distributed")

    def no_client():
        raise ValueError("No global client found")

    monkeypatch.setattr(distributed, "get_client", no_client)
    with pytest.raises(ValueError, match="scheduler"):
        P.run_tasks(abs, [1], n_jobs=2, parallel="dask")


def test_dask_unreachable_scheduler_fails_before_any_work(monkeypatch):
    pytest.importorskip("distributed")
    monkeypatch.setattr(P, "CONNECT_TIMEOUT", 0.5)
    calls = []
    with pytest.raises(ValueError, match="unreachable"):
        P.run_tasks(calls.append, [1, 2], n_jobs=2, parallel="dask", scheduler="tcp://127.0.0.1:9")
    assert calls == []


def test_problem_instance_is_shipped_to_workers(cluster):
    # an instance (not a catalog name) is pickled for the workers; same counts as in this process
    prob = quadratic_bilevel(4, 4, kappa=5.0, seed=3)
    kw = dict(eps=[1e-1, 1e-2], seeds=[0, 1], options={"inner_steps": 3, "linsys_steps": 3, "backend": "numpy"},
              n_boot=20)
    a = C.eps_sweep("aid", prob, **kw)
    b = C.eps_sweep("aid", prob, n_jobs=2, parallel="dask", scheduler=cluster.scheduler_address, **kw)
    assert_same(a, b)
