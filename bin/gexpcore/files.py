"""Reading inputs safely and writing outputs atomically.

Every output is written to a temporary name beside its destination and renamed
only when complete, so an interrupted or failed step never leaves a file that a
resumed run would mistake for a finished one.
"""

from __future__ import annotations

import contextlib
import errno
import gzip
import io
import json
import logging
import os
import re
import shutil
import sys
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path

from isal import isal_zlib

from .errors import GexpError

log = logging.getLogger("gexp")


def require_file(path: str | os.PathLike, what: str = "file") -> Path:
    """Return the path if it is a readable, regular file; otherwise fail in one line."""
    p = Path(path)
    if not p.exists():
        raise GexpError(f"{what} not found: {p}")
    if not p.is_file():
        raise GexpError(f"{what} is not a regular file: {p}")
    if not os.access(p, os.R_OK):
        raise GexpError(f"{what} is not readable: {p}")
    return p


def is_gzip(path: str | os.PathLike) -> bool:
    with open(path, "rb") as fh:
        return fh.read(2) == b"\x1f\x8b"


# What a damaged gzip raises, from the standard gzip module or from ISA-L's (open_gzip).
GZIP_ERRORS = (EOFError, zlib.error, gzip.BadGzipFile, isal_zlib.error)


def open_gzip(path: str | os.PathLike) -> io.BufferedIOBase:
    """A gzip file opened for reading through ISA-L (python-isal, as cutadapt and dnaio read
    FASTQ): the same bytes as gzip.open's in about half the time. Every read of every FASTQ
    is decompressed here on its way to kallisto, so this is most of gexp's own cost."""
    from isal import igzip

    return igzip.open(path, "rb")


def read_text(path: str | os.PathLike, what: str = "file") -> str:
    """Whole file as text, gunzipped when needed, with truncation reported as such."""
    p = require_file(path, what)
    try:
        if is_gzip(p):
            with open_gzip(p) as fh:
                data = fh.read()
        else:
            data = p.read_bytes()
    except GZIP_ERRORS as exc:
        raise GexpError(f"{what} {p}: truncated or corrupt gzip ({exc})") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise GexpError(f"{what} {p}: not a text file (invalid UTF-8)") from None


def check_gzip_stream(path: str | os.PathLike, what: str = "file") -> int:
    """Decompress a whole (gzipped or plain) file and return its newline count.

    This is a single streaming pass in C, so it is cheap next to the tools that
    read the file afterwards, and it turns a truncated download into a clear
    message instead of a tool crash half-way through.
    """
    p = require_file(path, what)
    lines = 0
    try:
        with open_gzip(p) if is_gzip(p) else open(p, "rb") as fh:
            while chunk := fh.read(1 << 22):
                lines += chunk.count(b"\n")
    except GZIP_ERRORS as exc:
        raise GexpError(f"{what} {p}: truncated or corrupt gzip ({exc})") from None
    return lines


# What readers raise on a file that is not what its name says (truncated, corrupt, another
# format): pandas' ParserError and EmptyDataError, UnicodeDecodeError and JSONDecodeError are
# ValueErrors; h5py and pysam raise OSError on a file they cannot open.
FORMAT_ERRORS = (
    ValueError,
    KeyError,
    IndexError,
    EOFError,
    zlib.error,
    isal_zlib.error,
    zipfile.BadZipFile,
    OSError,
)


def format_reason(exc: BaseException) -> str:
    """A reader's exception in a few words: what is wrong with the file."""
    if isinstance(exc, UnicodeDecodeError):
        return "not a text file (invalid UTF-8)"
    if isinstance(exc, GZIP_ERRORS):
        return f"truncated or corrupt gzip ({exc})"
    if isinstance(exc, zipfile.BadZipFile):
        return f"not a whole npz (zip) archive: truncated, corrupt or another format ({exc})"
    if isinstance(exc, KeyError):
        return f"missing {exc}"
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


@contextlib.contextmanager
def reading(path: str | os.PathLike, what: str = "file") -> Iterator[None]:
    """Whatever goes wrong parsing `path` in this block becomes one line naming the file."""
    try:
        yield
    except GexpError:
        raise
    except FORMAT_ERRORS as exc:
        raise GexpError(f"{what} {path}: {format_reason(exc)}") from None


def ends_with_newline(path: str | os.PathLike) -> bool:
    """Whether a plain-text file's last byte is a newline (every table gexp writes ends so;
    one cut short by a full disk or a broken copy usually does not)."""
    with open(path, "rb") as fh:
        fh.seek(0, 2)
        if fh.tell() == 0:
            return True
        fh.seek(-1, 2)
        return fh.read(1) == b"\n"


def sha256_file(path: str | os.PathLike) -> str:
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 22):
            digest.update(chunk)
    return digest.hexdigest()


