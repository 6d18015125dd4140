"""The README cannot drift: its commands and code run, its synopses match the commands.

- every ```` ```bash ```` line is run (``pip install ... &&`` prefixes stripped;
  ``bilevel-ref ...`` through ``python -m bilevel_ref.cli``, in a temporary
  directory) except the test command itself (``python -m pytest``: this suite);
- every ```` ```python ```` block is run in a fresh interpreter;
- every inline ```` `bilevel-ref ...` ```` synopsis names an existing
  (sub-)command, and each ``--flag`` it shows is in that command's ``--help``;
- the main command's sample output (the block after it) and the starting test
  accuracy quoted in the prose agree with what the command prints and records.
"""
import json
import os
import pathlib
import re
import shlex
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.S | re.M)
BLOCKS = [(m.group(1), m.group(2), m.end()) for m in FENCE.finditer(README)]
#: commands not run here: the test command runs this very suite
NOT_RUN = ("python -m pytest",)


def _commands():
    out = []
    for lang, body, end in BLOCKS:
        if lang not in ("bash", "sh", "console"):
            continue
        for line in body.replace("\\\n", " ").splitlines():
            line = re.sub(r"^(\s*pip install [^&]*&&\s*)+", "", line.strip())
            if line and not line.startswith("#") and not line.startswith(NOT_RUN):
                out.append((line, end))
    return out


COMMANDS = _commands()
PYTHON_BLOCKS = [body for lang, body, _ in BLOCKS if lang == "python"]
SYNOPSES = sorted({s.replace("\\|", "|") for s in re.findall(r"`(bilevel-ref [^`]+)`", README)})


def _env():
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
    return dict(os.environ, PYTHONPATH=path, MPLBACKEND="Agg")


def _run(argv, cwd):
    proc = subprocess.run(argv, cwd=cwd, env=_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"{argv}: exit {proc.returncode}\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"
    return proc.stdout


def _argv(command):
    words = shlex.split(command)
    if words[0] == "bilevel-ref":  # the package in this tree, whatever console script is on PATH
        return [sys.executable, "-m", "bilevel_ref.cli", *words[1:]]
    if words[0] == "python":
        return [sys.executable, *words[1:]]
    pytest.fail(f"README command of an unknown kind: {command}")


def test_readme_has_what_these_tests_read():
    assert any(c.startswith("bilevel-ref compare") for c, _ in COMMANDS) and PYTHON_BLOCKS
    assert any(s.startswith("bilevel-ref complexity") for s in SYNOPSES)


@pytest.mark.parametrize("command,end", COMMANDS, ids=[c[:60] for c, _ in COMMANDS])
def test_readme_command_runs(command, end, tmp_path):
    stdout = _run(_argv(command), tmp_path)
    if not command.startswith("bilevel-ref compare"):
        return
    # the sample output shown after the command: header line, and method/status/calls of each row
    sample = next(body for lang, body, start in BLOCKS if lang == "" and start > end).splitlines()
    lines = stdout.splitlines()
    assert sample[0] == lines[0]
    table = lines[lines.index(next(x for x in lines if x.startswith("method"))) + 2:]
    rows = {r.split()[0]: r.split() for r in table if r.strip() and not r.startswith(("wrote", "skipped"))}
    for row in sample[2:]:
        name, status, _, calls = row.split()[:4]  # iteration counts may vary with the BLAS: not compared
        assert (rows[name][1], rows[name][3]) == (status, calls), row
    # the prose's starting test accuracy is the recorded first point of every curve
    quoted = float(re.search(r"test accuracy rises from ([0-9.]+)", README).group(1))
    record = json.loads(next((tmp_path / "bilevel-ref-out").glob("*.json")).read_text())
    for run in record["runs"].values():
        assert round(run["curve"]["test_accuracy"][0], 2) == quoted


@pytest.mark.parametrize("code", PYTHON_BLOCKS, ids=[f"block{i}" for i in range(len(PYTHON_BLOCKS))])
def test_readme_python_block_runs(code, tmp_path):
    _run([sys.executable, "-c", code], tmp_path)


@pytest.mark.parametrize("synopsis", SYNOPSES)
def test_readme_synopsis_matches_the_command(synopsis, capsys):
    from bilevel_ref.cli import main

    words = synopsis.split()[1:]
    path = []  # the leading lower-case words: sub-command, its action or bench name, positionals
    for word in words:
        if not re.fullmatch(r"[a-z][a-z0-9_|-]*", word):
            break
        path.append(word.split("|"))
    assert path, synopsis
    flags = set(re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*)", synopsis))
    # one --help per alternative of the first ambiguous word (`bench cubic|second-order|stochastic`)
    for alt in next((w for w in path if len(w) > 1), [None]):
        argv = [w[0] if len(w) == 1 else alt for w in path]
        try:
            code = main([*argv, "--help"])
        except SystemExit as exc:  # argparse's --help
            code = exc.code
        text = capsys.readouterr().out
        assert code == 0 and "usage:" in text, (synopsis, argv)
        missing = sorted(f for f in flags if not re.search(re.escape(f) + r"(?![\w-])", text))
        assert not missing, f"{synopsis}: {missing} not in `bilevel-ref {' '.join(argv)} --help`"
