"""The Nextflow layer held to the Python code, statically (no Nextflow runtime on our machines).

What these tests guarantee: every .nf and config file parses (reftrace) and balances;
includes resolve; every process follows the nf-core conventions we promise; every `gexp`
call in a process names a subcommand and flags the CLI accepts; every parameter is declared
and documented; main.nf runs the same steps as `gexp run` and publishes the same layout.
What they cannot: run the processes. The nf-test files do that where Nextflow runs.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import reftrace
from conftest import run_gexp
from nextflow_source import (
    ROOT,
    ext_args,
    params_declared,
    params_used,
    processes,
    unbalanced,
    without_heredoc_text,
    workflow_calls,
)

PROCESSES = processes()
BY_NAME = {p.name: p for p in PROCESSES}
MAIN = (ROOT / "main.nf").read_text()
CONFIG = (ROOT / "nextflow.config").read_text()
MODULES_CONFIG = (ROOT / "conf" / "modules.config").read_text()
BASE_CONFIG = (ROOT / "conf" / "base.config").read_text()
CONFIGS = [
    ROOT / "nextflow.config",
    *sorted((ROOT / "conf").glob("*.config")),
    ROOT / "nf-test.config",
    ROOT / "tests" / "nextflow.config",
]
NF_FILES = [ROOT / "main.nf", *(p.path for p in PROCESSES)]
PER_SAMPLE = {"FASTQ_CHECK", "KALLISTO_QUANT", "GENE_TPM", "PEAK_BINS"}


def ids(items):
    return [Path(i).relative_to(ROOT).as_posix() if isinstance(i, Path) else i.name for i in items]


@pytest.mark.parametrize("path", NF_FILES, ids=ids(NF_FILES))
def test_nf_file_parses(path):
    module = reftrace.Module.from_file(str(path))
    assert not isinstance(module, reftrace.ParseError), getattr(module, "error", module)
    assert module.dsl_version == 2
    assert unbalanced(path.read_text()) is None, unbalanced(path.read_text())


@pytest.mark.parametrize(
    "broken",
    [
        'process X {\n script:\n """\n echo\n}\n',  # unterminated script string
        "workflow {\n  A(x\n}\n",  # unclosed call
        "x = 'no end\n",
    ],
)
def test_the_balance_check_catches_broken_sources(broken):
    assert unbalanced(broken) is not None


@pytest.mark.parametrize("path", CONFIGS, ids=ids(CONFIGS))
def test_config_parses(path):
    result = reftrace.ConfigFile.from_file(str(path))
    assert result.error is None, result.error
    assert unbalanced(path.read_text()) is None, unbalanced(path.read_text())


def test_includes_resolve_to_the_named_process():
    includes = re.findall(r"include\s*\{\s*(\w+)\s*\}\s*from\s*'(\./[^']+)'", MAIN)
    assert includes
    for name, source in includes:
        target = ROOT / source
        target = target / "main.nf" if target.is_dir() else target.with_suffix(".nf")
        assert target.is_file(), f"include {name} from {source}: no such file"
        assert re.search(rf"^process\s+{name}\s*\{{", target.read_text(), re.M), (name, target)
    assert {n for n, _ in includes} == set(BY_NAME), "every local module is used by main.nf"


@pytest.mark.parametrize("proc", PROCESSES, ids=ids(PROCESSES))
def test_process_conventions(proc):
    module = reftrace.Module.from_file(str(proc.path))
    (parsed,) = module.processes
    labels = set(re.findall(r"withLabel:\s*(\w+)", BASE_CONFIG))
    assert parsed.first_label and parsed.first_label.value in labels, "label from conf/base.config"
    assert parsed.first_tag, "tag"
    conda = parsed.first_conda
    assert conda, "conda directive"
    env = re.search(r"envs/[\w.-]+\.yml", proc.text)
    assert env and (ROOT / env.group(0)).is_file(), "conda points at an envs/*.yml"
    container = parsed.first_container
    assert container, "container directive"
    images = re.findall(r"'([^']+:[^']+)'", proc.text.split("input:")[0])
    assert "params.gexp_container" in proc.text or images, "a pinned image"
    for image in images:
        assert not image.endswith(":latest") and re.search(r":[\w.]+--\w+", image), image
    emits = proc.emits()
    assert "versions" in emits and '"versions.yml"' in emits["versions"]
    assert "task.ext.when == null || task.ext.when" in proc.section("when")
    assert "task.ext.args" in proc.section("script")
    assert "END_VERSIONS > versions.yml" in proc.script_body("script")
    # bash does not wait for a process substitution: a file written by `2> >(tee f)` may not
    # exist yet when the task ends (seen in CI). A pipe, under pipefail, is waited for.
    assert ">(" not in proc.script_body("script"), "no process substitution"
    if "|" in without_heredoc_text(proc.script_body("script")):
        assert "pipefail" in (ROOT / "nextflow.config").read_text()
    stub = proc.script_body("stub")
    assert stub.strip(), "stub block"
    assert "versions.yml" in stub
    for out in proc.output_paths():
        leaf = Path(out).name.replace("${prefix}", "").replace("${meta.id}", "")
        if "*" in leaf:  # a glob: the stub must create something in its folder
            if f"--outdir {Path(out).parent} " in stub:  # a gexp command writes there
                continue
            leaf = f"{Path(out).parent}/"
        assert leaf in stub, f"stub creates {out}"
    if proc.name in PER_SAMPLE:
        assert "tuple val(meta)" in proc.section("input")
        assert "tuple val(meta)" in proc.section("output")


