"""Cheap, complete checks of FASTQ inputs before kallisto reads them.

One streaming pass over each file catches a truncated gzip and a record count
that is not whole; the first records are parsed strictly so a file that is not
FASTQ at all is named as such. Mates of a pair must hold the same number of
reads: kallisto would otherwise pair reads wrongly or stop part-way.

`gexp check-fastq` (FASTQ_CHECK) makes that pass before kallisto runs. `gexp run`
shares it with kallisto instead (FastqFeed): each file is decompressed once, counted
on its way to kallisto through a named pipe, and only a file that fails is checked
again by check_fastqs, for its message; kallisto's output is then discarded.
"""

from __future__ import annotations

import argparse
import errno
import gzip
import itertools
import os
import threading
import time
from pathlib import Path

from ..errors import GexpError
from ..files import GZIP_ERRORS, check_gzip_stream, is_gzip, open_gzip, require_file

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
    path = require_file(path, "FASTQ")
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


class FastqFeed:
    """Each FASTQ decompressed once, counted on the way and handed to one reader (kallisto)
    through a named pipe: the check costs no pass of its own over the files.

    Use `paths(files)` for the reader's command line, `start()` before the reader
    starts and `counts()` (line count per file, or None for a file that could not
    be read whole) after it ends; `abort()` stops a feed whose reader is gone.
    """

    def __init__(self, files: list[str], folder: Path) -> None:
        self.files = list(files)
        self.fifos = [folder / f"{i}.{Path(f).name}" for i, f in enumerate(self.files)]
        self._lines: list[int | None] = [None] * len(self.files)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def paths(self, files: list[str]) -> list[str]:
        return [str(self.fifos[self.files.index(f)]) for f in files]

    def start(self) -> None:
        for i in range(len(self.files)):
            os.mkfifo(self.fifos[i])
            thread = threading.Thread(target=self._feed, args=(i,), daemon=True)
            thread.start()
            self._threads.append(thread)

    def failed(self) -> bool:
        return self._stop.is_set()

    def abort(self) -> None:
        self._stop.set()

    def counts(self) -> list[int | None]:
        for thread in self._threads:
            thread.join()
        return self._lines

    def _feed(self, i: int) -> None:
        path = self.files[i]
        try:
            with open_gzip(path) if is_gzip(path) else open(path, "rb") as src:
                out = self._open_fifo(self.fifos[i])
                if out is None:
                    return
                lines = 0
                with os.fdopen(out, "wb", buffering=0) as dst:
                    while chunk := src.read(1 << 20):
                        lines += chunk.count(b"\n")
                        dst.write(chunk)
            self._lines[i] = lines
        except (OSError, *GZIP_ERRORS):  # incl. a reader gone (BrokenPipeError)
            self._stop.set()

    def _open_fifo(self, fifo: Path) -> int | None:
        """Open the pipe for writing once the reader opens it; None if the feed was aborted."""
        while not self._stop.is_set():
            try:
                fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
            except OSError as exc:
                if exc.errno != errno.ENXIO:  # ENXIO: no reader yet
                    raise
                time.sleep(0.005)
                continue
            os.set_blocking(fd, True)
            return fd
        return None


def reads_if_valid(read1: list[str], read2: list[str], lines: dict[str, int | None]) -> int | None:
    """check_fastqs' total from line counts a feed made, or None when check_fastqs would fail."""
    total = 0
    for i, r1 in enumerate(read1):
        n1 = lines[r1]
        if not n1 or n1 % 4:
            return None
        if read2:
            n2 = lines[read2[i]]
            if n2 != n1:
                return None
        total += n1 // 4
    return total


def heads_are_valid(files: list[str]) -> bool:
    try:
        for f in files:
            _check_head(Path(f))
    except (GexpError, OSError, *GZIP_ERRORS):
        return False
    return True


# -- the command line: `gexp check-fastq` ------------------------------------------------------


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--sample", required=True, help="sample id, for messages")
    p.add_argument("--read1", required=True, nargs="+", help="read 1 FASTQ, one file per run")
    p.add_argument(
        "--read2", nargs="+", help="read 2 FASTQ in --read1's order (default: none, single-end)"
    )


def run(a: argparse.Namespace) -> None:
    reads = check_fastqs(a.sample, a.read1, a.read2 or [])
    print(reads)