def _tmp_name(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp{os.getpid()}")


_TMP_NAME = re.compile(r"^\..+\.tmp\d+$")  # what _tmp_name makes


def remove_stale_temporaries(folder: str | os.PathLike, *, skip: tuple[str, ...] = ()) -> int:
    """Delete the temporaries that killed runs left under `folder`; return how many.

    A process killed with SIGKILL cannot clean up, so its temporaries stay. Call
    this only while holding the folder's lock (lock.py): then no live process
    writes there, and every temporary is stale. Subfolders named in `skip` (another
    lock's folder) are left alone; download `.part` files, which resume, are not
    temporaries.
    """
    removed = 0
    for root, dirs, names in os.walk(folder):
        if Path(root) == Path(folder):
            dirs[:] = [d for d in dirs if d not in skip]
        for name in [*names, *dirs]:
            if _TMP_NAME.match(name):
                path = Path(root) / name
                if path.is_dir() and not path.is_symlink():
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    path.unlink(missing_ok=True)
                removed += 1
        dirs[:] = [d for d in dirs if not _TMP_NAME.match(d)]
    return removed


def _refuse_if_disk_full(dest: Path) -> None:
    """A file finished on a disk with no block left may have been cut short by a tool that
    ignores write errors (kallisto index exits 0 with a truncated index): never rename it."""
    try:
        full = os.statvfs(dest.parent).f_bavail == 0
    except (OSError, AttributeError):  # no statvfs (Windows): trust the writer
        return
    if full:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(dest))


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path to write; rename it to `path` only on success."""
    dest = Path(path)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_name(dest)
    try:
        yield tmp
        _refuse_if_disk_full(dest)
        os.replace(tmp, dest)
    except OSError as exc:
        if exc.filename is None:  # a write() that failed names no file: name the output
            raise OSError(exc.errno, exc.strerror or str(exc), str(dest)) from None
        raise
    finally:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        elif tmp.exists():
            tmp.unlink()


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "w", level: int = 6) -> Iterator[io.IOBase]:
    """Open a temporary file for writing (gzipped at `level` when the name ends in .gz)."""
    with atomic_path(path) as tmp:
        if not str(path).endswith(".gz"):
            with open(tmp, mode) as fh:
                yield fh
            return
        with open(tmp, "wb") as raw, deterministic_gzip(raw, level) as gz:
            if "b" in mode:
                yield gz
            else:
                with io.TextIOWrapper(gz, encoding="utf-8", newline="") as fh:
                    yield fh


def deterministic_gzip(raw: io.IOBase, level: int = 6) -> gzip.GzipFile:
    """Gzip with no timestamp or file name in the header: the same content gives the same
    bytes, so checksums, nf-test snapshots and resumed runs compare equal."""
    return gzip.GzipFile(filename="", mode="wb", compresslevel=level, fileobj=raw, mtime=0)


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """A temporary directory renamed to `path` when the block completes."""
    dest = Path(path)
    with atomic_path(dest) as tmp:
        tmp.mkdir(parents=True)
        yield tmp
        if dest.exists():
            shutil.rmtree(dest)


# A zip member over this size needs zip64 headers; below it, none are written.
_ZIP64_FROM = 2**31 - 2**20


def write_npz(path: str | os.PathLike, arrays: dict, compress: bool = False) -> None:
    """What np.savez (or savez_compressed) writes, but the same bytes on every Python.

    numpy forces zip64 headers on every member, and Python 3.11.4 started to mark such
    members with another zip version than 3.11.2 does (Debian's): a container's dataset
    then differs from the host's by header bytes alone. Only members that need zip64 get
    it here; they are marked alike on every Python we know of. No time stamps (1980-01-01),
    no pickles, atomic like every other output.
    """
    import numpy as np

    method = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
    with atomic_path(path) as tmp, zipfile.ZipFile(tmp, "w", method, allowZip64=True) as zf:
        for name, value in arrays.items():
            value = np.asanyarray(value)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = method
            with zf.open(info, "w", force_zip64=value.nbytes > _ZIP64_FROM) as fh:
                np.lib.format.write_array(fh, value, allow_pickle=False)


def write_sparse_npz(path: str | os.PathLike, matrix) -> None:
    """A CSR matrix as scipy.sparse.save_npz writes it (compressed), read by load_npz."""
    write_npz(
        path,
        {
            "indices": matrix.indices,
            "indptr": matrix.indptr,
            "format": matrix.format.encode("ascii"),
            "shape": matrix.shape,
            "data": matrix.data,
        },
        compress=True,
    )


def read_json(path: str | os.PathLike, what: str, empty: dict | None = None) -> dict:
    """A JSON document from a file, or from standard input when the path is `-`; `empty`,
    if given, is what a blank document means."""
    try:
        text = sys.stdin.read() if str(path) == "-" else Path(path).read_text()
        if empty is not None and not text.strip():
            return empty
        return json.loads(text)
    except FileNotFoundError:
        raise GexpError(f"{path}: {what} not found") from None
    except json.JSONDecodeError as exc:
        where = f"line {exc.lineno}: {exc.msg}"
        raise GexpError(f"{path}: {what} is not valid JSON ({where})") from None
