"""`gexp check-params`: nextflow_schema.json applied without nf-schema (PARAMS_CHECK)."""

from __future__ import annotations

import json

import pytest
from conftest import ROOT, assert_user_error, run_gexp
from gexpcore.steps.params_check import check_params, schema_properties

SCHEMA = json.loads((ROOT / "nextflow_schema.json").read_text())
DATA = ROOT / "tests" / "data"
VALID = {
    "input": str(DATA / "samplesheet.csv"),
    "outdir": "results",
    "gtf": str(DATA / "reference" / "genes.gtf.gz"),
    "bin_size": 1000,
    "peak_mode": "signal",
    "region": None,  # unset parameters are null in Nextflow's params and are not checked
    "help": False,
}


def test_the_test_profile_parameters_pass():
    assert check_params(SCHEMA, VALID) == []


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"bin_sise": 5}, "--bin_sise: not a parameter of this pipeline (did you mean --bin_size?"),
        ({"peak_mode": "height"}, "--peak_mode: 'height' is not one of: binary,"),
        ({"bin_size": "big"}, "--bin_size: 'big' is not of type 'integer'"),
        ({"bin_size": 0}, "--bin_size: 0 is less than the minimum of 1"),
        ({"region": "chr1 1-100"}, "--region: 'chr1 1-100' does not match"),
        ({"publish_dir_mode": "move"}, "--publish_dir_mode: 'move' is not one of"),
        ({"gtf": "/nonexistent/genes.gtf"}, "--gtf: '/nonexistent/genes.gtf' does not exist"),
        ({"gtf": None}, "--gtf is required"),
    ],
)
def test_each_kind_of_mistake_is_named_by_its_parameter(change, expected):
    problems = check_params(SCHEMA, {**VALID, **change})
    assert len(problems) == 1, problems
    assert problems[0].startswith(expected), problems


def test_existence_is_what_nextflow_saw_when_it_says():
    """In a container the host path is invisible; main.nf's `exists` map is the answer."""
    gone = {**VALID, "gtf": "s3://bucket/genes.gtf"}
    assert check_params(SCHEMA, gone, exists={"s3://bucket/genes.gtf": True}) == []
    assert check_params(SCHEMA, gone, exists={"s3://bucket/genes.gtf": False}) == [
        "--gtf: 's3://bucket/genes.gtf' does not exist"
    ]
    here = {**VALID, "gtf": str(ROOT / "not-there.gtf")}
    assert check_params(SCHEMA, here, exists={str(ROOT / "not-there.gtf"): True}) == []


def test_every_nextflow_config_param_is_in_the_schema():
    """Otherwise a default run would fail its own check as an unknown parameter."""
    import re

    config = (ROOT / "nextflow.config").read_text()
    block = config[config.index("params {") : config.index("\n}", config.index("params {"))]
    names = set(re.findall(r"^\s{4}(\w+)\s*=", block, re.M)) - {"help", "validate_params"}
    assert names - set(schema_properties(SCHEMA)) == set()


def test_cli_writes_the_checked_params_or_one_error_line(tmp_path):
    given = tmp_path / "given.json"
    given.write_text(json.dumps({"params": VALID, "exists": {}}))
    out = tmp_path / "params.json"
    proc = run_gexp(
        "check-params", "--schema", ROOT / "nextflow_schema.json", "--params", given, "--out", out
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(out.read_text())["bin_size"] == 1000

    given.write_text(json.dumps({"params": {**VALID, "bin_size": -1, "max_cpu": 2}}))
    out.unlink()
    proc = run_gexp(
        "check-params", "--schema", ROOT / "nextflow_schema.json", "--params", given, "--out", out
    )
    assert_user_error(proc, "invalid parameters:", "--bin_size: -1", "--max_cpu: not a param")
    assert not out.exists()


def test_unreadable_params_file_is_one_line(tmp_path):
    given = tmp_path / "given.json"
    given.write_text("{not json")
    proc = run_gexp("check-params", "--schema", ROOT / "nextflow_schema.json", "--params", given)
    assert_user_error(proc, str(given), "not valid JSON (line 1")


def test_command_line_strings_are_read_as_the_schema_types():
    """Nextflow 25.10's strict parser passes `--bin_size 500` as "500" and `--early_stopping
    false` as "false": valid values, checked and recorded as the types the schema gives."""
    strings = {
        **VALID,
        "bin_size": "500",
        "early_stopping": "false",
        "cv": "+3",
        "min_score": "2.5",
    }
    assert check_params(SCHEMA, strings) == []
    assert check_params(SCHEMA, {**VALID, "bin_size": "5OO"}) == [
        "--bin_size: '5OO' is not of type 'integer'"
    ]
    assert check_params(SCHEMA, {**VALID, "region": "1"}) == []  # a string stays a string


def test_checked_params_file_holds_the_typed_values(tmp_path):
    given = tmp_path / "given.json"
    given.write_text(json.dumps({"params": {**VALID, "bin_size": "500", "early_stopping": "true"}}))
    out = tmp_path / "params.json"
    proc = run_gexp(
        "check-params", "--schema", ROOT / "nextflow_schema.json", "--params", given, "--out", out
    )
    assert proc.returncode == 0, proc.stderr
    written = json.loads(out.read_text())
    assert written["bin_size"] == 500 and written["early_stopping"] is True
