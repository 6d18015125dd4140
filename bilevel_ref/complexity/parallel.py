r"""Running the independent runs of a sweep: in this process, on local cores, or on a Dask cluster.

A sweep is a list of independent *tasks* (one per (seed, ε-run) of
:func:`~bilevel_ref.complexity.sweep.eps_sweep`).  :func:`run_tasks` runs them

* ``n_jobs=1``: one after another in this process (no joblib needed);
* ``n_jobs=N`` (or -1: all cores), ``parallel="loky"``: in N local worker
  processes through joblib's loky backend;
* ``parallel="dask"``: through joblib's Dask backend on an existing
  ``dask.distributed`` cluster, given by its scheduler address (``scheduler``,
  e.g. ``"tcp://10.0.0.5:8786"``), a :class:`distributed.Client`, or the
  current default client; ``n_jobs`` caps the tasks in flight (-1: no cap).

and returns the results *in task order*, whatever order they finish in, so
the sweep's arrays, counts, fits and iterates do not depend on ``n_jobs`` or
``parallel`` (each task is deterministic given its seed).  In every worker
BLAS is limited to one thread (threadpoolctl), so N workers use N cores
instead of N × (BLAS threads).  A tqdm bar on stderr shows the runs done out
of the total.

Dependencies: joblib and threadpoolctl (the ``parallel`` extra) for
``n_jobs != 1``; ``dask[distributed]`` (the ``dask`` extra) for
``parallel="dask"``.  Everything is checked — the arguments, the imports and
the scheduler's reachability — by :func:`check_parallel` before any task runs.
"""
from __future__ import annotations

import sys

from .._validation import check_choice, check_int

__all__ = ["PARALLEL_BACKENDS", "check_parallel", "run_tasks"]

#: Values of ``parallel``.
PARALLEL_BACKENDS = ("loky", "dask")

#: Seconds to wait for a Dask scheduler before declaring it unreachable.
CONNECT_TIMEOUT = 10.0


def check_parallel(n_jobs=1, parallel="loky", scheduler=None):
    """Validate the parallel arguments; returns ``(n_jobs, parallel)``.

    Raises
    ------
    TypeError
        ``n_jobs`` not an integer.
    ValueError
        ``n_jobs`` = 0 or < −1; unknown ``parallel``; a ``scheduler`` with ``parallel="loky"``.
    ImportError
        joblib missing for ``n_jobs != 1``, or dask.distributed missing for ``parallel="dask"``
        (the message names the extra to install).
    """
    n_jobs = check_int(n_jobs, "n_jobs")
    if n_jobs == 0 or n_jobs < -1:
        raise ValueError(f"n_jobs must be >= 1 or -1 (all cores / all workers), got {n_jobs}")
    check_choice(parallel, "parallel", PARALLEL_BACKENDS)
    if scheduler is not None and parallel != "dask":
        raise ValueError(f"scheduler={scheduler!r} is only used with parallel='dask', got parallel={parallel!r}")
    if parallel == "dask":
        try:
            import distributed  # noqa: F401
            import joblib  # noqa: F401
        except ImportError as exc:
            raise ImportError(f"parallel='dask' needs dask.distributed and joblib ({exc}); "
                              "pip install 'bilevel_ref[dask]'") from exc
    elif n_jobs != 1:
        try:
            import joblib  # noqa: F401
        except ImportError as exc:
            raise ImportError(f"n_jobs={n_jobs} needs joblib ({exc}); pip install 'bilevel_ref[parallel]', "
                              "or use n_jobs=1") from exc
    return n_jobs, parallel


def _dask_client(scheduler):
    """(client, owned): a connected client for ``scheduler`` (address, Client or None = default)."""
    from distributed import Client, get_client

    if scheduler is None:
        try:
            return get_client(), False
        except ValueError as exc:
            raise ValueError("parallel='dask' needs scheduler=ADDRESS (e.g. 'tcp://host:8786') or an "
                             "active distributed.Client") from exc
    if isinstance(scheduler, Client):
        if scheduler.status not in ("running", "connecting", "newly-created"):
            raise ValueError(f"scheduler: the distributed.Client is {scheduler.status!r}, not running")
        return scheduler, False
    if not isinstance(scheduler, str) or not scheduler.strip():
        raise TypeError(f"scheduler must be an address string or a distributed.Client, got {scheduler!r}")
    try:
        client = Client(scheduler, timeout=CONNECT_TIMEOUT, set_as_default=False)
    except (OSError, TimeoutError) as exc:
        raise ValueError(f"scheduler={scheduler!r} is unreachable (no Dask scheduler answered within "
                         f"{CONNECT_TIMEOUT:g} s): {exc}") from exc
    return client, True


def _limited(fn, task):
    """``fn(task)`` with BLAS limited to one thread (a worker's call)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # joblib runs without it; the limit is then not applied
        return fn(task)
    with threadpool_limits(limits=1, user_api="blas"):
        return fn(task)


def _progress(total, desc, progress):
    from tqdm.auto import tqdm

    # progress=None: tqdm decides (shown on a terminal, hidden in logs and tests)
    return tqdm(total=total, desc=desc, unit="run", file=sys.stderr, leave=True,
                disable=None if progress is None else not progress)


def run_tasks(fn, tasks, n_jobs=1, parallel="loky", scheduler=None, *, desc="sweep", progress=None):
    """``[fn(t) for t in tasks]``, serially or in parallel (module docstring), in task order.

    Parameters
    ----------
    fn : callable
        A module-level function (it is pickled for the workers).
    tasks : list
        Picklable arguments, one per call.
    n_jobs, parallel, scheduler
        See the module docstring and :func:`check_parallel`.
    desc : str
        Label of the progress bar.
    progress : bool, optional
        Show the tqdm bar (default: only when stderr is a terminal).

    Returns
    -------
    list
        ``fn(t)`` for each task, in the order of ``tasks``.
    """
    n_jobs, parallel = check_parallel(n_jobs, parallel, scheduler)
    tasks = list(tasks)
    client, owned = (None, False)
    if parallel == "dask":
        client, owned = _dask_client(scheduler)  # before any work: a bad scheduler fails here
    bar = _progress(len(tasks), desc, progress)
    try:
        if n_jobs == 1 and parallel == "loky":
            out = []
            for t in tasks:
                out.append(fn(t))
                bar.update(1)
            return out
        from joblib import Parallel, delayed, parallel_config

        backend = {"backend": "loky"} if parallel == "loky" else {"backend": "dask", "client": client}
        out = []
        with parallel_config(**backend):
            # a generator in submission order: the bar advances as results arrive, order is kept
            for r in Parallel(n_jobs=n_jobs, return_as="generator")(delayed(_limited)(fn, t) for t in tasks):
                out.append(r)
                bar.update(1)
        return out
    finally:
        bar.close()
        if owned:
            client.close()
