"""Samples with ATAC-seq only (issue 25): rows to predict, never trained on, predicted after
TRAIN with each gene's reliability, by `gexp run` as by `gexp predict`."""

from __future__ import annotations

import filecmp
import gzip
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import assert_user_error, run_gexp
from gexpcore.evaluation.reliability import conformal_quantile, fold_coverage, interval_model
from gexpcore.io.samplesheet import read_samplesheet
from pipeline import PREDICT_ROWS, copy_test_data, with_samples_to_predict, with_scatac_library


def test_rows_without_rna_are_samples_to_predict(tmp_path):
    data = copy_test_data(tmp_path / "data")
    samples = read_samplesheet(with_samples_to_predict(data))
    assert [s.sample for s in samples if s.to_predict] == ["P001", "P002"]
    assert not any(s.to_predict for s in samples if s.sample.startswith("S"))


def test_a_samplesheet_with_only_samples_to_predict_is_refused_in_one_line(tmp_path):
    data = copy_test_data(tmp_path / "data")
    sheet = data / "only.csv"
    sheet.write_text("sample,group,rna_1,rna_2,rna_tpm,atac,fragment_length,fragment_sd\n"
                     + PREDICT_ROWS)  # fmt: skip
    ref = data / "reference"
    proc = run_gexp(
        "run", "--input", sheet, "--gtf", ref / "genes.gtf.gz",
        "--chrom-sizes", ref / "chrom.sizes", "--outdir", tmp_path / "out",
    )  # fmt: skip
    assert_user_error(proc, "every row is ATAC-seq only", "--model DIR")
    assert not (tmp_path / "out").exists()


