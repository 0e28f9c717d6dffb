"""The real `nextflow run main.nf -profile test` with the local executor, against `gexp run`.

One launch folder serves the whole module: the first run, `-resume` with nothing changed, and
`-resume` after one sample's peaks changed, in that order.
"""

from __future__ import annotations

import gzip
import json

import pytest
from pipeline import (
    assert_ok,
    assert_same_data_outputs,
    cached,
    copy_test_data,
    run_test_profile,
    submitted,
    with_samples_to_predict,
    with_scatac_library,
)

pytestmark = pytest.mark.pipeline


@pytest.fixture(scope="module")
def launch(tmp_path_factory, gexp_test_run):
    """The bundled cohort and the first Nextflow run on it (gexp_test_run: `gexp run`)."""
    base = tmp_path_factory.mktemp("nextflow-local")
    data = copy_test_data(base / "data")
    proc = run_test_profile(data, base / "results", base / "launch")
    log = assert_ok(proc)
    return {"base": base, "data": data, "log": log, "gexp": gexp_test_run}


def test_test_profile_completes_every_step(launch):
    from gexpcore.steps.run import STEPS

    ran = {task.split(" (")[0].split(":")[-1] for task in submitted(launch["log"])}
    # FETCH runs only for remote entries, which the bundled cohort has none of
    # no remote inputs, multiome libraries or samples to predict in the bundled cohort
    assert ran == {"PARAMS_CHECK", *STEPS} - {"FETCH", "PSEUDOBULK", "PREDICT", "PREDICTIONS"}
    assert "with Nextflow 24.10.0" in launch["log"]  # the pinned version, in the run log


def test_outputs_equal_gexp_run(launch):
    assert_same_data_outputs(launch["gexp"], launch["base"] / "results")


def test_pipeline_info_records_the_checked_params(launch):
    info = launch["base"] / "results" / "pipeline_info"
    params = json.loads((info / "params.json").read_text())
    assert params["mlp_epochs"] == 100 and params["outdir"] == str(launch["base"] / "results")
    assert "gexp:" in (info / "versions.yml").read_text()
    assert (info / "samplesheet.valid.csv").is_file()


def test_report_qc_counts_the_staged_peaks(launch):
    """REPORT counts each sample's peaks from files staged into its task (a container sees
    no host path): the QC table equals gexp run's, peak counts included."""
    nf = (launch["base"] / "results" / "multiqc" / "gexp_qc_mqc.tsv").read_text()
    gexp = (launch["gexp"] / "multiqc" / "gexp_qc_mqc.tsv").read_text()
    assert nf == gexp
    header = [ln for ln in nf.splitlines() if not ln.startswith("#")][0].split("\t")
    rows = [ln.split("\t") for ln in nf.splitlines() if not ln.startswith("#")][1:]
    assert all(row[header.index("peaks")].isdigit() for row in rows), rows


def test_resume_reruns_nothing(launch):
    base = launch["base"]
    log = assert_ok(run_test_profile(launch["data"], base / "results", base / "launch", "-resume"))
    assert submitted(log) == []
    assert len(cached(log)) == len(submitted(launch["log"]))


