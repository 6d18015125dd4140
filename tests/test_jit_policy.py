"""The JIT policy (bilevel_ref._jit): lazy numba, one decorator, the off switches."""
import os
import pathlib
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import bilevel_ref
from bilevel_ref import _jit

KERNEL_MODULES = ["agd", "cg", "cubic", "finite_sum", "lazy", "sampling"]
PACKAGE = pathlib.Path(bilevel_ref.__file__).parent


def run(code, **env):
    """Run ``code`` in a fresh interpreter (environment plus ``env``); returns its stdout."""
    environ = dict(os.environ)
    for key in ("NUMBA_DISABLE_JIT", _jit.ENV_VAR):
        environ.pop(key, None)
    environ.update(env)
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=environ, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_import_does_not_load_numba():
    out = run("""
        import sys
        import bilevel_ref, bilevel_ref.linalg.cubic, bilevel_ref.linalg.lazy, bilevel_ref.problems
        import bilevel_ref._kernels, bilevel_ref.linalg.cubic._core
        print("numba" in sys.modules)
    """)
    assert out.split() == ["False"]


def test_kernel_modules_import_first_without_cycle():
    """The kernels and the reference's pieces import in either order, each first in its process."""
    for module in ("bilevel_ref._kernels.cubic", "bilevel_ref._kernels.lazy", "bilevel_ref.linalg.cubic._core"):
        run(f"import {module}")


# The switches: kernels become the plain Python functions, numba is never imported, and the
# "numba" backend then runs the reference's own code (bitwise equal to backend="numpy").
NO_JIT_CHECK = f"""
    import sys, types
    import numpy as np
    from bilevel_ref import _kernels, solve_cubic
    from bilevel_ref.linalg.cubic import _core
    mods = [getattr(_kernels, name) for name in {KERNEL_MODULES!r}]
    kernels = [obj for m in mods for name, obj in vars(m).items() if name in getattr(m, "__all__", ())]
    assert kernels and all(isinstance(k, types.FunctionType) for k in kernels), kernels
    assert _kernels.lazy.secular_eig is _core.secular_eig
    rng = np.random.default_rng(0)
    A = rng.standard_normal((12, 12)); H = A + A.T; g = rng.standard_normal(12)
    for method in ("eigh", "lanczos"):
        a = solve_cubic(g, H, 1.0, method=method)
        b = solve_cubic(g, H, 1.0, method=method, backend="numba")
        assert np.array_equal(a.s, b.s) and a.lam == b.lam, method
    print("numba" in sys.modules)
"""


@pytest.mark.parametrize("env", [{"NUMBA_DISABLE_JIT": "1"}, {_jit.ENV_VAR: "1"}])
def test_switch_by_environment_gives_plain_functions(env):
    assert run(NO_JIT_CHECK, **env).split() == ["False"]


def test_switch_by_function_gives_plain_functions():
    assert run("from bilevel_ref import _jit\n_jit.set_enabled(False)\n" + textwrap.dedent(NO_JIT_CHECK)).split() \
        == ["False"]


def test_set_enabled_returns_previous_state(monkeypatch):
    monkeypatch.delenv(_jit.ENV_VAR, raising=False)
    monkeypatch.delenv("NUMBA_DISABLE_JIT", raising=False)
    try:
        assert _jit.set_enabled(False) is True
        assert not _jit.enabled()
        plain = lambda x: x  # noqa: E731
        assert _jit.jit(plain) is plain and _jit.jit(nogil=True)(plain) is plain
    finally:
        _jit.set_enabled(None)
    assert _jit.enabled()
    monkeypatch.setenv(_jit.ENV_VAR, "1")
    assert not _jit.enabled()
    monkeypatch.setenv(_jit.ENV_VAR, "junk")  # numba's reading: not an integer, so off
    assert _jit.enabled()


@pytest.mark.parametrize("option", ["fastmath", "parallel"])
def test_policy_refuses_fastmath_and_parallel(option):
    with pytest.raises(ValueError, match=option):
        _jit.jit(**{option: True})


