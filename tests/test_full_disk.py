"""A disk that fills mid-run: one line naming the file and the cause, nothing half-written
under a final name, and a rerun on the same folder, once there is room, finishes with the
outputs of a run that never failed. Also a read-only output folder.

The small file systems are tmpfs mounts (root only; CI runs as root). Their sizes are
fractions of a whole run's size, so the fill comes at different steps: kallisto's index
(kallisto exits 0 with a truncated index: files.py refuses to rename a file finished on a
full disk), the per-sample tables, the dataset and the models.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from conftest import assert_user_error, gexp_run
from pipeline import assert_same_data_outputs

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(os.geteuid() != 0, reason="mounting a small tmpfs needs root"),
]


def _mount(folder: Path, size: int, *options: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    opts = ",".join([f"size={size}", *options])
    subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(folder)], check=True)


def _umount(folder: Path) -> None:
    subprocess.run(["umount", str(folder)], check=True)


def _size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def _temporaries(folder: Path) -> list[str]:
    return [p.name for p in folder.rglob(".*.tmp*")]


@pytest.fixture(scope="module")
def whole_run(sim, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("whole") / "res"
    proc = gexp_run(sim, sim / "samplesheet.csv", out)
    assert proc.returncode == 0, proc.stderr
    return out


@pytest.mark.parametrize("fraction", [0.4, 0.75, 0.95])
def test_a_disk_that_fills_mid_run_fails_in_one_line_and_the_rerun_finishes(
    fraction, sim, whole_run, tmp_path
):
    disk = tmp_path / "disk"
    _mount(disk, int(_size(whole_run) * fraction))
    try:
        proc = gexp_run(sim, sim / "samplesheet.csv", disk / "res")
        line = assert_user_error(proc, "No space left on device", str(disk))
        assert "rerun" in line
        # What failed left no temporary behind (each writer removes its own), and every file
        # under a final name is whole: the rerun below only adds, and must end equal.
        assert _temporaries(disk) == []
        subprocess.run(["mount", "-o", "remount,size=256m", str(disk)], check=True)
        again = gexp_run(sim, sim / "samplesheet.csv", disk / "res")
        assert again.returncode == 0, again.stderr
        assert "complete, skipped" in again.stderr  # it resumed: the finished steps were kept
        assert_same_data_outputs(whole_run, disk / "res")
    finally:
        _umount(disk)


def test_a_read_only_output_folder_fails_in_one_line(sim, tmp_path):
    disk = tmp_path / "ro"
    _mount(disk, 1 << 20, "ro")
    try:
        proc = gexp_run(sim, sim / "samplesheet.csv", disk / "res")
        assert_user_error(proc, str(disk / "res"), "Read-only file system")
    finally:
        _umount(disk)
