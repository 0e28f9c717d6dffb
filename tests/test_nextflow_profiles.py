"""`-stub` runs of the whole workflow, and every profile of nextflow.config resolving."""

from __future__ import annotations

import csv
import re

import pytest
from pipeline import (
    ROOT,
    assert_ok,
    copy_test_data,
    nextflow,
    run_test_profile,
    submitted,
)

pytestmark = pytest.mark.pipeline


def profiles() -> list[str]:
    config = (ROOT / "nextflow.config").read_text()
    block = config[config.index("\nprofiles {") :]
    return re.findall(r"^    (\w+)\s*\{", block, re.M)


def test_stub_run_with_remote_entries_fetches_each_source_once(tmp_path):
    """An ENCODE file, an SRA run and a URL: FETCH once per source (no network in -stub),
    each under its own name, and LOCALISE points the samples at them (issue 15, D2)."""
    data = copy_test_data(tmp_path / "data")
    sheet = data / "samplesheet.csv"
    rows = list(csv.DictReader(sheet.open()))
    rows[0].update(rna_1="SRR1234567", rna_2="", atac="ENCFF000AAA")
    rows[1].update(rna_1="", rna_2="", rna_tpm="https://127.0.0.1:9/S002.abundance.tsv")
    rows[2].update(atac="ENCFF000AAA")  # one accession used twice is fetched once
    with sheet.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)

    proc = run_test_profile(data, tmp_path / "results", tmp_path / "launch", "-stub")
    log = assert_ok(proc)
    fetched = sorted(t for t in submitted(log) if "FETCH" in t)
    assert fetched == [
        "GEXP:FETCH (ENCFF000AAA)",
        "GEXP:FETCH (SRR1234567)",
        "GEXP:FETCH (https://127.0.0.1:9/S002.abundance.tsv)",
    ]
    local = list(csv.DictReader((tmp_path / "results/pipeline_info/samplesheet.local.csv").open()))
    assert local[0]["atac"].endswith("/ENCFF000AAA.stub.gz")
    assert local[0]["rna_1"].endswith("/SRR1234567.stub.gz")
    assert local[1]["rna_tpm"].endswith("_S002.abundance.tsv")
    assert (tmp_path / "results" / "report.html").exists()


def test_stub_run_of_the_bundled_cohort(tmp_path):
    """The whole graph runs with -stub, as many tasks as tests/main.nf.test (not run here:
    nf-test is unreachable) expects of the same run."""
    data = copy_test_data(tmp_path / "data")
    log = assert_ok(run_test_profile(data, tmp_path / "results", tmp_path / "launch", "-stub"))
    assert any("GEXP:TRAIN" in t for t in submitted(log))
    nf_test = (ROOT / "tests" / "main.nf.test").read_text()
    expected = int(re.search(r"trace\.succeeded\(\)\.size\(\) == (\d+)", nf_test).group(1))
    assert len(submitted(log)) == expected


def test_stub_run_of_the_multiome_experiment(tmp_path):
    """-profile test_multiome with -stub: one PSEUDOBULK per library, whose (stub) samples
    reach GENE_TPM, PEAK_BINS and DATASET; the task count tests/main.nf.test expects."""
    data = copy_test_data(tmp_path / "data")
    log = assert_ok(
        run_test_profile(
            data, tmp_path / "results", tmp_path / "launch", "-stub", profile="test_multiome"
        )
    )
    tasks = [t.split(" (")[0].split(":")[-1] for t in submitted(log)]
    assert tasks.count("PSEUDOBULK") == tasks.count("GENE_TPM") == tasks.count("PEAK_BINS") == 2
    nf_test = (ROOT / "tests" / "main.nf.test").read_text()
    counts = re.findall(r"trace\.succeeded\(\)\.size\(\) == (\d+)", nf_test)
    assert len(tasks) == int(counts[1])


def test_a_pseudobulk_sample_named_like_a_bulk_sample_stops_the_pipeline(tmp_path):
    """The stub library lib1 makes sample lib1_stub; a bulk sample of that name stops the run
    as soon as the library's samples are known, before DATASET (`gexp run` refuses it before
    any work)."""
    data = copy_test_data(tmp_path / "data")
    sheet = data / "multiome" / "clash.csv"
    sheet.write_text(
        "sample,rna_tpm,atac,multiome_h5,fragments,cells\n"
        "lib1,,,lib1/filtered_feature_bc_matrix.h5,lib1/atac_fragments.tsv.gz,lib1/cells.csv\n"
        "lib1_stub,lib1/cells.csv,lib1/cells.csv,,,\n"
    )
    proc = run_test_profile(
        data, tmp_path / "results", tmp_path / "launch", "-stub", "--input", sheet,
        profile="test_multiome",
    )  # fmt: skip
    assert proc.returncode != 0
    assert "pseudobulk sample lib1_stub of library lib1 has the name of a bulk sample" in (
        proc.stdout + proc.stderr
    )
    assert not any("DATASET" in t for t in submitted(proc.stdout))


@pytest.mark.parametrize("profile", profiles())
def test_profile_resolves(profile, tmp_path):
    shown = assert_ok(nextflow("config", "-profile", profile, ROOT, cwd=tmp_path))
    assert "process {" in shown
    if profile == "slurm":
        assert "executor = 'slurm'" in shown


def test_bad_parameter_fails_before_any_step(tmp_path):
    data = copy_test_data(tmp_path / "data")
    proc = run_test_profile(data, tmp_path / "results", tmp_path / "launch", "--bin_sise", 500)
    assert proc.returncode != 0
    assert "--bin_sise: not a parameter of this pipeline (did you mean --bin_size?)" in (
        proc.stdout + proc.stderr
    )
    assert [t for t in submitted(proc.stdout) if "PARAMS_CHECK" not in t] == []


def test_help_lists_the_schema_parameters(tmp_path):
    log = assert_ok(nextflow("run", ROOT / "main.nf", "--help", cwd=tmp_path))
    assert "--bin_size" in log and "--input" in log and submitted(log) == []
