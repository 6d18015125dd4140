"""``bilevel-ref bench stochastic``: per-iteration cost of the stochastic methods.

On benchopt's finite-sum quadratic problem
(:func:`bilevel_ref.problems.finite_sum.finite_sum_quadratic`, n = 1024 samples
per level, d = 100 × 100, batch 64, float64 by default) and for each storage
(``factored``, ``dense``) this measures, in one run and in one process:

* the *reference*, one **slice read**: a contiguous batch×d×d slab of a
  dense tensor times a vector, through BLAS held to one thread, cycling over
  the slabs of **all the problem's dense tensors** (both levels, 492 MB) so
  that the reference reads from the same level of the memory hierarchy as the
  methods (:func:`measure_slice_read`; the methods stream S^xy whole and the
  symmetric Hessian tensors as packed upper triangles, about 330 MB in all, also
  more than the last-level cache).  Cycling over
  one 82 MB tensor, as first specified, is also reported (row ``slice read,
  one tensor``): on a machine whose last-level cache holds that tensor (300 MiB
  on the 2-core development machine) it measures the cache, not memory, while
  the methods' 492 MB of data do not fit;
* for each method, at the machine's **default threads** and at **one
  thread** (threadpoolctl limits BLAS and, through
  :func:`bilevel_ref._jit.kernel_threads`, the numba kernels): wall time per
  outer iteration of :func:`bilevel_ref.minimize` (lean settings: no
  closed-form metrics, one history record; sampling, the counter, the
  method's arithmetic and the outer loop included), the ratio time / slice
  read, and the oracle calls per iteration by kind;
* one minibatch ``grad_g`` call, reported as a row like the methods.

Wall time, best of ``--repeat`` runs (each a fresh run with the same seed),
because CPU time counts every thread's time and would hide what parallel
kernels save; the two thread settings are measured back to back for each
method and the reference is re-measured next to every method (its best is
kept), so load from other processes inflates neither side of a ratio more
than the other.  Process CPU time per iteration is reported too
(``--json``).  Methods not registered in this version are reported as
missing, never silently skipped.

Targets (:data:`TARGETS`, issue 18) hold for dense float64 storage at default
threads; a row that misses its target says ``missed`` in the status column.

Like for like with benchopt: every method is timed in the variant of
benchopt's solver of the same name (``benchopt/benchmark_bilevel``,
``solvers/<method>.py``) where the library offers it as an option (MRBO:
``variant="benchopt"``; AmIGO: ``fixed_rhs=True``, also the paper's and the
library's default).  :data:`VARIANTS` says, per method, what is timed and how
it stands to benchopt; the output lists the variant and the options of every
row (``--json``: the fields ``variant`` and ``options``).
"""
from __future__ import annotations

import argparse
import sys
import time

import numpy as np

__all__ = ["METHODS", "VARIANTS", "TARGETS", "THREADS", "main", "measure_unit", "measure_slice_read",
           "last_level_cache_bytes", "slice_read_plan", "reference_tensors", "clear_batch_caches", "ONE_TENSOR", "measure_method",
           "benchmark_options", "best_per_call", "run", "target_status", "thread_setting"]

#: method -> options of the benchmark configuration (the issue's targets:
#: stocBiO / AmIGO with 10 inner and 10 Neumann / v steps, F2SA with 10 inner
#: steps; the rest at their defaults), in benchopt's variant where it is an
#: option (see :data:`VARIANTS`). ``batch_size`` is added by :func:`run`.
METHODS = {
    "soba": {},
    "saba": {},
    "ma_soba": {},
    "stocbio": {"inner_steps": 10, "linsys_steps": 10},
    "amigo": {"inner_steps": 10, "linsys_steps": 10, "fixed_rhs": True},
    "f2sa": {"inner_steps": 10},
    "mrbo": {"variant": "benchopt"},
    "vrbo": {},
}