@pytest.mark.parametrize("proc", PROCESSES, ids=ids(PROCESSES))
def test_process_script_is_one_tool_or_one_gexp_subcommand(proc):
    body = without_heredoc_text(proc.script_body("script").split("cat <<-END_VERSIONS")[0])
    commands = [ln.split()[0] for ln in body.replace("\\\\\n", " ").splitlines() if ln.strip()]
    assert len(commands) == 1, commands
    assert commands[0] in {"gexp", "kallisto"}


def _subparsers():
    from gexpcore.cli import build_parser

    parser = build_parser()
    action = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    return action.choices


@pytest.mark.parametrize(
    "proc",
    [p for p in PROCESSES if "gexp " in p.text],
    ids=ids([p for p in PROCESSES if "gexp " in p.text]),
)
def test_gexp_calls_match_the_cli(proc):
    subparsers = _subparsers()
    (call,) = proc.commands("gexp")
    subcommand = call[1]
    assert subcommand in subparsers, f"gexp {subcommand}: no such subcommand"
    sub = subparsers[subcommand]
    known = {s for a in sub._actions for s in a.option_strings}
    flags = [w for w in call if w.startswith("--")]
    selector = next((s for s in ext_args(MODULES_CONFIG) if proc.name in s.split("|")), None)
    flags += ext_args(MODULES_CONFIG).get(selector, [])
    for flag in flags:
        assert flag in known, f"gexp {subcommand} has no option {flag}"
    required = {a.option_strings[0] for a in sub._actions if a.required and a.option_strings}
    assert required <= set(flags), f"missing required {required - set(flags)}"


def test_kallisto_quant_module_matches_the_runner_command():
    from gexpcore.steps.quantify import kallisto_quant_command

    (call,) = BY_NAME["KALLISTO_QUANT"].commands("kallisto")
    single = re.search(r"def single = .*\"(--single[^\"]*)\"", BY_NAME["KALLISTO_QUANT"].text)
    module_flags = {w for w in call if w.startswith("-")} | {
        w for w in single.group(1).split() if w.startswith("-")
    }
    runner = kallisto_quant_command("idx", "out", ["r.fq"], [], 200, 20, 2)
    assert {w for w in runner if w.startswith("-")} == module_flags
    (index_call,) = BY_NAME["KALLISTO_INDEX"].commands("kallisto")
    assert index_call[:2] == ["kallisto", "index"] and "-i" in index_call


def test_envs_are_pinned():
    for env in (ROOT / "envs").glob("*.yml"):
        deps = re.findall(r"^\s*-\s*(\S+)\s*$", env.read_text().split("dependencies:")[1], re.M)
        assert deps
        for dep in deps:
            assert re.search(r"=\d", dep), f"{env.name}: {dep} is not pinned"


def _schema_params() -> dict[str, dict]:
    schema = json.loads((ROOT / "nextflow_schema.json").read_text())
    params = {}
    for group in schema["$defs"].values():
        params.update(group["properties"])
    refs = {r["$ref"].split("/")[-1] for r in schema["allOf"]}
    assert refs == set(schema["$defs"]), "every schema group is referenced in allOf"
    return params


def test_every_param_is_declared_and_documented():
    declared = params_declared(CONFIG)
    used = params_used(MAIN) | params_used(MODULES_CONFIG) | params_used(BASE_CONFIG)
    for path in [*(p.path for p in PROCESSES), *(ROOT / "conf").glob("*.config")]:
        used |= params_used(path.read_text())
    assert used - declared == set(), "params used but not declared in nextflow.config"
    schema = _schema_params()
    assert declared == set(schema), declared ^ set(schema)
    for name, spec in schema.items():
        assert spec.get("description"), f"{name} has no description"


