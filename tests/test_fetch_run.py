"""`gexp run` on a samplesheet of ENCODE accessions, an SRA run and a URL, served locally."""

from __future__ import annotations

import re

import pandas as pd
import pytest
from conftest import ROOT, gexp_run
from encode_portal import Server, ena_report, file_object, serve_encode_file
from nextflow_source import processes

DATA = ROOT / "tests" / "data"
pytestmark = pytest.mark.slow


def read(path: str) -> bytes:
    return (DATA / path).read_bytes()


@pytest.fixture
def servers():
    with Server() as portal, Server() as storage:
        yield portal, storage


def serve_cohort(portal: Server, storage: Server) -> None:
    for template, acc, path, ext in [
        ("file_fastq_PE_R1_ENCFF719JFL.json", "ENCFF719JFL", "fastq/S001_R1.fastq.gz", ".fastq.gz"),
        ("file_fastq_PE_R2_ENCFF105YSI.json", "ENCFF105YSI", "fastq/S001_R2.fastq.gz", ".fastq.gz"),
        (
            "file_bed_narrowPeak_conservativeIDR_GRCh38_ENCFF769VDQ.json",
            "ENCFF769VDQ",
            "peaks/S001.narrowPeak.gz",
            ".bed.gz",
        ),
        ("file_fastq_SE_ENCFF961HXV.json", "ENCFF961HXV", "fastq/S003.fastq.gz", ".fastq.gz"),
        (
            "file_bed_narrowPeak_optimalIDR_GRCh38_ENCFF286HTI.json",
            "ENCFF286HTI",
            "peaks/S003.narrowPeak.gz",
            ".bed.gz",
        ),
    ]:
        data = read(path)
        serve_encode_file(portal, storage, file_object(template, acc, data, ext), data)
    mates = [read("fastq/S002_R1.fastq.gz"), read("fastq/S002_R2.fastq.gz")]
    portal.text["/portal/api/filereport"] = ena_report(
        [("SRR0000002", ["SRR0000002_1.fastq.gz", "SRR0000002_2.fastq.gz"], mates)],
        storage.url.split("://")[1],
    )
    for i, blob in enumerate(mates, start=1):
        storage.blobs[f"/vol1/fastq/SRR0000002/SRR0000002_{i}.fastq.gz"] = blob
    storage.blobs["/data/S002.narrowPeak.gz"] = read("peaks/S002.narrowPeak.gz")
    storage.faults["/vol1/fastq/SRR0000002/SRR0000002_2.fastq.gz"] = ["drop"]
    storage.faults["/bucket/ENCFF719JFL/ENCFF719JFL.fastq.gz"] = ["503"]


def remote_samplesheet(tmp_path, storage: Server):
    sheet = pd.read_csv(DATA / "samplesheet.csv", keep_default_na=False, dtype=str)
    sheet = sheet.set_index("sample")
    sheet.loc["S001", ["rna_1", "rna_2", "atac"]] = ["ENCFF719JFL", "ENCFF105YSI", "ENCFF769VDQ"]
    sheet.loc["S002", ["rna_1", "rna_2", "atac"]] = [
        "SRR0000002",
        "",
        f"{storage.url}/data/S002.narrowPeak.gz",
    ]
    sheet.loc["S003", ["rna_1", "atac"]] = ["ENCFF961HXV", "ENCFF286HTI"]
    for sample in ("S004", "S005", "S006"):  # local files, beside the remote ones
        for col in ("rna_1", "rna_2", "atac"):
            value = sheet.loc[sample, col]
            sheet.loc[sample, col] = str(DATA / value) if value else ""
    path = tmp_path / "remote.csv"
    sheet.reset_index().to_csv(path, index=False)
    return path


def run(sheet, outdir, portal):
    """`gexp run` on the bundled cohort's reference, with the test servers as ENCODE and ENA."""
    return gexp_run(
        DATA,
        sheet,
        outdir,
        "--encode-url",
        portal.url,
        "--ena-url",
        portal.url,
        "--retry-wait",
        0.01,
    )


def test_accessions_run_end_to_end_and_rerun_downloads_nothing(servers, tmp_path):
    portal, storage = servers
    serve_cohort(portal, storage)
    sheet = remote_samplesheet(tmp_path, storage)
    proc = run(sheet, tmp_path / "remote", portal)
    assert proc.returncode == 0, proc.stderr
    local = run(DATA / "samplesheet.csv", tmp_path / "local", portal)
    assert local.returncode == 0, local.stderr
    got = pd.read_csv(tmp_path / "remote" / "expression" / "gene_tpm.tsv", sep="\t", index_col=0)
    want = pd.read_csv(tmp_path / "local" / "expression" / "gene_tpm.tsv", sep="\t", index_col=0)
    pd.testing.assert_frame_equal(got, want)
    for s in ("S001", "S002", "S003"):
        assert (tmp_path / "remote" / "accessibility" / f"{s}.tsv.gz").read_bytes() == (
            tmp_path / "local" / "accessibility" / f"{s}.tsv.gz"
        ).read_bytes()

    fetched = sorted(p.name for p in (tmp_path / "remote" / "fetch").iterdir())
    assert "SRR0000002_1.fastq.gz" in fetched and "SRR0000002_2.fastq.gz.md5" in fetched
    assert "ENCFF769VDQ.bed.gz" in fetched and not any(n.endswith(".part") for n in fetched)
    localised = pd.read_csv(
        tmp_path / "remote" / "pipeline_info" / "samplesheet.local.csv", keep_default_na=False
    ).set_index("sample")
    assert localised.loc["S002", "rna_2"].endswith("SRR0000002_2.fastq.gz")
    assert localised.loc["S002", "single_end"] == False  # noqa: E712 (pandas bool)

    before = len(portal.requests) + len(storage.requests)
    again = run(sheet, tmp_path / "remote", portal)
    assert again.returncode == 0, again.stderr
    assert len(portal.requests) + len(storage.requests) == before
    assert again.stderr.count("already fetched and verified") == 7


def test_fetch_module_publishes_where_gexp_run_fetches(servers, tmp_path):
    """The FETCH process's outputs (fetch/*) land in outdir/fetch, as `gexp run` puts them."""
    portal, storage = servers
    serve_cohort(portal, storage)
    (proc,) = [p for p in processes() if p.name == "FETCH"]
    (pattern,) = [o for o in proc.output_paths() if o != "versions.yml"]
    config = (ROOT / "conf" / "modules.config").read_text()
    blocks = re.findall(r"withName: '([^']+)' \{(.*?)\n    \}", config, re.S)
    publish = [body for names, body in blocks if "FETCH" in names.split("|") and "path:" in body]
    assert len(publish) == 1 and 'path: { "${params.outdir}" }' in publish[0]  # → outdir/fetch/
    proc_run = run(remote_samplesheet(tmp_path, storage), tmp_path / "out", portal)
    assert proc_run.returncode == 0, proc_run.stderr
    assert list((tmp_path / "out").glob(pattern))


def test_unknown_accession_in_samplesheet_stops_before_work(servers, tmp_path):
    portal, storage = servers
    sheet = tmp_path / "s.csv"
    sheet.write_text("sample,rna_1,atac\nA,ENCFF000NOP,ENCFF000NOQ\n")
    proc = run(sheet, tmp_path / "out", portal)
    assert proc.returncode == 1
    assert "ENCFF000NOP: not found (404)" in proc.stderr or "ENCFF000NOQ: not found" in proc.stderr
    assert not (tmp_path / "out" / "reference").exists()