def test_changed_peaks_rerun_only_what_depends_on_them(launch):
    base = launch["base"]
    peaks = launch["data"] / "peaks" / "S003.narrowPeak.gz"
    lines = gzip.decompress(peaks.read_bytes()).decode().splitlines(keepends=True)
    peaks.write_bytes(gzip.compress("".join(lines[: len(lines) // 2]).encode()))
    log = assert_ok(run_test_profile(launch["data"], base / "results", base / "launch", "-resume"))
    rerun = sorted(task.split(":")[-1] for task in submitted(log))
    assert rerun == [
        "DATASET (6 samples)",
        "PEAK_BINS (S003)",
        "REPORT (report)",
        "TRAIN (dataset)",
    ]


def test_multiome_profile_equals_gexp_run(gexp_multiome_run, tmp_path):
    """-profile test_multiome: one PSEUDOBULK task per library, whose samples go through the
    bulk steps; every output, pseudobulk/ included, equals `gexp run`'s on the same data."""
    from gexpcore.steps.run import STEPS

    data = copy_test_data(tmp_path / "data")
    log = assert_ok(
        run_test_profile(data, tmp_path / "results", tmp_path / "launch", profile="test_multiome")
    )
    tasks = [task.split(" (")[0].split(":")[-1] for task in submitted(log)]
    assert tasks.count("PSEUDOBULK") == 2
    no_reads = {
        "FETCH",
        "KALLISTO_INDEX",
        "FASTQ_CHECK",
        "KALLISTO_QUANT",
        "PREDICT",
        "PREDICTIONS",
    }
    assert set(tasks) == {"PARAMS_CHECK", *STEPS} - no_reads
    assert tasks.count("PEAK_BINS") == tasks.count("GENE_TPM") == 16
    assert_same_data_outputs(gexp_multiome_run, tmp_path / "results")
    qc = "multiqc/gexp_qc_mqc.tsv"
    assert (tmp_path / "results" / qc).read_text() == (gexp_multiome_run / qc).read_text()


def test_multiqc_shows_every_sample_of_the_nextflow_run(launch, tmp_path):
    """The published folder, as MultiQC reads it: every sample's kallisto.log (KALLISTO_QUANT
    keeps it), gexp's tables and pipeline_info/gexp_software_mqc_versions.yml."""
    from multiqc_run import assert_multiqc_shows_every_sample

    samples = [f"S00{i}" for i in range(1, 7)]
    assert_multiqc_shows_every_sample(launch["base"] / "results", tmp_path / "mqc", samples)


def test_samples_to_predict_go_through_predict_as_in_gexp_run(gexp_predict_run, tmp_path):
    """Two rows with ATAC-seq only: PEAK_BINS bins them, DATASET and TRAIN never see them,
    PREDICT predicts each (one task per sample) and PREDICTIONS merges them; every output,
    predictions/ included, equals `gexp run`'s on the same samplesheet."""
    data = copy_test_data(tmp_path / "data")
    sheet = with_samples_to_predict(data)
    log = assert_ok(
        run_test_profile(data, tmp_path / "results", tmp_path / "launch", "--input", sheet)
    )
    tasks = [task.split(" (")[0].split(":")[-1] for task in submitted(log)]
    assert tasks.count("PREDICT") == 2 and tasks.count("PREDICTIONS") == 1
    assert tasks.count("PEAK_BINS") == 8 and tasks.count("GENE_TPM") == 6
    assert_same_data_outputs(gexp_predict_run, tmp_path / "results")


def test_a_scatac_only_library_is_predicted_as_in_gexp_run(gexp_scatac_run, tmp_path):
    """-profile test_multiome with lib2 scATAC-only: PSEUDOBULK makes its samples without RNA,
    PREDICT predicts each, and every output equals `gexp run`'s."""
    data = copy_test_data(tmp_path / "data")
    sheet = with_scatac_library(data / "multiome")
    log = assert_ok(
        run_test_profile(
            data, tmp_path / "results", tmp_path / "launch", "--input", sheet,
            profile="test_multiome",
        )
    )  # fmt: skip
    tasks = [task.split(" (")[0].split(":")[-1] for task in submitted(log)]
    assert tasks.count("PREDICT") == tasks.count("GENE_TPM") == 8
    assert tasks.count("PREDICTIONS") == 1
    assert_same_data_outputs(gexp_scatac_run, tmp_path / "results")


def test_a_trained_model_predicts_without_training_as_in_gexp_run(
    gexp_test_run, gexp_predict_run, tmp_path
):
    """--model with a samplesheet of samples to predict: PEAK_BINS on the model's bins, then
    PREDICT and PREDICTIONS; DATASET, TRAIN and REPORT never start; the predictions are
    byte for byte those of `gexp run` with the same model."""
    data = copy_test_data(tmp_path / "data")
    sheet = data / "only_predict.csv"
    rows = with_samples_to_predict(data).read_text().splitlines()
    sheet.write_text("\n".join([rows[0], *(r for r in rows if r.startswith("P0"))]) + "\n")
    log = assert_ok(
        run_test_profile(
            data, tmp_path / "results", tmp_path / "launch", "--input", sheet,
            "--model", gexp_test_run / "model",
        )
    )  # fmt: skip
    tasks = [task.split(" (")[0].split(":")[-1] for task in submitted(log)]
    assert tasks.count("PREDICT") == 2 and tasks.count("PEAK_BINS") == 2
    assert not {"DATASET", "TRAIN", "REPORT", "GENE_TPM"} & set(tasks)
    results = tmp_path / "results"
    assert not (results / "accessibility" / "bins.bed").exists()
    for name in ("predicted_tpm.tsv", "similarity.tsv", "P001.predicted_tpm.tsv"):
        assert (results / "predictions" / name).read_bytes() == (
            gexp_predict_run / "predictions" / name
        ).read_bytes(), name
