"""`gexp run` end to end with the real kallisto and bedtools on simulated data."""

from __future__ import annotations

import gzip
import json
import shutil

import numpy as np
import pandas as pd
import pytest
from conftest import gexp_run

pytestmark = pytest.mark.slow


def log1p_pearson(truth: pd.DataFrame, observed: pd.DataFrame) -> float:
    observed = observed.loc[truth.index, truth.columns]
    return float(
        np.corrcoef(np.log1p(truth.to_numpy().ravel()), np.log1p(observed.to_numpy().ravel()))[0, 1]
    )


@pytest.fixture
def result(run_result):
    return run_result


def test_gene_tpm_matches_truth(sim, result):
    table = pd.read_csv(result / "expression" / "gene_tpm.tsv", sep="\t")
    samples = pd.read_csv(sim / "samplesheet.csv")["sample"].tolist()
    assert list(table.columns) == ["gene_id", "gene_name", *samples]
    assert not table["gene_id"].str.contains(r"\.").any()
    truth = pd.read_csv(sim / "truth" / "gene_tpm.tsv", sep="\t", index_col=0)
    assert log1p_pearson(truth, table.set_index("gene_id")) >= 0.9


def test_output_layout(sim, result):
    samples = pd.read_csv(sim / "samplesheet.csv")["sample"].tolist()
    for s in samples:
        assert (result / "kallisto" / s / "abundance.tsv").is_file()
        assert (
            json.loads((result / "kallisto" / s / "run_info.json").read_text())["n_processed"] > 0
        )
        assert (result / "accessibility" / f"{s}.tsv.gz").is_file()
    assert (result / "accessibility" / "bins.bed").is_file()
    qc = json.loads((result / "dataset" / "qc.json").read_text())
    assert qc["status"] == "pass" and qc["n_samples"] == len(samples)
    assert all(qc["samples"][s]["open_bins"] > 0 for s in samples)
    versions = (result / "pipeline_info" / "versions.yml").read_text()
    assert 'kallisto: "0.48' in versions and "bedtools:" in versions
    from gexpcore.steps.dataset import load_dataset

    matrix, expression, genes, sheet, bins = load_dataset(result / "dataset")
    assert matrix.shape == (len(samples), len(bins))
    assert list(expression.columns) == sheet["sample"].tolist()
    assert sheet["group"].str.startswith("group").all()
    assert not list(result.rglob(".*.tmp*"))


def test_rerun_skips_finished_steps_and_redoes_missing_ones(sim, result, tmp_path):
    out = tmp_path / "copy"
    shutil.copytree(result, out)
    proc = gexp_run(sim, sim / "samplesheet.csv", out)
    assert proc.returncode == 0, proc.stderr
    assert "kallisto_quant.S001: complete, skipped" in proc.stderr
    assert "dataset: complete, skipped" in proc.stderr
    (out / "accessibility" / "S002.tsv.gz").unlink()
    proc = gexp_run(sim, sim / "samplesheet.csv", out)
    assert proc.returncode == 0, proc.stderr
    assert "peak_bins.S001: complete, skipped" in proc.stderr
    assert "peak_bins.S002: complete" not in proc.stderr
    assert "dataset: complete" not in proc.stderr
    assert (out / "accessibility" / "S002.tsv.gz").is_file()


def test_windows_line_endings_and_split_runs_and_existing_quantification(sim, result, tmp_path):
    """A CRLF samplesheet; one sample as two `;`-separated runs; one from an abundance.tsv."""
    sheet = pd.read_csv(sim / "samplesheet.csv", keep_default_na=False, dtype=str)
    single = sheet.index[sheet["rna_2"] == ""][0]
    with gzip.open(sim / sheet.loc[single, "rna_1"], "rt") as fh:
        lines = fh.readlines()
    half = (len(lines) // 8) * 4
    for part, chunk in (("a", lines[:half]), ("b", lines[half:])):
        with gzip.open(tmp_path / f"run_{part}.fastq.gz", "wt") as fh:
            fh.writelines(chunk)
    sheet.loc[single, "rna_1"] = f"{tmp_path / 'run_a.fastq.gz'};{tmp_path / 'run_b.fastq.gz'}"
    sheet.loc[0, ["rna_1", "rna_2"]] = ""
    sheet.loc[0, "rna_tpm"] = str(result / "kallisto" / sheet.loc[0, "sample"] / "abundance.tsv")
    for col in ("rna_2", "atac"):
        sheet[col] = [str(sim / v) if v and not v.startswith("/") else v for v in sheet[col]]
    sheet["rna_1"] = [str(sim / v) if v and not v.startswith("/") else v for v in sheet["rna_1"]]
    path = tmp_path / "samplesheet.csv"
    path.write_bytes(sheet.to_csv(index=False, lineterminator="\r\n").encode())
    out = tmp_path / "res"
    proc = gexp_run(sim, path, out)
    assert proc.returncode == 0, proc.stderr
    truth = pd.read_csv(sim / "truth" / "gene_tpm.tsv", sep="\t", index_col=0)
    table = pd.read_csv(out / "expression" / "gene_tpm.tsv", sep="\t", index_col=0)
    assert log1p_pearson(truth, table) >= 0.9
    original = pd.read_csv(result / "expression" / "gene_tpm.tsv", sep="\t", index_col=0)
    s = sheet.loc[single, "sample"]
    assert np.corrcoef(np.log1p(original[s]), np.log1p(table[s]))[0, 1] > 0.999


def test_too_few_samples_to_train_still_prepares_the_data(sim, tmp_path):
    sheet = pd.read_csv(sim / "samplesheet.csv", keep_default_na=False, dtype=str).head(4)
    for col in ("rna_1", "rna_2", "atac"):
        sheet[col] = [str(sim / v) if v else v for v in sheet[col]]
    path = tmp_path / "four.csv"
    sheet.to_csv(path, index=False)
    proc = gexp_run(sim, path, tmp_path / "res")
    assert proc.returncode == 0, proc.stderr
    assert "training skipped: cross-validation needs at least 6 samples" in proc.stderr
    assert (tmp_path / "res" / "dataset" / "qc.json").is_file()
    assert not (tmp_path / "res" / "model").exists()
    assert "No trained models yet" in (tmp_path / "res" / "report.html").read_text()
