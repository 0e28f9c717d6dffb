"""What would stop a first `nextflow run`, checked statically (issue 10).

Each test names the Nextflow rule it holds the sources to and catches the whole kind of
mistake, not one line: every process, every config, every nf-test file, every README
command line. Where a rule is easy to get wrong in the checker itself, a `*_rule_*` test
feeds it the defect as it once stood in this repository and expects it to be caught.
"""

from __future__ import annotations

import re

import pytest
from nextflow_source import (
    ROOT,
    ProcessSource,
    channels_derived_from,
    entry_process_calls,
    process_calls,
    process_inputs,
    processes,
)

PROCESSES = processes()
BY_NAME = {p.name: p for p in PROCESSES}
MAIN = (ROOT / "main.nf").read_text()


def ids(procs):
    return [p.name for p in procs]


# -- 1. a `path` input holding one file is a path, not a list -------------------------------

# Called on a list these mean one thing, on a single path another (Path.size() is the file's
# size in bytes; iterating a Path yields its name parts, so join gives 'read1 S001.fq.gz').
LIST_METHODS = r"join|collect|each|eachWithIndex|size|first|last|sort|findAll|withIndex|every|any"


def list_use_on_maybe_single_inputs(proc: ProcessSource) -> list[str]:
    """List operations on `path` inputs that Nextflow may bind to a single path.

    Nextflow binds a list only when `arity` allows several files; without it, an input that
    receives one file is a bare path. The tag and the script and stub blocks are read.
    """
    tag = "\n".join(ln for ln in proc.text.splitlines() if ln.strip().startswith("tag "))
    code = "\n".join([tag, proc.section("script"), proc.section("stub")])
    problems = []
    for slot in process_inputs(proc):
        for inp in slot:
            if inp.kind != "path" or inp.always_a_list:
                continue
            pattern = rf"\b{inp.name}\s*\.\s*({LIST_METHODS})\b|\b{inp.name}\s*\["
            for match in re.finditer(pattern, code):
                problems.append(f"{proc.name}: '{match.group(0)}' on `{inp.name}` (no arity)")
    return problems


@pytest.mark.parametrize("proc", PROCESSES, ids=ids(PROCESSES))
def test_list_operations_are_only_used_on_inputs_declared_as_lists(proc):
    assert list_use_on_maybe_single_inputs(proc) == []


def test_list_rule_catches_join_on_a_single_file_input():
    """FASTQ_CHECK before the fix: `read1.join(' ')` on `path(read1, stageAs: 'read1/*')`."""
    old = ProcessSource(
        "FASTQ_CHECK",
        ROOT / "old.nf",
        "process FASTQ_CHECK {\n    input:\n"
        "    tuple val(meta), path(read1, stageAs: 'read1/*'), path(read2, stageAs: 'read2/*')\n\n"
        '    script:\n    """\n    gexp check-fastq --read1 ${read1.join(\' \')}\n    """\n}\n',
    )
    assert len(list_use_on_maybe_single_inputs(old)) == 1


# -- 11. several files in one task must not collide on their names ---------------------------


def sample_files_beside_other_inputs(proc: ProcessSource) -> list[str]:
    """Sample files (a path in a `tuple val(meta), …`) of a task that stages other files too,
    left in the task folder under the user's name: `genes.tsv` as an rna_tpm table next to
    the reference's genes.tsv stops the task with an input file name collision."""
    slots = process_inputs(proc)
    if sum(i.kind == "path" for slot in slots for i in slot) < 2:
        return []
    return [
        f"{proc.name}.{i.name}"
        for slot in slots
        if any(i.kind == "val" and i.name == "meta" for i in slot)
        for i in slot
        if i.kind == "path" and "/" not in (i.options.get("stageAs") or "")
    ]


@pytest.mark.parametrize("proc", PROCESSES, ids=ids(PROCESSES))
def test_sample_files_are_staged_apart_from_the_pipeline_s_own_files(proc):
    assert sample_files_beside_other_inputs(proc) == []


def test_sample_file_rule_catches_gene_tpm_as_it_was():
    old = ProcessSource(
        "GENE_TPM",
        ROOT / "old.nf",
        "process GENE_TPM {\n    input:\n    tuple val(meta), path(quant)\n    path tx2gene\n"
        '    path genes\n\n    script:\n    """\n    gexp gene-tpm --quant $quant\n    """\n}\n',
    )
    assert sample_files_beside_other_inputs(old) == ["GENE_TPM.quant"]


def test_samplesheet_schema_accepts_the_numbers_nf_schema_makes_of_digit_only_cells():
    """nf-schema 2 casts a CSV cell such as `1` to an integer before checking its type
    (nextflow-io/nf-schema#81), so a column gexp accepts as digits must admit numbers."""
    import json

    from gexpcore.io.ids import SAMPLE_ID

    schema = json.loads((ROOT / "assets" / "schema_input.json").read_text())
    properties = schema["items"]["properties"]
    assert SAMPLE_ID.match("1"), "gexp accepts digit-only sample ids"
    for column in ("sample", "group"):
        types = properties[column]["type"]
        types = types if isinstance(types, list) else [types]
        assert {"integer", "number"} & set(types), f"{column}: {types}"


def test_gpu_with_wave_is_refused_before_anything_runs():
    """Wave builds from a process's conda recipe whenever one is set (ignoring `container`),
    and the CUDA environment cannot be solved without a GPU: main.nf must refuse the pair."""
    from nextflow_source import strip_strings_and_comments

    workflow = MAIN[MAIN.index("\nworkflow {") :]
    guard = re.search(r"if \(([^\n]*)\)\s*\{\s*error", workflow)
    assert guard and "'gpu'" in guard.group(1) and "'wave'" in guard.group(1)
    code = strip_strings_and_comments(workflow)
    assert code.index("if (") < code.index("PARAMS_CHECK(")
    gpu = (ROOT / "conf" / "gpu.config").read_text()
    assert "conda" in gpu, "if the gpu profile stops setting conda, this guard may go"


