"""Bundled genomes: primary-assembly chromosome sizes with a stated source, in both runners."""

from __future__ import annotations

import gzip
import json
import re
from pathlib import Path

import pandas as pd
import pytest
from conftest import FAST_TRAINING, ROOT, run_gexp
from gexpcore.io.genome import GENOMES, read_chrom_sizes
from test_transcriptome import GTF, gene_table_cohort

ASSETS = ROOT / "assets"
# The oracle: UCSC's chromInfo as Debian's bedtools package ships it (installed with the
# project's tools), for every assembly it has.
BEDTOOLS = Path("/usr/share/bedtools/genomes")
UCSC = {"GRCh38": "human.hg38.genome", "GRCh37": "human.hg19.genome", "GRCm38": "mouse.mm10.genome"}
PRIMARY = {"GRCh38": 22, "GRCh37": 22, "GRCm39": 19, "GRCm38": 19}  # autosomes


def primary(n_autosomes: int) -> list[str]:
    return [f"chr{i}" for i in range(1, n_autosomes + 1)] + ["chrX", "chrY", "chrM"]


@pytest.mark.parametrize("assembly", sorted(PRIMARY))
def test_bundled_sizes_are_the_primary_assembly_with_a_stated_source(assembly):
    sizes = read_chrom_sizes(ASSETS / f"{assembly}.chrom.sizes")
    assert list(sizes) == primary(PRIMARY[assembly])
    readme = (ASSETS / "README.md").read_text()
    (row,) = [ln for ln in readme.splitlines() if ln.startswith(f"| `{assembly}`")]
    assert f"`{assembly}.chrom.sizes`" in row
    assert re.search(r"UCSC|Ensembl|GENCODE|NCBI", row) and re.search(r"\d", row)
    if assembly in UCSC and (BEDTOOLS / UCSC[assembly]).is_file():
        ucsc = pd.read_csv(BEDTOOLS / UCSC[assembly], sep="\t", header=None, index_col=0)[1]
        assert sizes == {chrom: int(ucsc[chrom]) for chrom in sizes}


def test_mouse_builds_differ_in_their_nuclear_chromosomes_and_share_the_mitochondrion():
    grcm39 = read_chrom_sizes(ASSETS / "GRCm39.chrom.sizes")
    grcm38 = read_chrom_sizes(ASSETS / "GRCm38.chrom.sizes")
    assert grcm39["chrM"] == grcm38["chrM"] == 16299
    assert all(grcm39[c] != grcm38[c] for c in primary(19)[:-1])


def test_each_name_and_its_ucsc_alias_use_one_file():
    assert set(GENOMES.values()) == {f"{a}.chrom.sizes" for a in PRIMARY}
    for grc, ucsc in [
        ("GRCh38", "hg38"),
        ("GRCh37", "hg19"),
        ("GRCm39", "mm39"),
        ("GRCm38", "mm10"),
    ]:
        assert GENOMES[grc] == GENOMES[ucsc] == f"{grc}.chrom.sizes"


def test_both_runners_and_the_schema_know_the_same_genomes():
    from gexpcore.cli import build_parser

    schema = json.loads((ROOT / "nextflow_schema.json").read_text())
    assert schema["$defs"]["reference_options"]["properties"]["genome"]["enum"] == list(GENOMES)
    main = (ROOT / "main.nf").read_text()
    body = re.search(r"def chromSizes\(\) \{(.*?)\n\}", main, re.S).group(1)
    bundled = dict(re.findall(r"^\s+(\w+)\s*:\s*'([^']+)',?$", body, re.M))
    assert bundled == GENOMES
    assert '"${projectDir}/assets/${bundled[params.genome]}"' in body
    commands = build_parser()._subparsers._group_actions[0].choices
    for name in ("bins", "peak-bins", "run"):
        (genome,) = [a for a in commands[name]._actions if "--genome" in a.option_strings]
        assert list(genome.choices) == list(GENOMES), name


@pytest.mark.parametrize("genome", sorted(GENOMES))
def test_bins_cover_each_bundled_genome(tmp_path, genome):
    out = tmp_path / "bins.bed"
    proc = run_gexp(
        "bins", "--genome", genome, "--region", "chrX", "--bin-size", 1_000_000, "--out", out
    )
    assert proc.returncode == 0, proc.stderr
    bins = pd.read_csv(out, sep="\t", header=None)
    assert bins[2].max() == read_chrom_sizes(ASSETS / GENOMES[genome])["chrX"]


def test_ensembl_named_peaks_are_harmonised_onto_a_bundled_genome(tmp_path):
    bins = tmp_path / "bins.bed"
    proc = run_gexp(
        "bins", "--genome", "mm39", "--region", "chrM", "--bin-size", 1000, "--out", bins
    )
    assert proc.returncode == 0, proc.stderr
    peaks = tmp_path / "peaks.bed.gz"
    peaks.write_bytes(gzip.compress(b"MT\t100\t600\nMT\t16200\t16299\n7\t5\t50\n"))
    out = tmp_path / "p.tsv.gz"
    proc = run_gexp(
        "peak-bins", "--peaks", peaks, "--bins", bins, "--genome", "GRCm39", "--out", out
    )
    assert proc.returncode == 0, proc.stderr
    assert "MT->chrM" in proc.stderr.replace(" ", "")
    values = pd.read_csv(out, sep="\t")
    assert values.iloc[:, 0].tolist() == [0, 16]


def test_gene_tables_and_peaks_on_hg19_need_no_transcriptome(tmp_path):
    sheet = gene_table_cohort(tmp_path / "cohort")
    out = tmp_path / "results"
    proc = run_gexp(
        "run",
        *("--input", sheet, "--gtf", GTF, "--genome", "hg19", "--outdir", out),
        *("--region", "chr1:1-1000000", *FAST_TRAINING),
    )
    assert proc.returncode == 0, proc.stderr
    bins = pd.read_csv(out / "accessibility" / "bins.bed", sep="\t", header=None)
    assert len(bins) == 1000 and set(bins[0]) == {"chr1"}
    qc = json.loads((out / "dataset" / "qc.json").read_text())
    assert qc["status"] == "pass" and qc["n_samples"] == 6
    assert (out / "model" / "metrics.json").is_file() and (out / "report.html").is_file()
