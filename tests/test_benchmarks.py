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


def test_scale_and_learning_curve_run_at_a_small_size(tmp_path):
    """benchmarks/scale.py on a 14-sample multiome simulation, then benchmarks/learning_curve.py
    on its run (issue 24, item 3): every row and column of both tables is printed."""

    def bench(*args):
        proc = subprocess.run(
            [sys.executable, *map(str, args)], capture_output=True, text=True, timeout=900
        )
        assert proc.returncode == 0, proc.stderr[-2000:]
        return proc.stdout

    shown = bench(ROOT / "benchmarks" / "scale.py", "--sizes", "14", "--genes", "80",
                  "--work", tmp_path)  # fmt: skip
    row = next(line for line in shown.splitlines() if line.startswith("| 14 |"))
    assert len(row.split("|")) == 2 + 1 + 6  # samples, then seconds and MiB of three runs
    curve = bench(ROOT / "benchmarks" / "learning_curve.py", tmp_path / "run14", "--sizes", "3",
                  "--repeats", "1")  # fmt: skip
    assert "| gene_score | mixture_window | locus_net | ensemble |" in curve
    assert any(line.startswith("| 3 |") for line in curve.splitlines())
    assert any(line.startswith("| all |") for line in curve.splitlines())
