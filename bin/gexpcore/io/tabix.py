"""Opening a bgzipped, tabix-indexed file (a fragments file) only when it is what it says.

htslib reports a damaged file on stderr and pysam then raises a bare OSError or ValueError
("iteration failed"); a user sees a traceback and no file name. So before pysam opens it:
the data must be BGZF (gzip with the BC extra field), end with BGZF's empty end-of-file
block (a file cut short by a copy lacks it), and its index must be a tabix index. What
only reading finds (a corrupt block in the middle, a line of another format) is reported
by `reading_fragments`, naming the file.
"""

from __future__ import annotations

import contextlib
import gzip
import zlib
from collections.abc import Iterator
from pathlib import Path

from ..errors import GexpError
from ..files import GZIP_ERRORS, format_reason, require_file

# BGZF's end-of-file marker: an empty block, the last 28 bytes of every whole bgzip file.
BGZF_EOF = bytes.fromhex("1f8b08040000000000ff0600424302001b0003000000000000000000")


def check_bgzip(path: Path, what: str) -> None:
    with open(path, "rb") as fh:
        head = fh.read(18)
        fh.seek(0, 2)
        size = fh.tell()
        fh.seek(max(0, size - len(BGZF_EOF)))
        tail = fh.read()
    if head[:2] != b"\x1f\x8b":
        raise GexpError(f"{what} {path}: not gzip-compressed (expected bgzip)")
    if len(head) < 14 or head[3] & 4 == 0 or head[12:14] != b"BC":
        raise GexpError(f"{what} {path}: gzip but not bgzip (recompress it with bgzip)")
    if tail != BGZF_EOF:
        raise GexpError(f"{what} {path}: truncated (no bgzip end-of-file block)")


def check_tabix_index(index: Path, data: Path, what: str) -> None:
    if not index.is_file():
        raise GexpError(
            f"{what} {data}: no tabix index {index} beside it (make one with: tabix -p bed {data})"
        )
    check_bgzip(index, f"{what} index")  # tabix writes its index with bgzip too
    try:
        with gzip.open(index, "rb") as fh:
            magic = fh.read(4)
            while fh.read(1 << 20):  # the whole index: it is small, and read whole anyway
                pass
    except (OSError, EOFError, zlib.error) as exc:
        raise GexpError(f"{what} index {index}: {format_reason(exc)}") from None
    if magic != b"TBI\x01":
        raise GexpError(f"{what} index {index}: not a tabix index (remake it: tabix -p bed {data})")


def check_indexed(path: Path, what: str) -> None:
    """A whole bgzip file with a tabix index beside it (`<path>.tbi`)."""
    check_bgzip(path, what)
    check_tabix_index(Path(f"{path}.tbi"), path, what)


def open_tabix(path: str | Path, what: str):
    """pysam.TabixFile on a file and index that passed the checks above."""
    import pysam

    path = require_file(path, what)
    check_indexed(path, what)
    try:
        return pysam.TabixFile(str(path))
    except (OSError, ValueError) as exc:
        raise GexpError(f"{what} {path} or its index {path}.tbi: cannot be read ({exc})") from None


@contextlib.contextmanager
def reading_fragments(path: str | Path) -> Iterator[None]:
    """What only reading a fragments file finds (a corrupt block in the middle, a line of
    another format) becomes one line naming the file."""
    try:
        yield
    except GexpError:
        raise
    except (OSError, ValueError, *GZIP_ERRORS) as exc:
        raise GexpError(
            f"fragments {path}: damaged or not a fragments file ({format_reason(exc)}); "
            "expected chrom, start, end, barcode[, count] per line, bgzipped"
        ) from None
