"""`gexp reference` on GENCODE- and Ensembl-style GTFs."""

from __future__ import annotations

import pandas as pd
from conftest import run_gexp

GENCODE = """##description: test
chr1\tHAVANA\tgene\t101\t900\t.\t+\t.\tgene_id "ENSG00000000001.5"; gene_type "protein_coding"; gene_name "AAA";
chr1\tHAVANA\ttranscript\t101\t900\t.\t+\t.\tgene_id "ENSG00000000001.5"; transcript_id "ENST00000000011.2"; gene_type "protein_coding"; gene_name "AAA";
chr1\tHAVANA\texon\t101\t300\t.\t+\t.\tgene_id "ENSG00000000001.5"; transcript_id "ENST00000000011.2"; gene_name "AAA";
chr2\tHAVANA\tgene\t2001\t5000\t.\t-\t.\tgene_id "ENSG00000000002.1"; gene_type "lncRNA"; gene_name "BBB";
chr2\tHAVANA\ttranscript\t2001\t4000\t.\t-\t.\tgene_id "ENSG00000000002.1"; transcript_id "ENST00000000021.1"; gene_type "lncRNA"; gene_name "BBB";
chr2\tHAVANA\ttranscript\t2500\t5000\t.\t-\t.\tgene_id "ENSG00000000002.1"; transcript_id "ENST00000000022.3"; gene_type "lncRNA"; gene_name "BBB";
chrY\tHAVANA\tgene\t10\t50\t.\t+\t.\tgene_id "ENSG00000000001.5_PAR_Y"; gene_type "protein_coding"; gene_name "AAA";
"""

ENSEMBL = """#!genome-build GRCh38.p14
1\tensembl\tgene\t11\t20\t.\t-\t.\tgene_id "ENSG00000000003"; gene_version "4"; gene_name "CCC"; gene_biotype "protein_coding";
1\tensembl\ttranscript\t11\t20\t.\t-\t.\tgene_id "ENSG00000000003"; transcript_id "ENST00000000031"; gene_biotype "protein_coding";
"""


def reference(tmp_path, text):
    gtf = tmp_path / "genes.gtf"
    gtf.write_text(text)
    proc = run_gexp("reference", "--gtf", gtf, "--outdir", tmp_path / "ref")
    assert proc.returncode == 0, proc.stderr
    genes = pd.read_csv(tmp_path / "ref" / "genes.tsv", sep="\t", dtype={"chrom": str})
    genes = genes.set_index("gene_id")
    tx2gene = pd.read_csv(tmp_path / "ref" / "tx2gene.tsv", sep="\t")
    return genes, tx2gene


def test_gencode_versions_stripped_and_tss_by_strand(tmp_path):
    genes, tx2gene = reference(tmp_path, GENCODE)
    assert genes.loc["ENSG00000000001", "tss"] == 100  # + strand: start - 1 (0-based)
    assert genes.loc["ENSG00000000002", "tss"] == 4999  # - strand: end - 1
    assert genes.loc["ENSG00000000002", "gene_type"] == "lncRNA"
    assert "ENSG00000000001_PAR_Y" in genes.index  # distinct from the chrX/autosomal gene
    assert dict(zip(tx2gene["transcript_id"], tx2gene["gene_id"], strict=True)) == {
        "ENST00000000011": "ENSG00000000001",
        "ENST00000000021": "ENSG00000000002",
        "ENST00000000022": "ENSG00000000002",
    }


def test_ensembl_biotype_and_unprefixed_chromosomes(tmp_path):
    genes, tx2gene = reference(tmp_path, ENSEMBL)
    assert genes.loc["ENSG00000000003", "gene_type"] == "protein_coding"
    assert genes.loc["ENSG00000000003", "chrom"] == "1"
    assert genes.loc["ENSG00000000003", "tss"] == 19


def test_genes_without_gene_lines_are_spanned_by_transcripts(tmp_path):
    text = "\n".join(ln for ln in GENCODE.splitlines() if "\tgene\t" not in ln) + "\n"
    genes, _ = reference(tmp_path, text)
    assert genes.loc["ENSG00000000002", "tss"] == 4999
    assert genes.loc["ENSG00000000002", "start"] == 2001


def test_simulated_reference(sim, reference):
    genes = pd.read_csv(reference / "genes.tsv", sep="\t")
    truth = pd.read_csv(sim / "truth" / "gene_tpm.tsv", sep="\t")
    assert set(genes["gene_id"]) == set(truth["gene_id"])
