"""Reading ATAC-seq peak files (BED or ENCODE narrowPeak) into clean intervals.

Chromosome names are harmonised onto the genome's naming (`1` ↔ `chr1`) with a
warning; peaks on contigs the genome does not have (chrUn_…, decoys) are dropped
with a count; peaks running past a chromosome's end are clipped to it. A file
whose peaks land on no chromosome at all is an error: it would yield an
all-zero sample.
"""

from __future__ import annotations

import io
import itertools
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import GexpError
from ..files import read_text
from .ids import chrom_renames, harmonise_chroms

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

log = logging.getLogger("gexp")

PEAK_COLUMNS = ["chrom", "start", "end", "score", "signal"]


def _parse(path: Path) -> tuple[pd.DataFrame, np.ndarray]:
    import numpy as np
    import pandas as pd

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
    import numpy as np
    import pandas as pd

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
    import numpy as np
    import pandas as pd

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
        _warn_renamed(path, renames)
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


@dataclass
class PeakColumns:
    """Clean peaks as numpy columns: what peak-bins needs, without importing pandas."""

    chroms: list[str]  # the chromosomes, in order of first appearance
    code: np.ndarray  # each peak's index into chroms
    start: np.ndarray  # int64
    end: np.ndarray  # int64
    signal: np.ndarray  # float64

    @property
    def chrom(self) -> list[str]:
        """Each peak's chromosome name."""
        return [self.chroms[i] for i in self.code.tolist()]


def read_peak_columns(
    path: str | Path,
    chrom_sizes: dict[str, int],
    min_score: float | None = None,
    need_signal: bool = False,
) -> PeakColumns:
    """read_peaks' result as numpy columns, the common case parsed without pandas.

    A file with anything unusual (comment or track lines, ragged columns, a value
    that is not a plain number, an error to report) goes through read_peaks itself,
    so every message and every result stays the same.
    """
    import numpy as np

    path = Path(path)
    parsed = _parse_plain(path)
    if parsed is not None:
        clean = _clean(path, *parsed, chrom_sizes, min_score, need_signal)
        if clean is not None:
            return clean
    table = read_peaks(path, chrom_sizes, min_score=min_score, need_signal=need_signal)
    chroms, code = _codes(table["chrom"].tolist())
    return PeakColumns(
        chroms,
        code,
        table["start"].to_numpy(np.int64),
        table["end"].to_numpy(np.int64),
        table["signal"].to_numpy(np.float64),
    )


# Line breaks that str.splitlines honours besides \n (non-ASCII ones are ruled out apart).
_OTHER_BREAKS = ("\r", "\x0b", "\x0c", "\x1c", "\x1d", "\x1e")


def _parse_plain(path: Path):
    """(chrom, start, end, score or None, signal or None) of a plain BED, or None if unusual.

    Plain: ASCII, no comment, track or blank line, no blank at a line's ends, and the
    same number of tab-separated fields on every line. numpy's C reader (loadtxt) then
    takes the columns in one pass; it parses numbers as Python's int() and float() do.
    """
    import numpy as np

    text = read_text(path, "peaks")
    if not text.isascii() or any(c in text for c in _OTHER_BREAKS):
        return None
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()
    if not lines or any(not ln or ln[0] in "#tb \t" or ln[-1] in " \t" for ln in lines):
        return None
    tabs = set(map(str.count, lines, itertools.repeat("\t")))
    if len(tabs) != 1 or min(tabs) < 2:
        return None
    width = min(tabs.pop() + 1, 7)
    names = ["chrom", "start", "end", "score", "signal"][: 3 + (width > 4) + (width > 6)]
    kinds = [object, np.int64, np.int64, np.float64, np.float64][: len(names)]
    usecols = [0, 1, 2, 4, 6][: len(names)]
    try:
        table = np.loadtxt(
            io.StringIO(text), delimiter="\t", usecols=usecols, comments=None, quotechar=None,
            dtype=list(zip(names, kinds, strict=True)), ndmin=1,
        )  # fmt: skip
    except ValueError:
        return None
    columns = [table[name] for name in names] + [None] * (5 - len(names))
    return columns[0].tolist(), *columns[1:]


def _codes(chrom: list[str]) -> tuple[list[str], np.ndarray]:
    """The distinct names in order of first appearance, and each entry's index among them."""
    import numpy as np

    index = {c: i for i, c in enumerate(dict.fromkeys(chrom))}
    return list(index), np.fromiter(map(index.__getitem__, chrom), np.int64, len(chrom))


def _clean(path, chrom, start, end, score, signal, sizes, min_score, need_signal):
    """read_peaks' checks and clean-up on numpy columns; None where read_peaks would fail."""
    import numpy as np

    if (start < 0).any() or (end <= start).any():
        return None
    finite = [np.isfinite(v).all() for v in (score, signal) if v is not None]
    if not all(finite):
        return None
    if need_signal and signal is None:
        log.warning("peaks %s: no signalValue (narrowPeak column 7); every peak counts as 1", path)
    if signal is None:
        signal = np.ones(len(start))
    if min_score is not None:
        if score is None:
            return None
        keep = score >= min_score
        if not keep.any():
            return None
        chrom = [c for c, k in zip(chrom, keep.tolist(), strict=True) if k]
        start, end, signal = start[keep], end[keep], signal[keep]
    chroms, code = _codes(chrom)
    renames = chrom_renames(dict.fromkeys(chroms), set(sizes))
    if renames:
        _warn_renamed(path, renames)
        chroms = [renames.get(c, c) for c in chroms]
    known = np.array([c in sizes for c in chroms])[code]
    if not known.any():
        return None
    if not known.all():
        contigs = list(dict.fromkeys(chroms[i] for i in code[~known].tolist()))
        log.warning(
            "peaks %s: dropped %d peak(s) on %d contig(s) not in the genome (e.g. %s)",
            path,
            int((~known).sum()),
            len(contigs),
            contigs[0],
        )
        code, start, end, signal = code[known], start[known], end[known], signal[known]
    size = np.array([sizes.get(c, 0) for c in chroms], dtype=np.int64)[code]
    inside = start < size
    if not inside.all():
        log.warning(
            "peaks %s: dropped %d peak(s) starting beyond their chromosome's end",
            path,
            int((~inside).sum()),
        )
        code, start, end, signal, size = (v[inside] for v in (code, start, end, signal, size))
    return PeakColumns(chroms, code, start, np.minimum(end, size), signal)


def _warn_renamed(path, renames: dict[str, str]) -> None:
    """One warning line naming the first renamed chromosomes (`1->chr1`)."""
    shown = ", ".join(f"{a}->{b}" for a, b in list(renames.items())[:3])
    log.warning(
        "peaks %s: renamed chromosomes to match the genome (%s%s)",
        path,
        shown,
        ", ..." if len(renames) > 3 else "",
    )