def test_schema_defaults_agree_with_nextflow_config():
    block = re.search(r"^params\s*\{(.*?)^\}", CONFIG, re.M | re.S).group(1)
    for name, spec in _schema_params().items():
        value = re.search(rf"^\s*{name}\s*=\s*(.+?)\s*$", block, re.M).group(1)
        if value == "null":
            assert "default" not in spec, name
            continue
        literal = json.loads(value.replace("'", '"'))
        assert spec.get("default") == literal, (name, value, spec.get("default"))


def test_main_runs_the_same_steps_as_gexp_run():
    from gexpcore.steps.run import STEPS

    assert workflow_calls(MAIN, "GEXP") == STEPS


def test_gexp_run_executes_the_steps_in_that_order(sim, tmp_path):
    from gexpcore.steps.run import STEPS, Runner, RunParams
    from gexpcore.steps.train import TrainSettings

    ref = sim / "reference"
    runner = Runner(
        RunParams(
            sim / "samplesheet.csv",
            ref / "transcripts.fa.gz",
            ref / "genes.gtf.gz",
            ref / "chrom.sizes",
            tmp_path,
            threads=1,
            training=TrainSettings(epochs={"seed_mlp": 20}),
        )
    )
    runner.run()
    assert runner.executed == STEPS


def _publish_rule(name: str) -> tuple[str, str] | None:
    """(folder under outdir, prefix that saveAs strips) for a process, or None if unpublished."""
    for match in re.finditer(r"withName:\s*'([^']+)'\s*\{(.*?)\n    \}", MODULES_CONFIG, re.S):
        if name in match.group(1).split("|") and "publishDir" in match.group(2):
            body = match.group(2)
            if "enabled: false" in body:
                return None
            path = re.search(r'path:\s*\{\s*"\$\{params\.outdir\}([^"]*)"', body)
            strip = re.search(r"replaceFirst\('([^']+)', ''\)", body)
            return path.group(1).strip("/"), strip.group(1) if strip else ""
    return name.lower(), ""


LOCAL_RUN = [p for p in PROCESSES if p.name != "FETCH"]  # FETCH: see test_fetch_run.py, which
# runs `gexp run` on remote inputs and checks fetch/ against this module's outputs.


@pytest.mark.parametrize("proc", LOCAL_RUN, ids=ids(LOCAL_RUN))
def test_published_files_are_where_gexp_run_writes_them(proc, run_result, request):
    rule = _publish_rule(proc.name)
    if rule is None:
        return
    folder, strip = rule
    # PSEUDOBULK runs on multiome libraries, which the bulk simulation has none of; PREDICT and
    # PREDICTIONS on samples with ATAC-seq only, which it has none of either
    multiome = proc.name == "PSEUDOBULK"
    predicts = proc.name in ("PREDICT", "PREDICTIONS")
    if multiome:
        run_result = request.getfixturevalue("gexp_multiome_run")
    if predicts:
        run_result = request.getfixturevalue("gexp_predict_run")
    for out in proc.output_paths():
        if out == "versions.yml":
            continue
        meta_id = "lib1" if multiome else "P001" if predicts else "S001"
        relative = out.replace("${prefix}", meta_id).replace("${meta.id}", meta_id)
        if strip and relative.startswith(strip):
            relative = relative[len(strip) :]
        found = list((run_result / folder).glob(relative))
        assert found, f"{proc.name} publishes {folder}/{relative}; gexp run does not"


def test_profiles_exist():
    block = re.search(r"^profiles\s*\{(.*?)^\}", CONFIG, re.M | re.S).group(1)
    names = set(re.findall(r"^    (\w+)\s*\{", block, re.M))
    assert {"docker", "singularity", "apptainer", "conda", "slurm", "gpu", "test"} <= names
    slurm = (ROOT / "conf" / "slurm.config").read_text()
    for needle in ("executor", "params.slurm_queue", "queueSize", "params.slurm_cluster_options"):
        assert needle in slurm
    gpu = (ROOT / "conf" / "gpu.config").read_text()
    assert "accelerator" in gpu and "--gpus all" in gpu and "--nv" in gpu


def test_manifest_and_pipeline_info_reports():
    for needle in ("name", "version", "nextflowVersion"):
        assert re.search(rf"^\s*{needle}\s*=", CONFIG.split("manifest")[1].split("}")[0], re.M)
    for report in ("timeline", "report", "trace", "dag"):
        block = re.search(rf"^{report}\s*\{{(.*?)^\}}", CONFIG, re.M | re.S)
        assert block and "pipeline_info/" in block.group(1) and "enabled = true" in block.group(1)


def test_base_config_retries_on_resource_kills_and_caps_requests():
    assert "task.exitStatus in (137..140) ? 'retry'" in BASE_CONFIG
    assert "resourceLimits" in BASE_CONFIG and "maxRetries" in BASE_CONFIG