RUN_LISTS = channels_derived_from(MAIN, "GEXP", "runFiles(")  # samplesheet runs (';' lists)

# Inputs that receive several files whose names are unique by construction, and why.
UNIQUE_NAMES = {
    ("DATASET", "expression"): "GENE_TPM writes <sample id>.gene_tpm.tsv; ids are unique",
    ("DATASET", "accessibility"): "PEAK_BINS writes <sample id>.tsv.gz; ids are unique",
    ("REPORT", "kallisto"): "KALLISTO_QUANT writes a folder named by the sample id",
    ("DATASET", "pseudobulk"): "PSEUDOBULK writes <library id>.samples.tsv; ids are unique",
    ("REPORT", "predictions"): "PREDICTIONS' two tables: predicted_tpm.tsv and similarity.tsv",
}


def multi_file_inputs():
    """(process, input, argument) for every `path` input that can receive several files."""
    calls = {**entry_process_calls(MAIN), **process_calls(MAIN, "GEXP")}
    found = []
    for proc in PROCESSES:
        args = calls[proc.name]
        for slot in process_inputs(proc):
            arg = args[slot[0].slot]
            several = arg in RUN_LISTS or ".collect()" in arg
            for inp in slot:
                if inp.kind == "path" and (several or inp.always_a_list):
                    found.append((proc, inp, arg))
    return found


def per_file_folders(stage_as: str | None) -> bool:
    """A wildcard in a folder of the pattern: Nextflow numbers one folder per file."""
    return bool(stage_as) and any(c in part for part in stage_as.split("/")[:-1] for c in "*?")


@pytest.mark.parametrize(
    "proc, inp, arg",
    multi_file_inputs(),
    ids=[f"{p.name}.{i.name}" for p, i, _ in multi_file_inputs()],
)
def test_inputs_with_several_files_stage_them_without_collisions(proc, inp, arg):
    if (proc.name, inp.name) in UNIQUE_NAMES:
        return
    assert per_file_folders(inp.options.get("stageAs")), (
        f"{proc.name}.{inp.name} receives several files ({arg}) that keep their own names: "
        "two with one name collide; stage them as 'dir/*/*'"
    )


def test_run_lists_reach_the_processes_that_read_fastq():
    """The check above sees the FASTQ inputs (so it cannot pass by finding nothing)."""
    seen = {(p.name, i.name) for p, i, _ in multi_file_inputs()}
    assert {
        ("FASTQ_CHECK", "read1"),
        ("FASTQ_CHECK", "read2"),
        ("KALLISTO_QUANT", "reads/???/${meta.id}"),
    } <= seen
    assert set(UNIQUE_NAMES) <= seen, "every exception names an input that takes several files"


def test_per_file_rule_rejects_flat_staging():
    assert not per_file_folders("read1/*")
    assert not per_file_folders(None)
    assert per_file_folders("read1/*/*")


def test_unique_name_exceptions_hold_for_sample_outputs():
    outputs = {
        "DATASET": {
            "expression": "GENE_TPM",
            "accessibility": "PEAK_BINS",
            "pseudobulk": "PSEUDOBULK",
        },
        "REPORT": {"kallisto": "KALLISTO_QUANT"},
    }
    for consumer, inputs in outputs.items():
        for producer in inputs.values():
            paths = [p for p in BY_NAME[producer].output_paths() if p != "versions.yml"]
            assert any("${meta.id}" in p or p == "${prefix}" for p in paths), (consumer, paths)
    assert 'prefix = task.ext.prefix ?: "${meta.id}"' in BY_NAME["KALLISTO_QUANT"].text


def test_fetched_file_names_never_belong_to_two_sources(tmp_path):
    """gexp run fetches every source into one folder: each name belongs to one source only."""
    from gexpcore.steps.fetch import cached_files, default_name, mate_name, sidecar

    sources = [
        "ENCFF001AAA",
        "SRR1234567",
        "SRR12345678",
        "ERR1234567",
        "https://a.example/x/peaks.bed.gz",
        "https://b.example/y/peaks.bed.gz",
    ]
    names = {
        "ENCFF001AAA": ["ENCFF001AAA.bed.gz"],  # ENCODE: the href's basename
        "SRR1234567": [mate_name("SRR1234567.fastq.gz", i) for i in (1, 2)],
        "SRR12345678": ["SRR12345678.fastq.gz"],
        "ERR1234567": ["ERR1234567.fastq.gz"],
    }
    for url in sources[4:]:
        names[url] = [default_name(url)]
    flat = [n for files in names.values() for n in files]
    assert len(flat) == len(set(flat))
    for name in flat:
        (tmp_path / name).write_bytes(b"x")
        sidecar(tmp_path / name).write_text("0  x\n")
    for source in sources:
        found = [p.name for p in cached_files(source, tmp_path, verify=False)]
        assert sorted(found) == sorted(names[source]), source


# -- 2. image names reach the container engine as written ------------------------------------

CONFIG_FILES = [
    ROOT / "nextflow.config",
    *sorted((ROOT / "conf").glob("*.config")),
    ROOT / "tests" / "nextflow.config",
]
ENGINES = ("docker", "podman", "singularity", "apptainer")
README = (ROOT / "README.md").read_text()


def param_default(name: str) -> str | None:
    block = re.search(r"^params\s*\{(.*?)^\}", (ROOT / "nextflow.config").read_text(), re.M | re.S)
    value = re.search(rf"^\s*{name}\s*=\s*(.+?)\s*$", block.group(1), re.M).group(1)
    return None if value == "null" else value.strip("'\"")


