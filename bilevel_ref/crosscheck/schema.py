"""Validation of a golden manifest against the shipped JSON Schema (``golden.schema.json``).

The schema file is the single statement of the manifest's structure; it is a
standard JSON Schema (draft 2020-12) that any validator accepts.  This module
applies it with a small built-in validator — the keywords the schema uses:
``type``, ``const``, ``enum``, ``required``, ``properties``,
``additionalProperties``, ``items``, ``minItems``, ``minLength``, ``pattern``,
``minimum``, ``anyOf`` and local ``$ref`` — so checking a manifest needs no
optional dependency; the test suite cross-validates with ``jsonschema``.
Numbers must be finite.  After the schema, :func:`validate_manifest` checks
what a schema cannot state: the major version, unique case names, and that
every listed output has a tolerance, a definition and a shape and every case
file a checksum.  Every failure is a :class:`CrosscheckInputError` naming the
field (per case: the case name and the field path inside it).
"""
from __future__ import annotations

import json
import math
import re
from functools import lru_cache
from importlib import resources

from ._format import FORMAT_VERSION, SCHEMA_FILE, CrosscheckInputError

__all__ = ["load_schema", "schema_errors", "validate_manifest"]


@lru_cache(maxsize=1)
def _schema_text():
    return resources.files(__package__).joinpath(SCHEMA_FILE).read_text(encoding="utf-8")


def load_schema():
    """The manifest's JSON Schema (a fresh dict) from the package data."""
    return json.loads(_schema_text())


_TYPES = {"object": "an object", "array": "an array", "string": "a string", "integer": "an integer",
          "number": "a finite number", "boolean": "a boolean", "null": "null"}


def _json_type(value):
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number" if math.isfinite(value) else f"the non-finite number {value}"
    return {dict: "an object", list: "an array", str: "a string", type(None): "null"}.get(
        type(value), type(value).__name__)


def _is(value, typ):
    if typ == "object":
        return isinstance(value, dict)
    if typ == "array":
        return isinstance(value, list)
    if typ == "string":
        return isinstance(value, str)
    if typ == "boolean":
        return isinstance(value, bool)
    if typ == "null":
        return value is None
    if isinstance(value, bool):
        return False
    if typ == "integer":
        return isinstance(value, int)
    if typ == "number":
        return isinstance(value, int) or (isinstance(value, float) and math.isfinite(value))
    raise ValueError(f"schema type {typ!r} not supported")


def _resolve(root, ref):
    if not ref.startswith("#/"):
        raise ValueError(f"only local $ref supported, got {ref!r}")
    node = root
    for part in ref[2:].split("/"):
        node = node[part]
    return node


def schema_errors(instance, schema=None):
    """All violations of ``schema`` (default: the manifest schema) as ``(path, problem)``, path a list
    of keys and indices (depth first; one error per failing keyword)."""
    root = load_schema() if schema is None else schema
    errors = []
    _validate(instance, root, root, [], errors)
    return errors


def _validate(value, schema, root, path, errors):
    if "$ref" in schema:
        _validate(value, _resolve(root, schema["$ref"]), root, path, errors)
    if "anyOf" in schema:
        branches = []
        for sub in schema["anyOf"]:
            errs = []
            _validate(value, sub, root, path, errs)
            if not errs:
                break
            branches.append(errs)
        else:
            # report the most specific failure (deepest path; the first branch on ties)
            errors.append(max((e[0] for e in branches), key=lambda e: len(e[0])))
    if "const" in schema and value != schema["const"]:
        errors.append((path, f"must be {schema['const']!r}, got {value!r}"))
        return
    if "enum" in schema and value not in schema["enum"]:
        errors.append((path, f"must be one of {schema['enum']}, got {value!r}"))
        return
    if "type" in schema:
        types = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        if not any(_is(value, t) for t in types):
            errors.append((path, f"must be {' or '.join(_TYPES[t] for t in types)}, got {_json_type(value)}"))
            return
    if isinstance(value, dict):
        for key in schema.get("required", ()):
            if key not in value:
                errors.append((path + [key], "missing required field"))
        props = schema.get("properties", {})
        for key, sub in props.items():
            if key in value:
                _validate(value[key], sub, root, path + [key], errors)
        extra = schema.get("additionalProperties", True)
        if isinstance(extra, dict):
            for key in value:
                if key not in props:
                    _validate(value[key], extra, root, path + [key], errors)
        elif extra is False:
            for key in value:
                if key not in props:
                    errors.append((path + [key], "unexpected field"))
    if isinstance(value, list):
        if len(value) < schema.get("minItems", 0):
            errors.append((path, "empty: must hold at least one item" if schema["minItems"] == 1 else
                           f"must hold at least {schema['minItems']} items, has {len(value)}"))
        if "items" in schema:
            for i, item in enumerate(value):
                _validate(item, schema["items"], root, path + [i], errors)
    if isinstance(value, str):
        if len(value) < schema.get("minLength", 0):
            errors.append((path, "must be a non-empty string"))
        if "pattern" in schema and not re.search(schema["pattern"], value):
            errors.append((path, f"{value!r} does not match the pattern {schema['pattern']!r}"))
    if "minimum" in schema and _is(value, "number") and value < schema["minimum"]:
        errors.append((path, f"must be a finite number >= {schema['minimum']}, got {value!r}"))


