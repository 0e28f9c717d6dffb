"""Cheap, complete checks of FASTQ inputs before kallisto reads them.

One streaming pass over each file catches a truncated gzip and a record count
that is not whole; the first records are parsed strictly so a file that is not
FASTQ at all is named as such. Mates of a pair must hold the same number of
reads: kallisto would otherwise pair reads wrongly or stop part-way.
"""

from __future__ import annotations

import gzip
import itertools
from pathlib import Path

from .errors import GexpError
from .files import check_gzip_stream, is_gzip

HEAD_RECORDS = 1000


def _check_head(path: Path) -> None:
    opener = gzip.open if is_gzip(path) else open
    with opener(path, "rt", errors="replace") as fh:
        lines = [ln.rstrip("\r\n") for ln in itertools.islice(fh, 4 * HEAD_RECORDS)]
    for i in range(0, len(lines) - len(lines) % 4, 4):
        header, seq, plus, qual = lines[i : i + 4]
        where = f"FASTQ {path} line {i + 1}"
        if not header.startswith("@"):
            raise GexpError(f"{where}: record header must start with '@'")
        if not plus.startswith("+"):
            raise GexpError(f"FASTQ {path} line {i + 3}: separator line must start with '+'")
        if len(seq) != len(qual):
            raise GexpError(
                f"FASTQ {path} line {i + 4}: quality length {len(qual)} "
                f"!= sequence length {len(seq)}"
            )


def count_reads(path: str | Path) -> int:
    path = Path(path)
    _check_head(path)
    lines = check_gzip_stream(path, "FASTQ")
    if lines == 0:
        raise GexpError(f"FASTQ {path}: no reads (empty file)")
    if lines % 4:
        raise GexpError(
            f"FASTQ {path}: {lines} lines is not a whole number of 4-line records (truncated?)"
        )
    return lines // 4


def check_fastqs(sample: str, read1: list[str], read2: list[str]) -> int:
    """Validate a sample's runs; return its total number of reads (or pairs)."""
    total = 0
    for i, r1 in enumerate(read1):
        n1 = count_reads(r1)
        if read2:
            n2 = count_reads(read2[i])
            if n1 != n2:
                raise GexpError(
                    f"sample {sample}: paired FASTQ files have different read counts "
                    f"({r1}: {n1}, {read2[i]}: {n2})"
                )
        total += n1
    return total