def test_compiled_kernels_follow_the_policy():
    """Every dispatcher: no fastmath, no parallel; cached on disk unless it takes a jitted oracle."""
    if not _jit.enabled():
        pytest.skip("JIT disabled (NUMBA_DISABLE_JIT / BILEVEL_REF_DISABLE_JIT): no dispatchers to inspect")
    import importlib

    from numba.core.dispatcher import Dispatcher

    uncached = {("agd", "_agd"), ("cg", "_cg"), ("finite_sum", "_dot"), ("finite_sum", "_wrap")}
    seen = 0
    for name in KERNEL_MODULES:
        module = importlib.import_module(f"bilevel_ref._kernels.{name}")
        for attr, obj in vars(module).items():
            if not isinstance(obj, Dispatcher):
                continue
            seen += 1
            options = obj.targetoptions
            assert not options.get("fastmath"), (name, attr)
            # parallel only through _jit.parallel_jit (disjoint-output prange loops: same bits for any thread count)
            assert not options.get("parallel") or getattr(obj, "disjoint_parallel", False), (name, attr)
            cached = type(obj._cache).__name__ != "NullCache"
            assert cached == ((name, attr) not in uncached), (name, attr)
    assert seen >= 15


def test_no_kernel_calls_numba_directly():
    """One decorator: the kernels and the reference pieces never spell numba.njit themselves."""
    sources = list((PACKAGE / "_kernels").glob("*.py")) + list((PACKAGE / "linalg").rglob("*.py"))
    sources += [PACKAGE / "problems" / "base.py", PACKAGE / "problems" / "finite_sum.py"]
    for path in sources:
        text = path.read_text(encoding="utf-8")
        assert "import numba" not in text and "numba.njit(" not in text, path
        assert "from numba" not in text, path


def test_rebind_checks_names():
    from bilevel_ref.linalg.cubic import _core

    with pytest.raises(NameError, match="no_such_name"):
        _jit.rebind(_core.lanczos_loop, no_such_name=None)
    copy = _jit.rebind(_core.lanczos_loop, tridiag_secular=_core.tridiag_secular)
    assert copy is not _core.lanczos_loop and copy.__code__ is _core.lanczos_loop.__code__


def test_kernels_package_imports_submodules_on_access():
    import bilevel_ref._kernels as kernels

    assert kernels.sampling.__name__ == "bilevel_ref._kernels.sampling"
    with pytest.raises(AttributeError, match="no_such_kernel"):
        kernels.no_such_kernel  # noqa: B018


# A corrupted on-disk cache (issue 16): recompiled, one warning naming the directory, then cached again.
CACHE_RUN = """
    import warnings
    import numpy as np
    from bilevel_ref.exceptions import BilevelRefWarning
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        from bilevel_ref._kernels.cubic import tridiag_secular
        from bilevel_ref._kernels.lazy import secular_eig
        from bilevel_ref.linalg.cubic import _core
        lam, c = np.array([-1.0, 0.5, 2.0]), np.array([0.3, -0.2, 0.1])
        alpha, beta = np.array([1.0, -2.0, 0.5]), np.array([0.7, 0.3, 0.0])
        calls = [(secular_eig, _core.secular_eig, (lam, c, 0.5, 1e-12, 100)),
                 (tridiag_secular, _core.tridiag_secular, (alpha, beta, 3, 1.0, 0.5, -1.0, np.inf, 100))]
        for kernel, reference, args in calls:
            got, ref = kernel(*args), reference(*args)
            assert np.allclose(got[0], ref[0], rtol=1e-14, atol=0) and got[1] == ref[1], (got, ref)
    mine = [str(w.message) for w in caught if issubclass(w.category, BilevelRefWarning)]
    print(len(mine), sum(sum(kernel.stats.cache_hits.values()) for kernel, _, _ in calls))
    print("\\n".join(mine))
"""


