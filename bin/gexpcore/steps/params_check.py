"""`gexp check-params`: the pipeline's parameters against nextflow_schema.json.

nf-schema does this inside Nextflow, but it is a plugin, and plugins come from a registry
that air-gapped clusters (and this project's CI) cannot reach. The schema stays the one
description of the parameters (launch forms and nf-core tools read it); this module applies
it with the `jsonschema` package, so the pipeline runs with no plugin at all.

Whether a path exists is the launching Nextflow's question, not this process's: inside a
container only staged files are visible, and Nextflow resolves s3:// or https:// paths
that Python cannot. main.nf therefore sends, beside the parameters, which of the schema's
`exists` paths Nextflow found (the `exists` map); run by hand, the local file system answers.
"""

from __future__ import annotations

import argparse
import difflib
import json
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from ..errors import GexpError
from ..files import atomic_write, read_json

PATH_FORMATS = ("file-path", "directory-path", "path")
# Parameters Nextflow itself or nf-core boilerplate may set that are no pipeline option.
IGNORED = frozenset({"help", "validate_params"})


def schema_properties(schema: Mapping[str, Any]) -> dict[str, dict]:
    """Every parameter of an nf-core schema: its top-level properties and each $defs group's."""
    found = dict(schema.get("properties", {}))
    for group in schema.get("$defs", schema.get("definitions", {})).values():
        found.update(group.get("properties", {}))
    return found


def _validator(schema: Mapping[str, Any], exists: Mapping[str, bool] | None):
    """A Draft 2020-12 validator that knows nf-schema's path formats and `exists` keyword."""
    from jsonschema import Draft202012Validator, FormatChecker, validators
    from jsonschema.exceptions import ValidationError

    formats = FormatChecker()
    for name in PATH_FORMATS:
        formats.checks(name)(lambda value: isinstance(value, str) and value.strip() != "")

    def check_exists(validator, wanted, value, subschema) -> Iterator[ValidationError]:
        if not wanted or not isinstance(value, str):
            return
        if exists is not None and value in exists:
            found = exists[value]
        elif "://" in value:  # an object store or URL: Nextflow's to check, not ours
            return
        else:
            found = Path(value).exists()
        if not found:
            yield ValidationError(f"'{value}' does not exist")

    cls = validators.extend(Draft202012Validator, {"exists": check_exists})
    return cls(schema, format_checker=formats)


def coerce(params: Mapping[str, Any], known: Mapping[str, dict]) -> dict[str, Any]:
    """Command-line values as the schema types them. Nextflow 24.10 turns `--bin_size 500`
    into a number itself; 25.10 with the strict parser (the default from 26.04) passes every
    command-line value as a string. A string that is not a valid value is left as it is, for
    the schema to name."""
    typed = {}
    for name, value in params.items():
        kind = known.get(name, {}).get("type")
        kinds = kind if isinstance(kind, list) else [kind]
        if isinstance(value, str) and "string" not in kinds:
            text = value.strip()
            if "boolean" in kinds and text.lower() in ("true", "false"):
                value = text.lower() == "true"
            elif "integer" in kinds and re.fullmatch(r"[+-]?\d+", text):
                value = int(text)
            elif "number" in kinds and re.fullmatch(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?", text):
                value = float(text)
        typed[name] = value
    return typed


def check_params(
    schema: Mapping[str, Any],
    params: Mapping[str, Any],
    exists: Mapping[str, bool] | None = None,
) -> list[str]:
    """One line per problem, naming the parameter as the user types it (--name)."""
    known = schema_properties(schema)
    given = coerce({k: v for k, v in params.items() if v is not None and k not in IGNORED}, known)
    problems = []
    for name in sorted(set(given) - set(known)):
        close = difflib.get_close_matches(name.replace("-", "_"), list(known), n=1)
        hint = f" (did you mean --{close[0]}?)" if close else ""
        problems.append(f"--{name}: not a parameter of this pipeline{hint}")
    for error in sorted(_validator(schema, exists).iter_errors(given), key=str):
        where = ".".join(str(p) for p in error.absolute_path)
        if where:
            problems.append(f"--{where}: {_plain(error)}")
        else:
            problems.append(_plain(error))
    return problems


def _plain(error) -> str:
    """jsonschema's message without Python reprs of long values, which say nothing new."""
    if error.validator == "enum":
        return f"'{error.instance}' is not one of: {', '.join(map(str, error.validator_value))}"
    if error.validator == "required":
        missing = error.message.split("'")[1] if "'" in error.message else error.message
        return f"--{missing} is required"
    if error.validator == "pattern":
        return f"'{error.instance}' does not match {error.validator_value}"
    return error.message


def validate_params_file(schema_path: Path, params_path: Path, out: Path | None) -> None:
    """Check the parameters main.nf wrote; on success copy them (without the exists map) to
    `out`, the run's pipeline_info/params.json; on failure, one error naming every problem."""
    schema = read_json(schema_path, "parameter schema")
    document = read_json(params_path, "parameters")
    params = document.get("params", document)
    exists = document.get("exists") if "params" in document else None
    params = coerce(params, schema_properties(schema))
    problems = check_params(schema, params, exists)  # coercing again changes nothing
    if problems:
        noun = "parameter" if len(problems) == 1 else "parameters"
        raise GexpError(f"invalid {noun}: " + "; ".join(problems))
    if out is not None:
        with atomic_write(out) as fh:
            json.dump(params, fh, indent=2, sort_keys=True)
            fh.write("\n")


# -- the command line: `gexp check-params` -----------------------------------------------------


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--schema", required=True, type=Path, help="nextflow_schema.json")
    p.add_argument(
        "--params",
        required=True,
        type=Path,
        help="parameters as JSON, or main.nf's {params, exists} document; - reads stdin",
    )
    p.add_argument("--out", type=Path, help="where to write the checked parameters (JSON)")


def run(a: argparse.Namespace) -> None:
    validate_params_file(a.schema, a.params, a.out)
