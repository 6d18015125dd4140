"""``bilevel-ref crosscheck export|check|list``."""
from __future__ import annotations

import argparse
import sys
import traceback

from ._format import DTYPES, EXIT_INPUT, EXIT_INTERNAL, EXIT_MISMATCH, EXIT_PASS, MANIFEST, CrosscheckInputError
from .golden_io import load_golden, read_npz

__all__ = ["main"]

_EXIT_HELP = """exit status:
  0  every checked quantity is within its tolerance (export, list, check DIR: success)
  1  a quantity is outside its tolerance or non-finite -- and only that
  2  damaged or malformed input: a truncated/corrupt .npz, a manifest that is
     not JSON, of another major version, or violates the schema (e.g. lacks
     'tolerances'), an array the manifest lists but a file lacks or holds with
     another shape, a file whose SHA-256 differs from the manifest's, a
     candidate array with an unknown name or the wrong shape, a quantity
     --require-all needs but the candidate lacks; or a usage error.  One line
     on stderr names the file and the field.
  3  unexpected internal error (a bug: the traceback is printed)"""


def _parser():
    fmt = argparse.RawDescriptionHelpFormatter
    ap = argparse.ArgumentParser(prog="bilevel-ref crosscheck", formatter_class=fmt, epilog=_EXIT_HELP,
                                 description="Export golden cases, validate a golden directory, or check "
                                             "candidate outputs against it.")
    sub = ap.add_subparsers(dest="cmd", required=True)
    ex = sub.add_parser("export", help="write golden cases (.npz + manifest.json)")
    ex.add_argument("directory")
    ex.add_argument("--case", action="append", default=None, help="only these cases (repeat)")
    ck = sub.add_parser("check", help="validate a golden directory (schema, shapes, checksums) and, given an "
                                      "outputs .npz (keys 'case/array'), compare it with the golden cases",
                        formatter_class=fmt, epilog=_EXIT_HELP)
    ck.add_argument("directory")
    ck.add_argument("outputs", nargs="?", default=None,
                    help=".npz with keys 'case/array', or 'self' to recheck this library "
                         "(omitted: validate the directory only)")
    ck.add_argument("--dtype", choices=DTYPES, default="float64")
    ck.add_argument("--require-all", action="store_true",
                    help="every golden output must be in the candidate (a missing one exits 2)")
    ls = sub.add_parser("list", help="list the cases of a golden directory")
    ls.add_argument("directory")
    return ap


def _read_candidate(path, cases, require_all):
    """A candidate ``.npz`` (keys ``case/array``) as ``{case: {array: values}}``, validated against the
    golden cases: every key a known case and output, real numeric, of the golden shape (and with
    ``require_all`` every golden output present); :class:`CrosscheckInputError` otherwise."""
    arrays = read_npz(path, "candidate")
    if not arrays:
        raise CrosscheckInputError(path, None, "the archive holds no arrays (expected keys 'case/array')")
    out = {}
    for key, arr in arrays.items():
        case, sep, name = key.partition("/")
        if not sep or not name:
            raise CrosscheckInputError(path, key, "array names must be 'case/array'", kind="array")
        if case not in cases:
            raise CrosscheckInputError(path, key, f"unknown case {case!r}; golden cases: {list(cases)}",
                                       kind="array")
        ref = cases[case].outputs.get(name)
        if ref is None:
            raise CrosscheckInputError(path, key, f"case {case!r} has no output {name!r}; its outputs: "
                                                  f"{sorted(cases[case].outputs)}", kind="array")
        if arr.dtype.kind not in "biuf":
            raise CrosscheckInputError(path, key, f"not a real numeric array (dtype {arr.dtype})", kind="array")
        if arr.shape != ref.shape:
            raise CrosscheckInputError(path, key, f"shape {arr.shape} differs from the golden shape {ref.shape}",
                                       kind="array")
        out.setdefault(case, {})[name] = arr
    if require_all:
        for case_name, case in cases.items():
            for name in case.outputs:
                if name not in out.get(case_name, {}):
                    raise CrosscheckInputError(path, f"{case_name}/{name}", "missing (--require-all needs "
                                               "every golden output)", kind="array")
    return out


def _self_outputs(case):
    """Reference outputs for ``check ... self``; data that cannot be rebuilt is an input error."""
    from .reference import reference_outputs

    try:
        return reference_outputs(case)
    except (ValueError, KeyError, IndexError, TypeError, ArithmeticError) as exc:
        raise CrosscheckInputError(case.path or f"{case.name}.npz", None,
                                   f"cannot recompute case {case.name!r} from its data and inputs: "
                                   f"{type(exc).__name__}: {exc}") from None


def main(argv=None):
    """``bilevel-ref crosscheck export|check|list``; returns the exit status.

    :data:`EXIT_PASS` (0), :data:`EXIT_MISMATCH` (1: a quantity outside its
    tolerance, nothing else), :data:`EXIT_INPUT` (2: damaged or malformed
    input, one line on stderr naming the file and the field; usage errors),
    :data:`EXIT_INTERNAL` (3: an unexpected error, traceback printed).
    ``check DIR`` without outputs validates the directory (schema, array
    shapes, checksums) and lists what it holds.
    """
    from . import check_cases, export_golden   # through the package, so tests can patch it

    args = _parser().parse_args(argv)
    try:
        if args.cmd == "export":
            cases = export_golden(args.directory, args.case)
            for c in cases:
                print(f"{c.name}: {c.kind}, {c.family}, outputs {sorted(c.outputs)}")
            print(f"wrote {len(cases)} case(s) and {MANIFEST} to {args.directory}")
            return EXIT_PASS
        if args.cmd == "list":
            for name, c in load_golden(args.directory).items():
                print(f"{name}: {c.kind}, {c.family} — {c.description}; outputs {sorted(c.outputs)}")
            return EXIT_PASS
        cases = load_golden(args.directory)
        if args.outputs is None:
            n_out = sum(len(c.outputs) for c in cases.values())
            print(f"{args.directory}: valid golden directory ({len(cases)} case(s), {n_out} outputs; schema, "
                  f"shapes and SHA-256 checksums verified)")
            return EXIT_PASS
        if args.outputs == "self":
            outputs = _self_outputs
        else:
            outputs = _read_candidate(args.outputs, cases, args.require_all)
        report = check_cases(cases, outputs, args.dtype, args.require_all)
    except (CrosscheckInputError, OSError, ValueError) as exc:
        # damaged input (CrosscheckInputError), a missing directory or manifest, an unknown --case
        print(f"bilevel-ref crosscheck: error: {' '.join(str(exc).split())}", file=sys.stderr)
        return EXIT_INPUT
    except Exception:  # noqa: BLE001 - exit 1 must keep meaning "outside tolerance" only
        traceback.print_exc()
        print("bilevel-ref crosscheck: internal error (a bug in bilevel_ref; please report the traceback above)",
              file=sys.stderr)
        return EXIT_INTERNAL
    print(report.format())
    return EXIT_PASS if report.passed else EXIT_MISMATCH
