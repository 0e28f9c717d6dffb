"""`gexp gene-tpm` on kallisto output and ENCODE-style gene tables."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pandas as pd
import pytest
from conftest import assert_user_error, run_gexp
from gexpcore.steps.gene_tpm import sum_by_gene


@pytest.fixture
def ref(tmp_path):
    tx2gene = tmp_path / "tx2gene.tsv"
    tx2gene.write_text(
        "transcript_id\tgene_id\nENST1\tENSG1\nENST2\tENSG1\nENST3\tENSG2\n"
        + "".join(f"ENST{i}\tENSG{i}\n" for i in range(10, 30))
    )
    genes = tmp_path / "genes.tsv"
    ids = ["ENSG1", "ENSG2"] + [f"ENSG{i}" for i in range(10, 30)]
    genes.write_text(
        "gene_id\tgene_name\tgene_type\tchrom\tstart\tend\tstrand\ttss\n"
        + "".join(
            f"{g}\tN{g}\tprotein_coding\tchr1\t{i * 1000 + 1}\t{i * 1000 + 500}\t+\t{i * 1000}\n"
            for i, g in enumerate(ids)
        )
    )
    return tx2gene, genes


def run(tmp_path, ref, text, sample="S1"):
    quant = tmp_path / "quant.tsv"
    quant.write_text(text)
    out = tmp_path / "out" / f"{sample}.gene_tpm.tsv"
    proc = run_gexp(
        "gene-tpm",
        "--quant",
        quant,
        "--tx2gene",
        ref[0],
        "--genes",
        ref[1],
        "--sample",
        sample,
        "--out",
        out,
    )
    return proc, out


def test_kallisto_transcripts_summed_per_gene_across_versions(tmp_path, ref):
    rows = [
        "ENST1.3|ENSG1.7|OTTHUMG|OTTHUMT|A-201|A|900|protein_coding|\t900\t700\t10\t100",
        "ENST2.1|ENSG1.7|OTTHUMG|OTTHUMT|A-202|A|900|protein_coding|\t900\t700\t10\t50",
        "ENST3.9\t900\t700\t10\t25",
    ] + [f"ENST{i}.2\t900\t700\t1\t1" for i in range(10, 30)]
    proc, out = run(
        tmp_path, ref, "target_id\tlength\teff_length\test_counts\ttpm\n" + "\n".join(rows) + "\n"
    )
    assert proc.returncode == 0, proc.stderr
    table = pd.read_csv(out, sep="\t", index_col=0)["tpm"]
    assert table["ENSG1"] == 150 and table["ENSG2"] == 25 and table["ENSG10"] == 1


def test_encode_gene_table_ignores_spikeins_and_trnas(tmp_path, ref):
    header = "gene_id\ttranscript_id(s)\tlength\teffective_length\texpected_count\tTPM\tFPKM\n"
    rows = [
        "ENSG1.12\tENST1.3\t900\t700\t10\t12.5\t3",
        "ENSG2.4\tENST3\t900\t700\t10\t0\t0",
        "7699\t7699\t72\t0\t0\t0\t0",
        "gSpikein_ERCC-00002\tx\t1061\t900\t5\t4.0\t1",
    ]
    rows += [f"ENSG{i}.1\tENST{i}\t900\t700\t1\t2\t1" for i in range(10, 30)]
    proc, out = run(tmp_path, ref, header + "\n".join(rows) + "\n")
    assert proc.returncode == 0, proc.stderr
    table = pd.read_csv(out, sep="\t", index_col=0)["tpm"]
    assert table["ENSG1"] == 12.5 and table["ENSG2"] == 0 and "7699" not in table.index


def test_warns_when_some_annotated_genes_are_missing(tmp_path, ref):
    rows = [f"ENSG{i}.1\t2" for i in range(10, 28)] + ["ENSG1\t5"]  # 19 of 22 genes
    proc, out = run(tmp_path, ref, "gene_id\tTPM\n" + "\n".join(rows) + "\n")
    assert proc.returncode == 0, proc.stderr
    assert "only 86% of annotated genes found" in proc.stderr and out.exists()


def test_fails_when_most_gene_ids_do_not_match(tmp_path, ref):
    rows = [f"ENSMUSG{i}.1\t2" for i in range(10, 30)] + ["ENSG1.1\t5"]
    proc, out = run(tmp_path, ref, "gene_id\tTPM\n" + "\n".join(rows) + "\n")
    assert_user_error(proc, "sample S1", "only 5% of annotated genes found")
    assert not out.parent.exists() or not any(out.parent.iterdir())


def test_all_zero_sample_fails(tmp_path, ref):
    rows = [f"ENSG{i}\t0" for i in range(10, 30)] + ["ENSG1\t0", "ENSG2\t0"]
    proc, out = run(tmp_path, ref, "gene_id\tTPM\n" + "\n".join(rows) + "\n", sample="Zero")
    assert_user_error(proc, "sample Zero", "expression is zero for every gene")
    assert not out.exists()


def test_gene_sums_are_exactly_rounded_whatever_the_order():
    """The same bytes under any pandas: ten transcripts of 0.1 TPM make exactly 1.0 (a plain
    running sum gives 0.9999999999999999), and random sums equal exact rational arithmetic."""
    rng = np.random.default_rng(4)
    gene = pd.Series(["G2"] * 10 + list(rng.choice(["G1", "G3", "G4"], 200)) + [None] * 3)
    tpm = pd.Series([0.1] * 10 + list(rng.gamma(0.3, 50.0, 200)) + [7.0] * 3)
    got = sum_by_gene(tpm, gene)
    assert list(got.index) == ["G1", "G2", "G3", "G4"]
    assert got["G2"] == 1.0 and sum([0.1] * 10) != 1.0
    for g in ("G1", "G3", "G4"):
        exact = sum((Fraction(v) for v in tpm[gene == g]), Fraction(0))
        assert got[g] == float(exact)
    shuffled = rng.permutation(len(gene))
    again = sum_by_gene(tpm.iloc[shuffled], gene.iloc[shuffled])
    assert again.to_numpy().tobytes() == got.to_numpy().tobytes()
