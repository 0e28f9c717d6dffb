"""Reading ATAC-seq peak files (BED or ENCODE narrowPeak) into clean intervals.

Chromosome names are harmonised onto the genome's naming (`1` ↔ `chr1`) with a
warning; peaks on contigs the genome does not have (chrUn_…, decoys) are dropped
with a count; peaks running past a chromosome's end are clipped to it. A file
whose peaks land on no chromosome at all is an error: it would yield an
all-zero sample.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from .errors import GexpError
from .files import read_text
from .ids import harmonise_chroms

log = logging.getLogger("gexp")

PEAK_COLUMNS = ["chrom", "start", "end", "score", "signal"]


def _parse(path: Path) -> tuple[pd.DataFrame, np.ndarray]:
    rows, lines = [], []
    for lineno, line in enumerate(read_text(path, "peaks").splitlines(), start=1):
        if not line.strip() or line.startswith(("#", "track", "browser")):
            continue
        fields = line.split("\t")
        if len(fields) < 3:
            raise GexpError(
                f"peaks {path} line {lineno}: {len(fields)} column(s), BED needs at least 3 "
                "(tab-separated chrom, start, end)"
            )
        rows.append(fields[:7] + [""] * (7 - len(fields[:7])))
        lines.append(lineno)
    if not rows:
        raise GexpError(f"peaks {path}: no peaks (empty file)")
    table = pd.DataFrame(
        rows, columns=["chrom", "start", "end", "name", "score", "strand", "signal"]
    )
    return table, np.asarray(lines)


def _numbers(
    table: pd.DataFrame, column: str, lines: np.ndarray, path: Path, integer: bool
) -> pd.Series:
    values = pd.to_numeric(table[column], errors="coerce")
    bad = values.isna() | (~np.isfinite(values))
    if bad.any():
        i = int(bad.to_numpy().argmax())
        raise GexpError(
            f"peaks {path} line {lines[i]}: non-numeric {column} '{table[column].iloc[i]}'"
        )
    if integer and (values != values.round()).any():
        i = int((values != values.round()).to_numpy().argmax())
        raise GexpError(f"peaks {path} line {lines[i]}: {column} must be an integer")
    return values.astype("int64") if integer else values.astype(float)


def read_peaks(
    path: str | Path,
    chrom_sizes: dict[str, int],
    min_score: float | None = None,
    need_signal: bool = False,
) -> pd.DataFrame:
    """Validated peaks on the genome's chromosomes, clipped to their ends."""
    path = Path(path)
    table, lines = _parse(path)
    start = _numbers(table, "start", lines, path, integer=True)
    end = _numbers(table, "end", lines, path, integer=True)
    bad = start < 0
    if bad.any():
        raise GexpError(f"peaks {path} line {lines[bad.to_numpy().argmax()]}: negative start")
    bad = end <= start
    if bad.any():
        raise GexpError(f"peaks {path} line {lines[bad.to_numpy().argmax()]}: end before start")
    has_score = (table["score"] != "").all()
    has_signal = (table["signal"] != "").all()
    score = _numbers(table, "score", lines, path, integer=False) if has_score else np.nan
    if need_signal and not has_signal:
        log.warning("peaks %s: no signalValue (narrowPeak column 7); every peak counts as 1", path)
    signal = _numbers(table, "signal", lines, path, integer=False) if has_signal else 1.0
    peaks = pd.DataFrame(
        {"chrom": table["chrom"], "start": start, "end": end, "score": score, "signal": signal}
    )

    if min_score is not None:
        if not has_score:
            raise GexpError(f"peaks {path}: --min-score needs a score column (BED column 5)")
        peaks = peaks[peaks["score"] >= min_score]
        if peaks.empty:
            raise GexpError(f"peaks {path}: no peak has score >= {min_score}")

    peaks["chrom"], renames = harmonise_chroms(peaks["chrom"], set(chrom_sizes))
    if renames:
        shown = ", ".join(f"{a}->{b}" for a, b in list(renames.items())[:3])
        log.warning(
            "peaks %s: renamed chromosomes to match the genome (%s%s)",
            path,
            shown,
            ", ..." if len(renames) > 3 else "",
        )
    known = peaks["chrom"].isin(chrom_sizes)
    if not known.any():
        examples = ", ".join(pd.unique(peaks["chrom"])[:3])
        raise GexpError(
            f"peaks {path}: no peak is on a chromosome of the genome (found {examples}); "
            "wrong assembly or chrom sizes?"
        )
    if not known.all():
        contigs = pd.unique(peaks.loc[~known, "chrom"])
        log.warning(
            "peaks %s: dropped %d peak(s) on %d contig(s) not in the genome (e.g. %s)",
            path,
            int((~known).sum()),
            len(contigs),
            contigs[0],
        )
        peaks = peaks[known]
    size = peaks["chrom"].map(chrom_sizes)
    inside = peaks["start"] < size
    if not inside.all():
        log.warning(
            "peaks %s: dropped %d peak(s) starting beyond their chromosome's end",
            path,
            int((~inside).sum()),
        )
        peaks, size = peaks[inside], size[inside]
    peaks["end"] = np.minimum(peaks["end"], size)
    return peaks.reset_index(drop=True)[PEAK_COLUMNS]