def configured_registries() -> dict[str, set[str]]:
    """Every `<engine>.registry` any config file sets (dotted or inside an engine block)."""
    found: dict[str, set[str]] = {engine: set() for engine in ENGINES}
    for path in CONFIG_FILES:
        text = path.read_text()
        for engine, value in re.findall(
            rf"\b({'|'.join(ENGINES)})\.registry\s*=\s*'([^']*)'", text
        ):
            found[engine].add(value)
        for engine in ENGINES:
            for block in re.findall(rf"^\s*{engine}\s*\{{(.*?)^\s*\}}", text, re.M | re.S):
                found[engine].update(re.findall(r"^\s*registry\s*=\s*'([^']*)'", block, re.M))
    return found


def engine_image_name(image: str, registry: str | None) -> str:
    """The name Nextflow hands the engine: the registry is prefixed unless the image's first
    path component names a host (contains '.' or ':'), as Nextflow's container handler does."""
    if not registry:
        return image
    slash = image.find("/")
    if slash != -1 and any(c in image[:slash] for c in ".:"):
        return image
    return f"{registry.rstrip('/')}/{image}"


def pipeline_images() -> set[str]:
    """Docker-style image names: module container strings and the *_container params."""
    images = set()
    for proc in PROCESSES:
        directive = re.search(r"^\s*container\s+(.*?)(?=^\s*(input:|$))", proc.text, re.M | re.S)
        for value in re.findall(r"'([^']+)'", directive.group(1)):
            if "://" not in value and not value.startswith("/") and ":" in value:
                images.add(value)
    for name in re.findall(r"params\.(\w*container)\b", "\n".join(p.text for p in PROCESSES)):
        images.add(param_default(name))
    for path in CONFIG_FILES:
        for name in re.findall(r"params\.(\w*container)\b", path.read_text()):
            images.add(param_default(name))
    images.discard(None)
    return images


def locally_built_images() -> set[str]:
    return set(re.findall(r"docker build -t (\S+)", README))


def test_engine_image_name_follows_nextflow():
    assert engine_image_name("gexp-python:0.1.0", "quay.io") == "quay.io/gexp-python:0.1.0"
    assert (
        engine_image_name("biocontainers/kallisto:1", "quay.io")
        == "quay.io/biocontainers/kallisto:1"
    )
    assert engine_image_name("quay.io/biocontainers/kallisto:1", "quay.io") == (
        "quay.io/biocontainers/kallisto:1"
    )
    assert engine_image_name("gexp-python:0.1.0", None) == "gexp-python:0.1.0"


@pytest.mark.parametrize("engine", ENGINES)
def test_every_image_reaches_the_engine_as_written(engine):
    """A registry setting rewrites short names, the locally built gexp images included."""
    images = pipeline_images()
    assert len(images) >= 3, images
    for registry in configured_registries()[engine] or {None}:
        for image in images:
            assert engine_image_name(image, registry) == image, (engine, registry, image)


def test_pulled_images_name_their_registry_and_local_ones_are_built_by_the_readme():
    local = locally_built_images()
    for image in pipeline_images():
        if image in local:
            continue
        host = image.split("/")[0]
        assert "/" in image and "." in host, f"{image}: name the registry (quay.io/…)"
    for name in ("gexp_container", "gexp_gpu_container"):
        assert param_default(name) in local, f"README builds no image named {param_default(name)}"


# -- 10. the gpu profile trains with a CUDA build of PyTorch ---------------------------------


def _deps(path) -> list[str]:
    text = path.read_text().split("dependencies:")[1]
    return re.findall(r"^\s*-\s*(\S+)\s*$", text, re.M)


def _gpu_block() -> str:
    text = (ROOT / "conf" / "gpu.config").read_text()
    return re.search(r"withLabel:\s*process_gpu\s*\{(.*?)\n    \}", text, re.S).group(1)


def test_gpu_profile_gives_training_a_cuda_environment_with_every_engine():
    block = _gpu_block()
    assert re.search(r"^\s*container\s*=.*params\.gexp_gpu_container", block, re.M), (
        "docker/singularity: TRAIN needs the CUDA image under -profile gpu"
    )
    conda = re.search(r"^\s*conda\s*=\s*\"\$\{projectDir\}/(envs/[\w.-]+)\"", block, re.M)
    assert conda, "conda: TRAIN needs the CUDA environment under -profile gpu"
    gpu_env = ROOT / conda.group(1)
    deps = _deps(gpu_env)
    cuda = [d for d in deps if d.startswith("pytorch-gpu=") or re.match(r"pytorch=[^=]+=cuda", d)]
    assert cuda, f"{gpu_env.name}: no CUDA build of PyTorch is selected"
    base = _deps(ROOT / "envs" / "gexp.yml")
    assert sorted(set(deps) - set(cuda)) == sorted(base), "every other pin equals envs/gexp.yml"
    trains = [p for p in PROCESSES if "label 'process_gpu'" in p.text]
    assert [p.name for p in trains] == ["TRAIN"]


def test_cuda_image_is_solved_with_a_declared_cuda_version():
    """Image builders have no GPU: without CONDA_OVERRIDE_CUDA conda refuses CUDA builds."""
    dockerfile = (ROOT / "envs" / "gexp.Dockerfile").read_text()
    assert re.search(r"^ARG ENV_FILE=gexp\.yml$", dockerfile, re.M)
    assert re.search(r"^ARG CUDA=", dockerfile, re.M)
    assert 'CONDA_OVERRIDE_CUDA="${CUDA}"' in dockerfile
    builds = re.findall(
        r"docker build (.*?)-f envs/gexp\.Dockerfile", README.replace("\\\n", " "), re.S
    )
    gpu = [b for b in builds if f"-t {param_default('gexp_gpu_container')} " in b]
    assert gpu, "README builds the gpu image"
    assert "--build-arg ENV_FILE=gexp-gpu.yml" in gpu[0] and "--build-arg CUDA=" in gpu[0]


# -- 3. both runners train the same default model set ----------------------------------------

MODULES_CONFIG = (ROOT / "conf" / "modules.config").read_text()