#: method -> the variant timed and how it stands to benchopt's solver of the same name
#: (per-iteration oracle calls and batches; step sizes do not change the cost).
VARIANTS = {
    "soba": "library defaults; benchopt's oracles and batches (its c/sqrt(t+1) steps: schedule='sqrt')",
    "saba": "library defaults = benchopt (zero SAGA memory, fixed contiguous minibatches)",
    "ma_soba": "library defaults (no benchopt solver)",
    "stocbio": "library defaults = benchopt (D = Q = 10)",
    "amigo": "fixed_rhs=True: one ∇F per outer iteration, as benchopt and the paper (the default)",
    "f2sa": "library defaults = benchopt (same schedule and batches)",
    "mrbo": "variant='benchopt': zero memory at k = 0, J on the y-gradient's batch; the default "
            "'paper' draws one more lower batch per iteration and skips the old point at k = 0",
    "vrbo": "library defaults; benchopt's oracle calls per step (its corrections hold x fixed)",
}

#: targets of issue 18: time per iteration / one slice read, dense float64 storage, default threads
TARGETS = {"soba": 3.5, "mrbo": 15.0, "f2sa": 45.0}

#: the two thread settings of every figure: the machine's default, and one thread
THREADS = ("default", 1)

#: the method name of the row of the one-tensor slice read (cycling over the lower Hessians only)
ONE_TENSOR = "slice read, one tensor"


def thread_setting(threads):
    """Context manager for one thread setting: ``"default"`` (no limit) or a positive integer.

    A limit goes through threadpoolctl (BLAS and OpenMP libraries), which the
    numba kernels follow (:func:`bilevel_ref._jit.kernel_threads`).  Anything
    else (0, negative, non-integer) is a :class:`ValueError`.
    """
    import contextlib

    from .._jit import check_threads

    if threads == "default":
        return contextlib.nullcontext()
    threads = check_threads(threads, "threads")
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=threads)


def best_per_call(fn, args_list, repeat, clock=time.process_time):
    """Best (over ``repeat`` passes) seconds per call of ``fn(*args)`` over ``args_list``
    (``clock``: :func:`time.process_time` by default, or :func:`time.perf_counter`)."""
    best = np.inf
    for _ in range(repeat):
        t0 = clock()
        for args in args_list:
            fn(*args)
        best = min(best, (clock() - t0) / len(args_list))
    return best


def measure_unit(problem, batch_size, *, calls=200, repeat=5, seed=0, clock=time.process_time):
    """Seconds per minibatch ``grad_g`` call (best of ``repeat`` passes over ``calls`` fresh batches)."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(problem.dx)
    y = rng.standard_normal(problem.dy)
    batches = [problem.sample(rng, batch_size, "lower") for _ in range(calls)]
    problem.grad_g(x, y, batch=batches[0])   # warm-up (numba compilation)
    return best_per_call(lambda b: problem.grad_g(x, y, batch=b), [(b,) for b in batches], repeat, clock)


def measure_slice_read(tensors, batch_size, *, reads=None, repeat=5):
    """Wall seconds of one slice read: a contiguous slab ``T[s:s+batch]`` of one of ``tensors``, as a
    (batch·rows)×cols matrix, times a vector, BLAS held to one thread.

    ``tensors`` is one (n, rows, cols) C-contiguous array or a sequence of
    them.  The reads cycle over the tensors in turn and, within each, over
    the starts s = 0, batch, 2·batch, ..., so that one pass of ``reads``
    reads (default: every slab once, at least 64) touches all the data: when
    the data exceed the last-level cache (benchopt's problem: six 1024×100×100
    float64 tensors, 492 MB), every read streams its slab from memory.  Best
    of ``repeat`` passes.
    """
    from threadpoolctl import threadpool_limits

    tensors = [tensors] if isinstance(tensors, np.ndarray) else list(tensors)
    n, rows, cols = tensors[0].shape
    m = min(int(batch_size), n)
    flats = [t.reshape(t.shape[0] * rows, cols) for t in tensors]
    plan = [(flats[j], s) for j, s in slice_read_plan(len(tensors), n, m, reads)]
    vec = np.ones(cols, dtype=tensors[0].dtype)
    with threadpool_limits(limits=1, user_api="blas"):
        flats[0][:m * rows] @ vec   # warm-up
        return best_per_call(lambda flat, s: flat[s * rows:(s + m) * rows] @ vec, plan, repeat,
                             time.perf_counter)


def slice_read_plan(tensors, n, batch, reads=None):
    """The reads of one pass of :func:`measure_slice_read`: ``(tensor, start)`` pairs.

    Tensors in turn; within each, starts 0, batch, 2·batch, ... (wrapping
    within ``[0, n - batch]``).  ``reads`` defaults to every slab of every
    tensor once, and at least 64.
    """
    slabs = max(n // batch, 1)
    reads = max(64, slabs * tensors) if reads is None else int(reads)
    return [(k % tensors, ((k // tensors) * batch) % (n - batch + 1)) for k in range(reads)]


def last_level_cache_bytes():
    """Size of the CPU's last-level cache in bytes (Linux sysfs), or None when unknown."""
    import glob

    best = None
    for index in glob.glob("/sys/devices/system/cpu/cpu0/cache/index*"):
        try:
            with open(f"{index}/level") as fh:
                level = int(fh.read())
            with open(f"{index}/size") as fh:
                text = fh.read().strip()
        except (OSError, ValueError):
            continue
        scale = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(text[-1:], 1)
        size = int(text.rstrip("KMG")) * scale if text.rstrip("KMG").isdigit() else None
        if size is not None and (best is None or level > best[0]):
            best = (level, size)
    return None if best is None else best[1]


