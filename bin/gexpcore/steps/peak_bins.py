"""Per-sample accessibility per bin: peaks placed in the bins, or BAM fragments through pysam.

A peak counts in every bin it overlaps by at least one base (bedtools intersect's rule):
by arithmetic for the fixed-width bins of `gexp bins`, through bedtools for any other.

Modes (peaks):
- binary:   1 for every bin that any peak overlaps;
- midpoint: 1 for the bin holding each peak's midpoint (the proof of concept's rule);
- coverage: fraction of the bin's bases covered by the union of the peaks;
- signal:   the largest signalValue (narrowPeak column 7) of the peaks overlapping the bin.
A BAM instead of peaks gives fragments per bin (fragment midpoints of properly
paired reads, or read 5' ends for single-end data).

The output is sparse: only bins with a non-zero value, as `bin<TAB>value`.
"""

from __future__ import annotations

import argparse
import logging
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import GexpError
from ..files import atomic_write, reading, require_file
from ..io.genome import chrom_sizes_for, read_chrom_sizes
from ..io.peaks import read_peak_columns
from ..tools import run_tool
from .bins import BinLayout, read_bin_layout, read_bins
from .options import genome_options

if TYPE_CHECKING:  # imported where used: binning peaks needs neither (it runs once per sample)
    import numpy as np
    import pandas as pd

log = logging.getLogger("gexp")

MODES = ("binary", "midpoint", "coverage", "signal")


def bin_peaks(
    peaks_path: str | Path,
    bins_path: str | Path,
    mode: str = "signal",
    min_score: float | None = None,
    chrom_sizes: str | Path | None = None,
) -> pd.DataFrame:
    """Sparse values of one sample's peaks per bin: columns bin, value (see bin_peak_values)."""
    import pandas as pd

    bins, values = bin_peak_values(peaks_path, bins_path, mode, min_score, chrom_sizes)
    return pd.DataFrame({"bin": pd.Series(bins, dtype="int64"), "value": values})


def bin_peak_values(
    peaks_path: str | Path,
    bins_path: str | Path,
    mode: str = "signal",
    min_score: float | None = None,
    chrom_sizes: str | Path | None = None,
) -> tuple[list[int], list]:
    """(bins, values) of the bins with a non-zero value, by bin: bin_peaks without pandas.

    Values are ints (binary, midpoint) or floats (coverage, signal). Only a few lines of
    bins.bed are read (bins.read_bin_layout). Bins from `gexp bins` are fixed-width, so
    the bins each peak overlaps follow from its coordinates by arithmetic, in numpy; any
    other layout goes through `bedtools intersect`, which tests hold the arithmetic equal to.
    """
    if mode not in MODES:
        raise GexpError(f"unknown mode '{mode}'; choose one of {', '.join(MODES)}")
    bins_path = require_file(bins_path, "bins")
    peaks_path = require_file(peaks_path, "peaks")
    layout = read_bin_layout(bins_path)
    ends = layout.ends()  # chromosome → end, in the bins' order
    sizes = read_chrom_sizes(chrom_sizes) if chrom_sizes else ends
    peaks = read_peak_columns(peaks_path, sizes, min_score=min_score, need_signal=mode == "signal")
    start, end = peaks.start, peaks.end
    if mode == "midpoint":
        start = start + (end - start) // 2
        end = start + 1
    if layout.width is None:
        values = _by_bedtools(peaks.chrom, start.tolist(), end.tolist(), peaks.signal.tolist(),
                              bins_path, ends, mode)  # fmt: skip
        found = sorted(b for b, v in values.items() if v > 0)
        found_values = [values[b] for b in found]
    elif mode == "coverage":
        found, found_values = _covered_fractions(peaks.chroms, peaks.code, start, end, layout)
    else:
        found, found_values = _largest_signals(peaks, start, end, layout)
        if mode != "signal":
            found_values = [1] * len(found)
    if not found:
        return _empty(peaks_path)
    return found, found_values