def test_test_profile_points_at_bundled_data():
    text = (ROOT / "conf" / "test.config").read_text()
    paths = re.findall(r'"\$\{projectDir\}/([^"]+)"', text)
    assert len(paths) == 4
    for path in paths:
        assert (ROOT / path).is_file(), path
    assert "resourceLimits" in text


@pytest.mark.parametrize("proc", PROCESSES, ids=ids(PROCESSES))
def test_every_module_has_an_nf_test(proc):
    test = ROOT / "tests" / "modules" / f"{proc.path.parent.name}.nf.test"
    assert test.is_file()
    text = test.read_text()
    script = re.search(r'^\s*script\s+"([^"]+)"', text, re.M).group(1)
    assert (test.parent / script).resolve() == proc.path
    assert re.search(rf'^\s*process\s+"{proc.name}"', text, re.M)
    assert 'options "-stub"' in text and "snapshot(" in text
    assert unbalanced(text) is None


@pytest.mark.parametrize("proc", PROCESSES, ids=ids(PROCESSES))
def test_every_nf_test_gives_the_process_each_of_its_inputs(proc):
    """nf-test cannot run here: a process whose inputs changed and a test that still passes the
    old ones (one input short) would only fail on a machine that has it."""
    declared = re.findall(r"^\s*(?:tuple|path|val|env|stdin)\b", proc.section("input"), re.M)
    text = (ROOT / "tests" / "modules" / f"{proc.path.parent.name}.nf.test").read_text()
    blocks = re.findall(r'when\s*\{\s*process\s*\{\s*"""(.*?)"""', text, re.S)
    assert blocks, "a when { process { … } } block"
    for block in blocks:
        given = sorted(int(i) for i in re.findall(r"^\s*input\[(\d+)\]\s*=", block, re.M))
        assert given == list(range(len(declared))), (given, len(declared))


def test_pipeline_nf_test_runs_the_test_profile():
    text = (ROOT / "tests" / "main.nf.test").read_text()
    assert 'script "../main.nf"' in text and "workflow.success" in text
    assert re.search(r'^\s*profile\s+"test"', (ROOT / "nf-test.config").read_text(), re.M)


def test_samplesheet_schema_matches_the_validator():
    from gexpcore.io.ids import SAMPLE_ID
    from gexpcore.io.samplesheet import COLUMNS

    schema = json.loads((ROOT / "assets" / "schema_input.json").read_text())
    props = schema["items"]["properties"]
    assert list(props) == COLUMNS
    assert props["sample"]["pattern"] == SAMPLE_ID.pattern
    assert schema["uniqueEntries"] == ["sample"]


SIMULATE_COMMANDS = re.findall(
    r"^\s+(gexp simulate .*)$", (ROOT / "tests" / "data" / "README.md").read_text(), re.M
)


def test_bundled_simulations_are_documented():
    outdirs = [command.split("--outdir ")[1].split()[0] for command in SIMULATE_COMMANDS]
    assert outdirs == ["tests/data", "tests/data/multiome"]


@pytest.mark.parametrize("command", SIMULATE_COMMANDS)
def test_bundled_test_data_is_what_the_documented_command_writes(command, tmp_path):
    words = command.split()
    bundled = ROOT / words[words.index("--outdir") + 1]
    out = tmp_path / "data"
    words[words.index("--outdir") + 1] = str(out)
    proc = run_gexp(*words[1:])
    assert proc.returncode == 0, proc.stderr
    written = sorted(p for p in out.rglob("*") if p.is_file())
    assert written
    for path in written:
        rel = path.relative_to(out)
        assert (bundled / rel).read_bytes() == path.read_bytes(), rel


def test_gpu_and_container_documentation_exists():
    readme = (ROOT / "README.md").read_text()
    for profile in ("docker", "singularity", "conda", "slurm", "gpu", "test"):
        assert f"-profile {profile}" in readme or f"-profile test,{profile}" in readme, profile
    assert "envs/gexp.Dockerfile" in readme


@pytest.mark.parametrize(
    "value",
    [
        "ENCFF719JFL",
        "ENCFF71JFL",
        "SRR6213974",
        "ERR000001",
        "DRR123456",
        "SRR123",
        "https://example.org/a.bed.gz",
        "http://x/y",
        "ftp://x/y",
        "data/a.bed",
        "ENCSR552YGL",
        "/abs/ENCFF719JFL.bed.gz",
    ],
)
def test_main_nf_remote_rule_is_the_python_rule(value):
    from gexpcore.io.samplesheet import is_remote

    pattern = re.search(r"value ==~ '([^']+)'", MAIN).group(1)
    assert bool(re.fullmatch(pattern, value)) == is_remote(value)