def _locate(manifest, path):
    """(case name or None, field string) of a schema path, for the error message."""
    if len(path) >= 2 and path[0] == "cases" and isinstance(path[1], int):
        entries = manifest.get("cases") if isinstance(manifest, dict) else None
        entry = entries[path[1]] if isinstance(entries, list) and path[1] < len(entries) else None
        name = entry.get("name") if isinstance(entry, dict) else None
        if isinstance(name, str) and name and len(path) > 2:
            return name, ".".join(str(p) for p in path[2:])
    text = ""
    for p in path:
        text += f"[{p}]" if isinstance(p, int) else (f".{p}" if text else str(p))
    return None, text or None


def validate_manifest(path, manifest):
    """Validate a parsed manifest: the JSON Schema, then the cross-field rules (module docstring).

    Raises
    ------
    CrosscheckInputError
        On the first violation, naming ``path``, the case and the field.
    """
    def fail(field, problem, case=None):
        raise CrosscheckInputError(path, field, problem, case=case)

    if isinstance(manifest, dict) and isinstance(manifest.get("version"), str):
        # the version first: a manifest of another major version may have another structure
        major = manifest["version"].split(".")[0]
        if major.isdigit() and major != FORMAT_VERSION.split(".")[0]:
            fail("version", f"format version {manifest['version']} is not readable by this library "
                            f"(format {FORMAT_VERSION}; re-export the cases or upgrade bilevel_ref)")
    if not isinstance(manifest, dict):
        fail(None, f"the manifest must be a JSON object, got {_json_type(manifest)}")
    errors = schema_errors(manifest)
    if errors:
        where, problem = errors[0]
        case, field = _locate(manifest, where)
        fail(field, problem, case)
    seen = set()
    files = manifest["provenance"]["files"]
    for entry in manifest["cases"]:
        name = entry["name"]
        if name in seen:
            fail("name", "duplicate case name", name)
        seen.add(name)
        if entry["file"] not in files:
            fail(f"provenance.files.{entry['file']}", f"missing: no checksum for the file of case {name!r}")
        listed = {f"data/{k}" for k in entry["data"]} | {f"input/{k}" for k in entry["inputs"]} | \
            {f"output/{k}" for k in entry["outputs"]}
        for key in sorted(listed):
            if key not in entry["shapes"]:
                fail(f"shapes.{key}", "missing (every listed array needs its shape)", name)
        for out in entry["outputs"]:
            for what in ("tolerances", "definitions"):
                if out not in entry[what]:
                    fail(f"{what}.{out}", f"missing (every listed output needs its {what[:-1]})", name)
            for dt in ("float64", "float32"):
                if entry["tolerances"][out][dt]["dtype"] != dt:
                    fail(f"tolerances.{out}.{dt}.dtype", f"must be {dt!r}, got "
                         f"{entry['tolerances'][out][dt]['dtype']!r}", name)
            if entry["tolerances"][out]["float64"]["rtol"] is None:
                fail(f"tolerances.{out}.float64.rtol", "must be a number (float64 is the reference precision)",
                     name)
