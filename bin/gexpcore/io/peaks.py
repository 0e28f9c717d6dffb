"""Reading ATAC-seq peak files (BED or ENCODE narrowPeak) into clean intervals.

Chromosome names are harmonised onto the genome's naming (`1` ↔ `chr1`) with a
warning; peaks on contigs the genome does not have (chrUn_…, decoys) are dropped
with a count; peaks running past a chromosome's end are clipped to it. A file
whose peaks land on no chromosome at all is an error: it would yield an
all-zero sample.
"""

from __future__ import annotations

import itertools
import logging
import math
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
    """Clean peaks as plain lists: what peak-bins needs, without importing pandas."""

    chrom: list[str]
    start: list[int]
    end: list[int]
    signal: list[float]


def read_peak_columns(
    path: str | Path,
    chrom_sizes: dict[str, int],
    min_score: float | None = None,
    need_signal: bool = False,
) -> PeakColumns:
    """read_peaks' result as lists, the common case parsed without pandas.

    A file with anything unusual (comment or track lines, ragged columns, a value
    that is not a plain number, an error to report) goes through read_peaks itself,
    so every message and every result stays the same.
    """
    path = Path(path)
    parsed = _parse_plain(path)
    if parsed is not None:
        clean = _clean(path, *parsed, chrom_sizes, min_score, need_signal)
        if clean is not None:
            return clean
    table = read_peaks(path, chrom_sizes, min_score=min_score, need_signal=need_signal)
    return PeakColumns(
        table["chrom"].tolist(),
        table["start"].tolist(),
        table["end"].tolist(),
        table["signal"].astype(float).tolist(),
    )


# Line breaks that str.splitlines honours besides \n (non-ASCII ones are ruled out apart).
_OTHER_BREAKS = ("\r", "\x0b", "\x0c", "\x1c", "\x1d", "\x1e")
_FLOAT_CHARS = frozenset("0123456789.eE+-")


def _parse_plain(path: Path):
    """(chrom, start, end, score or None, signal or None) of a plain BED, or None if unusual."""
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
    # Every line has the same fields: split all at once and take the columns by stride.
    width = tabs.pop() + 1
    fields = "\t".join(lines).split("\t")
    columns = [fields[k::width] for k in range(min(width, 7))]
    start, end = _integers(columns[1]), _integers(columns[2])
    if start is None or end is None:
        return None
    score = _floats(columns[4]) if len(columns) > 4 else None
    signal = _floats(columns[6]) if len(columns) > 6 else None
    if (len(columns) > 4 and score is None) or (len(columns) > 6 and signal is None):
        return None
    return list(columns[0]), start, end, score, signal


def _integers(texts: list[str]) -> list[int] | None:
    joined = "".join(texts)
    if not joined.isdigit() or not all(texts):
        return None
    return list(map(int, texts))


def _floats(texts: list[str]) -> list[float] | None:
    if not all(texts) or not set("".join(texts)) <= _FLOAT_CHARS:
        return None
    try:
        values = list(map(float, texts))
    except ValueError:
        return None
    return values if all(map(math.isfinite, values)) else None


def _clean(path, chrom, start, end, score, signal, sizes, min_score, need_signal):
    """read_peaks' checks and clean-up on plain lists; None where read_peaks would fail."""
    if any(e <= s for s, e in zip(start, end, strict=True)):
        return None
    if need_signal and signal is None:
        log.warning("peaks %s: no signalValue (narrowPeak column 7); every peak counts as 1", path)
    if signal is None:
        signal = [1.0] * len(start)
    if min_score is not None:
        if score is None:
            return None
        keep = [s >= min_score for s in score]
        if not any(keep):
            return None
        chrom, start, end, signal = (_select(col, keep) for col in (chrom, start, end, signal))
    renames = chrom_renames(dict.fromkeys(chrom), set(sizes))
    if renames:
        _warn_renamed(path, renames)
        chrom = [renames.get(c, c) for c in chrom]
    known = [c in sizes for c in chrom]
    if not any(known):
        return None
    if not all(known):
        contigs = list(dict.fromkeys(c for c, k in zip(chrom, known, strict=True) if not k))
        log.warning(
            "peaks %s: dropped %d peak(s) on %d contig(s) not in the genome (e.g. %s)",
            path,
            known.count(False),
            len(contigs),
            contigs[0],
        )
        chrom, start, end, signal = (_select(col, known) for col in (chrom, start, end, signal))
    size = [sizes[c] for c in chrom]
    inside = [s < n for s, n in zip(start, size, strict=True)]
    if not all(inside):
        log.warning(
            "peaks %s: dropped %d peak(s) starting beyond their chromosome's end",
            path,
            inside.count(False),
        )
        chrom, start, end, signal, size = (
            _select(col, inside) for col in (chrom, start, end, signal, size)
        )
    end = [min(e, n) for e, n in zip(end, size, strict=True)]
    return PeakColumns(chrom, start, end, signal)


def _select(values: list, keep: list[bool]) -> list:
    return [v for v, k in zip(values, keep, strict=True) if k]


def _warn_renamed(path, renames: dict[str, str]) -> None:
    """One warning line naming the first renamed chromosomes (`1->chr1`)."""
    shown = ", ".join(f"{a}->{b}" for a, b in list(renames.items())[:3])
    log.warning(
        "peaks %s: renamed chromosomes to match the genome (%s%s)",
        path,
        shown,
        ", ..." if len(renames) > 3 else "",
    )