def _files(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


def test_samples_to_predict_change_no_byte_of_the_dataset_or_the_models(
    gexp_predict_run, gexp_test_run
):
    for folder in ("dataset", "model"):
        names = [
            n for n in _files(gexp_test_run / folder) if n not in ("fit_seconds.json", ".gexp.lock")
        ]
        assert _files(gexp_predict_run / folder) == _files(gexp_test_run / folder)
        different = [
            n
            for n in names
            if not filecmp.cmp(gexp_test_run / folder / n, gexp_predict_run / folder / n, False)
        ]
        assert different == [], different
    assert not (gexp_test_run / "predictions").exists()


def test_a_run_predicts_each_sample_with_its_reliability(gexp_predict_run):
    out = gexp_predict_run / "predictions"
    per_gene_r = pd.read_csv(gexp_predict_run / "model" / "per_gene_r.tsv", sep="\t")
    merged = pd.read_csv(out / "predicted_tpm.tsv", sep="\t")
    assert list(merged.columns) == ["gene_id", "gene_name", "held_out_r", "P001", "P002"]
    for sample in ("P001", "P002"):
        table = pd.read_csv(out / f"{sample}.predicted_tpm.tsv", sep="\t")
        np.testing.assert_array_equal(table["predicted_tpm"], merged[sample])
        np.testing.assert_allclose(table["held_out_r"], per_gene_r["ensemble"], atol=1e-4)
        assert (table["lower_tpm"] <= table["predicted_tpm"] + 1e-9).all()
        assert (table["predicted_tpm"] <= table["upper_tpm"] + 1e-9).all()
        summary = json.loads((out / f"{sample}.prediction.json").read_text())
        assert summary["model"] == "ensemble" and summary["interval"]["level"] == 0.8
    similarity = pd.read_csv(out / "similarity.tsv", sep="\t")
    # Their peaks are S001's and S004's: each is nearest to its twin, r 1, inside the range.
    assert similarity["nearest_training_sample"].tolist() == ["S001", "S004"]
    assert similarity["nearest_training_r"].tolist() == [1.0, 1.0]
    assert not similarity["outside_training"].any()


def test_gexp_predict_takes_several_samples_and_writes_what_the_run_wrote(
    gexp_predict_run, tmp_path
):
    acc = gexp_predict_run / "accessibility"
    proc = run_gexp(
        "predict", "--model", gexp_predict_run / "model",
        "--atac", acc / "P001.tsv.gz", acc / "P002.tsv.gz", "--sample", "P001", "P002",
        "--outdir", tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.count("the model was trained on this sample") == 2
    for name in ("P001.predicted_tpm.tsv", "P002.prediction.json"):
        assert (tmp_path / name).read_bytes() == (
            gexp_predict_run / "predictions" / name
        ).read_bytes()
    proc = run_gexp(
        "predictions", "--predictions", tmp_path / "P001.predicted_tpm.tsv",
        tmp_path / "P002.predicted_tpm.tsv", "--outdir", tmp_path / "merged",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    for name in ("predicted_tpm.tsv", "similarity.tsv"):
        assert (tmp_path / "merged" / name).read_bytes() == (
            gexp_predict_run / "predictions" / name
        ).read_bytes()


def test_a_sample_unlike_every_training_sample_is_flagged(gexp_predict_run, tmp_path):
    """Peaks where no training sample has any: its nearest r is below every held-out
    sample's, so the log and its summary say its predictions lie outside what was measured."""
    sizes = pd.read_csv(
        copy_test_data(tmp_path / "data") / "reference" / "chrom.sizes", sep="\t", header=None
    )
    rng = np.random.default_rng(5)
    chrom, size = sizes.iloc[0, 0], int(sizes.iloc[0, 1])
    starts = np.sort(rng.choice(np.arange(0, size - 500, 1000), 40, replace=False)) + 250
    lines = [f"{chrom}\t{s}\t{s + 200}\tp{i}\t0\t.\t{rng.uniform(5, 50):.2f}\t-1\t-1\t100\n"
             for i, s in enumerate(starts)]  # fmt: skip
    peaks = tmp_path / "odd.narrowPeak.gz"
    peaks.write_bytes(gzip.compress("".join(lines).encode()))
    proc = run_gexp(
        "predict", "--model", gexp_predict_run / "model", "--atac", peaks, "--outdir", tmp_path
    )
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((tmp_path / "odd.prediction.json").read_text())
    assert summary["outside_training"] is True, summary
    assert summary["nearest_training_r"] < summary["lowest_held_out_r"]
    assert "below the lowest any held-out sample had in cross-validation" in proc.stderr


def test_the_conformal_quantile_is_the_finite_sample_rank():
    scores = np.arange(1, 10, dtype=float)  # n = 9: the ⌈10 × 0.8⌉ = 8th smallest
    assert conformal_quantile(scores, 0.8) == 8.0
    assert conformal_quantile(np.arange(1, 4, dtype=float), 0.8) == 3.0  # capped at n


@pytest.mark.parametrize("seed", [0, 1])
def test_intervals_cover_their_nominal_share_on_held_out_folds(seed):
    """Residuals whose spread differs by gene: intervals from the other folds cover close to
    80 % of each fold's, and per-gene scales keep wide genes from taking all the misses."""
    rng = np.random.default_rng(seed)
    spread = rng.uniform(0.1, 2.0, size=400)
    residuals = rng.normal(size=(20, 400)) * spread
    fold_of = np.repeat(np.arange(4), 5)
    coverage = fold_coverage(residuals, fold_of)
    assert abs(np.mean(coverage) - 0.8) < 0.03, coverage
    scales, q = interval_model(residuals)
    wide, narrow = spread > 1.5, spread < 0.4
    inside = np.abs(residuals) <= q * scales
    assert abs(inside[:, wide].mean() - inside[:, narrow].mean()) < 0.1


def test_the_report_shows_the_predicted_samples(gexp_predict_run):
    page = (gexp_predict_run / "report.html").read_text()
    assert "<h2>Predicted samples</h2>" in page
    assert "covered" in page and "of held-out observations on this run's own folds" in page
    assert 'id="predicted_similarity"' in page and 'id="predicted_top_genes"' in page
    assert "most above the training mean" in page


def test_a_scatac_only_library_is_pseudobulked_and_predicted(gexp_scatac_run):
    """lib2 without its h5: its pseudobulk samples have ATAC-seq only, never reach DATASET,
    and are predicted; the report draws its cell types × genes."""
    table = pd.read_csv(gexp_scatac_run / "pseudobulk" / "lib2.samples.tsv", sep="\t")
    assert "umis" not in table.columns and (table["fragments"] > 0).all()
    assert not list((gexp_scatac_run / "pseudobulk").glob("lib2_*.gene_tpm.tsv"))
    dataset = pd.read_csv(gexp_scatac_run / "dataset" / "samples.tsv", sep="\t")
    assert set(dataset["library"]) == {"lib1"}
    similarity = pd.read_csv(gexp_scatac_run / "predictions" / "similarity.tsv", sep="\t")
    assert similarity["sample"].tolist() == sorted(table["sample"])
    page = (gexp_scatac_run / "report.html").read_text()
    assert "<h3>Library lib2 (scATAC-seq only)</h3>" in page


def test_a_library_whose_barcodes_are_not_the_fragments_fails_in_one_line(tmp_path):
    data = copy_test_data(tmp_path / "data") / "multiome"
    cells = data / "lib2" / "cells.csv"
    lines = cells.read_text().splitlines()
    cells.write_text("\n".join([lines[0], *(f"X{ln}" for ln in lines[1:])]) + "\n")
    proc = run_gexp(
        "run", "--input", with_scatac_library(data), "--gtf", data / "genes.gtf.gz",
        "--chrom-sizes", data / "chrom.sizes", "--outdir", tmp_path / "out",
    )  # fmt: skip
    assert_user_error(proc, "pseudobulk lib2: none of sample", "barcodes those of the fragments")


def test_the_samplesheet_schema_admits_the_new_row_kinds(tmp_path):
    """assets/schema_input.json (nf-schema drops empty cells): a bulk row without RNA and a
    library row without multiome_h5 are valid, a row with neither atac nor a library is not."""
    import jsonschema
    from conftest import ROOT

    schema = json.loads((ROOT / "assets" / "schema_input.json").read_text())
    rows = [
        {"sample": "P001", "atac": "peaks/P001.narrowPeak.gz"},
        {"sample": "lib2", "fragments": "lib2/f.tsv.gz", "cells": "lib2/cells.csv"},
        {"sample": "S001", "rna_tpm": "q.tsv", "atac": "p.bed"},
    ]
    jsonschema.validate(rows, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate([{"sample": "X", "rna_tpm": "q.tsv"}], schema)


def _only_samples_to_predict(data: Path) -> Path:
    sheet = data / "only_predict.csv"
    sheet.write_text("sample,group,rna_1,rna_2,rna_tpm,atac,fragment_length,fragment_sd\n"
                     + PREDICT_ROWS)  # fmt: skip
    return sheet


def test_a_run_with_a_trained_model_predicts_without_training(
    gexp_test_run, gexp_predict_run, tmp_path
):
    """--model: a samplesheet of samples to predict, binned on the model's bins and predicted
    from it, with no DATASET or TRAIN; the predictions are those of the run that trained it
    (the same model, byte for byte)."""
    data = copy_test_data(tmp_path / "data")
    ref = data / "reference"
    proc = run_gexp(
        "run", "--input", _only_samples_to_predict(data), "--gtf", ref / "genes.gtf.gz",
        "--chrom-sizes", ref / "chrom.sizes", "--outdir", tmp_path / "out",
        "--model", gexp_test_run / "model",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    out = tmp_path / "out"
    assert not (out / "dataset").exists() and not (out / "model").exists()
    assert not (out / "accessibility" / "bins.bed").exists()  # the model's bins are used
    assert _files(out / "predictions") == _files(gexp_predict_run / "predictions")
    for name in _files(out / "predictions"):
        expected = gexp_predict_run / "predictions" / name
        assert (out / "predictions" / name).read_bytes() == expected.read_bytes(), name
    for sample in ("P001", "P002"):
        name = f"accessibility/{sample}.tsv.gz"
        assert (out / name).read_bytes() == (gexp_predict_run / name).read_bytes()


def test_a_model_with_paired_samples_is_refused_in_one_line(gexp_test_run, tmp_path):
    data = copy_test_data(tmp_path / "data")
    proc = run_gexp(
        "samplesheet", "--input", with_samples_to_predict(data), "--out", tmp_path / "v.csv",
        "--with-model",
    )  # fmt: skip
    assert_user_error(proc, "--model predicts from a trained model, but samples S001")
    proc = run_gexp("samplesheet", "--input", _only_samples_to_predict(data),
                    "--out", tmp_path / "w.csv")  # fmt: skip
    assert_user_error(proc, "every row is ATAC-seq only", "--model DIR")


def test_a_bad_row_to_predict_fails_in_one_line_as_other_rows_do(tmp_path):
    data = copy_test_data(tmp_path / "data")
    sheet = with_samples_to_predict(data)
    good = (data / "peaks" / "S001.narrowPeak.gz").read_bytes()
    (data / "peaks" / "cut.narrowPeak.gz").write_bytes(good[: len(good) // 2])
    sheet.write_text(sheet.read_text() + "P003,,,,,peaks/cut.narrowPeak.gz,,\n")
    ref = data / "reference"
    proc = run_gexp(
        "run", "--input", sheet, "--transcriptome", ref / "transcripts.fa.gz",
        "--gtf", ref / "genes.gtf.gz", "--chrom-sizes", ref / "chrom.sizes",
        "--outdir", tmp_path / "out",
    )  # fmt: skip
    assert_user_error(proc, "cut.narrowPeak.gz", "truncated or corrupt gzip")
    assert not (tmp_path / "out" / "predictions").exists()