def config_params(text: str) -> dict[str, object]:
    """The params block of a config as Python values (null, booleans, numbers, strings)."""
    block = re.search(r"^params\s*\{(.*?)^\}", text, re.M | re.S).group(1)
    values: dict[str, object] = {}
    for name, raw in re.findall(r"^\s*(\w+)\s*=\s*(.+?)\s*$", block, re.M):
        if raw == "null":
            values[name] = None
        elif raw in ("true", "false"):
            values[name] = raw == "true"
        elif re.fullmatch(r"-?\d+", raw):
            values[name] = int(raw)
        else:
            values[name] = raw.strip("'\"")
    return values


def ext_args_words(process: str, params: dict[str, object]) -> list[str]:
    """What conf/modules.config's ext.args closure for `process` evaluates to under `params`.

    Understands the forms the file uses: "--flag ${params.x}", and `params.x ? "…" : ''` /
    `params.x != null ? "…" : ''` / `params.x.toString().toBoolean() ? "…" : ''`; anything
    else fails the test.
    """
    from nextflow_source import _split_top

    for selector, body in re.findall(
        r"withName:\s*'([^']+)'\s*\{(.*?)\n    \}", MODULES_CONFIG, re.S
    ):
        if process in selector.split("|") and "ext.args" in body:
            items = re.search(r"ext\.args\s*=\s*\{\s*\[(.*?)\]\.join", body, re.S).group(1)
            break
    else:
        return []
    words: list[str] = []
    for item in _split_top(items):
        conditional = re.fullmatch(
            r"(params\.\w+(?:\.toString\(\)\.toBoolean\(\)|\s*!=\s*null)?)\s*\?\s*(.+?)\s*:\s*''",
            item,
        )
        if conditional:
            cond, item = conditional.groups()
            value = params[re.search(r"params\.(\w+)", cond).group(1)]
            if "toBoolean" in cond:
                value = str(value).lower() == "true"
            if not (value is not None if "!=" in cond else value):
                continue
        literal = re.fullmatch(r"\"(.*)\"|'(.*)'", item)
        assert literal, f"{process}: cannot evaluate ext.args item {item}"
        text = literal.group(1) if literal.group(1) is not None else literal.group(2)
        words += re.sub(r"\$\{params\.(\w+)\}", lambda m: str(params[m.group(1)]), text).split()
    return words


NEXTFLOW_DEFAULTS = config_params((ROOT / "nextflow.config").read_text())


def _parse(*argv):
    from gexpcore.cli import build_parser

    return build_parser().parse_args([str(a) for a in argv])


RUN_REQUIRED = ("run", "--input", "s.csv", "--transcriptome", "t.fa", "--gtf", "g", "--outdir", "o")


def test_train_gets_the_training_settings_of_gexp_run_by_default():
    """An explicit --models list makes gexp train refuse dense models genome-wide."""
    from dataclasses import asdict

    from gexpcore.steps.train import train_settings

    words = ext_args_words("TRAIN", NEXTFLOW_DEFAULTS)
    pipeline = _parse("train", "--dataset", "d", "--outdir", "m", *words)
    run = _parse(*RUN_REQUIRED)
    assert asdict(train_settings(pipeline)) == asdict(train_settings(run))
    assert pipeline.peak_mode == run.peak_mode


def test_train_passes_models_when_they_are_asked_for():
    from gexpcore.steps.train import DEFAULT_MODELS, train_settings

    asked = ",".join(DEFAULT_MODELS[:2])
    words = ext_args_words("TRAIN", {**NEXTFLOW_DEFAULTS, "models": asked})
    settings = train_settings(_parse("train", "--dataset", "d", "--outdir", "m", *words))
    assert settings.models == list(DEFAULT_MODELS[:2])


@pytest.mark.parametrize("process, run_dest", [("BINS", {}), ("PEAK_BINS", {"mode": "peak_mode"})])
def test_data_steps_get_the_defaults_of_gexp_run(process, run_dest):
    command = {"BINS": ["bins", "--chrom-sizes", "c", "--out", "b"]}
    command["PEAK_BINS"] = ["peak-bins", "--peaks", "p", "--bins", "b", "--out", "o"]
    words = ext_args_words(process, NEXTFLOW_DEFAULTS)
    assert words, process
    pipeline = vars(_parse(*command[process], *words))
    run = vars(_parse(*RUN_REQUIRED))
    for flag in [w for w in words if w.startswith("--")]:
        dest = flag[2:].replace("-", "_")
        assert pipeline[dest] == run[run_dest.get(dest, dest)], (process, flag)


def test_schema_accepts_every_model_name():
    """The schema must not lag behind models.NAMES (names are not listed there)."""
    import json

    from gexpcore.models import NAMES

    schema = json.loads((ROOT / "nextflow_schema.json").read_text())
    spec = schema["$defs"]["training_options"]["properties"]["models"]
    assert "default" not in spec and NEXTFLOW_DEFAULTS["models"] is None
    assert re.fullmatch(spec["pattern"], ",".join(NAMES))
    for name in NAMES:
        assert re.fullmatch(spec["pattern"], name)
    assert not re.fullmatch(spec["pattern"], "mean;ridge")


# -- 4. a stub writes what main.nf reads from it ---------------------------------------------


def parsed_outputs() -> set[tuple[str, str]]:
    """(process, emit) whose files main.nf opens (splitCsv), directly or through a channel."""
    from nextflow_source import statements

    body = statements(MAIN, "GEXP")
    aliases = {}
    for s in body:
        match = re.match(r"(ch_\w+)\s*=\s*([A-Z][A-Z0-9_]+)\.out\.(\w+)\s*$", s)
        if match:
            aliases[match.group(1)] = (match.group(2), match.group(3))
    found = set()
    for s in body:
        if ".splitCsv" not in s:
            continue
        found.update(re.findall(r"\b([A-Z][A-Z0-9_]+)\.out\.(\w+)\s*\.splitCsv", s))
        found.update(aliases[c] for c in re.findall(r"\b(ch_\w+)\s*\.splitCsv", s) if c in aliases)
    return found


