"""Bad input fails loudly: one line naming the file, line or sample and the cause, a non-zero
exit, no traceback and no half-written output. One test per case."""

from __future__ import annotations

import gzip
import os
import shutil

import pandas as pd
import pytest
from conftest import assert_nothing_written, assert_user_error, gexp_run, run_gexp


def sheet_from(sim, tmp_path, edit=None, text=None):
    """A copy of the simulated samplesheet with absolute paths, optionally edited."""
    sheet = pd.read_csv(sim / "samplesheet.csv", keep_default_na=False, dtype=str)
    for col in ("rna_1", "rna_2", "atac"):
        sheet[col] = [str(sim / v) if v else v for v in sheet[col]]
    if edit:
        edit(sheet)
    path = tmp_path / "samplesheet.csv"
    path.write_text(text if text is not None else sheet.to_csv(index=False))
    return path


@pytest.fixture
def bins(tmp_path):
    sizes = tmp_path / "chrom.sizes"
    sizes.write_text("chr1\t5000\nchr2\t3000\n")
    out = tmp_path / "bins.bed"
    assert run_gexp("bins", "--chrom-sizes", sizes, "--out", out).returncode == 0
    return sizes, out


def peak_bins(tmp_path, bins, text: str | bytes, name="peaks.bed", gz=False):
    sizes, bins_path = bins
    path = tmp_path / name
    data = text.encode() if isinstance(text, str) else text
    path.write_bytes(gzip.compress(data) if gz else data)
    outdir = tmp_path / "out"
    proc = run_gexp(
        "peak-bins",
        "--peaks",
        path,
        "--bins",
        bins_path,
        "--chrom-sizes",
        sizes,
        "--out",
        outdir / "S1.tsv.gz",
    )
    return proc, outdir, path


def reference(tmp_path, text):
    gtf = tmp_path / "bad.gtf"
    gtf.write_text(text)
    proc = run_gexp("reference", "--gtf", gtf, "--outdir", tmp_path / "ref")
    return proc, tmp_path / "ref", gtf


GTF_OK = (
    'chr1\tHAVANA\tgene\t11\t20\t.\t+\t.\tgene_id "ENSG1.1"; gene_name "A";\n'
    'chr1\tHAVANA\ttranscript\t11\t20\t.\t+\t.\tgene_id "ENSG1.1"; transcript_id "ENST1.1";\n'
)


# --- samplesheet -------------------------------------------------------------------------


def test_missing_sample_id(sim, tmp_path):
    sheet = sheet_from(sim, tmp_path, lambda s: s.__setitem__("sample", ["", *s["sample"][1:]]))
    proc = gexp_run(sim, sheet, tmp_path / "res")
    assert_user_error(proc, "line 2", "missing sample id")
    assert not (tmp_path / "res").exists()


def test_duplicate_sample_id(sim, tmp_path):
    sheet = sheet_from(
        sim,
        tmp_path,
        lambda s: s.__setitem__("sample", [*s["sample"][:2], s["sample"][0], *s["sample"][3:]]),
    )
    proc = gexp_run(sim, sheet, tmp_path / "res")
    assert_user_error(proc, "line 4", "duplicate sample id 'S001' (first on line 2)")
    assert not (tmp_path / "res").exists()


@pytest.mark.parametrize("bad", ["S 1", "a;rm", "../x", "-x", "é1"])
def test_invalid_sample_id(sim, tmp_path, bad):
    sheet = sheet_from(sim, tmp_path, lambda s: s.__setitem__("sample", [bad, *s["sample"][1:]]))
    proc = gexp_run(sim, sheet, tmp_path / "res")
    assert_user_error(proc, "line 2", f"invalid sample id '{bad}'")
    assert not (tmp_path / "res").exists()


def test_missing_input_file(sim, tmp_path):
    sheet = sheet_from(
        sim, tmp_path, lambda s: s.__setitem__("atac", ["missing.narrowPeak.gz", *s["atac"][1:]])
    )
    proc = gexp_run(sim, sheet, tmp_path / "res")
    assert_user_error(proc, "sample S001 atac not found", "missing.narrowPeak.gz")
    assert not (tmp_path / "res").exists()