def _damage(files, how):
    data = {path: path.read_bytes() for path in files}
    for path in files:
        if how == "truncate_half":  # UnpicklingError: pickle data was truncated
            path.write_bytes(data[path][: len(data[path]) // 2])
        elif how == "truncate_empty":  # EOFError: Ran out of input
            path.write_bytes(b"")
        elif how == "swap_data":  # each kernel's data file holds the other's: an overload of another signature
            other = [p for p in files if p.suffix == ".nbc" and p != path]
            if path.suffix == ".nbc":
                path.write_bytes(data[other[0]])


@pytest.mark.parametrize("how", ["truncate_half", "truncate_empty", "swap_data"])
def test_corrupted_cache_recompiles_and_warns_once(tmp_path, how):
    env = {"NUMBA_CACHE_DIR": str(tmp_path)}
    assert run(CACHE_RUN, **env).split() == ["0", "0"]  # compiled; cache written
    files = sorted(p for p in tmp_path.rglob("*") if p.suffix in (".nbi", ".nbc"))
    assert len([p for p in files if p.suffix == ".nbc"]) == 2, files
    _damage(files, how)
    out = run(CACHE_RUN, **env).splitlines()  # a fresh process: correct results, one warning
    assert out[0].split() == ["1", "0"], out
    message = out[1]
    directory = files[0].parent
    assert f"Cache directory: {directory}." in message and "NUMBA_CACHE_DIR" in message, message
    assert "recompiled" in message
    assert run(CACHE_RUN, **env).split() == ["0", "2"]  # the cache was written again and is used


def test_explicit_signatures_compile_eagerly_and_only_those():
    if not _jit.enabled():
        pytest.skip("JIT disabled: jit returns the plain function")

    def twice(x):
        return 2.0 * x

    kernel = _jit.jit("float64(float64)", cache=False)(twice)
    assert [tuple(map(str, sig)) for sig in kernel.signatures] == [("float64",)]
    assert kernel(1.5) == 3.0
    with pytest.raises(TypeError):
        kernel(np.ones(2))  # compilation disabled after the given signatures
    with pytest.raises(TypeError, match="one signature"):
        _jit.jit("float64(float64)", "int64(int64)")


def test_method_kernels_are_loaded_from_the_disk_cache_in_a_new_process(tmp_path):
    """The closures of _kernels.loops (oracles bound as constants) hit numba's cache in a second process."""
    code = """
        import numpy as np
        import bilevel_ref as br
        from bilevel_ref._kernels import loops
        from bilevel_ref.problems import quadratic_bilevel, catalog
        p = quadratic_bilevel(dx=3, dy=3, kappa=4.0, seed=0)
        r = br.minimize(p, "f2ba", np.zeros(3), options={"backend": "numba", "maxiter": 3, "lam": 10.0,
                                                          "inner_steps": 5})
        hits = sum(sum(k.stats.cache_hits.values()) for k in loops._KERNELS.values())
        misses = sum(sum(k.stats.cache_misses.values()) for k in loops._KERNELS.values())
        print(hits, misses, repr(r.x.tolist()))
    """
    env = {"NUMBA_CACHE_DIR": str(tmp_path)}
    first = run(code, **env).split(maxsplit=2)
    second = run(code, **env).split(maxsplit=2)
    assert int(first[1]) > 0                       # compiled the first time
    assert int(second[0]) > 0 and int(second[1]) == 0   # loaded the second time
    assert first[2] == second[2]                   # same iterates from the cached code


@pytest.mark.skipif(not _jit.enabled(), reason="numba JIT disabled")
def test_closure_cache_keys_tell_oracle_families_apart():
    """Two families' compiled oracles, or the same oracle twice, must not share / must share a key."""
    from bilevel_ref._kernels import problems as P

    key = _jit._stable_description
    assert key(P.quad_grad_y_g) == key(P.quad_grad_y_g)
    assert key(P.quad_grad_y_g) != key(P.quartic_grad_y_g)
    assert key((P.quad_grad_y_g, 1.0)) != key((P.quad_grad_y_g, 2.0))


@pytest.mark.skipif(not _jit.enabled(), reason="numba JIT disabled")
def test_closure_over_a_function_without_source_file_is_not_cached_on_disk():
    """Oracles typed into a session have no stable identity across processes: no disk cache (no false hit)."""
    namespace = {}
    exec("def oracle(y):\n    return 2.0 * y\n", namespace)  # no source file
    oracle = _jit.jit(cache=False)(namespace["oracle"])

    def build(f):
        def kernel(y):
            return f(y)
        return kernel

    kernel = _jit.jit(cache="closure")(build(oracle))
    assert type(kernel._cache).__name__ != "ClosureFunctionCache"
    assert kernel(np.ones(2)).tolist() == [2.0, 2.0]
    with pytest.raises(_jit._NoStableKey):
        _jit._stable_description(oracle)


def test_closure_cache_key_covers_the_package_code_a_kernel_calls_by_name():
    """A kernel calling a shared body by global name (AID -> linalg.cg.cg_step) must get a new cache key when
    that body's file changes: the key holds the SHA-256 of every package source file it reaches by name."""
    import hashlib
    import importlib

    from bilevel_ref._kernels import loops
    from bilevel_ref._kernels import problems as P

    cg_module = importlib.import_module("bilevel_ref.linalg.cg")

    kernel = loops._build_aid(P.quad_grad_x_f, P.quad_grad_y_f, P.quad_grad_y_g, P.quad_hvp_yy_g, P.quad_cross_g)
    sources = dict(_jit._callee_sources(getattr(kernel, "py_func", kernel)))
    with open(cg_module.__file__, "rb") as fh:
        assert sources["bilevel_ref.linalg.cg"] == hashlib.sha256(fh.read()).hexdigest()
    assert all(module.startswith("bilevel_ref.") for module in sources)      # numpy, math: not hashed