def stub_writes_what_the_script_writes(proc: ProcessSource, parsed: set) -> bool:
    """The stub runs the script's gexp command, or copies an input that is such a file."""
    if proc.commands("gexp", "stub") == proc.commands("gexp", "script") != []:
        return True
    copy = re.search(r"^\s*cp\s+\$\{?(\w+)\}?\s+(\S+)\s*$", proc.script_body("stub"), re.M)
    if not copy:
        return False
    slot = next(s for s in process_inputs(proc) if any(i.name == copy.group(1) for i in s))
    source = process_calls(MAIN, "GEXP")[proc.name][slot[0].slot]
    upstream = re.fullmatch(r"([A-Z][A-Z0-9_]+)\.out\.(\w+)", source)
    return (
        bool(upstream)
        and upstream.groups() in parsed
        and (stub_writes_what_the_script_writes(BY_NAME[upstream.group(1)], parsed))
    )


def test_stubs_of_files_main_reads_write_what_the_real_step_writes():
    """-stub runs open these CSVs in main.nf (absolute paths, single_end): a copy of the
    user's samplesheet (relative paths, no single_end) stops the stub run there."""
    parsed = parsed_outputs()
    assert {p for p, _ in parsed} == {"SAMPLESHEET_CHECK", "LOCALISE"}, parsed
    for name, _ in parsed:
        assert stub_writes_what_the_script_writes(BY_NAME[name], parsed), f"{name} stub"


def test_stub_rule_rejects_a_copy_of_the_raw_samplesheet():
    old = ProcessSource(
        "SAMPLESHEET_CHECK",
        ROOT / "old.nf",
        BY_NAME["SAMPLESHEET_CHECK"].text.split("stub:")[0]
        + 'stub:\n    """\n    cp $samplesheet samplesheet.valid.csv\n    """\n}\n',
    )
    assert not stub_writes_what_the_script_writes(old, parsed_outputs())


# -- 5. stubs write valid gzip ---------------------------------------------------------------


def gz_files_not_gzipped(stub: str) -> list[str]:
    """`.gz` files a stub creates other than through gzip: touched, copied or redirected to
    without gzip in the pipe (nf-test decompresses *.gz to snapshot them)."""
    bad = []
    gz = r"\S+\.gz(?![\w.])"
    for line in stub.splitlines():
        words = line.split()
        if (
            words
            and words[0] in ("touch", "cp", "mv", "echo", "printf", "cat")
            and "gzip" not in line
        ):
            created = words[1:] if words[0] == "touch" else words[-1:]
            bad += [w for w in created if re.fullmatch(gz, w)]
        if "gzip" not in line:
            bad += re.findall(rf">\s*({gz})", line)
    return sorted(set(bad))


@pytest.mark.parametrize("proc", PROCESSES, ids=ids(PROCESSES))
def test_stubs_write_valid_gzip(proc):
    assert gz_files_not_gzipped(proc.script_body("stub")) == []


def test_gzip_rule_catches_touch():
    old = "mkdir -p fetch\ntouch fetch/stub.fastq.gz fetch/stub.fastq.gz.md5\n"
    assert gz_files_not_gzipped(old) == ["fetch/stub.fastq.gz"]
    assert gz_files_not_gzipped("printf 'a\\n' > x.tsv.gz\n") == ["x.tsv.gz"]
    assert gz_files_not_gzipped("printf 'a\\n' | gzip -n > x.tsv.gz\n") == []


# -- 6. nf-test inputs: a container sees staged files only -----------------------------------

NF_TESTS = sorted((ROOT / "tests" / "modules").glob("*.nf.test"))
HOST_PATH = r"\$\{?(projectDir|baseDir|launchDir|moduleDir)\}?"

# Host paths that reach a task as text only, never opened inside it, and why.
TEXT_ONLY = {
    ("SAMPLESHEET_CHECK", "base_dir"): "the folder relative samplesheet paths join to",
    ("PARAMS_CHECK", "document"): "paths are checked against its `exists` map, filled on the host",
}


def host_paths_given_by_name(text: str) -> list[tuple[str, int, str]]:
    """(process, input slot, line) for each nf-test input that hands a host path as a string.

    Inputs belong to the process of the nearest `run("X")` (setup) or to the tested process
    (`when`). A host path inside file(…) is staged; anywhere else it is a name.
    """
    tested = re.search(r'^\s*process\s+"(\w+)"', text, re.M).group(1)
    current, found = tested, []
    for line in text.splitlines():
        if match := re.search(r'\brun\("(\w+)"\)', line):
            current = match.group(1)
        elif re.match(r"^\s*when\s*\{", line):
            current = tested
        match = re.match(r"^\s*input\[(\d+)\]\s*=\s*(.*)$", line)
        if not match:
            continue
        staged = re.sub(r"file\(\s*\"[^\"]*\"[^)]*\)", "file()", match.group(2))
        if re.search(HOST_PATH, staged):
            found.append((current, int(match.group(1)), line.strip()))
    return found


@pytest.mark.parametrize("test", NF_TESTS, ids=[t.name for t in NF_TESTS])
def test_nf_tests_stage_host_files_as_paths(test):
    for process, slot, line in host_paths_given_by_name(test.read_text()):
        names = [i.name for i in process_inputs(BY_NAME[process])[slot]]
        assert len(names) == 1 and (process, names[0]) in TEXT_ONLY, (
            f"{test.name}: {line}: a host path given by name is missing inside a container; "
            "stage it with file(…) into a path input"
        )
    for (process, name), _why in TEXT_ONLY.items():
        (inp,) = [i for s in process_inputs(BY_NAME[process]) for i in s if i.name == name]
        assert inp.kind == "val"


