"""--transcriptome is needed only for samples with FASTQ, in both runners."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
from conftest import (
    FAST_TRAINING,
    ROOT,
    assert_nothing_written,
    assert_user_error,
    run_gexp,
)

DATA = ROOT / "tests" / "data"
GTF = DATA / "reference" / "genes.gtf.gz"


def gene_table_cohort(folder: Path) -> Path:
    """The bundled cohort as ENCODE-style gene quantifications (versioned ids, TPM and FPKM
    columns) and its peaks: no FASTQ. Returns the samplesheet."""
    truth = pd.read_csv(DATA / "truth" / "gene_tpm.tsv", sep="\t", index_col=0)
    sheet = pd.read_csv(DATA / "samplesheet.csv")
    folder.mkdir(parents=True, exist_ok=True)
    for sample in sheet["sample"]:
        table = pd.DataFrame(
            {
                "gene_id": truth.index + ".7",
                "transcript_id(s)": "ENST0",
                "length": 1500.0,
                "TPM": truth[sample].to_numpy(),
                "FPKM": truth[sample].to_numpy() / 2,
            }
        )
        table.to_csv(folder / f"{sample}.genes.tsv", sep="\t", index=False)
    rows = sheet[["sample", "group"]].assign(
        rna_tpm=sheet["sample"] + ".genes.tsv",
        atac=[str(DATA / "peaks" / f"{s}.narrowPeak.gz") for s in sheet["sample"]],
    )
    rows.to_csv(folder / "samplesheet.csv", index=False)
    return folder / "samplesheet.csv"


def test_a_cohort_of_gene_tables_and_peaks_runs_without_a_transcriptome(tmp_path):
    sheet = gene_table_cohort(tmp_path / "cohort")
    out = tmp_path / "results"
    proc = run_gexp(
        "run",
        *("--input", sheet, "--gtf", GTF, "--chrom-sizes", DATA / "reference" / "chrom.sizes"),
        *("--outdir", out, *FAST_TRAINING),
    )
    assert proc.returncode == 0, proc.stderr
    table = pd.read_csv(out / "expression" / "gene_tpm.tsv", sep="\t", index_col="gene_id")
    truth = pd.read_csv(DATA / "truth" / "gene_tpm.tsv", sep="\t", index_col=0)
    np.testing.assert_allclose(table.loc[truth.index, truth.columns], truth, rtol=1e-5)  # 6 digits
    assert json.loads((out / "dataset" / "qc.json").read_text())["status"] == "pass"
    assert (out / "model" / "metrics.json").is_file()
    assert not (out / "kallisto").exists() and not (out / "reference" / "transcripts.idx").exists()


def test_samples_with_fastq_and_no_transcriptome_fail_before_any_work_naming_them(tmp_path):
    out = tmp_path / "results"
    proc = run_gexp(
        "run",
        *("--input", DATA / "samplesheet.csv", "--gtf", GTF),
        *("--chrom-sizes", DATA / "reference" / "chrom.sizes", "--outdir", out),
    )
    assert_user_error(proc, "S001, S002", "--transcriptome", "rna_tpm")
    assert_nothing_written(out)


def test_both_runners_ask_for_the_transcriptome_only_when_a_sample_has_fastq():
    from gexpcore.cli import build_parser
    from gexpcore.steps.run import TRANSCRIPTOME_NEEDED

    run = build_parser()._subparsers._group_actions[0].choices["run"]
    (flag,) = [a for a in run._actions if "--transcriptome" in a.option_strings]
    assert not flag.required and flag.default is None

    schema = json.loads((ROOT / "nextflow_schema.json").read_text())
    assert all("transcriptome" not in g.get("required", []) for g in schema["$defs"].values())
    config = (ROOT / "nextflow.config").read_text()
    assert re.search(r"^\s*transcriptome\s*=\s*null\s*$", config, re.M)

    main = (ROOT / "main.nf").read_text()
    # params.transcriptome is read in one place: the channel started by the first FASTQ sample,
    # which fails with gexp run's words when it is missing.
    uses = [m.start() for m in re.finditer(r"params\.transcriptome", main)]
    start = r"ch_transcriptome = ch_fastq\.first\(\)\.map \{"
    statement = re.search(start + r".*?\n    \}\n", main, re.S)
    assert statement and all(statement.start() < u < statement.end() for u in uses), uses
    assert TRANSCRIPTOME_NEEDED in statement.group(0)
    assert "if (!params.transcriptome)" in statement.group(0)