def _bin_pairs(chroms: list[str], code, start, end, layout: BinLayout):
    """Every (interval, bin) pair that overlaps by >= 1 bp (bedtools' rule), as the arrays
    (interval, bin, bin start, bin end): with fixed-width bins, an interval's bins are those
    holding its first and its last base, and all between."""
    import numpy as np

    run_start, run_end, run_first = _runs_of(chroms, code, layout)
    lo, hi = np.maximum(start, run_start), np.minimum(end, run_end)
    inside = np.flatnonzero(lo < hi)  # an interval off every bin has run_end 0, so lo >= hi
    lo, hi = lo[inside], hi[inside]
    run_start, run_end, run_first = run_start[inside], run_end[inside], run_first[inside]
    first = (lo - run_start) // layout.width
    count = (hi - 1 - run_start) // layout.width - first + 1
    pair = np.repeat(np.arange(len(inside)), count)
    local = first[pair] + np.arange(len(pair)) - np.repeat(np.cumsum(count) - count, count)
    bin_start = run_start[pair] + local * layout.width
    bin_end = np.minimum(bin_start + layout.width, run_end[pair])
    return inside[pair], run_first[pair] + local, bin_start, bin_end


def _runs_of(chroms: list[str], code, layout: BinLayout):
    """(start, end, first bin) of each entry's chromosome's bins; 0, 0, 0 off the bins."""
    import numpy as np

    runs = {r.chrom: r for r in layout.chroms}
    columns = [[getattr(runs[c], f) if c in runs else 0 for c in chroms] for f in
               ("start", "end", "first")]  # fmt: skip
    return tuple(np.array(column, dtype=np.int64)[code] for column in columns)


def _largest_signals(peaks, start, end, layout: BinLayout) -> tuple[list[int], list[float]]:
    """The bins that any peak overlaps, and the largest signal among those peaks (> 0 kept)."""
    import numpy as np

    peak, b, _, _ = _bin_pairs(peaks.chroms, peaks.code, start, end, layout)
    value = peaks.signal[peak]
    order = np.lexsort((value, b))  # by bin, then signal: each bin's largest comes last
    b, value = b[order], value[order]
    last = np.append(b[1:] != b[:-1], True) if len(b) else np.zeros(0, dtype=bool)
    b, value = b[last], value[last]
    keep = value > 0
    return b[keep].tolist(), value[keep].tolist()


def _covered_fractions(chroms, code, start, end, layout: BinLayout) -> tuple[list[int], list]:
    """Each bin's fraction of bases under the union of the peaks (bedtools merge, then the
    overlap of each merged interval with each bin, summed per bin)."""
    import numpy as np

    # On one axis with each chromosome far beyond the last, a running maximum of the ends
    # finds where a new merged interval starts (a start past every end before it).
    shift = np.int64(1) << 40
    order = np.lexsort((start, code))
    lo, hi = code[order] * shift + start[order], code[order] * shift + end[order]
    reach = np.maximum.accumulate(hi)
    new = np.flatnonzero(np.append(True, lo[1:] > reach[:-1]))
    merged_code = code[order][new]
    merged_start = lo[new] - merged_code * shift
    merged_end = np.maximum.reduceat(hi, new) - merged_code * shift if len(new) else new
    pairs = _bin_pairs(chroms, merged_code, merged_start, merged_end, layout)
    interval, b, bin_start, bin_end = pairs
    lo, hi = merged_start[interval], merged_end[interval]
    overlap = np.minimum(hi, bin_end) - np.maximum(lo, bin_start)
    found, at = np.unique(b, return_inverse=True)
    covered = np.bincount(at, weights=overlap, minlength=len(found))  # whole numbers, exact
    length = np.zeros(len(found), dtype=np.int64)
    length[at] = bin_end - bin_start
    return found.tolist(), (covered / length).tolist()


def _by_bedtools(chrom, start, end, signal, bins_path: Path, ends: dict[str, int], mode: str):
    """Bin values through `bedtools intersect -sorted`: for layouts other than `gexp bins`'."""
    # Sort peaks in the bins' chromosome order, which bedtools -sorted requires.
    rank = {c: i for i, c in enumerate(ends)}
    order = sorted(
        (i for i, c in enumerate(chrom) if c in rank),
        key=lambda i: (rank[chrom[i]], start[i], end[i]),
    )
    if not order:
        return {}
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        genome = tmp / "genome.txt"
        genome.write_text("".join(f"{c}\t{e}\n" for c, e in ends.items()))
        bed = tmp / "peaks.bed"
        columns = (
            [chrom[i] for i in order],
            [str(start[i]) for i in order],
            [str(end[i]) for i in order],
            [repr(signal[i]) for i in order],
        )
        bed.write_text("\n".join(map("\t".join, zip(*columns, strict=True))) + "\n")
        if mode == "coverage":
            merged = tmp / "merged.bed"
            run_tool(["bedtools", "merge", "-i", bed], "peak-bins", stdout=merged)
            return _coverage(_intersect(merged, bins_path, genome, ["-wo"]))
        hits = _intersect(bed, bins_path, genome, ["-wa", "-wb"])
        return _signal(hits) if mode == "signal" else _binary(hits)


