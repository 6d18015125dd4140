r"""Golden cases for cross-checking other implementations (JAX, PyTorch, CUDA, ...).

A *golden directory* holds one ``.npz`` file per case and a JSON manifest
(``manifest.json``).  Each case fixes a problem completely — by its raw data
arrays, not by our random generator, so another library can rebuild it — plus
inputs and reference outputs computed by this library in float64.  npz keys
are ``data/<name>`` (problem data), ``input/<name>`` and ``output/<name>``.

The format (:data:`FORMAT_VERSION` 2.0) is self-describing: the manifest
carries its version (a reader rejects another major version), the name of
its JSON Schema (``golden.schema.json``, shipped in this package,
:func:`~bilevel_ref.crosscheck.schema.load_schema`), the conventions
(L*_λ, the roles of the inexact iterates y and w, the cubic multiplier
λ = (M/2)‖s‖, the hard-case sign rule), per case the shape of every array and
the mathematical definition of every output, per output the parts of a
first-order error model (condition number, cancellation ratio, coupling), its
*amplification* and tolerances for float64 and float32 candidates that follow
from it (:mod:`.tolerances`: λ- and condition-aware; float32 ≤ 1e-4 relative
or declared unsupported with the measured float32 error), and a provenance block (library version, git commit,
NumPy/Python versions, SHA-256 of every case file; per case the generator,
its arguments and the seed).

Case kinds: ``bilevel`` (quadratic at λ = 10 … 10⁴, an upper level
nonconvex in y, logistic learn-to-regularize; y*, φ, ∇φ, ∇²φ, penalty
minimiser, gradient, Hessian and their estimators at inexact (y, w)),
``estimators`` (finite-step AID-CG, AID-Neumann, ITD, the F2SA-p
finite-difference estimator, the matrix-free penalty Hessian product),
``minimax`` (NC-SC double well), ``minibatch`` (fixed minibatches of a
finite-sum quadratic), ``cubic`` (dense and matrix-free cubic subproblems,
hard case, Krylov iterate) and ``trajectory`` (AID iterates).

Damaged or malformed input — a truncated ``.npz``, a manifest that is not
JSON or violates the schema, an array the manifest lists but the file lacks
or holds with another shape, a checksum mismatch — raises
:class:`CrosscheckInputError` (a :class:`ValueError`) whose one-line message
names the file and the field.  ``bilevel-ref crosscheck`` exits with
:data:`EXIT_INPUT` (2) on it; :data:`EXIT_MISMATCH` (1) means only that a
quantity is outside its tolerance.

Errors are normwise: ``max_abs`` = max|out − ref|, ``max_rel`` = max_abs /
max|ref|; an array passes iff ``max_abs <= atol + rtol * max|ref|``.

Typical use::

    export_golden("golden/")                      # or: bilevel-ref crosscheck export golden/
    outputs = {"quadratic-5x4": {"grad_phi": my_grad_phi(...), ...}, ...}
    report = check("golden/", outputs, dtype="float32")
    print(report.format()); assert report.passed
"""
from ._format import (CONVENTIONS, DTYPES, EXIT_INPUT, EXIT_INTERNAL, EXIT_MISMATCH, EXIT_PASS, FORMAT_VERSION,
                      MANIFEST, OUTPUT_DEFINITIONS, CrosscheckInputError, GoldenCase)
from .cases import default_cases
from .cli import main
from .compare import CheckReport, check, check_cases
from .golden_io import export_golden, load_golden
from .reference import newton, rebuild_problem, reference_outputs, reference_with_amplification
from .schema import load_schema, validate_manifest

__all__ = ["FORMAT_VERSION", "GoldenCase", "CheckReport", "CrosscheckInputError", "export_golden", "load_golden",
           "check", "check_cases", "reference_outputs", "reference_with_amplification", "rebuild_problem",
           "default_cases", "load_schema", "validate_manifest", "main", "CONVENTIONS", "OUTPUT_DEFINITIONS",
           "EXIT_PASS", "EXIT_MISMATCH", "EXIT_INPUT", "EXIT_INTERNAL", "MANIFEST", "DTYPES", "newton"]