def test_host_path_rule_catches_a_path_given_as_a_value():
    old = (
        'process "FETCH"\nwhen {\ninput[0] = "${projectDir}/tests/data/peaks/S001.narrowPeak.gz"\n'
    )
    assert host_paths_given_by_name(old) == [("FETCH", 0, old.splitlines()[-1])]
    staged = 'process "BINS"\nwhen {\ninput[0] = file("${projectDir}/x", checkIfExists: true)\n'
    assert host_paths_given_by_name(staged) == []


# -- 9. snapshots hold nothing that depends on where the checkout lies -----------------------


def path_bearing_processes() -> set[str]:
    """Processes whose gexp subcommand writes a samplesheet of absolute paths."""
    import inspect

    from gexpcore.cli import build_parser

    parser = build_parser()
    action = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    writers = {
        name
        for name, sub in action.choices.items()
        if "write_validated" in inspect.getsource(sub.get_default("func"))
    }
    return {p.name for p in PROCESSES if any(c[1] in writers for c in p.commands("gexp"))}


def raw_snapshots_of_outputs(text: str) -> list[str]:
    """snapshot(…) arguments that are whole process outputs (or their csv) as they are."""
    bad = []
    for args in re.findall(r"snapshot\((.*?)\)\.match", text, re.S):
        bad += re.findall(r"process\.out(?:\.csv)?(?=\s*[,)]|\s*$)", args)
    return bad


def test_path_bearing_outputs_are_known():
    assert path_bearing_processes() == {"SAMPLESHEET_CHECK", "LOCALISE"}


@pytest.mark.parametrize("name", sorted(path_bearing_processes()))
def test_snapshots_of_absolute_path_files_keep_file_names_only(name):
    test = ROOT / "tests" / "modules" / f"{BY_NAME[name].path.parent.name}.nf.test"
    assert raw_snapshots_of_outputs(test.read_text()) == [], test.name


def test_snapshot_rule_catches_a_raw_csv_snapshot():
    assert raw_snapshots_of_outputs("{ assert snapshot(process.out.csv).match() }")
    assert raw_snapshots_of_outputs("{ assert snapshot(process.out).match() }")
    assert not raw_snapshots_of_outputs("snapshot(relative(process.out.csv[0]), x).match()")


# -- 7. every README command line keeps its option values ------------------------------------


def readme_command_lines(text: str) -> list[list[str]]:
    """`nextflow run` and `gexp` command lines in the README's code blocks, as shell words."""
    import shlex

    lines = []
    for lang, block in re.findall(r"^\s*```(\w*)\n(.*?)^\s*```", text, re.M | re.S):
        if lang not in ("", "bash", "sh"):
            continue
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split(" #")[0].strip()
            if line.startswith(("nextflow run", "gexp ")):
                lines.append(shlex.split(line))
    return lines


def is_option_word(word: str) -> bool:
    """How Nextflow's launcher (and argparse) read a word after an option: a word starting
    with '-' and holding no space is the next option, not a value."""
    return word.startswith("-") and " " not in word and not re.fullmatch(r"-\d+(\.\d+)?", word)


def _schema_types() -> dict[str, object]:
    import json

    schema = json.loads((ROOT / "nextflow_schema.json").read_text())
    return {k: v.get("type") for g in schema["$defs"].values() for k, v in g["properties"].items()}


def lost_values(words: list[str]) -> list[str]:
    """Options of a command line that need a value but would be given none."""
    from gexpcore.cli import build_parser

    takes_value = {}
    if words[0] == "nextflow":
        takes_value = {f"--{k}": t != "boolean" for k, t in _schema_types().items()}
    else:
        parser = build_parser()
        action = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
        sub = action.choices[words[1]]
        for act in sub._actions:
            for flag in act.option_strings:
                takes_value[flag] = act.nargs != 0
    problems = []
    for i, raw in enumerate(words):
        word = raw.lstrip("[(")
        if not word.startswith("--") or "=" in word:
            continue
        flag = word.rstrip("])")
        assert flag in takes_value, f"{' '.join(words[:3])}: unknown option {flag}"
        if takes_value[flag] and flag == word:
            following = words[i + 1] if i + 1 < len(words) else ""
            if not following or is_option_word(following.lstrip("[(")):
                problems.append(f"{flag} {following}")
    return problems


def test_readme_command_lines_are_found():
    lines = readme_command_lines(README)
    assert sum(w[0] == "nextflow" for w in lines) >= 6 and sum(w[0] == "gexp" for w in lines) >= 6


@pytest.mark.parametrize(
    "words",
    readme_command_lines(README),
    ids=[" ".join(w[:4]) for w in readme_command_lines(README)],
)
def test_readme_command_lines_give_every_option_its_value(words):
    assert lost_values(words) == []


def test_value_rule_catches_a_dash_value_after_a_space():
    old = ["nextflow", "run", "main.nf", "--slurm_cluster_options", "--account=myproj"]
    assert lost_values(old) == ["--slurm_cluster_options --account=myproj"]
    assert lost_values(["nextflow", "run", "main.nf", "--slurm_cluster_options=--account=x"]) == []
    assert lost_values(["nextflow", "run", "main.nf", "--early_stopping", "--cv", "3"]) == []


# -- 8. slurm,gpu requests the GPU in a way slurm honours ------------------------------------

# Executors that read the accelerator directive; any other one needs its own GPU request.
ACCELERATOR_EXECUTORS = {"awsbatch", "google-batch", "k8s", "azurebatch"}
GPU_REQUEST = {"slurm": r"--gres=gpu(:\w+)*:\d+|--gpus(-per-task)?=\S+"}


def profile_executors() -> set[str]:
    found = set()
    for path in (ROOT / "conf").glob("*.config"):
        found.update(re.findall(r"^\s*(?:executor|name)\s*=\s*'([\w-]+)'", path.read_text(), re.M))
    return found


