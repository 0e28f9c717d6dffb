"""One run per output folder: `gexp run` and `gexp train` hold a lock on their --outdir.

A double-submitted job would otherwise run twice into the same files. The lock
is `fcntl.flock` on `<outdir>/.gexp.lock`, so the kernel releases it when the
holder exits, however it exits: a run killed with SIGKILL never blocks the next
one, and there is no stale lock to clean up. The file stays behind (removing it
would let a third process lock a new file while a second still waits on the old
one); it names the last holder, so that a refused run can say who holds it.
flock works on local file systems; on NFS it depends on the mount (Linux ≥ 2.6.12
emulates it with POSIX locks).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import logging
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

from .errors import GexpError

LOCK_NAME = ".gexp.lock"
UNSUPPORTED = {errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOLCK, errno.EINVAL}
log = logging.getLogger("gexp")


@contextlib.contextmanager
def folder_lock(folder: str | Path, command: str) -> Iterator[Path]:
    """Hold the lock on `folder` (created if needed) for the block; yield the lock file.

    Raises GexpError at once, naming the folder and the holder's process and host,
    when another process holds it.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK_NAME
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise GexpError(
                f"output folder {folder} is in use by {_holder(fd)}; wait for it to finish "
                "or choose another --outdir"
            ) from None
        except OSError as exc:
            if exc.errno not in UNSUPPORTED:
                raise
            # Lustre or GPFS mounted without flock (common on clusters): a lock that cannot
            # be taken must not stop the run, which Nextflow already keeps in its own folder.
            log.warning("%s: the file system does not support locks; not locked", folder)
        record = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "command": command,
            "started": time.strftime("%Y-%m-%d %H:%M:%S"),
        }
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(record) + "\n").encode(), 0)
        yield path
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def _holder(fd: int) -> str:
    """Who holds the lock, from the record it wrote (it may be writing it right now)."""
    for _ in range(20):
        try:
            record = json.loads(os.pread(fd, 4096, 0).decode())
            return (
                f"{record['command']} (pid {record['pid']} on {record['host']}, "
                f"started {record['started']})"
            )
        except (ValueError, KeyError, TypeError):
            time.sleep(0.05)
    return "another gexp process"
