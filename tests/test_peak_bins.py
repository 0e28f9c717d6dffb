"""`gexp bins` and `gexp peak-bins` (real bedtools) against an independent numpy computation."""

from __future__ import annotations

import gzip
import io

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


def bedtools_values(peaks: pd.DataFrame, bins_path, sizes: dict, mode: str, tmp_path) -> dict:
    """Bin values from the real bedtools (intersect, and merge for coverage) on the same
    peaks, summarised with pandas: nothing shared with gexp's fixed-width arithmetic."""
    import subprocess

    p = peaks.iloc[:, :3].copy()
    p.columns = ["chrom", "start", "end"]
    p["end"] = np.minimum(p["end"], p["chrom"].map(sizes))
    p["signal"] = peaks[6].to_numpy()
    if mode == "midpoint":
        p["start"] = p["start"] + (p["end"] - p["start"]) // 2
        p["end"] = p["start"] + 1
    bed = tmp_path / "ref.bed"
    p.sort_values(["chrom", "start", "end"]).to_csv(bed, sep="\t", header=False, index=False)
    if mode == "coverage":
        merged = subprocess.run(["bedtools", "merge", "-i", bed], capture_output=True, check=True)
        bed.write_bytes(merged.stdout)
    flags = ["-wo"] if mode == "coverage" else ["-wa", "-wb"]
    out = subprocess.run(["bedtools", "intersect", "-a", bed, "-b", bins_path, *flags],
                         capture_output=True, text=True, check=True).stdout  # fmt: skip
    hits = pd.read_csv(io.StringIO(out), sep="\t", header=None) if out else pd.DataFrame()
    if hits.empty:
        return {}
    if mode == "coverage":  # merged 0-2, bin 3-6, overlap 7
        per_bin = hits.groupby(6).agg(covered=(7, "sum"), start=(4, "first"), end=(5, "first"))
        values = per_bin["covered"] / (per_bin["end"] - per_bin["start"])
    elif mode == "signal":  # peak 0-3, bin 4-7
        values = hits.groupby(7)[3].max()
    else:
        values = hits.groupby(7)[3].size().clip(upper=1)
    return {int(b): v for b, v in values.items() if v > 0}


@pytest.mark.parametrize("mode", ["binary", "midpoint", "coverage", "signal"])
@pytest.mark.parametrize(
    ("bin_size", "region"), [(1000, None), (333, None), (700, "chr1:1001-9700")]
)
def test_fixed_width_arithmetic_equals_bedtools_intersect(tmp_path, genome, mode, bin_size, region):
    """peak-bins places peaks in `gexp bins`' bins by arithmetic; the real bedtools on the same
    peaks must find the same bins and values, at bin edges, chromosome ends, a region's bins
    that start off a multiple of the width, and a chromosome shorter than one bin."""
    sizes_path, _ = genome
    sizes = {**SIZES, "chrM": 160}
    sizes_path.write_text("".join(f"{c}\t{s}\n" for c, s in sizes.items()))
    bins_path = tmp_path / "b.bed"
    extra = ("--region", region) if region else ()
    proc = run_gexp("bins", "--chrom-sizes", sizes_path, "--bin-size", bin_size, "--out",
                    bins_path, *extra)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    rng = np.random.default_rng(bin_size)
    peaks = pd.concat([random_peaks(rng, 400), random_peaks(rng, 40)], ignore_index=True)
    peaks.loc[len(peaks)] = ["chrM", 10, 150, "m", 10, ".", 4.25, 5.0, 3.0, 0]
    peaks.loc[len(peaks)] = ["chr1", 500, 1500, "zero", 10, ".", 0.0, 5.0, 3.0, 0]
    peaks.loc[len(peaks)] = ["chr1", 2500, 3500, "neg", 10, ".", -1.0, 5.0, 3.0, 0]
    path = tmp_path / "p.narrowPeak"
    peaks.to_csv(path, sep="\t", header=False, index=False)
    out = tmp_path / "S.tsv.gz"
    proc = run_gexp("peak-bins", "--peaks", path, "--bins", bins_path, "--chrom-sizes",
                    sizes_path, "--mode", mode, "--out", out)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    got = pd.read_csv(out, sep="\t")
    expected = bedtools_values(peaks, bins_path, sizes, mode, tmp_path)
    assert got["bin"].tolist() == sorted(expected) and len(expected) > 10
    np.testing.assert_array_equal(got["value"].to_numpy(), [expected[b] for b in sorted(expected)])