def test_every_profile_executor_gives_training_its_gpu():
    gpu = _gpu_block()
    executors = profile_executors()
    assert "slurm" in executors
    for executor in executors - ACCELERATOR_EXECUTORS:
        assert executor in GPU_REQUEST, f"{executor}: how does TRAIN request its GPU?"
        options = re.search(r"^\s*clusterOptions\s*=\s*\{(.*)\}\s*$", gpu, re.M)
        assert options, f"-profile {executor},gpu: accelerator is ignored; set clusterOptions"
        used = re.findall(r"params\.(\w+)", options.group(1))
        assert "slurm_cluster_options" in used, "the user's own sbatch options are kept"
        defaults = " ".join(str(NEXTFLOW_DEFAULTS[p] or "") for p in used)
        assert re.search(GPU_REQUEST[executor], defaults), defaults


# -- 12. object-store paths: staged by Nextflow, never resolved as local paths ---------------

OBJECT_STORE_VALUES = ["s3://bucket/a.bed.gz", "gs://bucket/x/a_R1.fq.gz", "az://container/a.bed"]


@pytest.mark.parametrize("value", OBJECT_STORE_VALUES)
def test_object_store_paths_are_not_fetched_by_either_runner(value):
    """FETCH cannot download them; Nextflow's file() stages them (as in nf-core pipelines)."""
    from gexpcore.io.samplesheet import is_object_store, is_remote

    pattern = re.search(r"value ==~ '([^']+)'", MAIN).group(1)
    assert not re.fullmatch(pattern, value) and not is_remote(value) and is_object_store(value)


def test_main_passes_the_samplesheet_folder_with_its_scheme():
    """Path.toString() of s3://bucket/dir is /bucket/dir: the scheme would be lost."""
    assert not re.search(r"\.parent\.toString\(\)", MAIN)
    (arg,) = [a for a in process_calls(MAIN, "GEXP")["SAMPLESHEET_CHECK"] if ".parent" in a]
    assert arg == "samplesheet.map { sheet -> sheet.parent.toUriString() }"


def _sheet(tmp_path, atac_s2: str):
    sheet = tmp_path / "sheet.csv"
    sheet.write_text(
        f"sample,rna_tpm,atac\nS1,quant/S1.tsv,peaks/S1.bed.gz\nS2,gs://other/S2.tsv,{atac_s2}\n"
    )
    return sheet


@pytest.mark.parametrize(
    "base, expected",
    [
        ("s3://bucket/cohort", "s3://bucket/cohort/peaks/S1.bed.gz"),
        ("s3://bucket/cohort/", "s3://bucket/cohort/peaks/S1.bed.gz"),
        ("https://host.example/cohort", "https://host.example/cohort/peaks/S1.bed.gz"),
    ],
)
def test_samplesheet_in_object_storage_resolves_entries_next_to_it(tmp_path, base, expected):
    import csv

    from conftest import run_gexp

    out = tmp_path / "valid.csv"
    sheet = _sheet(tmp_path, "az://c/S2.bed")
    proc = run_gexp("samplesheet", "--input", sheet, "--base-dir", base, "--out", out)
    assert proc.returncode == 0, proc.stderr
    rows = list(csv.DictReader(out.open()))
    assert rows[0]["atac"] == expected
    assert rows[1]["rna_tpm"] == "gs://other/S2.tsv" and rows[1]["atac"] == "az://c/S2.bed"


def test_local_samplesheet_keeps_object_store_entries(tmp_path):
    from gexpcore.io.samplesheet import read_samplesheet

    (s1, s2) = read_samplesheet(_sheet(tmp_path, "s3://bucket/S2.bed.gz"))
    assert s1.atac == str((tmp_path / "peaks" / "S1.bed.gz").resolve())
    assert (s2.rna_tpm, s2.atac) == ("gs://other/S2.tsv", "s3://bucket/S2.bed.gz")


def test_gexp_run_refuses_object_store_entries_before_any_work(tmp_path):
    from conftest import assert_nothing_written, assert_user_error, run_gexp

    (tmp_path / "quant").mkdir()
    (tmp_path / "quant" / "S1.tsv").write_text("x\n")
    (tmp_path / "peaks").mkdir()
    (tmp_path / "peaks" / "S1.bed.gz").write_text("x\n")
    out = tmp_path / "results"
    proc = run_gexp(
        "run",
        *("--input", _sheet(tmp_path, "s3://bucket/S2.bed.gz"), "--transcriptome", "t.fa"),
        *("--gtf", "g.gtf", "--genome", "GRCh38", "--outdir", out),
    )
    assert_user_error(proc, "sample S2 rna_tpm", "gs://other/S2.tsv", "Nextflow")
    assert_nothing_written(out)


# -- model names live in gexpcore.models only ------------------------------------------------


def test_pipeline_files_name_no_model():
    """Model names grow and change in gexpcore.models.NAMES; the Nextflow layer and its tests
    must follow without edits (the schema accepts any name; gexp train checks them)."""
    from gexpcore.models import NAMES
    from gexpcore.steps.train import DEFAULT_MODELS

    files = [
        ROOT / "main.nf",
        *CONFIG_FILES,
        *(p.path for p in PROCESSES),
        ROOT / "tests" / "main.nf.test",
        *NF_TESTS,
    ]
    for path in files:
        text = path.read_text()
        for name in {*NAMES, *DEFAULT_MODELS}:
            assert not re.search(rf"\b{name}\b", text), f"{path.relative_to(ROOT)} names {name}"


# -- issue 15: what the first real runs and the latest reading found ------------------------


def test_proxy_variables_reach_every_container_engine():
    """P4: FETCH honours HTTP(S)_PROXY; containers see host variables only when whitelisted."""
    config = (ROOT / "nextflow.config").read_text()
    for engine in ("docker", "podman", "singularity", "apptainer"):
        listed = re.search(rf"^{engine}\.envWhitelist\s*=\s*'([^']+)'$", config, re.M)
        assert listed, engine
        for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "NO_PROXY", "no_proxy"):
            assert name in listed.group(1).split(","), (engine, name)


