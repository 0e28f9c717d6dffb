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


def test_quantile_normalisation_gives_every_sample_one_distribution():
    import importlib.util

    import numpy as np

    spec = importlib.util.spec_from_file_location(
        "make_progenitors",
        ROOT / "benchmarks" / "make_progenitors.py",
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    matrix = np.random.default_rng(0).gamma(2.0, size=(50, 4))
    result = module.quantile_normalise(matrix)
    assert np.allclose(np.sort(result, axis=0), np.sort(matrix, axis=0).mean(axis=1)[:, None])
    assert (np.argsort(result, axis=0) == np.argsort(matrix, axis=0)).all()  # ranks kept