def benchmark_options(method, batch_size, iters, extra=None):
    """Options of the timed runs: :data:`METHODS` ∪ ``extra`` (known ones), batch, lean history."""
    from .._solver import get_method

    extra = extra or {}
    spec = get_method(method).all_options()
    opts = {k: v for k, v in {**METHODS.get(method, {}), **extra}.items() if k in spec}
    if "batch_size" in spec:
        opts["batch_size"] = batch_size
    opts.update(maxiter=iters, record_exact=False, history_every=max(iters, 1))
    return opts


def measure_method(problem, x0, method, batch_size, *, iters=50, repeat=3, seed=0, options=None):
    """Time per outer iteration of ``method`` (at the current thread setting).

    Returns a dict with ``cpu`` and ``wall`` (seconds per iteration, best of
    ``repeat`` runs), ``calls`` (oracle calls per iteration by kind), ``sums``
    (dense storage: batch sums formed per iteration by the last run; None for
    other storages), ``slices`` (dense storage: sample bytes those sums read
    per iteration, in batch×dy×dy slabs of the problem's dtype — a packed
    symmetric sum reads about half a slab; None for other storages), ``nit``,
    ``status`` and the ``options`` used.
    """
    from .. import minimize

    opts = benchmark_options(method, batch_size, iters, options or {})
    minimize(problem, method, x0, seed=seed, options={**opts, "maxiter": 2})   # warm-up
    best_cpu, best_wall, res, formed, streamed = np.inf, np.inf, None, None, None
    for _ in range(repeat):
        clear_batch_caches(problem)   # each run starts cold: same seed, same batches as the run before
        before = _dense_reads(problem)
        c0, t0 = time.process_time(), time.perf_counter()
        res = minimize(problem, method, x0, seed=seed, options=opts)
        cpu, wall = time.process_time() - c0, time.perf_counter() - t0
        if before is not None:
            after = _dense_reads(problem)
            formed, streamed = after[0] - before[0], after[1] - before[1]
        nit = max(res.nit, 1)
        best_cpu, best_wall = min(best_cpu, cpu / nit), min(best_wall, wall / nit)
    calls = {k: v / max(res.nit, 1) for k, v in res.oracle_calls.items() if v and k != "samples"}
    return {"cpu": best_cpu, "wall": best_wall, "calls": calls, "nit": int(res.nit),
            "sums": None if formed is None else formed / max(res.nit, 1),
            "slices": None if streamed is None else streamed / _slab_bytes(problem, batch_size) / max(res.nit, 1),
            "status": res.message if res.nit < iters else "ok", "options": opts}