def test_urls_in_ext_args_are_quoted():
    """A `&` in an unquoted --encode-url would background the command; every URL parameter
    that reaches a command line is single-quoted."""
    modules = (ROOT / "conf" / "modules.config").read_text()
    for flag in re.findall(r"\"(--[\w-]*url) (?!')", modules):
        pytest.fail(f"{flag} is not quoted in conf/modules.config")
    assert modules.count("--encode-url '") == 1 and modules.count("--ena-url '") == 1


def test_local_runs_are_capped_by_the_machine_and_slurm_by_the_params():
    """P5: the local executor refuses tasks larger than the machine; a cluster is not."""
    base = (ROOT / "conf" / "base.config").read_text()
    slurm = (ROOT / "conf" / "slurm.config").read_text()
    assert "Math.min(params.max_cpus as int, Runtime.runtime.availableProcessors())" in base
    assert "operatingSystemMXBean.totalPhysicalMemorySize" in base
    assert "cpus  : params.max_cpus," in slurm


def test_localise_gets_fetched_files_as_nextflow_names_them():
    """P1: a cloud task sees staged copies in its scratch folder; their paths, written into
    the CSV that main.nf opens, would not exist there. LOCALISE takes FETCH's paths as
    Nextflow has them (work folder or bucket URIs) and stages none of the files."""
    localise = BY_NAME["LOCALISE"]
    assert [i.kind for slot in process_inputs(localise) for i in slot] == ["path", "val"]
    assert "f.toUriString()" in MAIN[MAIN.index("ch_fetched = FETCH.out.files") :]


def test_fetched_map_names_every_source(tmp_path):
    from gexpcore.errors import GexpError
    from gexpcore.steps.localise import fetched_map

    path = tmp_path / "map.json"
    path.write_text(
        '{"SRR1234567": ["s3://b/w/SRR1234567_2.fastq.gz", "s3://b/w/SRR1234567_1.fastq.gz"]}'
    )
    assert fetched_map(["SRR1234567"], path) == {
        "SRR1234567": ["s3://b/w/SRR1234567_1.fastq.gz", "s3://b/w/SRR1234567_2.fastq.gz"]
    }
    with pytest.raises(GexpError, match="'ENCFF000AAA' has not been fetched"):
        fetched_map(["SRR1234567", "ENCFF000AAA"], path)


def test_the_pipeline_needs_no_plugin():
    """No plugin registry is reachable on air-gapped clusters (or here): no `plugins {}` and
    no `include … from 'plugin/…'`; PARAMS_CHECK applies nextflow_schema.json instead, and
    the samplesheet has one checker for both runners (`gexp samplesheet`)."""
    for path in [ROOT / "main.nf", ROOT / "nextflow.config", *(ROOT / "conf").glob("*.config")]:
        text = path.read_text()
        assert not re.search(r"^\s*plugins\s*\{", text, re.M), path.name
        assert "from 'plugin/" not in text, path.name
    assert "samplesheetToList" not in MAIN and "validateParameters" not in MAIN
    assert "--input $samplesheet" in BY_NAME["SAMPLESHEET_CHECK"].script_body("script")


# -- issue 15: what an independent reading against Nextflow 25.04/25.10 found ---------------

CONFIG_FILES_ALL = [ROOT / "nextflow.config", *(ROOT / "conf").glob("*.config")]


@pytest.mark.parametrize("path", CONFIG_FILES_ALL, ids=lambda p: p.name)
def test_configs_declare_no_variables(path):
    """The strict config syntax (`nextflow lint` from 25.04, the default parser from 26.04)
    refuses top-level variables and functions: 'Variable declarations cannot be mixed with
    config statements'."""
    assert not re.search(r"^\s*(def|var|final)\s", path.read_text(), re.M)


def test_boolean_params_are_read_as_strings_too():
    """25.10's strict parser passes `--early_stopping false` as "false", which Groovy takes as
    true: every boolean parameter is read with .toString().toBoolean()."""
    import json

    from gexpcore.steps.params_check import schema_properties

    schema = schema_properties(json.loads((ROOT / "nextflow_schema.json").read_text()))
    booleans = [n for n, spec in schema.items() if spec.get("type") == "boolean"]
    assert "early_stopping" in booleans and "validate_params" in booleans
    sources = [MAIN, *(p.read_text() for p in CONFIG_FILES_ALL)]
    for name in booleans:
        for text in sources:
            for use in re.finditer(rf"params\.{name}\b(\S*)", text):
                tail = use.group(1)
                assert tail.startswith(".toString().toBoolean()") or re.match(
                    r"\s*=", text[use.end() :]
                ), f"params.{name}{tail}"


def test_profile_lists_put_test_after_slurm():
    """Both set resourceLimits; the classic parser applies profiles in declaration order, the
    strict one in command-line order: only `slurm,…,test` means the same under both."""
    texts = [
        (ROOT / "README.md").read_text(),
        *(p.read_text() for p in (ROOT / "tests").glob("*.py")),
    ]
    for text in texts:
        for listed in re.findall(r"[-\"' ]profile[\"']?[ ,=]+[\"']?([\w,]+)", text):
            names = listed.split(",")
            if "test" in names and "slurm" in names:
                assert names.index("test") > names.index("slurm"), listed


def test_main_reads_no_parameter_file_before_the_check():
    """A missing --input must be PARAMS_CHECK's message, not 'Argument of `file` function
    cannot be null' while the workflow is built: no file(params.…) outside a closure."""
    code = MAIN[MAIN.index("\nworkflow GEXP") :]
    for match in re.finditer(r"file\(params\.(\w+)", code):
        before = code[: match.start()]
        assert before.count("{") - before.count("}") >= 2, f"file(params.{match.group(1)})"
