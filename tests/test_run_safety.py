"""One run per output folder, and a run killed at any point resumes to the same outputs."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import FAST_TRAINING, GEXP, ROOT, assert_user_error, run_gexp

DATA = ROOT / "tests" / "data"
REF = DATA / "reference"


def run_args(outdir: Path) -> list[str]:
    """`gexp run` on the bundled cohort (6 samples: paired and single-end FASTQ)."""
    return [
        "run",
        *("--input", str(DATA / "samplesheet.csv")),
        *("--transcriptome", str(REF / "transcripts.fa.gz")),
        *("--gtf", str(REF / "genes.gtf.gz")),
        *("--chrom-sizes", str(REF / "chrom.sizes")),
        *("--outdir", str(outdir)),
        *("--threads", "2"),
        *map(str, FAST_TRAINING),
    ]


def start_gexp(*args: str, code: str | None = None) -> subprocess.Popen:
    """`gexp` (or a Python snippet) in its own process group, so that a kill reaches kallisto."""
    command = [sys.executable, "-c", code, *args] if code else [sys.executable, str(GEXP), *args]
    return subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def wait_for(condition, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.01)


def lock_holder(folder: Path) -> int | None:
    try:
        return json.loads((folder / ".gexp.lock").read_text())["pid"]
    except (OSError, ValueError, KeyError):
        return None


# A process that holds a folder's lock until it is killed.
HOLD = """
import sys, time
sys.path.insert(0, sys.argv[1])
from gexpcore.lock import folder_lock
with folder_lock(sys.argv[2], "gexp train"):
    time.sleep(600)
"""


def test_a_second_run_into_the_same_folder_fails_at_once_naming_the_folder_and_the_first(
    tmp_path,
):
    out = tmp_path / "results"
    first = start_gexp(*run_args(out))
    try:
        wait_for(lambda: lock_holder(out) == first.pid or first.poll() is not None)
        started = time.monotonic()
        second = run_gexp(*run_args(out))
        assert time.monotonic() - started < 15
        line = assert_user_error(second, str(out), f"pid {first.pid}", "gexp run")
        assert "in use" in line
        assert first.poll() is None, "the first run must not be disturbed"
    finally:
        os.killpg(first.pid, signal.SIGKILL)
        first.wait()
    # The kernel released the killed run's lock: the same command now runs to the end.
    third = run_gexp(*run_args(out))
    assert third.returncode == 0, third.stderr
    assert (out / "report.html").is_file()
    assert lock_holder(out) != first.pid


def test_train_holds_its_folder_and_a_killed_holder_does_not_block(tmp_path):
    from gexpcore.lock import folder_lock

    model = tmp_path / "model"
    holder = start_gexp(str(ROOT / "bin"), str(model), code=HOLD)
    try:
        wait_for(lambda: lock_holder(model) == holder.pid)
        proc = run_gexp("train", "--dataset", tmp_path / "no-dataset", "--outdir", model)
        assert_user_error(proc, str(model), f"pid {holder.pid}", "gexp train")
    finally:
        os.killpg(holder.pid, signal.SIGKILL)
        holder.wait()
    # Nothing to clean up by hand: the next holder takes the lock at once.
    with folder_lock(model, "test"):
        assert lock_holder(model) == os.getpid()
    proc = run_gexp("train", "--dataset", tmp_path / "no-dataset", "--outdir", model)
    assert proc.returncode != 0 and "in use" not in proc.stderr


# `gexp run`, killed with SIGKILL by itself right before or right after an atomic rename
# onto a path matching a pattern: the moments where a non-atomic writer would leave a
# half-written file, or a resume would trust an output whose step was never recorded.
CRASH_AT = """
import fnmatch, os, signal, sys
sys.path.insert(0, sys.argv[1])
pattern, when = sys.argv[2], sys.argv[3]
rename = os.replace

def replace(src, dst, *args, **kwargs):
    hit = fnmatch.fnmatch(os.fspath(dst), pattern)
    if hit and when == "before":
        os.kill(os.getpid(), signal.SIGKILL)
    rename(src, dst, *args, **kwargs)
    if hit and when == "after":
        os.kill(os.getpid(), signal.SIGKILL)

