"""Pseudobulk samples from a simulated multiome library recover its per-cell truth exactly.

The simulator (gexpcore.steps.simulate_multiome) writes Cell Ranger ARC's formats (a 10x h5,
a bgzipped tabix-indexed fragments file) and, from its in-memory draws, the summed
UMI counts and Tn5 cut sites of every (group, donor). The checks read the outputs
independently: the h5 layout with h5py alone, gene lengths with plain interval
arithmetic, bins by position.
"""

from __future__ import annotations

import gzip
import json
import logging
import shutil
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
from conftest import assert_user_error, run_gexp
from gexpcore.errors import GexpError
from gexpcore.steps.pseudobulk import pseudobulk
from gexpcore.steps.simulate_multiome import BIN, CHROM_SIZE, simulate_multiome


@pytest.fixture(scope="module")
def library(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("multiome")
    simulate_multiome(out, seed=2)
    proc = run_gexp("bins", "--chrom-sizes", out / "chrom.sizes", "--out", out / "bins.bed")
    assert proc.returncode == 0, proc.stderr
    return out


@pytest.fixture(scope="module")
def result(library, tmp_path_factory) -> tuple[Path, pd.DataFrame]:
    out = tmp_path_factory.mktemp("pseudobulk")
    qc = _pseudobulk(library, out)
    return out, qc


def _pseudobulk(library: Path, out: Path, **kw) -> pd.DataFrame:
    return pseudobulk(
        "lib1", library / "filtered_feature_bc_matrix.h5", library / "atac_fragments.tsv.gz",
        kw.pop("cells", library / "cells.csv"), library / "genes.gtf.gz", library / "bins.bed",
        out, **kw,
    )  # fmt: skip


def test_the_simulated_h5_follows_the_10x_layout(library):
    with h5py.File(library / "filtered_feature_bc_matrix.h5") as h5:
        m = h5["matrix"]
        n_features, n_cells = m["shape"][:]
        assert len(m["barcodes"]) == n_cells and len(m["indptr"]) == n_cells + 1
        assert len(m["features/id"]) == n_features
        types = set(m["features/feature_type"][:])
        assert types == {b"Gene Expression", b"Peaks"}
        assert m["barcodes"][0].decode().endswith("-1")
    assert (library / "atac_fragments.tsv.gz.tbi").is_file()


def test_umi_counts_and_cut_sites_equal_the_truth(library, result):
    out, qc = result
    truth = pd.read_csv(library / "truth" / "umi_counts.tsv", sep="\t", index_col=0)
    assert sorted(qc["sample"]) == sorted(truth.columns)
    assert (qc.set_index("sample")["umis"] == truth.sum(axis=0)).all()
    cuts = pd.read_csv(library / "truth" / "cut_sites.tsv", sep="\t")
    for sample in qc["sample"]:
        peaks = pd.read_csv(out / f"{sample}.narrowPeak.gz", sep="\t", header=None)
        chrom_index = peaks[0].map({"chr1": 0, "chr2": 1})
        found = pd.Series(
            peaks[6].to_numpy(), index=chrom_index * (CHROM_SIZE // BIN) + peaks[1] // BIN
        ).sort_index()
        expected = cuts[cuts["sample"] == sample].set_index("bin")["cuts"].sort_index()
        pd.testing.assert_series_equal(found, expected, check_names=False, check_dtype=False)
        assert qc.set_index("sample").loc[sample, "fragments"] == expected.sum() // 2


def _exon_union(gtf: Path) -> dict[str, int]:
    spans: dict[str, set[int]] = {}
    for line in gzip.open(gtf, "rt"):
        f = line.rstrip("\n").split("\t")
        if f[2] == "exon":
            gene = f[8].split('gene_id "')[1].split('"')[0].split(".")[0]
            spans.setdefault(gene, set()).update(range(int(f[3]), int(f[4]) + 1))
    return {g: len(s) for g, s in spans.items()}


def test_tpm_is_counts_per_exonic_kilobase_scaled_to_a_million(library, result):
    out, qc = result
    truth = pd.read_csv(library / "truth" / "umi_counts.tsv", sep="\t", index_col=0)
    lengths = pd.Series(_exon_union(library / "genes.gtf.gz"))
    sample = qc["sample"].iloc[0]
    rate = truth[sample] / lengths.reindex(truth.index) * 1000
    expected = rate / rate.sum() * 1e6
    found = pd.read_csv(out / f"{sample}.gene_tpm.tsv", sep="\t", index_col=0)["tpm"]
    np.testing.assert_allclose(found.reindex(expected.index), expected, rtol=1e-9)


def test_pseudo_replicates_split_cells_disjointly(library, tmp_path):
    qc = _pseudobulk(library, tmp_path, replicates=2, min_cells=20)
    assert set(qc["replicate"]) == {1, 2}
    per_group = qc.groupby(["group", "donor"])["cells"].sum()
    cells = pd.read_csv(library / "cells.csv")
    assert (per_group == cells.groupby(["group", "donor"]).size()).all()


def test_the_samplesheet_it_writes_is_a_bulk_one(result):
    out, qc = result
    sheet = pd.read_csv(out / "lib1.samplesheet.csv")
    assert list(sheet.columns) == ["sample", "group", "rna_tpm", "atac"]
    assert all(Path(p).is_file() for p in [*sheet["rna_tpm"], *sheet["atac"]])


def test_an_unknown_barcode_is_named_with_its_line(library, tmp_path):
    cells = tmp_path / "cells.csv"
    lines = (library / "cells.csv").read_text().splitlines()
    lines[3] = "ZZZZ-1,type1,donor1"
    cells.write_text("\n".join(lines) + "\n")
    with pytest.raises(GexpError, match=r"cells.csv, line 4: barcode ZZZZ-1 is not a cell"):
        _pseudobulk(library, tmp_path / "out", cells=cells)
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_fragments_without_an_index_are_refused(library, tmp_path):
    copy = tmp_path / "lib"
    shutil.copytree(library, copy)
    (copy / "atac_fragments.tsv.gz.tbi").unlink()
    with pytest.raises(GexpError, match="no tabix index"):
        _pseudobulk(copy, tmp_path / "out")
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_small_groups_are_left_out_by_name_and_none_left_is_an_error(library, tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger="gexp")
    with pytest.raises(GexpError, match="no group has 1000 cells"):
        _pseudobulk(library, tmp_path / "out", min_cells=1000)
    assert "group type1 (donor donor1) has" in caplog.text


def test_a_genome_mismatch_is_refused(library, tmp_path):
    with pytest.raises(GexpError, match="on genome sim, not --genome GRCh38"):
        _pseudobulk(library, tmp_path / "out", genome="GRCh38")


def test_simulate_pseudobulk_and_run_from_the_command_line(tmp_path):
    """The way a user runs it: simulate a library, pseudobulk it, `gexp run` its samplesheet."""
    lib = tmp_path / "lib"
    assert run_gexp("-q", "simulate", "--multiome", "--outdir", lib, "--seed", 4).returncode == 0
    bins = tmp_path / "bins.bed"
    proc = run_gexp("-q", "bins", "--chrom-sizes", lib / "chrom.sizes", "--out", bins)
    assert proc.returncode == 0, proc.stderr
    proc = run_gexp(
        "-q", "pseudobulk", "--library", "lib1", "--h5", lib / "filtered_feature_bc_matrix.h5",
        "--fragments", lib / "atac_fragments.tsv.gz", "--cells", lib / "cells.csv",
        "--gtf", lib / "genes.gtf.gz", "--bins", bins, "--outdir", tmp_path / "pb",
        "--min-cells", 20, "--replicates", 2,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    sheet = Path(proc.stdout.strip())
    assert sheet == tmp_path / "pb" / "lib1.samplesheet.csv"
    proc = run_gexp(
        "-q", "run", "--input", sheet, "--gtf", lib / "genes.gtf.gz",
        "--chrom-sizes", lib / "chrom.sizes", "--outdir", tmp_path / "res", "--cv", 2,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    qc = json.loads((tmp_path / "res" / "dataset" / "qc.json").read_text())
    assert qc["n_samples"] == 16  # 4 types × 2 donors × 2 pseudo-replicates


def test_pseudobulk_errors_are_one_line_and_write_nothing(library, tmp_path):
    proc = run_gexp(
        "pseudobulk", "--library", "lib1", "--h5", library / "filtered_feature_bc_matrix.h5",
        "--fragments", library / "atac_fragments.tsv.gz", "--cells", library / "cells.csv",
        "--gtf", library / "genes.gtf.gz", "--bins", library / "bins.bed",
        "--outdir", tmp_path / "out", "--genome", "GRCh38",
    )  # fmt: skip
    assert_user_error(proc, "on genome sim, not --genome GRCh38")
    assert not (tmp_path / "out").exists()