def test_layout_width_is_known_only_for_fixed_width_bins(tmp_path, genome):
    """Bins that are not one fixed width (however numbered) get no width, so peak-bins takes
    them through bedtools, and the values are the same as by per-base coverage."""
    from gexpcore.steps.bins import read_bin_layout

    _, bins_path = genome
    assert read_bin_layout(bins_path).width == BIN
    wide = tmp_path / "wide.bed"  # a one-bin chromosome wider than the others' bins
    wide.write_text("chr1\t0\t10\t0\nchr1\t10\t20\t1\nchr1\t20\t25\t2\nchr2\t0\t70\t3\n")
    assert read_bin_layout(wide).width is None
    uneven = tmp_path / "uneven.bed"
    rows = [("chr1", 0, 2500), ("chr1", 2500, 3000), ("chr1", 3000, 10_500), ("chr2", 0, 7_250)]
    uneven.write_text("".join(f"{c}\t{s}\t{e}\t{i}\n" for i, (c, s, e) in enumerate(rows)))
    assert read_bin_layout(uneven).width is None
    peaks = random_peaks(np.random.default_rng(3))
    path = tmp_path / "p.narrowPeak"
    peaks.to_csv(path, sep="\t", header=False, index=False)
    out = tmp_path / "S.tsv.gz"
    proc = run_gexp("peak-bins", "--peaks", path, "--bins", uneven, "--out", out)
    assert proc.returncode == 0, proc.stderr
    bins = pd.DataFrame(rows, columns=["chrom", "start", "end"]).assign(bin=range(4))
    np.testing.assert_allclose(
        read_sparse(out, 4).to_numpy(), oracle(peaks, bins, "signal").to_numpy(), rtol=1e-12
    )


@pytest.mark.parametrize(
    "token",
    ["12", "+12", "-3", "1_000", "1e3", "7.5", "0x10", "nan", "inf", "1e400", ".5", "5.", "-0",
     "2.5e-3", "1d5", "١٢"],
)  # fmt: skip
@pytest.mark.parametrize("column", [1, 4, 6])
def test_fast_peak_reader_agrees_with_the_full_reader(tmp_path, token, column):
    """The common case is read by numpy's C reader; whatever a column holds, it must give
    read_peaks' values, or step aside so that read_peaks gives its error."""
    from gexpcore.errors import GexpError
    from gexpcore.io.peaks import read_peak_columns, read_peaks

    fields = ["chr1", "100", "900", "p", "50", ".", "3.25", "-1", "-1", "-1"]
    fields[column] = token
    path = tmp_path / "p.narrowPeak"
    path.write_text("\t".join(fields) + "\nchr2\t5\t60\tq\t70\t.\t0.1\t-1\t-1\t-1\n", "utf-8")
    sizes = {"chr1": 10_000, "chr2": 5_000}
    try:
        expected = read_peaks(path, sizes)
    except GexpError as exc:
        with pytest.raises(GexpError) as raised:
            read_peak_columns(path, sizes)
        assert str(raised.value) == str(exc)
        return
    got = read_peak_columns(path, sizes)
    assert got.chrom == expected["chrom"].tolist()
    assert got.start.tolist() == expected["start"].tolist()
    assert got.end.tolist() == expected["end"].tolist()
    assert got.signal.tolist() == expected["signal"].tolist()


def test_fast_peak_reader_parses_floats_as_python_does(tmp_path):
    """Signal values are written back by repr, so numpy's parse must be Python's, digit for
    digit: random values with up to 17 significant digits and exponents."""
    from gexpcore.io.peaks import read_peak_columns

    rng = np.random.default_rng(11)
    texts = [
        f"{v:.{d}g}"
        for v, d in zip(rng.lognormal(0, 8, 5000), rng.integers(1, 18, 5000), strict=True)
    ]
    path = tmp_path / "p.narrowPeak"
    path.write_text("".join(f"chr1\t{i}\t{i + 10}\t.\t0\t.\t{t}\t-1\t-1\t-1\n"
                            for i, t in enumerate(texts)))  # fmt: skip
    got = read_peak_columns(path, {"chr1": 100_000})
    assert got.signal.tolist() == [float(t) for t in texts]