def _intersect(a: Path, bins_path: Path, genome: Path, flags: list[str]) -> list[bytes]:
    """The fields of bedtools intersect's output in its streaming mode (-sorted), all lines
    in one list: every line has 8 fields without blanks (gexp wrote both inputs)."""
    cmd = ["bedtools", "intersect", "-a", a, "-b", bins_path, *flags, "-sorted", "-g", genome]
    out = a.with_name(a.name + ".intersect.tsv")
    run_tool(cmd, "peak-bins", stdout=out)
    return out.read_bytes().split()


def _signal(fields: list[bytes]) -> dict[int, float]:
    """The largest signal of the peaks overlapping each bin (-wa -wb: peak 0-3, bin 4-7)."""
    best: dict[int, float] = {}
    for b, v in zip(map(int, fields[7::8]), map(float, fields[3::8]), strict=True):
        if b not in best or v > best[b]:
            best[b] = v
    return best


def _binary(fields: list[bytes]) -> dict[int, int]:
    return dict.fromkeys(map(int, fields[7::8]), 1)


def _coverage(fields: list[bytes]) -> dict[int, float]:
    """Covered fraction of each bin (-wo on merged peaks: peak 0-2, bin 3-6, overlap 7)."""
    covered: dict[int, int] = {}
    length: dict[int, int] = {}
    bins = map(int, fields[6::8])
    for b, start, end, n in zip(bins, fields[4::8], fields[5::8], fields[7::8], strict=True):
        covered[b] = covered.get(b, 0) + int(n)
        length[b] = int(end) - int(start)
    return {b: covered[b] / length[b] for b in covered}


def _empty(peaks_path: Path) -> tuple[list[int], list]:
    log.warning("peaks %s: no peak overlaps any bin", peaks_path)
    return [], []


def bin_bam(bam_path: str | Path, bins_path: str | Path, min_mapq: int = 30) -> pd.DataFrame:
    """Fragments per bin, counted once per fragment, in one pass over the BAM (no index needed)."""
    import numpy as np
    import pandas as pd
    import pysam

    from ..io.ids import harmonise_chroms

    bam_path = require_file(bam_path, "ATAC BAM")
    bins = read_bins(bins_path)
    try:
        bam = pysam.AlignmentFile(str(bam_path), "rb")
    except (ValueError, OSError) as exc:
        raise GexpError(f"ATAC BAM {bam_path}: cannot read ({exc})") from None
    with bam:
        names = pd.Series(list(bam.references), dtype=str)
        ref_ids, positions = _fragment_positions(bam, min_mapq)
    mapped, _ = harmonise_chroms(names, set(bins["chrom"]))
    found = []
    for ref_id, chrom in enumerate(mapped):
        chrom_bins = bins[bins["chrom"] == chrom]
        pos = positions[ref_ids == ref_id]
        if chrom_bins.empty or pos.size == 0:
            continue
        starts, ends = chrom_bins["start"].to_numpy(), chrom_bins["end"].to_numpy()
        idx = np.searchsorted(starts, pos, side="right") - 1
        ok = (idx >= 0) & (pos < ends[np.clip(idx, 0, None)])
        found.append(chrom_bins["bin"].to_numpy()[idx[ok]])
    if not found or not sum(len(f) for f in found):
        log.warning("ATAC BAM %s: no fragment falls in any bin", bam_path)
        return pd.DataFrame({"bin": pd.Series(dtype="int64"), "value": pd.Series(dtype="int64")})
    bins_hit, counts = np.unique(np.concatenate(found), return_counts=True)
    return pd.DataFrame({"bin": bins_hit, "value": counts})


