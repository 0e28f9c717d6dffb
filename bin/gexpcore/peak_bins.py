"""Per-sample accessibility per bin: peaks through bedtools, or BAM fragments through pysam.

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

import logging
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from .bins import read_bins
from .errors import GexpError
from .files import atomic_write, require_file
from .genome import read_chrom_sizes
from .ids import harmonise_chroms
from .peaks import read_peaks
from .tools import run_tool

log = logging.getLogger("gexp")

MODES = ("binary", "midpoint", "coverage", "signal")


def _intersect(a: Path, bins_path: Path, tmp: Path, flags: list[str]) -> pd.DataFrame:
    """bedtools intersect in its streaming mode (-sorted): both files in the bins' order."""
    out = tmp / "intersect.tsv"
    cmd = [
        "bedtools",
        "intersect",
        "-a",
        a,
        "-b",
        bins_path,
        *flags,
        "-sorted",
        "-g",
        tmp / "genome.txt",
    ]
    run_tool(cmd, "peak-bins", stdout=out)
    if out.stat().st_size == 0:
        return pd.DataFrame()
    return pd.read_csv(out, sep="\t", header=None, dtype={0: str})


def bin_peaks(
    peaks_path: str | Path,
    bins_path: str | Path,
    mode: str = "signal",
    min_score: float | None = None,
    chrom_sizes: str | Path | None = None,
) -> pd.DataFrame:
    if mode not in MODES:
        raise GexpError(f"unknown mode '{mode}'; choose one of {', '.join(MODES)}")
    bins_path = require_file(bins_path, "bins")
    peaks_path = require_file(peaks_path, "peaks")
    bins = read_bins(bins_path)
    sizes = (
        read_chrom_sizes(chrom_sizes)
        if chrom_sizes
        else bins.groupby("chrom")["end"].max().to_dict()
    )
    peaks = read_peaks(peaks_path, sizes, min_score=min_score, need_signal=mode == "signal")
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        bed = tmp / "peaks.bed"
        if mode == "midpoint":
            mid = peaks["start"] + (peaks["end"] - peaks["start"]) // 2
            peaks = peaks.assign(start=mid, end=mid + 1)
        # Sort peaks in the bins' chromosome order, which bedtools -sorted requires.
        order = pd.unique(bins["chrom"])
        ends = bins.groupby("chrom", sort=False)["end"].max()
        (tmp / "genome.txt").write_text("".join(f"{c}\t{ends[c]}\n" for c in order))
        rank = {c: i for i, c in enumerate(order)}
        peaks = peaks[peaks["chrom"].isin(rank)]
        peaks = peaks.assign(_rank=peaks["chrom"].map(rank)).sort_values(["_rank", "start", "end"])
        if peaks.empty:
            return _empty(peaks_path)
        peaks[["chrom", "start", "end", "signal"]].to_csv(bed, sep="\t", header=False, index=False)
        if mode == "coverage":
            merged = tmp / "merged.bed"
            run_tool(["bedtools", "merge", "-i", bed], "peak-bins", stdout=merged)
            hits = _intersect(merged, bins_path, tmp, ["-wo"])
            if hits.empty:
                return _empty(peaks_path)
            covered = hits.groupby(6)[7].sum()
            length = bins.set_index("bin").loc[covered.index]
            values = covered / (length["end"] - length["start"])
        else:
            hits = _intersect(bed, bins_path, tmp, ["-wa", "-wb"])
            if hits.empty:
                return _empty(peaks_path)
            if mode == "signal":
                values = hits.groupby(7)[3].max()
            else:
                values = pd.Series(1, index=pd.Index(hits[7].unique()))
    result = values.rename("value").rename_axis("bin").reset_index().sort_values("bin")
    return result[result["value"] > 0].reset_index(drop=True)


def _empty(peaks_path: Path) -> pd.DataFrame:
    log.warning("peaks %s: no peak overlaps any bin", peaks_path)
    return pd.DataFrame({"bin": pd.Series(dtype="int64"), "value": pd.Series(dtype=float)})


def bin_bam(bam_path: str | Path, bins_path: str | Path, min_mapq: int = 30) -> pd.DataFrame:
    """Fragments per bin, counted once per fragment, in one pass over the BAM (no index needed)."""
    import pysam

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

    try:
        with gzip.open(path, "rb") as fh:
            return fh.read(4) == b"BAM\x01"
    except OSError:
        return False


def write_peak_bins(values: pd.DataFrame, out: str | Path) -> None:
    with atomic_write(out) as fh:
        values.to_csv(fh, sep="\t", index=False)


def read_peak_bins(path: str | Path) -> pd.DataFrame:
    path = require_file(path, "accessibility")
    table = pd.read_csv(path, sep="\t")
    if list(table.columns) != ["bin", "value"]:
        raise GexpError(
            f"accessibility {path}: expected columns bin, value (from `gexp peak-bins`)"
        )
    return table
