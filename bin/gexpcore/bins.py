"""Fixed-width genomic bins (bedtools makewindows), numbered once for every sample.

bins.bed has a fourth column, the bin's global index; every per-sample file and
every matrix refers to bins by that index, so all samples share one coordinate
system and a model trained on one bins.bed refuses peaks binned on another.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

import pandas as pd

from .errors import GexpError
from .files import atomic_write, require_file
from .genome import Region, read_chrom_sizes
from .tools import run_tool

log = logging.getLogger("gexp")

BIN_COLUMNS = ["chrom", "start", "end", "bin"]


def make_bins(
    chrom_sizes: str | Path, bin_size: int, region: Region | None, out: str | Path
) -> int:
    if bin_size <= 0:
        raise GexpError(f"--bin-size must be positive, got {bin_size}")
    sizes = read_chrom_sizes(chrom_sizes)
    with tempfile.TemporaryDirectory() as tmp:
        genome = Path(tmp) / "genome.txt"
        genome.write_text("".join(f"{c}\t{s}\n" for c, s in sizes.items()))
        if region is None:
            cmd = ["bedtools", "makewindows", "-g", genome, "-w", bin_size]
        else:
            bed = Path(tmp) / "region.bed"
            bed.write_text(f"{region.chrom}\t{region.start}\t{region.end}\n")
            cmd = ["bedtools", "makewindows", "-b", bed, "-w", bin_size]
        raw = Path(tmp) / "windows.bed"
        run_tool(cmd, "bins", stdout=raw)
        bins = pd.read_csv(raw, sep="\t", header=None, names=BIN_COLUMNS[:3], dtype={"chrom": str})
    bins["bin"] = range(len(bins))
    with atomic_write(out) as fh:
        bins.to_csv(fh, sep="\t", header=False, index=False)
    log.info("bins: %d bins of %d bp", len(bins), bin_size)
    return len(bins)


def read_bins(path: str | Path) -> pd.DataFrame:
    path = require_file(path, "bins")
    bins = pd.read_csv(path, sep="\t", header=None, dtype={0: str})
    if bins.shape[1] != 4 or not (bins[3].to_numpy() == range(len(bins))).all():
        raise GexpError(f"bins {path}: not a bins.bed from `gexp bins` (chrom, start, end, index)")
    bins.columns = BIN_COLUMNS
    return bins
