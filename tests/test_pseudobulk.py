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
import os
import shutil
import subprocess
import sys
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
    """lib1/ of a simulated experiment; its GTF, chrom.sizes and bins.bed are in the parent."""
    out = tmp_path_factory.mktemp("multiome")
    simulate_multiome(out, seed=2)
    proc = run_gexp("bins", "--chrom-sizes", out / "chrom.sizes", "--out", out / "bins.bed")
    assert proc.returncode == 0, proc.stderr
    return out / "lib1"


@pytest.fixture(scope="module")
def result(library, tmp_path_factory) -> tuple[Path, pd.DataFrame]:
    out = tmp_path_factory.mktemp("pseudobulk")
    qc = _pseudobulk(library, out)
    return out, qc


def _pseudobulk(library: Path, out: Path, **kw) -> pd.DataFrame:
    return pseudobulk(
        "lib1", library / "filtered_feature_bc_matrix.h5", library / "atac_fragments.tsv.gz",
        kw.pop("cells", library / "cells.csv"), library.parent / "genes.gtf.gz",
        library.parent / "bins.bed", out, **kw,
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


SCANPY_READ = """
import json, sys
import numpy as np, pandas as pd, scanpy as sc
h5, cells = sys.argv[1], pd.read_csv(sys.argv[2])
both = sc.read_10x_h5(h5, gex_only=False)
genes = sc.read_10x_h5(h5)
chosen = cells[(cells["group"] == "type2") & (cells["donor"] == "donor1")]["barcode"].tolist()
print(json.dumps({
    "types": sorted(set(both.var["feature_types"])),
    "known": bool(cells["barcode"].isin(both.obs_names).all()),
    "gene_ids": genes.var["gene_ids"].tolist(),
    "summed": np.asarray(genes[chosen].X.sum(axis=0)).ravel().astype(int).tolist(),
}))
"""


def test_scanpy_reads_the_simulated_h5_and_its_sums_are_the_truth(library):
    """The format as its users read it: scanpy's 10x reader, both feature types, barcodes as
    the cell table names them, and a group's summed UMIs equal to the truth. scanpy runs in a
    venv of its own (`make test` makes it and sets GEXP_SCANPY_PYTHON): its pins would move
    pandas in gexp's."""
    python = os.environ.get("GEXP_SCANPY_PYTHON")
    if not python:
        pytest.importorskip("scanpy")
        python = sys.executable
    h5, cells = library / "filtered_feature_bc_matrix.h5", library / "cells.csv"
    proc = subprocess.run([python, "-c", SCANPY_READ, h5, cells], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    read = json.loads(proc.stdout)
    assert read["types"] == ["Gene Expression", "Peaks"] and read["known"]
    truth = pd.read_csv(library / "truth" / "umi_counts.tsv", sep="\t", index_col=0)
    assert read["gene_ids"] == list(truth.index)
    assert read["summed"] == truth["lib1_type2_donor1"].tolist()


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
    lengths = pd.Series(_exon_union(library.parent / "genes.gtf.gz"))
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
    assert list(sheet.columns) == ["sample", "group", "donor", "rna_tpm", "atac"]
    # paths relative to the samplesheet, so the folder can move (and both runners agree)
    assert all(
        (out / p).is_file() and p == Path(p).name for p in [*sheet["rna_tpm"], *sheet["atac"]]
    )


def test_groups_whose_names_clash_in_sample_ids_are_refused(library, tmp_path):
    cells = pd.read_csv(library / "cells.csv")
    cells["group"] = cells["group"].str.replace("type1", "t_1").str.replace("type2", "t-1")
    cells.to_csv(tmp_path / "cells.csv", index=False)
    with pytest.raises(GexpError, match="groups t-1 and t_1 .* both make sample lib1_t-1_donor1"):
        _pseudobulk(library, tmp_path / "out", cells=tmp_path / "cells.csv")


def test_an_unknown_barcode_is_named_with_its_line(library, tmp_path):
    cells = tmp_path / "cells.csv"
    lines = (library / "cells.csv").read_text().splitlines()
    lines[3] = "ZZZZ-1,type1,donor1"
    cells.write_text("\n".join(lines) + "\n")
    with pytest.raises(GexpError, match=r"cells.csv, line 4: barcode ZZZZ-1 is not a cell"):
        _pseudobulk(library, tmp_path / "out", cells=cells)
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_fragments_without_an_index_are_refused(library, tmp_path):
    copy = tmp_path / "experiment"
    shutil.copytree(library.parent, copy)
    (copy / "lib1" / "atac_fragments.tsv.gz.tbi").unlink()
    with pytest.raises(GexpError, match="no tabix index"):
        _pseudobulk(copy / "lib1", tmp_path / "out")
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
    one = lib / "lib1"
    proc = run_gexp(
        "-q", "pseudobulk", "--library", "lib1", "--h5", one / "filtered_feature_bc_matrix.h5",
        "--fragments", one / "atac_fragments.tsv.gz", "--cells", one / "cells.csv",
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
        "--gtf", library.parent / "genes.gtf.gz", "--bins", library.parent / "bins.bed",
        "--outdir", tmp_path / "out", "--genome", "GRCh38",
    )  # fmt: skip
    assert_user_error(proc, "on genome sim, not --genome GRCh38")
    assert not (tmp_path / "out").exists()


# -- a multiome samplesheet in `gexp run` ------------------------------------------------------


@pytest.fixture(scope="module")
def experiment(tmp_path_factory) -> Path:
    """Two libraries of two donors each, as `gexp simulate --multiome` writes them."""
    out = tmp_path_factory.mktemp("experiment")
    proc = run_gexp("-q", "simulate", "--multiome", "--libraries", 2, "--outdir", out, "--seed", 5)
    assert proc.returncode == 0, proc.stderr
    assert Path(proc.stdout.strip()) == out / "samplesheet.csv"
    return out


def _run(experiment: Path, outdir: Path, *extra, sheet: Path | None = None):
    return run_gexp(
        "run", "--input", sheet or experiment / "samplesheet.csv",
        "--gtf", experiment / "genes.gtf.gz", "--chrom-sizes", experiment / "chrom.sizes",
        "--outdir", outdir, "--min-cells", 20, "--threads", 2, *extra,
    )  # fmt: skip


@pytest.fixture(scope="module")
def multiome_run(experiment, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("multiome-run") / "results"
    proc = _run(experiment, out, "--models", "mean,nearest")
    assert proc.returncode == 0, proc.stderr
    return out


def test_gexp_run_makes_every_librarys_samples_and_records_cells(experiment, multiome_run):
    samples = pd.read_csv(multiome_run / "dataset" / "samples.tsv", sep="\t")
    made = pd.concat(
        pd.read_csv(multiome_run / "pseudobulk" / f"{lib}.samples.tsv", sep="\t")
        for lib in ("lib1", "lib2")
    )
    assert len(samples) == 16  # 2 libraries × 4 types × 2 donors
    assert list(samples.columns) == [
        "sample", "group", "donor", "library", "cells", "umis", "fragments"
    ]  # fmt: skip
    merged = samples.merge(made, on="sample", suffixes=("", "_made"))
    for column in ("group", "donor", "library", "cells", "umis", "fragments"):
        assert (merged[column] == merged[f"{column}_made"]).all(), column
    cells = pd.concat(
        pd.read_csv(experiment / lib / "cells.csv").assign(library=lib) for lib in ("lib1", "lib2")
    )
    expected = cells.groupby(["library", "group", "donor"]).size().sort_values()
    assert sorted(samples["cells"]) == sorted(expected)
    qc = json.loads((multiome_run / "dataset" / "qc.json").read_text())
    assert all(qc["samples"][s]["fragments"] > 0 for s in samples["sample"])


def test_gexp_run_accessibility_is_the_truths_cut_sites(experiment, multiome_run):
    import scipy.sparse as sp

    matrix = sp.load_npz(multiome_run / "dataset" / "accessibility.npz").toarray()
    samples = pd.read_csv(multiome_run / "dataset" / "samples.tsv", sep="\t")["sample"].tolist()
    truth = pd.read_csv(experiment / "lib2" / "truth" / "cut_sites.tsv", sep="\t")
    sample = "lib2_type3_donor4"
    expected = np.zeros(matrix.shape[1])
    part = truth[truth["sample"] == sample]
    expected[part["bin"].to_numpy()] = part["cuts"].to_numpy()
    np.testing.assert_array_equal(matrix[samples.index(sample)], expected)


def test_gexp_run_resumes_a_multiome_run_without_redoing_it(experiment, multiome_run):
    proc = _run(experiment, multiome_run, "--models", "mean,nearest")
    assert proc.returncode == 0, proc.stderr
    assert "pseudobulk.lib1: complete, skipped" in proc.stderr
    assert "pseudobulk.lib2: complete, skipped" in proc.stderr


def _sheet(tmp_path: Path, experiment: Path, rows: list[str], header: str) -> Path:
    sheet = tmp_path / "samplesheet.csv"
    sheet.write_text("\n".join([header, *rows]) + "\n")
    for name in ("lib1", "lib2"):
        if not (tmp_path / name).exists():
            (tmp_path / name).symlink_to(experiment / name)
    return sheet


LIB = "lib1/filtered_feature_bc_matrix.h5,lib1/atac_fragments.tsv.gz,lib1/cells.csv"


@pytest.mark.parametrize(
    ("header", "row", "extra", "message"),
    [
        ("sample,multiome_h5,fragments,cells", f"lib1,{LIB}", ("--genome", "GRCh38"),
         "its features are on genome sim, not --genome GRCh38"),
        ("sample,multiome_h5,fragments,cells", f"lib1,{LIB}", ("--min-cells", 500),
         "pseudobulk lib1: no group has 500 cells"),
        ("sample,group,multiome_h5,fragments,cells", f"lib1,type1,{LIB}", (),
         "line 2 (sample lib1): group of a multiome library comes from its cell table"),
        ("sample,atac,multiome_h5,fragments,cells", f"lib1,p.bed,{LIB}", (),
         "a multiome library (multiome_h5, fragments, cells) cannot also have atac"),
        ("sample,multiome_h5,fragments,cells", "lib1,lib1/filtered_feature_bc_matrix.h5,,c.csv",
         (), "line 2 (sample lib1): a single-cell library needs fragments, cells (and "
         "multiome_h5 for RNA); missing fragments"),
        ("sample,multiome_h5,fragments", "lib1,lib1/filtered_feature_bc_matrix.h5,x.tsv.gz",
         (), "single-cell libraries need columns fragments, cells (and multiome_h5 for a "
         "multiome one); missing cells"),
        ("sample,multiome_h5,fragments,cells", f"lib1,{LIB.replace('.gz', '')}", (),
         "must be bgzipped (.tsv.gz) with a tabix index (.tbi) beside it"),
        ("sample,multiome_h5,fragments,cells", "lib1,https://x.org/a.h5,f.tsv.gz,c.csv", (),
         "multiome_h5 'https://x.org/a.h5' is a download"),
    ],
)  # fmt: skip
def test_a_bad_multiome_samplesheet_fails_in_one_line_before_any_work(
    experiment, tmp_path, header, row, extra, message
):
    sheet = _sheet(tmp_path, experiment, [row], header)
    proc = _run(experiment, tmp_path / "out", *extra, sheet=sheet)
    assert_user_error(proc, message)
    assert not (tmp_path / "out").exists()


def test_fragments_without_index_and_unknown_barcodes_fail_before_any_work(experiment, tmp_path):
    lib = tmp_path / "lib3"
    shutil.copytree(experiment / "lib1", lib)
    (lib / "atac_fragments.tsv.gz.tbi").unlink()
    row = "lib3,lib3/filtered_feature_bc_matrix.h5,lib3/atac_fragments.tsv.gz,lib3/cells.csv"
    sheet = _sheet(tmp_path, experiment, [row], "sample,multiome_h5,fragments,cells")
    proc = _run(experiment, tmp_path / "out", sheet=sheet)
    assert_user_error(proc, "sample lib3 fragments", "no tabix index")
    pysam_index(lib / "atac_fragments.tsv.gz")
    lines = (lib / "cells.csv").read_text().splitlines()
    lines[5] = "ZZZZ-1," + lines[5].split(",", 1)[1]
    (lib / "cells.csv").write_text("\n".join(lines) + "\n")
    proc = _run(experiment, tmp_path / "out", sheet=sheet)
    assert_user_error(proc, "cells.csv, line 6: barcode ZZZZ-1 is not a cell")
    assert not (tmp_path / "out").exists()


def pysam_index(path: Path) -> None:
    import pysam

    pysam.tabix_index(str(path), preset="bed", force=True)


def test_a_pseudobulk_sample_named_like_a_bulk_sample_is_refused(experiment, tmp_path):
    rows = [
        f"lib1,,,,{LIB}",
        "lib1_type2_donor1,g,lib1/cells.csv,lib1/cells.csv,,,",
    ]
    sheet = _sheet(
        tmp_path, experiment, rows, "sample,group,rna_tpm,atac,multiome_h5,fragments,cells"
    )
    proc = _run(experiment, tmp_path / "out", sheet=sheet)
    assert_user_error(
        proc, "line 2: library lib1 makes pseudobulk sample lib1_type2_donor1, the same name as "
        "sample lib1_type2_donor1 on line 3"
    )  # fmt: skip
    assert not (tmp_path / "out").exists()


def test_narrowpeaks_are_written_line_by_line_as_the_format_says(tmp_path):
    """Every sample's file, byte for byte, against lines formatted one at a time and written
    in one piece: the writer's shortcuts (bin heads shared by samples, tails per count, blocks
    compressed by a thread) change nothing, a count above 1000 caps only the score, and
    a chromosome's last (shorter) bin ends with it."""
    import scipy.sparse as sp
    from gexpcore.files import atomic_write
    from gexpcore.steps.pseudobulk import BinGrid, write_samples_as_peaks

    bins = tmp_path / "bins.bed"
    sizes = {"chr1": 5_500, "chr2": 2_000, "chr3": 999}
    rows, index = [], 0
    for chrom, size in sizes.items():
        for start in range(0, size, 1000):
            rows.append(f"{chrom}\t{start}\t{min(start + 1000, size)}\t{index}\n")
            index += 1
    bins.write_text("".join(rows))
    grid = BinGrid.read(bins)
    cuts = {
        "chr1": sp.csr_matrix(np.array([[3, 0, 0, 1234, 0, 7], [0, 0, 1, 1, 0, 0]])),
        "chr3": sp.csr_matrix(np.array([[0], [2]])),
    }
    paths = [tmp_path / "a.narrowPeak.gz", tmp_path / "b.narrowPeak.gz"]
    write_samples_as_peaks(paths, cuts, grid)
    for i, path in enumerate(paths):
        lines = []
        for run in grid.layout.chroms:
            if run.chrom not in cuts:
                continue
            row = cuts[run.chrom].toarray()[i]
            for k in np.flatnonzero(row):
                start, v = 1000 * k, int(row[k])
                end = min(start + 1000, sizes[run.chrom])
                lines.append(
                    f"{run.chrom}\t{start}\t{end}\t.\t{min(v, 1000)}\t.\t{v}\t-1\t-1\t-1\n"
                )
        expected = tmp_path / "expected.gz"
        with atomic_write(expected, level=1) as fh:  # as every .gz of gexp is written
            fh.write("".join(lines))
        assert path.read_bytes() == expected.read_bytes(), gzip.open(path, "rt").read()


def _fragments_with(library: Path, folder: Path, extra: str) -> Path:
    """A copy of the library with one line added to its fragments (bgzipped, re-indexed)."""
    import shutil

    import pysam

    copy = folder / "lib1"
    shutil.copytree(library, copy)
    lines = gzip.open(library / "atac_fragments.tsv.gz", "rt").read().splitlines(keepends=True)
    plain = copy / "atac_fragments.tsv"
    plain.write_text("".join(lines[:50] + [extra] + lines[50:]))
    (copy / "atac_fragments.tsv.gz").unlink()
    (copy / "atac_fragments.tsv.gz.tbi").unlink()
    pysam.tabix_index(str(plain), preset="bed", force=True)
    return copy


def test_a_fragments_line_without_a_barcode_counts_nowhere(library, result, tmp_path):
    """A line the tabix index takes (chrom, start, end) but with no barcode belongs to no
    cell: every output is as without it."""
    first = gzip.open(library / "atac_fragments.tsv.gz", "rt").readlines()[50].split("\t")
    copy = _fragments_with(library, tmp_path, f"{first[0]}\t{first[1]}\t{int(first[1]) + 80}\n")
    out, qc = result
    again = pseudobulk(
        "lib1", copy / "filtered_feature_bc_matrix.h5", copy / "atac_fragments.tsv.gz",
        copy / "cells.csv", library.parent / "genes.gtf.gz", library.parent / "bins.bed",
        tmp_path / "out",
    )  # fmt: skip
    pd.testing.assert_frame_equal(again, qc)
    for sample in qc["sample"]:
        name = f"{sample}.narrowPeak.gz"
        assert (tmp_path / "out" / name).read_bytes() == (out / name).read_bytes()
