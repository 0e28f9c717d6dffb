"""Fixed-width genomic bins (bedtools makewindows), numbered once for every sample.

bins.bed has a fourth column, the bin's global index; every per-sample file and
every matrix refers to bins by that index, so all samples share one coordinate
system and a model trained on one bins.bed refuses peaks binned on another.
"""

from __future__ import annotations

import argparse
import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import GexpError
from ..files import atomic_write, reading, require_file
from ..io.genome import Region, chrom_sizes_for, parse_region, read_chrom_sizes
from ..tools import run_tool
from .options import genome_options, positive_int

if TYPE_CHECKING:  # pandas is imported where bins are read whole: peak-bins needs only the layout
    import pandas as pd

log = logging.getLogger("gexp")

BIN_COLUMNS = ["chrom", "start", "end", "bin"]


def make_bins(
    chrom_sizes: str | Path, bin_size: int, region: Region | None, out: str | Path
) -> int:
    if bin_size <= 0:
        raise GexpError(f"--bin-size must be positive, got {bin_size}")
    import pandas as pd

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
    import pandas as pd

    path = require_file(path, "bins")
    with reading(path, "bins"):
        bins = pd.read_csv(path, sep="\t", header=None, dtype={0: str})
    ok = bins.shape[1] == 4 and (bins[3].to_numpy() == range(len(bins))).all()
    ok = ok and all(pd.api.types.is_integer_dtype(bins[k]) for k in (1, 2, 3))
    if not ok:
        raise GexpError(f"bins {path}: not a bins.bed from `gexp bins` (chrom, start, end, index)")
    bins.columns = BIN_COLUMNS
    return bins


@dataclass(frozen=True)
class ChromBins:
    """One chromosome's run of consecutive bins in bins.bed."""

    chrom: str
    start: int  # start of its first bin
    end: int  # end of its last bin
    first: int  # global index of its first bin
    count: int


@dataclass(frozen=True)
class BinLayout:
    """Where every chromosome's bins start and end, without the 3 M lines of bins.bed."""

    chroms: tuple[ChromBins, ...]
    # Every bin's width but each chromosome's last (shorter or equal), when bins.bed is one
    # from `gexp bins`; None for any other layout, whose bins are then read whole.
    width: int | None = None

    @property
    def n_bins(self) -> int:
        last = self.chroms[-1]
        return last.first + last.count

    def ends(self) -> dict[str, int]:
        """Chromosome → end of its last bin, in the bins' order."""
        return {c.chrom: c.end for c in self.chroms}


def read_bin_layout(path: str | Path) -> BinLayout:
    """The layout of a bins.bed from `gexp bins`, read from a few lines of it.

    Bins are fixed-width, so each chromosome's run of lines is known from its first
    and last line. Those are found by binary search over byte offsets, and every
    run's length in bytes is checked against the lines its bins spell out, so a
    file that is not a complete bins.bed from `gexp bins` is not taken for one.
    Anything else (variable-width bins, a damaged file) is read whole by read_bins,
    which keeps its message.
    """
    path = require_file(path, "bins")
    try:
        with open(path, "rb") as fh:
            runs, width = _chrom_runs(fh, os.fstat(fh.fileno()).st_size)
            return BinLayout(tuple(runs), width)
    except (ValueError, IndexError, UnicodeDecodeError):
        pass
    bins = read_bins(path)
    runs = []
    for chrom, part in bins.groupby("chrom", sort=False):
        runs.append(
            ChromBins(
                str(chrom),
                int(part["start"].min()),
                int(part["end"].max()),
                int(part["bin"].iloc[0]),
                len(part),
            )
        )
    return BinLayout(tuple(runs))


def _line_from(fh, offset: int) -> tuple[int, list[str]] | None:
    """(offset, fields) of the first line that starts at or after `offset`; None at the end."""
    if offset > 0:
        fh.seek(offset - 1)
        fh.readline()  # the rest of the line holding offset - 1
        offset = fh.tell()
    else:
        fh.seek(0)
    line = fh.readline()
    if not line:
        return None
    if not line.endswith(b"\n"):
        raise ValueError("last line not terminated")
    return offset, line[:-1].decode().split("\t")


def _chrom_runs(fh, size: int) -> tuple[list[ChromBins], int]:
    """Each chromosome's run of bins, and their common width (checked, not assumed)."""
    runs: list[ChromBins] = []
    width = widest = 0
    offset, index = 0, 0
    while offset < size:
        found = _line_from(fh, offset)
        if found is None:
            break
        _, (chrom, start, end, first) = found
        start, end, first = int(start), int(end), int(first)
        if first != index or end <= start:
            raise ValueError("bins out of order")
        lo, hi = offset + 1, size  # the next chromosome's first line starts in (lo, hi]
        while lo < hi:
            mid = (lo + hi) // 2
            probe = _line_from(fh, mid)
            if probe is None or probe[1][0] != chrom:
                hi = mid
            else:
                lo = mid + 1
        following = _line_from(fh, lo)
        next_offset = size if following is None else following[0]
        fh.seek(max(offset, next_offset - 256))
        last = fh.read(next_offset - fh.tell())[:-1].rsplit(b"\n", 1)[-1].decode().split("\t")
        if last[0] != chrom:
            raise ValueError("chromosome split")
        count = int(last[3]) - first + 1
        step = end - start
        if count > 1:
            width = width or step
            if step != width or int(last[1]) != start + (count - 1) * width:
                raise ValueError("not fixed-width")
        last_end = int(last[2])
        if not 0 < last_end - int(last[1]) <= (width or step):
            raise ValueError("bad last bin")
        # Each line is `chrom<TAB>start<TAB>end<TAB>index<NL>`: its run's length in bytes.
        length = count * (len(chrom.encode()) + 4)
        length += _digits(start, step, count)
        length += _digits(end, step, count - 1) + len(str(last_end))
        length += _digits(first, 1, count)
        if length != next_offset - offset:
            raise ValueError("run length")
        runs.append(ChromBins(chrom, start, last_end, first, count))
        widest = max(widest, step)
        offset, index = next_offset, first + count
    if not runs:
        raise ValueError("empty")
    if len({r.chrom for r in runs}) < len(runs):  # a chromosome in two places
        raise ValueError("chromosome split")
    if width and widest > width:  # a chromosome of one bin, wider than the others' bins
        raise ValueError("not fixed-width")
    return runs, width or widest  # chromosomes of one bin each: any width >= the widest fits


def _digits(first: int, step: int, n: int) -> int:
    """Total decimal digits of first, first + step, …, the n numbers of an arithmetic run."""
    total, k, power = 0, 0, 10
    while k < n:
        while power <= first + k * step:
            power *= 10
        # numbers from k on with as many digits as first + k * step: those below power
        upto = min(n, -(-(power - first) // step)) if step else n
        total += (upto - k) * (len(str(power)) - 1)
        k = upto
    return total


# -- the command line: `gexp bins` -------------------------------------------------------------


def add_arguments(p: argparse.ArgumentParser) -> None:
    genome_options(p)
    p.add_argument("--bin-size", type=positive_int, default=1000, help="bin width in bp")
    p.add_argument(
        "--region", help="e.g. chr1:1-10000000, 1-based, inclusive (default: whole genome)"
    )
    p.add_argument("--out", required=True, type=Path, help="bins.bed to write")


def run(a: argparse.Namespace) -> None:
    sizes = chrom_sizes_for(a.chrom_sizes, a.genome)
    region = parse_region(a.region, read_chrom_sizes(sizes)) if a.region else None
    make_bins(sizes, a.bin_size, region, a.out)
