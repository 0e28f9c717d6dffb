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

RUN_LISTS = channels_derived_from(MAIN, "GEXP", "runFiles(")  # samplesheet runs (';' lists)

# Inputs that receive several files whose names are unique by construction, and why.
UNIQUE_NAMES = {
    ("DATASET", "expression"): "GENE_TPM writes <sample id>.gene_tpm.tsv; ids are unique",
    ("DATASET", "accessibility"): "PEAK_BINS writes <sample id>.tsv.gz; ids are unique",
    ("REPORT", "kallisto"): "KALLISTO_QUANT writes a folder named by the sample id",
    ("LOCALISE", "fetched"): "FETCH names each file by its source (see the test below)",
}


def multi_file_inputs():
    """(process, input, argument) for every `path` input that can receive several files."""
    calls = process_calls(MAIN, "GEXP")
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
    assert {("FASTQ_CHECK", "read1"), ("FASTQ_CHECK", "read2"), ("KALLISTO_QUANT", "reads")} <= seen
    assert set(UNIQUE_NAMES) <= seen, "every exception names an input that takes several files"


def test_per_file_rule_rejects_flat_staging():
    assert not per_file_folders("read1/*")
    assert not per_file_folders(None)
    assert per_file_folders("read1/*/*")


def test_unique_name_exceptions_hold_for_sample_outputs():
    outputs = {
        "DATASET": {"expression": "GENE_TPM", "accessibility": "PEAK_BINS"},
        "REPORT": {"kallisto": "KALLISTO_QUANT"},
    }
    for consumer, inputs in outputs.items():
        for producer in inputs.values():
            paths = [p for p in BY_NAME[producer].output_paths() if p != "versions.yml"]
            assert any("${meta.id}" in p or p == "${prefix}" for p in paths), (consumer, paths)
    assert 'prefix = task.ext.prefix ?: "${meta.id}"' in BY_NAME["KALLISTO_QUANT"].text


def test_fetched_file_names_never_belong_to_two_sources(tmp_path):
    """LOCALISE stages FETCH's files flat: each name belongs to one source only."""
    from gexpcore.fetch import cached_files, default_name, mate_name, sidecar

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
