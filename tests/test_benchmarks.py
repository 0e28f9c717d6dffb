"""The benchmark script still runs (small sizes); measured tables are in benchmarks/results.md."""

from __future__ import annotations

import subprocess
import sys

import pytest
from conftest import ROOT

pytestmark = pytest.mark.slow


def test_benchmarks_quick_mode_prints_every_measurement():
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "run.py"), "--quick"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    for step in (
        "peak-bins, 1 sample",
        "merge gene TPM",
        "gexp dataset, genome-wide",
        "mixture_window fit",
        "whole run",
    ):
        assert f"| {step}" in proc.stdout, step
    assert "bare bedtools intersect" in proc.stdout and "original:" in proc.stdout
