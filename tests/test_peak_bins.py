"""`gexp bins` and `gexp peak-bins` (real bedtools) against an independent numpy computation."""

from __future__ import annotations

import gzip

import numpy as np
import pandas as pd
import pysam
import pytest
from conftest import ROOT, assert_user_error, run_gexp

SIZES = {"chr1": 10_500, "chr2": 7_250}
BIN = 1000


@pytest.fixture
def genome(tmp_path):
    sizes = tmp_path / "chrom.sizes"
    sizes.write_text("".join(f"{c}\t{s}\n" for c, s in SIZES.items()))
    bins = tmp_path / "bins.bed"
    proc = run_gexp("bins", "--chrom-sizes", sizes, "--bin-size", BIN, "--out", bins)
    assert proc.returncode == 0, proc.stderr
    return sizes, bins


def random_peaks(rng, n=60):
    rows = []
    for i in range(n):
        chrom = rng.choice(list(SIZES))
        start = int(rng.integers(0, SIZES[chrom] - 1))
        end = start + int(rng.integers(1, 3000))  # may run past the chromosome's end
        rows.append(
            (
                chrom,
                start,
                end,
                f"Peak_{i}",
                int(rng.integers(0, 1000)),
                ".",
                round(float(rng.uniform(1, 50)), 3),
                5.0,
                3.0,
                (end - start) // 2,
            )
        )
    # Exactly on bin edges, one base wide at an edge, and at a chromosome's very end.
    rows += [
        ("chr1", 1000, 2000, "edge", 100, ".", 7.0, 5.0, 3.0, 0),
        ("chr1", 2999, 3001, "straddle", 100, ".", 60.0, 5.0, 3.0, 0),
        ("chr2", 7_249, 7_250, "last", 100, ".", 9.5, 5.0, 3.0, 0),
        ("chr2", 7_000, 9_000, "overhang", 100, ".", 3.5, 5.0, 3.0, 0),
    ]
    return pd.DataFrame(rows)