def _fragment_positions(bam, min_mapq: int) -> tuple[np.ndarray, np.ndarray]:
    """Reference id and position of each fragment: its midpoint, or a single read's 5' end."""
    import numpy as np

    ref_ids, positions = [], []
    for read in bam.fetch(until_eof=True):
        if (
            read.is_unmapped
            or read.is_secondary
            or read.is_supplementary
            or read.is_duplicate
            or read.is_qcfail
            or read.mapping_quality < min_mapq
        ):
            continue
        if read.is_paired:
            if not read.is_proper_pair or not read.is_read1:
                continue
            start = min(read.reference_start, read.next_reference_start)
            position = start + abs(read.template_length) // 2
        else:
            position = read.reference_end - 1 if read.is_reverse else read.reference_start
        ref_ids.append(read.reference_id)
        positions.append(position)
    return np.asarray(ref_ids, dtype=np.int64), np.asarray(positions, dtype=np.int64)


def is_bam(path: str | Path) -> bool:
    with open(path, "rb") as fh:
        head = fh.read(4)
    if head[:2] != b"\x1f\x8b":
        return False
    import gzip
    import zlib

    try:
        with gzip.open(path, "rb") as fh:
            return fh.read(4) == b"BAM\x01"
    except (OSError, EOFError, zlib.error):  # damaged: the peaks reader says how, naming it
        return False


def write_peak_bins(values: pd.DataFrame | tuple[list[int], list], out: str | Path) -> None:
    """Write `bin<TAB>value` lines: a table from bin_peaks or bin_bam, or bin_peak_values' lists.

    The lists are written as pandas would write them (floats as repr, ints as ints). gzip
    level 1: at level 6 compressing took as long as parsing bedtools' output, for files only
    about a tenth smaller (issue 17).
    """
    with atomic_write(out, level=1) as fh:
        if isinstance(values, tuple):
            bins, found = values
            if len(bins) != len(found):
                raise ValueError("bins and values differ in length")
            fh.write("bin\tvalue\n" + "".join(map("{}\t{!r}\n".format, bins, found)))
        else:
            values.to_csv(fh, sep="\t", index=False)


def read_peak_bins(path: str | Path) -> pd.DataFrame:
    import pandas as pd

    path = require_file(path, "accessibility")
    with reading(path, "accessibility"):
        table = pd.read_csv(path, sep="\t")
    if list(table.columns) != ["bin", "value"]:
        raise GexpError(
            f"accessibility {path}: expected columns bin, value (from `gexp peak-bins`)"
        )
    numeric = all(pd.api.types.is_numeric_dtype(table[c]) for c in table.columns)
    if len(table) and (not numeric or not pd.api.types.is_integer_dtype(table["bin"])):
        raise GexpError(f"accessibility {path}: a bin or value that is not a number")
    return table


# -- the command line: `gexp peak-bins` --------------------------------------------------------


def peak_options(p: argparse.ArgumentParser, mode_flag: str) -> None:
    """How peaks become bin values: `--mode` for peak-bins, `--peak-mode` for run."""
    p.add_argument(mode_flag, choices=MODES, default="signal", help="bin value from peaks")
    p.add_argument(
        "--min-score", type=float, help="drop peaks with a BED score below this (default: none)"
    )


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--peaks", required=True, type=Path, help="BED/narrowPeak (.gz) or ATAC BAM")
    p.add_argument("--bins", required=True, type=Path, help="bins.bed from `gexp bins`")
    p.add_argument("--out", required=True, type=Path, help="<sample>.tsv.gz to write")
    peak_options(p, "--mode")
    genome_options(p, "genome chromosomes (default: the chromosomes of the bins)")
    p.add_argument("--min-mapq", type=int, default=30, help="BAM input: minimum MAPQ")


def run(a: argparse.Namespace) -> None:
    require_file(a.peaks, "peaks")
    if is_bam(a.peaks):
        values = bin_bam(a.peaks, a.bins, min_mapq=a.min_mapq)
    else:
        sizes = chrom_sizes_for(a.chrom_sizes, a.genome) if a.chrom_sizes or a.genome else None
        values = bin_peak_values(a.peaks, a.bins, a.mode, a.min_score, sizes)
    write_peak_bins(values, a.out)
