"""One run per output folder."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from conftest import FAST_TRAINING, GEXP, ROOT, assert_user_error, run_gexp

DATA = ROOT / "tests" / "data"
REF = DATA / "reference"


def fast_training() -> list[str]:
    """conftest's FAST_TRAINING, keeping only the flags this CLI has (the models change)."""
    from gexpcore.cli import build_parser

    run = build_parser()._subparsers._group_actions[0].choices["run"]
    known = {flag for action in run._actions for flag in action.option_strings}
    pairs = zip(FAST_TRAINING[::2], FAST_TRAINING[1::2], strict=True)
    return [str(x) for flag, value in pairs if flag in known for x in (flag, value)]


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
        *fast_training(),
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