def oracle(peaks: pd.DataFrame, bins: pd.DataFrame, mode: str) -> pd.Series:
    """Per-base coverage arrays: nothing shared with the bedtools code path."""
    values = np.zeros(len(bins))
    for chrom, size in SIZES.items():
        covered = np.zeros(size, dtype=bool)
        best = np.zeros(size)
        mids = []
        for _, p in peaks[peaks[0] == chrom].iterrows():
            s, e = p[1], min(p[2], size)
            covered[s:e] = True
            best[s:e] = np.maximum(best[s:e], p[6])
            mids.append(s + (e - s) // 2)
        for i, b in bins[bins["chrom"] == chrom].iterrows():
            window = slice(b["start"], b["end"])
            if mode == "binary":
                values[i] = covered[window].any()
            elif mode == "coverage":
                values[i] = covered[window].mean()
            elif mode == "signal":
                values[i] = best[window].max()
            elif mode == "midpoint":
                values[i] = any(b["start"] <= m < b["end"] for m in mids)
    return pd.Series(values, index=bins["bin"])


def read_sparse(path, n_bins) -> pd.Series:
    table = pd.read_csv(path, sep="\t")
    assert list(table.columns) == ["bin", "value"]
    assert (table["value"] != 0).all() and table["bin"].is_monotonic_increasing
    return table.set_index("bin")["value"].reindex(range(n_bins), fill_value=0.0)


def test_bins_cover_each_chromosome_to_its_end(genome):
    _, bins = genome
    table = pd.read_csv(bins, sep="\t", header=None, names=["chrom", "start", "end", "bin"])
    assert list(table["bin"]) == list(range(len(table)))
    for chrom, size in SIZES.items():
        part = table[table["chrom"] == chrom]
        assert part["start"].iloc[0] == 0 and part["end"].iloc[-1] == size
        assert (part["start"].iloc[1:].to_numpy() == part["end"].iloc[:-1].to_numpy()).all()
    assert len(table) == sum(-(-s // BIN) for s in SIZES.values())


def test_region_bins(tmp_path, genome):
    sizes, _ = genome
    out = tmp_path / "region.bed"
    proc = run_gexp(
        "bins",
        "--chrom-sizes",
        sizes,
        "--bin-size",
        500,
        "--region",
        "chr1:1001-3200",
        "--out",
        out,
    )
    assert proc.returncode == 0, proc.stderr
    table = pd.read_csv(out, sep="\t", header=None)
    assert table[1].tolist() == [1000, 1500, 2000, 2500, 3000]
    assert table[2].tolist()[-1] == 3200


@pytest.mark.parametrize("mode", ["binary", "midpoint", "coverage", "signal"])
@pytest.mark.parametrize("seed", [1, 2])
def test_every_mode_equals_numpy(tmp_path, genome, mode, seed):
    sizes, bins_path = genome
    peaks = random_peaks(np.random.default_rng(seed))
    path = tmp_path / "peaks.narrowPeak.gz"
    with gzip.open(path, "wt") as fh:
        peaks.to_csv(fh, sep="\t", header=False, index=False)
    out = tmp_path / "S1.tsv.gz"
    proc = run_gexp(
        "peak-bins",
        "--peaks",
        path,
        "--bins",
        bins_path,
        "--mode",
        mode,
        "--chrom-sizes",
        sizes,
        "--out",
        out,
    )
    assert proc.returncode == 0, proc.stderr
    bins = pd.read_csv(bins_path, sep="\t", header=None, names=["chrom", "start", "end", "bin"])
    got = read_sparse(out, len(bins))
    expected = oracle(peaks, bins, mode)
    np.testing.assert_allclose(got.to_numpy(), expected.to_numpy(), rtol=1e-6)
    assert expected.sum() > 0


def test_min_score_filters_peaks(tmp_path, genome):
    sizes, bins_path = genome
    peaks = random_peaks(np.random.default_rng(9))
    path = tmp_path / "p.bed"
    peaks.to_csv(path, sep="\t", header=False, index=False)
    out = tmp_path / "S.tsv.gz"
    proc = run_gexp(
        "peak-bins",
        "--peaks",
        path,
        "--bins",
        bins_path,
        "--min-score",
        500,
        "--mode",
        "binary",
        "--out",
        out,
    )
    assert proc.returncode == 0, proc.stderr
    bins = pd.read_csv(bins_path, sep="\t", header=None, names=["chrom", "start", "end", "bin"])
    np.testing.assert_array_equal(
        read_sparse(out, len(bins)).to_numpy(),
        oracle(peaks[peaks[4] >= 500], bins, "binary").to_numpy(),
    )


def test_unprefixed_chromosomes_are_harmonised_with_a_warning(tmp_path, genome):
    sizes, bins_path = genome
    peaks = random_peaks(np.random.default_rng(4))
    renamed = peaks.copy()
    renamed[0] = peaks[0].str.replace("chr", "")
    path = tmp_path / "p.bed"
    renamed.iloc[:, :3].to_csv(path, sep="\t", header=False, index=False)
    out = tmp_path / "S.tsv.gz"
    proc = run_gexp(
        "peak-bins", "--peaks", path, "--bins", bins_path, "--chrom-sizes", sizes, "--out", out
    )
    assert proc.returncode == 0, proc.stderr
    assert "renamed chromosomes" in proc.stderr and "1->chr1" in proc.stderr
    bins = pd.read_csv(bins_path, sep="\t", header=None, names=["chrom", "start", "end", "bin"])
    np.testing.assert_array_equal(
        read_sparse(out, len(bins)).to_numpy(), oracle(peaks, bins, "binary").to_numpy()
    )


def test_unknown_contigs_are_dropped_with_a_count(tmp_path, genome):
    sizes, bins_path = genome
    path = tmp_path / "p.bed"
    path.write_text("chr1\t100\t200\nchrUn_KI270302v1\t5\t50\nchrUn_KI270303v1\t5\t50\n")
    out = tmp_path / "S.tsv.gz"
    proc = run_gexp(
        "peak-bins", "--peaks", path, "--bins", bins_path, "--chrom-sizes", sizes, "--out", out
    )
    assert proc.returncode == 0, proc.stderr
    assert "dropped 2 peak(s) on 2 contig(s)" in proc.stderr
    assert pd.read_csv(out, sep="\t")["bin"].tolist() == [0]


def test_bam_fragments_per_bin(tmp_path, genome):
    """Paired fragments count once, at their midpoint; filtered reads do not count."""
    _, bins_path = genome
    rng = np.random.default_rng(7)
    header = {"HD": {"VN": "1.6"}, "SQ": [{"SN": c, "LN": s} for c, s in SIZES.items()]}
    path = tmp_path / "atac.bam"
    expected = np.zeros(len(pd.read_csv(bins_path, sep="\t", header=None)))
    bins = pd.read_csv(bins_path, sep="\t", header=None, names=["chrom", "start", "end", "bin"])
    with pysam.AlignmentFile(str(path), "wb", header=header) as bam:
        for i in range(300):
            ref = int(rng.integers(0, 2))
            chrom = list(SIZES)[ref]
            length = int(rng.integers(60, 400))
            start = int(rng.integers(0, SIZES[chrom] - length))
            mapq = 60 if i % 10 else 5
            for mate in (1, 2):
                read = pysam.AlignedSegment()
                read.query_name = f"frag{i}"
                read.query_sequence = "A" * 50
                read.query_qualities = pysam.qualitystring_to_array("I" * 50)
                read.flag = 1 | 2 | (64 if mate == 1 else 128) | (16 if mate == 2 else 32)
                read.reference_id = read.next_reference_id = ref
                read.reference_start = start if mate == 1 else start + length - 50
                read.next_reference_start = start + length - 50 if mate == 1 else start
                read.template_length = length if mate == 1 else -length
                read.mapping_quality = mapq
                read.cigarstring = "50M"
                bam.write(read)
            if mapq >= 30:
                mid = start + length // 2
                row = bins[(bins["chrom"] == chrom) & (bins["start"] <= mid) & (bins["end"] > mid)]
                expected[row["bin"].iloc[0]] += 1
    out = tmp_path / "S.tsv.gz"
    proc = run_gexp("peak-bins", "--peaks", path, "--bins", bins_path, "--out", out)
    assert proc.returncode == 0, proc.stderr
    np.testing.assert_array_equal(read_sparse(out, len(bins)).to_numpy(), expected)


def test_bundled_grch38_genome(tmp_path):
    out = tmp_path / "bins.bed"
    proc = run_gexp("bins", "--genome", "GRCh38", "--region", "chrX", "--out", out)
    assert proc.returncode == 0, proc.stderr
    table = pd.read_csv(out, sep="\t", header=None)
    assert table[2].iloc[-1] == 156_040_895 and len(table) == 156_041
    sizes = pd.read_csv(ROOT / "assets" / "GRCh38.chrom.sizes", sep="\t", header=None)
    assert sizes[0].tolist()[:3] == ["chr1", "chr2", "chr3"] and len(sizes) == 25
    assert_user_error(
        run_gexp("bins", "--out", tmp_path / "x.bed"), "give --chrom-sizes FILE or --genome"
    )


@pytest.mark.parametrize("region", [None, "chr1:1501-9000"])
@pytest.mark.parametrize("bin_size", [1000, 333, 20_000])
def test_bin_layout_from_a_few_lines_equals_reading_every_bin(tmp_path, genome, region, bin_size):
    from gexpcore.steps.bins import read_bin_layout

    sizes, _ = genome
    out = tmp_path / "b.bed"
    extra = ("--region", region) if region else ()
    proc = run_gexp("bins", "--chrom-sizes", sizes, "--bin-size", bin_size, "--out", out, *extra)
    assert proc.returncode == 0, proc.stderr
    table = pd.read_csv(out, sep="\t", header=None, names=["chrom", "start", "end", "bin"])
    expected = [
        (c, p["start"].min(), p["end"].max(), p["bin"].iloc[0], len(p))
        for c, p in table.groupby("chrom", sort=False)
    ]
    layout = read_bin_layout(out)
    assert [(c.chrom, c.start, c.end, c.first, c.count) for c in layout.chroms] == expected
    assert layout.n_bins == len(table)


def test_a_damaged_bins_file_is_read_whole_and_refused(tmp_path, genome):
    from gexpcore.errors import GexpError
    from gexpcore.steps.bins import read_bin_layout

    _, bins_path = genome
    lines = bins_path.read_text().splitlines(keepends=True)
    damaged = tmp_path / "damaged.bed"
    damaged.write_text("".join(lines[:3] + lines[4:]))  # a bin missing: indices skip one
    with pytest.raises(GexpError, match="not a bins.bed from `gexp bins`"):
        read_bin_layout(damaged)
    uneven = tmp_path / "uneven.bed"  # variable-width bins, numbered in order: still read
    uneven.write_text("chr1\t0\t10\t0\nchr1\t10\t500\t1\nchr2\t0\t7\t2\n")
    assert [(c.chrom, c.end, c.count) for c in read_bin_layout(uneven).chroms] == [
        ("chr1", 500, 2),
        ("chr2", 7, 1),
    ]