def test_unreadable_input_file(sim, tmp_path):
    """A folder where a file belongs (and, when not root, a file without read permission)."""
    (tmp_path / "adir").mkdir()
    sheet = sheet_from(
        sim, tmp_path, lambda s: s.__setitem__("atac", [str(tmp_path / "adir"), *s["atac"][1:]])
    )
    assert_user_error(
        gexp_run(sim, sheet, tmp_path / "res"), "sample S001 atac", "not a regular file"
    )
    if os.geteuid() != 0:
        locked = tmp_path / "locked.bed"
        locked.write_text("chr1\t1\t2\n")
        locked.chmod(0)
        sheet = sheet_from(
            sim, tmp_path, lambda s: s.__setitem__("atac", [str(locked), *s["atac"][1:]])
        )
        assert_user_error(gexp_run(sim, sheet, tmp_path / "res"), "not readable")


def test_samplesheet_with_windows_line_endings_is_read(sim, tmp_path):
    from gexpcore.io.samplesheet import read_samplesheet

    plain = sheet_from(sim, tmp_path)
    crlf = tmp_path / "crlf.csv"
    crlf.write_bytes(plain.read_bytes().replace(b"\n", b"\r\n"))
    assert read_samplesheet(crlf) == read_samplesheet(plain)
    assert read_samplesheet(crlf)[0].atac.endswith(".narrowPeak.gz")


def test_samplesheet_unknown_column(sim, tmp_path):
    sheet = sheet_from(sim, tmp_path, text="sample,atac,rna_1,fastq\nS1,a.bed,r.fq,x\n")
    assert_user_error(gexp_run(sim, sheet, tmp_path / "res"), "unknown column(s) fastq")


# --- compressed and sequence files ---------------------------------------------------------