os.replace = replace
from gexpcore.cli import main
sys.exit(main(sys.argv[4:]))
"""

# In pipeline order: each point lies beyond what the runs before it completed.
CRASH_POINTS = [
    ("*/expression/samples/S00[12]*", "after"),  # a sample's gene TPM, its step unrecorded
    ("*/accessibility/S00[56].tsv.gz", "before"),  # per-sample steps half done
    ("*/dataset/expression.tsv", "before"),  # the dataset half written
    ("*/dataset/qc.json", "after"),  # the dataset written, its step unrecorded
    ("*/model/work/*/fold1.npz", "after"),  # training: some folds finished
    ("*/model/predictions.tsv", "after"),  # training: outputs half written
    ("*/report.html", "before"),
]

# What must come out byte for byte the same, relative to --outdir.
COMPARED = [
    "expression/gene_tpm.tsv",
    "expression/samples/*",
    "accessibility/*",
    "dataset/*",
    "model/metrics.json",
    "model/predictions.tsv",
    "model/per_gene_r.tsv",
    "model/history.json",
]


def _files(out: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(out)): p.read_bytes()
        for pattern in COMPARED
        for p in sorted(out.glob(pattern))
    }


def _report(out: Path) -> str:
    """The report without what may differ: the folder and the time stamp."""
    text = (out / "report.html").read_text().replace(str(out.resolve()), "OUTDIR")
    return re.sub(r"\d{4}-\d\d-\d\d \d\d:\d\d UTC", "TIME", text)


@pytest.mark.slow
def test_a_run_killed_at_any_point_resumes_to_the_outputs_of_an_uninterrupted_run(tmp_path):
    reference = tmp_path / "uninterrupted"
    proc = run_gexp(*run_args(reference))
    assert proc.returncode == 0, proc.stderr

    out = tmp_path / "killed"
    # From outside, while kallisto runs: the whole process group, as a batch system kills.
    run = start_gexp(*run_args(out))
    wait_for(lambda: list((out / "kallisto").glob(".S00*.tmp*")) or run.poll() is not None)
    os.killpg(run.pid, signal.SIGKILL)
    assert run.wait() == -signal.SIGKILL
    # From inside, at chosen moments.
    for pattern, when in CRASH_POINTS:
        crash = start_gexp(str(ROOT / "bin"), pattern, when, *run_args(out), code=CRASH_AT)
        _, stderr = crash.communicate(timeout=600)
        assert crash.returncode == -signal.SIGKILL, (pattern, when, stderr)
    proc = run_gexp(*run_args(out))
    assert proc.returncode == 0, proc.stderr

    expected, resumed = _files(reference), _files(out)
    assert sorted(resumed) == sorted(expected)
    assert "model/metrics.json" in expected and "dataset/qc.json" in expected
    for name, content in expected.items():
        assert resumed[name] == content, f"{name} differs after resuming"
    assert _report(out) == _report(reference)
    assert not list(out.rglob(".*.tmp*"))


def test_only_temporaries_of_killed_runs_are_swept(tmp_path):
    from gexpcore.files import atomic_write, remove_stale_temporaries

    with atomic_write(tmp_path / "a" / "kept.tsv") as fh:
        fh.write("x\n")
    stale = [
        tmp_path / "a" / ".S001.tsv.gz.tmp123",
        tmp_path / "kallisto" / ".S001.tmp99" / "abundance.tsv",
    ]
    kept = [
        tmp_path / "fetch" / "ENCFF000AAA.bed.gz.part",  # a download that resumes
        tmp_path / "model" / ".fold0.npz.tmp7",  # under another lock
        tmp_path / "a" / ".hidden.tmp",
    ]
    for path in stale + kept:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("x")
    assert remove_stale_temporaries(tmp_path, skip=("model",)) == 2
    assert not (tmp_path / "kallisto" / ".S001.tmp99").exists()
    assert all(p.exists() for p in kept)
    assert (tmp_path / "a" / "kept.tsv").read_text() == "x\n"


def test_a_file_system_without_locks_warns_and_runs(tmp_path, monkeypatch, caplog):
    """Lustre/GPFS without flock answer EOPNOTSUPP or ENOSYS: that is no reason to stop."""
    import errno
    import fcntl

    from gexpcore import lock

    def unsupported(fd, op):
        raise OSError(errno.EOPNOTSUPP, "Operation not supported")

    monkeypatch.setattr(fcntl, "flock", unsupported)
    caplog.set_level("WARNING", logger="gexp")
    with lock.folder_lock(tmp_path / "out", "gexp run") as path:
        assert path.parent == tmp_path / "out"
    assert "does not support locks" in caplog.text

    def broken(fd, op):
        raise OSError(errno.EIO, "I/O error")

    monkeypatch.setattr(fcntl, "flock", broken)
    with pytest.raises(OSError), lock.folder_lock(tmp_path / "out", "gexp run"):
        pass


def _group_members(pgid: int) -> list[str]:
    """Command lines of the live processes in process group pgid (from /proc)."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            cmdline = (stat.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except (OSError, IndexError):
            continue  # gone meanwhile
        if fields[0] != "Z" and int(fields[2]) == pgid:
            members.append(cmdline)
    return members


@pytest.mark.slow
def test_a_run_killed_alone_leaves_no_child_behind(tmp_path):
    """SIGKILL to gexp alone, as the OOM killer sends it: kallisto must not outlive it
    (blocked on a FASTQ pipe that nobody feeds, it used to run on for hours)."""
    out = tmp_path / "killed"
    run = start_gexp(*run_args(out))
    try:
        wait_for(lambda: list((out / "kallisto").glob(".S00*.tmp*")) or run.poll() is not None)
        wait_for(lambda: any("kallisto" in c for c in _group_members(run.pid)), timeout=30)
        os.kill(run.pid, signal.SIGKILL)  # the main process only, not its group
        assert run.wait() == -signal.SIGKILL
        deadline = time.monotonic() + 10
        while _group_members(run.pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _group_members(run.pid) == [], "children of the killed run survived it"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(run.pid, signal.SIGKILL)