def _dense_levels(problem):
    """The two levels of a dense finite-sum problem (their tensors and batch-sum caches), else None."""
    levels = [getattr(problem, name, None) for name in ("lower", "upper")]
    return levels if all(getattr(level, "storage", None) == "dense" for level in levels) else None


def _dense_reads(problem):
    """``(batch sums formed, sample bytes they read)`` so far by a dense finite-sum problem's two levels
    (None for other storages)."""
    levels = _dense_levels(problem)
    if levels is None:
        return None
    return sum(level.cache_misses for level in levels), sum(level.bytes_streamed for level in levels)


def _slab_bytes(problem, batch_size):
    """Bytes of one batch×dy×dy slab of the lower level's Hessian tensor: the unit of ``slices``."""
    hyy = problem.lower.hyy
    return batch_size * hyy.shape[1] * hyy.shape[2] * hyy.itemsize


def clear_batch_caches(problem):
    """Drop the batch sums a dense finite-sum problem's levels keep (nothing for other problems)."""
    for level in _dense_levels(problem) or ():
        level.clear_cache()


def reference_tensors(problem, n, d):
    """The tensors of the slice reads: the dense problem's six Hessian tensors (both levels), else six
    n×d×d tensors of the same size (factored storage holds no such data)."""
    levels = _dense_levels(problem)
    if levels is not None:
        return [getattr(level, name) for level in levels for name in ("hyy", "hxx", "hxy")]
    return [np.ones((n, d, d), dtype=problem.dtype) for _ in range(6)]   # values do not change the time