def test_truncated_gzip_fastq(sim, tmp_path):
    data = (sim / "fastq" / "S003.fastq.gz").read_bytes()
    (tmp_path / "cut.fastq.gz").write_bytes(data[: len(data) // 2])
    sheet = sheet_from(
        sim, tmp_path, lambda s: s.loc.__setitem__((2, "rna_1"), str(tmp_path / "cut.fastq.gz"))
    )
    proc = gexp_run(sim, sheet, tmp_path / "res")
    assert_user_error(proc, "cut.fastq.gz", "truncated or corrupt gzip")
    assert not (tmp_path / "res" / "kallisto" / "S003").exists()


def test_truncated_gzip_peaks(tmp_path, bins):
    data = gzip.compress(b"".join(b"chr1\t%d\t%d\n" % (i, i + 50) for i in range(0, 4000, 7)))
    proc, outdir, _ = peak_bins(tmp_path, bins, data[: len(data) - 20], name="p.bed.gz")
    assert_user_error(proc, "p.bed.gz", "truncated or corrupt gzip")
    assert_nothing_written(outdir)


def test_malformed_fastq_record(sim, tmp_path):
    bad = tmp_path / "bad.fastq.gz"
    bad.write_bytes(gzip.compress(b"@r1\nACGT\n+\nIIII\nr2\nACGT\n+\nIIII\n"))
    sheet = sheet_from(sim, tmp_path, lambda s: s.loc.__setitem__((2, "rna_1"), str(bad)))
    assert_user_error(
        gexp_run(sim, sheet, tmp_path / "res"), "bad.fastq.gz line 5", "must start with '@'"
    )


def test_fastq_with_incomplete_last_record(sim, tmp_path):
    bad = tmp_path / "short.fastq.gz"
    bad.write_bytes(gzip.compress(b"@r1\nACGT\n+\nIIII\n@r2\nACGT\n"))
    sheet = sheet_from(sim, tmp_path, lambda s: s.loc.__setitem__((2, "rna_1"), str(bad)))
    assert_user_error(
        gexp_run(sim, sheet, tmp_path / "res"),
        "short.fastq.gz",
        "not a whole number of 4-line records",
    )


def test_paired_fastq_with_different_read_counts(sim, tmp_path):
    with gzip.open(sim / "fastq" / "S001_R2.fastq.gz", "rt") as fh:
        lines = fh.readlines()
    short = tmp_path / "S001_R2.fastq.gz"
    with gzip.open(short, "wt") as fh:
        fh.writelines(lines[:-8])
    sheet = sheet_from(sim, tmp_path, lambda s: s.loc.__setitem__((0, "rna_2"), str(short)))
    proc = gexp_run(sim, sheet, tmp_path / "res")
    assert_user_error(proc, "sample S001", "paired FASTQ files have different read counts")
    assert not (tmp_path / "res" / "kallisto" / "S001").exists()


# --- peaks ---------------------------------------------------------------------------------


def test_peak_end_before_start(tmp_path, bins):
    proc, outdir, _ = peak_bins(tmp_path, bins, "chr1\t10\t50\nchr1\t300\t200\n")
    assert_user_error(proc, "peaks.bed line 2", "end before start")
    assert_nothing_written(outdir)


def test_peak_too_few_columns(tmp_path, bins):
    proc, outdir, _ = peak_bins(tmp_path, bins, "# comment\nchr1\t10\t50\nchr1 20 80\n")
    assert_user_error(proc, "peaks.bed line 3", "BED needs at least 3")
    assert_nothing_written(outdir)


def test_peak_non_numeric_coordinates(tmp_path, bins):
    proc, outdir, _ = peak_bins(tmp_path, bins, "chr1\t10\t50\nchr1\t1e\t80\n")
    assert_user_error(proc, "peaks.bed line 2", "non-numeric start '1e'")
    assert_nothing_written(outdir)


def test_empty_peak_file(tmp_path, bins):
    proc, outdir, _ = peak_bins(tmp_path, bins, "", name="empty.narrowPeak.gz", gz=True)
    assert_user_error(proc, "empty.narrowPeak.gz", "no peaks (empty file)")
    assert_nothing_written(outdir)


def test_peaks_on_no_chromosome_of_the_genome(tmp_path, bins):
    proc, outdir, _ = peak_bins(tmp_path, bins, "scaffold_1\t10\t50\nscaffold_2\t1\t9\n")
    assert_user_error(proc, "peaks.bed", "no peak is on a chromosome of the genome", "scaffold_1")
    assert_nothing_written(outdir)


# --- GTF -----------------------------------------------------------------------------------


def test_gtf_end_before_start(tmp_path):
    proc, out, _ = reference(tmp_path, GTF_OK + GTF_OK.replace("\t11\t20\t", "\t30\t20\t"))
    assert_user_error(proc, "bad.gtf line 3", "end before start")
    assert not out.exists()


def test_gtf_too_few_columns(tmp_path):
    proc, out, _ = reference(tmp_path, "#!header\n" + GTF_OK + "chr1\tHAVANA\tgene\t1\t2\n")
    assert_user_error(proc, "bad.gtf line 4", "fewer than 9")
    assert not out.exists()


def test_gtf_non_numeric_coordinates(tmp_path):
    proc, out, _ = reference(tmp_path, GTF_OK.replace("\t20\t", "\ttwenty\t", 1))
    assert_user_error(proc, "bad.gtf line 1", "non-numeric end 'twenty'")
    assert not out.exists()


# --- dataset-level QC ----------------------------------------------------------------------


def test_region_with_no_genes(sim, tmp_path):
    proc = gexp_run(sim, sim / "samplesheet.csv", tmp_path / "res", "--region", "chr1:1-50000")
    assert_user_error(proc, "no annotated gene has its TSS inside the bins")
    assert not (tmp_path / "res" / "dataset").exists()


def test_sample_with_no_open_bin(sim, reference, tmp_path):
    sizes = sim / "reference" / "chrom.sizes"
    bins = tmp_path / "bins.bed"
    assert run_gexp("bins", "--chrom-sizes", sizes, "--out", bins).returncode == 0
    expr, acc = [], []
    for s in ("A", "B"):
        (tmp_path / f"{s}.gene_tpm.tsv").write_text("gene_id\ttpm\nENSG00000100000\t5\n")
        (tmp_path / f"{s}.tsv.gz").write_bytes(
            gzip.compress(b"bin\tvalue\n3\t1\n" if s == "A" else b"bin\tvalue\n")
        )
        expr.append(tmp_path / f"{s}.gene_tpm.tsv")
        acc.append(tmp_path / f"{s}.tsv.gz")
    proc = run_gexp(
        "dataset",
        "--bins",
        bins,
        "--genes",
        reference / "genes.tsv",
        "--expression",
        *expr,
        "--accessibility",
        *acc,
        "--outdir",
        tmp_path / "o",
    )
    assert_user_error(proc, "sample B", "no open bin")
    assert not (tmp_path / "o").exists()


def test_sample_with_all_zero_expression_in_dataset(sim, reference, tmp_path):
    sizes = sim / "reference" / "chrom.sizes"
    bins = tmp_path / "bins.bed"
    assert run_gexp("bins", "--chrom-sizes", sizes, "--out", bins).returncode == 0
    for s, tpm in (("A", 5), ("Z", 0)):
        (tmp_path / f"{s}.gene_tpm.tsv").write_text(f"gene_id\ttpm\nENSG00000100000\t{tpm}\n")
        (tmp_path / f"{s}.tsv.gz").write_bytes(gzip.compress(b"bin\tvalue\n3\t1\n"))
    proc = run_gexp(
        "dataset",
        "--bins",
        bins,
        "--genes",
        reference / "genes.tsv",
        "--expression",
        tmp_path / "A.gene_tpm.tsv",
        tmp_path / "Z.gene_tpm.tsv",
        "--accessibility",
        tmp_path / "A.tsv.gz",
        tmp_path / "Z.tsv.gz",
        "--outdir",
        tmp_path / "o",
    )
    assert_user_error(proc, "sample Z", "expression is zero for every gene")
    assert not (tmp_path / "o").exists()


def test_tool_missing_from_path(tmp_path, bins, monkeypatch):
    sizes, _ = bins
    py = shutil.which("python3")
    monkeypatch.setenv("PATH", os.path.dirname(py))
    proc = run_gexp("bins", "--chrom-sizes", sizes, "--out", tmp_path / "o" / "bins.bed")
    if shutil.which("bedtools", path=os.path.dirname(py)) is None:
        assert_user_error(proc, "bedtools not found on PATH")
    assert not (tmp_path / "o" / "bins.bed").exists()


def test_non_numeric_fragment_length(sim, tmp_path):
    sheet = sheet_from(sim, tmp_path, lambda s: s.loc.__setitem__((2, "fragment_length"), "long"))
    proc = gexp_run(sim, sheet, tmp_path / "res")
    assert_user_error(proc, "line 4 (sample S003)", "fragment_length must be a number, got 'long'")


def test_invalid_region(sim, tmp_path):
    proc = gexp_run(sim, sim / "samplesheet.csv", tmp_path / "res", "--region", "chr1:500-100")
    assert_user_error(proc, "invalid region 'chr1:500-100'")
    proc = gexp_run(sim, sim / "samplesheet.csv", tmp_path / "res", "--region", "chr9")
    assert_user_error(proc, "chromosome chr9 is not in the chrom sizes")


def test_malformed_chrom_sizes(tmp_path):
    sizes = tmp_path / "bad.sizes"
    sizes.write_text("chr1\t1000\nchr2\tlots\n")
    proc = run_gexp("bins", "--chrom-sizes", sizes, "--out", tmp_path / "out" / "bins.bed")
    assert_user_error(proc, "bad.sizes line 2", "non-numeric size 'lots'")
    assert not (tmp_path / "out").exists()


def test_paired_run_given_as_read_2(tmp_path):
    from gexpcore.errors import GexpError
    from gexpcore.io.samplesheet import Sample
    from gexpcore.steps.localise import localise

    sample = Sample("A", rna_1=["SRR0000001"], rna_2=["SRR0000002"], atac="x.bed")
    fetched = {"SRR0000001": ["a_1.fq.gz", "a_2.fq.gz"], "SRR0000002": ["b_1.fq.gz", "b_2.fq.gz"]}
    with pytest.raises(GexpError, match="run 'SRR0000001' is paired-end by itself"):
        localise([sample], fetched)


def test_report_peaks_must_be_sample_equals_file(tmp_path):
    proc = run_gexp("report", "--run", tmp_path, "--peaks", "S001")
    assert_user_error(proc, "--peaks takes SAMPLE=FILE, got 'S001'")


def test_check_fastq_on_a_missing_file_names_it_in_one_line(tmp_path):
    proc = run_gexp("check-fastq", "--sample", "S1", "--read1", tmp_path / "absent.fastq.gz")
    assert_user_error(proc, "FASTQ not found", "absent.fastq.gz")


def test_multiome_simulation_with_more_genes_than_its_chromosome_holds(tmp_path):
    proc = run_gexp("simulate", "--multiome", "--genes", "901", "--outdir", tmp_path / "sim")
    assert_user_error(proc, "--genes 901", "at most 900 genes")
    assert not (tmp_path / "sim").exists()
