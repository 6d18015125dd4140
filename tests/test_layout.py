"""Package layout: no import cycles among bilevel_ref modules; every module imports on its own.

(a) The graph of module-level imports (``import``/``from ... import`` executed
when the module is loaded, i.e. outside functions and ``if TYPE_CHECKING:``
blocks; function-local imports are allowed to point anywhere) must be acyclic.
Built with :mod:`ast`, relative imports resolved; ``from pkg import name``
points at ``pkg.name`` when that is a module, else at ``pkg``.

(b) Every module imports in a subprocess with no ``bilevel_ref`` module loaded
before it (one interpreter, the package purged from ``sys.modules`` between
modules: third-party imports stay cached, which keeps this to seconds).
"""
import ast
import json
import pathlib
import subprocess
import sys

import bilevel_ref

PACKAGE_DIR = pathlib.Path(bilevel_ref.__file__).resolve().parent
ROOT = PACKAGE_DIR.name  # "bilevel_ref"


def _modules():
    """``{dotted name: path}`` of every module of the package (packages by their ``__init__``)."""
    out = {}
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        if "__pycache__" in path.parts:
            continue
        parts = (ROOT,) + path.relative_to(PACKAGE_DIR).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _is_type_checking(test):
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _module_level_imports(tree):
    """Import nodes executed at import time: not inside functions/lambdas, not under ``if TYPE_CHECKING``."""
    found, stack = [], [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            found.append(node)
            continue
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                continue
            if isinstance(child, ast.If) and _is_type_checking(child.test):
                stack.extend(child.orelse)
                continue
            stack.append(child)
    return found


def _targets(name, path, node, modules):
    """Package modules that ``node`` (in module ``name`` at ``path``) loads."""
    if isinstance(node, ast.Import):
        return [t for alias in node.names for t in _with_packages(name, alias.name)]
    if node.level:
        # the package a relative import starts from: the module's own package
        package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
        base = package[:len(package) - (node.level - 1)]
        base = ".".join(base + ([node.module] if node.module else []))
    else:
        base = node.module
    out = []
    for alias in node.names:
        sub = f"{base}.{alias.name}"
        # `from pkg import mod` imports the module pkg.mod; `from pkg import name` needs pkg's __init__
        out += _with_packages(name, sub if sub in modules else base)
    return out


def _with_packages(importer, target):
    """``target`` and the packages on its path that ``importer`` is not inside of (their
    ``__init__`` runs first when not loaded yet); the importer's own packages are loading already."""
    parts = target.split(".")
    inside = importer.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts) + 1)
            if parts[:i] != inside[:i] or i == len(parts)]


def _import_graph():
    modules = _modules()
    graph = {}
    for name, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        deps = set()
        for node in _module_level_imports(tree):
            for target in _targets(name, path, node, modules):
                if target in modules and target != name:
                    deps.add(target)
        graph[name] = deps
    return graph


def _find_cycle(graph):
    """One cycle as a list of modules (first == last), or None."""
    white, grey, black = 0, 1, 2
    color = dict.fromkeys(graph, white)
    parent = {}
    for start in sorted(graph):
        if color[start] != white:
            continue
        stack = [(start, iter(sorted(graph[start])))]
        color[start] = grey
        while stack:
            node, children = stack[-1]
            for child in children:
                if color[child] == grey:
                    cycle = [child]
                    while node != child:
                        cycle.append(node)
                        node = parent[node]
                    return [child] + cycle[1:][::-1] + [child]
                if color[child] == white:
                    color[child], parent[child] = grey, node
                    stack.append((child, iter(sorted(graph[child]))))
                    break
            else:
                color[node] = black
                stack.pop()
    return None


def test_graph_builder_resolves_relative_imports_and_finds_cycles():
    graph = _import_graph()
    assert f"{ROOT}.complexity.sweep" in graph[f"{ROOT}.complexity.cli"]
    assert f"{ROOT}.oracles" in graph[f"{ROOT}.complexity.trace"]  # `from ..oracles import ...`
    assert f"{ROOT}.complexity" in graph[ROOT]  # `from . import complexity`
    assert _find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a", "b", "c", "a"]
    assert _find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycles():
    cycle = _find_cycle(_import_graph())
    assert cycle is None, "import cycle (module-level imports): " + " -> ".join(cycle)


_IMPORT_EACH = """
import importlib, json, sys, traceback
failed = {}
for name in json.loads(sys.argv[1]):
    for key in [k for k in sys.modules if k == "bilevel_ref" or k.startswith("bilevel_ref.")]:
        del sys.modules[key]
    try:
        importlib.import_module(name)
    except BaseException:
        failed[name] = traceback.format_exc(limit=-3)
print(json.dumps(failed))
"""


def test_every_module_imports_on_its_own():
    names = sorted(_modules())
    proc = subprocess.run([sys.executable, "-c", _IMPORT_EACH, json.dumps(names)], capture_output=True,
                          text=True, timeout=300, cwd=PACKAGE_DIR.parent)
    assert proc.returncode == 0, proc.stderr
    failed = json.loads(proc.stdout.strip().splitlines()[-1])
    assert not failed, "modules that fail to import on their own:\n" + "\n".join(
        f"{name}:\n{tb}" for name, tb in failed.items())