def run(methods=None, storages=("factored", "dense"), *, n=1024, d=100, batch_size=64, iters=50,
        repeat=3, rounds=2, dtype="float64", sampler="iid", seed=0, options=None, out=None):
    """Measure every method on every storage at each of :data:`THREADS`; returns a list of row dicts.

    Each figure is the best of ``rounds`` rounds, the thread settings
    alternating, each round the best of ``repeat`` runs.

    Per storage: a reference row (``method`` = ``"slice read"``, seconds in
    ``seconds``, ``wall`` None), a ``grad_g`` row, then one row per method.  A
    measured row holds, for default threads, ``wall``, ``cpu`` (seconds per
    iteration or call) and ``ratio`` (wall / slice read), and the same for one
    thread under ``one_thread``; ``target`` and ``status`` (:func:`target_status`).
    """
    from .._jit import kernel_threads
    from .._solver import methods as registered
    from .._validation import check_int
    from ..problems.finite_sum import finite_sum_quadratic

    repeat = check_int(repeat, "repeat", minimum=1)
    rounds = check_int(rounds, "rounds", minimum=1)
    iters = check_int(iters, "iters", minimum=1)

    methods = list(METHODS) if methods is None else list(methods)
    known = set(registered())
    rows = []
    ref_data = None
    for storage in storages:
        problem = finite_sum_quadratic(n, n, d, d, storage=storage, dtype=dtype, sampler=sampler,
                                       seed=seed)
        if ref_data is None or storage == "dense":
            ref_data = reference_tensors(problem, n, d)
        x0 = np.zeros(d)
        ref = measure_slice_read(ref_data, batch_size, repeat=repeat + 2)
        ref_one = measure_slice_read(ref_data[0], batch_size, repeat=repeat + 2)

        def measured(fn):
            """``fn()`` at each thread setting, the settings alternating for ``rounds`` rounds (the
            fastest round kept, so one burst of load from elsewhere cannot spoil every run of one
            setting); the references re-measured after."""
            nonlocal ref, ref_one
            out_ = {}
            for _ in range(rounds):
                for threads in THREADS:
                    with thread_setting(threads):
                        r = fn()
                    if threads not in out_ or r["wall"] < out_[threads]["wall"]:
                        out_[threads] = r
            ref = min(ref, measure_slice_read(ref_data, batch_size, repeat=repeat + 2))
            ref_one = min(ref_one, measure_slice_read(ref_data[0], batch_size, repeat=repeat + 2))
            return out_

        unit = measured(lambda: {"wall": measure_unit(problem, batch_size, repeat=repeat, seed=seed,
                                                      clock=time.perf_counter),
                                 "cpu": measure_unit(problem, batch_size, repeat=repeat, seed=seed),
                                 "calls": {"grad_g": 1.0}, "nit": None, "status": "ok"})
        measured_rows = [{"storage": storage, "method": "grad_g", "variant": "one minibatch grad_g call",
                          "by_threads": unit}]
        for method in methods:
            if method not in known:
                measured_rows.append({"storage": storage, "method": method, "status": "not registered"})
                continue
            opts = (options or {}).get(method)
            r = measured(lambda: measure_method(problem, x0, method, batch_size, iters=iters,
                                                repeat=repeat, seed=seed, options=opts))
            measured_rows.append({"storage": storage, "method": method, "by_threads": r,
                                  "variant": VARIANTS.get(method, "library defaults")})
            if out is not None:
                print(f"  {storage:>8} {method:<10} "
                      + "  ".join(f"{r[t]['wall'] * 1e6:10.1f} us/iter ({t} threads)" for t in THREADS),
                      file=out, flush=True)
        rows.append({"storage": storage, "method": "slice read", "seconds": ref, "wall": None, "cpu": None,
                     "ratio": 1.0, "calls": {}, "nit": None, "status": "ok",
                     "threads": {"default": kernel_threads(), "one_thread": 1},
                     "tensors": len(ref_data), "data_bytes": int(sum(t.nbytes for t in ref_data)),
                     "llc_bytes": last_level_cache_bytes()})
        rows.append({"storage": storage, "method": ONE_TENSOR, "seconds": ref_one, "wall": None, "cpu": None,
                     "ratio": ref_one / ref, "calls": {}, "nit": None, "status": "ok",
                     "data_bytes": int(ref_data[0].nbytes)})
        for r in measured_rows:
            by = r.pop("by_threads", None)
            if by is not None:
                default, one = by["default"], by[1]
                r.update(calls=default["calls"], nit=default["nit"], options=default.get("options"),
                         sums=default.get("sums"), slices=default.get("slices"),
                         wall=default["wall"], cpu=default["cpu"], ratio=default["wall"] / ref,
                         one_thread={"wall": one["wall"], "cpu": one["cpu"], "ratio": one["wall"] / ref},
                         status=default["status"] if default["status"] != "ok" else one["status"])
                r["target"] = _target(r, dtype)
                r["status"] = target_status(r)
            rows.append(r)
    return rows


def _target(row, dtype):
    """The row's target: :data:`TARGETS` for dense float64 storage, else None."""
    if row["storage"] != "dense" or str(dtype) != "float64":
        return None
    return TARGETS.get(row["method"])


def target_status(row):
    """``row``'s status with its target (``row["target"]``, else :data:`TARGETS`):
    "missed" when the default-threads ratio exceeds it."""
    target = row.get("target", TARGETS.get(row["method"]))
    if row["status"] != "ok" or target is None:
        return row["status"]
    return "ok" if row["ratio"] <= target else f"missed (> {target:g})"


def _table(rows):
    from .._text import format_table

    headers = ["storage", "method", "us default", "ratio default", "us 1 thread", "ratio 1 thread", "target",
               "sums/iter", "slices/iter", "calls/iter", "status"]
    body = []
    for r in rows:
        if r["method"] in ("slice read", ONE_TENSOR):
            what = (f"slice read (reference: {r['tensors']} tensors, {r['data_bytes'] / 1e6:.0f} MB)"
                    if r["method"] == "slice read" else f"{ONE_TENSOR} ({r['data_bytes'] / 1e6:.0f} MB)")
            body.append([r["storage"], what, f"{r['seconds'] * 1e6:.1f}", f"{r['ratio']:.2f}", "-", "-", "-",
                         "-", "-", "-", r["status"]])
            continue
        if "wall" not in r:
            body.append([r["storage"], r["method"], "-", "-", "-", "-", "-", "-", "-", "-", r["status"]])
            continue
        calls = ", ".join(f"{k}={v:g}" for k, v in r["calls"].items())
        target = r.get("target")
        one = r["one_thread"]
        sums, slices = r.get("sums"), r.get("slices")
        body.append([r["storage"], r["method"], f"{r['wall'] * 1e6:.1f}", f"{r['ratio']:.2f}",
                     f"{one['wall'] * 1e6:.1f}", f"{one['ratio']:.2f}",
                     "-" if target is None else f"<= {target:g}", "-" if sums is None else f"{sums:.2f}",
                     "-" if slices is None else f"{slices:.2f}", calls, r["status"]])
    return format_table(headers, body)


def _reference_note(rows):
    """What the reference read, and the last-level cache it is compared with."""
    ref = next((r for r in rows if r["method"] == "slice read"), None)
    if ref is None:
        return ""
    llc = ref.get("llc_bytes")
    cache = "unknown" if llc is None else f"{llc / 2**20:.0f} MiB"
    return (f"reference: slabs of {ref['tensors']} tensors in turn, {ref['data_bytes'] / 1e6:.0f} MB in all "
            f"(last-level cache {cache}); sums/iter: batch sums formed per iteration; slices/iter: the sample "
            f"bytes they read, in batch x d x d slabs (a symmetric Hessian sum streams its packed upper "
            f"triangle, about half a slab; dense storage)")


def _variants(rows):
    """One line per timed method: the variant (vs benchopt) and the options used."""
    lines, done = ["variants timed (vs benchopt's solvers/<method>.py) and options:"], set()
    for r in rows:
        if not r.get("options") or r["method"] in done:
            continue
        done.add(r["method"])
        opts = ", ".join(f"{k}={v!r}" for k, v in r["options"].items()
                         if k not in ("maxiter", "record_exact", "history_every"))
        lines.append(f"  {r['method']}: {r['variant']} [{opts}]")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="bilevel-ref bench stochastic",
        description="Wall time per outer iteration of the stochastic methods on benchopt's finite-sum "
                    "quadratic, at default threads and at one thread, as a ratio to one slice read "
                    "(a batch x d x d slab times a vector, BLAS on one thread) measured in the same run.")
    parser.add_argument("--methods", nargs="+", default=None, help=f"default: {' '.join(METHODS)}")
    parser.add_argument("--storage", nargs="+", default=["factored", "dense"],
                        choices=["factored", "dense"])
    parser.add_argument("--n", type=int, default=1024, help="samples per level (default 1024)")
    parser.add_argument("--d", type=int, default=100, help="dim_inner = dim_outer (default 100)")
    parser.add_argument("--batch", type=int, default=64, help="minibatch size (default 64)")
    parser.add_argument("--iters", type=int, default=50, help="outer iterations per timed run")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per round (best is kept)")
    parser.add_argument("--rounds", type=int, default=2,
                        help="rounds, the thread settings alternating (best is kept; default 2)")
    parser.add_argument("--dtype", default="float64", choices=["float64", "float32"])
    parser.add_argument("--sampler", default="iid", choices=["iid", "window"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="print the rows as JSON (NaN and inf as null)")
    args = parser.parse_args(argv)
    from .._text import dumps_json

    rows = run(args.methods, tuple(args.storage), n=args.n, d=args.d, batch_size=args.batch,
               iters=args.iters, repeat=args.repeat, rounds=args.rounds, dtype=args.dtype,
               sampler=args.sampler, seed=args.seed, out=sys.stderr)
    if args.json:
        print(dumps_json(rows))
    else:
        print(f"finite-sum quadratic: n = {args.n} per level, d = {args.d} x {args.d}, batch {args.batch}, "
              f"{args.dtype}, sampler {args.sampler}; ratio = wall time per iteration (or call) / one slice "
              f"read ({args.batch}x{args.d}x{args.d} slab times a vector, BLAS on one thread), best of "
              f"{args.repeat}")
        print(_table(rows))
        print(_reference_note(rows))
        print(_variants(rows))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
