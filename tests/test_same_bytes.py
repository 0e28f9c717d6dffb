"""The same inputs give the same bytes whatever the machine's threads and BLAS kernels.

numpy's AVX-512 log1p and OpenBLAS's per-CPU kernels moved metrics.json and the models'
arrays in their last bits (kernels.py); gexp now pins one code path before numpy loads.
Here the same dataset is trained with 1 and 2 threads, with OPENBLAS_CORETYPE and numpy's
CPU features set by the caller or unset, and every file that must not vary is compared.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import GEXP

VARYING = {"fit_seconds.json", ".gexp.lock"}  # timings; the lock holds the process id
ENVIRONMENTS = {
    "1 thread": ({}, 1),
    "2 threads": ({"OPENBLAS_NUM_THREADS": "2", "OMP_NUM_THREADS": "2"}, 2),
    "Sandybridge kernels": ({"OPENBLAS_CORETYPE": "Sandybridge"}, 1),
    "SkylakeX kernels, 2 threads": ({"OPENBLAS_CORETYPE": "SkylakeX"}, 2),
    "no AVX-512 in numpy": ({"NPY_DISABLE_CPU_FEATURES": "X86_V4 AVX512_ICL AVX512_SPR"}, 1),
}


def _train(dataset: Path, out: Path, env: dict, threads: int) -> dict[str, bytes]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("OPENBLAS", "NPY_", "MKL"))}
    proc = subprocess.run(
        [sys.executable, str(GEXP), "-q", "train", "--dataset", str(dataset), "--outdir",
         str(out), "--threads", str(threads), "--models", "mixture_window,ridge,nearest,"
         "gene_score,mean,ensemble,seed_mlp", "--mlp-epochs", "20"],
        env={**clean, **env}, capture_output=True, text=True,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return {
        str(p.relative_to(out)): p.read_bytes()
        for p in sorted(out.rglob("*"))
        if p.is_file() and p.name not in VARYING
    }


@pytest.mark.slow
def test_threads_and_blas_kernels_do_not_move_a_byte(run_result, tmp_path):
    dataset = run_result / "dataset"
    outputs = {
        name: _train(dataset, tmp_path / str(i), env, threads)
        for i, (name, (env, threads)) in enumerate(ENVIRONMENTS.items())
    }
    first_name, first = next(iter(outputs.items()))
    assert "metrics.json" in first and "ridge/model.npz" in first and "seed_mlp/model.npz" in first
    for name, files in outputs.items():
        assert files.keys() == first.keys(), name
        moved = [f for f in files if files[f] != first[f]]
        assert moved == [], f"{name} against {first_name}: {moved}"


def test_gexp_pins_its_kernels_before_numpy_loads():
    from gexpcore import kernels

    assert kernels.pinned(), {k: os.environ.get(k) for k in kernels._wanted()}
    probe = "import gexpcore, os; print(os.environ['NPY_DISABLE_CPU_FEATURES'][:6])"
    proc = subprocess.run(
        [sys.executable, "-c", probe], env={**os.environ, "PYTHONPATH": str(GEXP.parent)},
        capture_output=True, text=True,
    )  # fmt: skip
    assert proc.stdout.strip() == "X86_V3", proc.stderr


def test_ensemble_weights_are_millionths_that_sum_to_one(run_result):
    metrics = json.loads((run_result / "model" / "metrics.json").read_text())
    weights = [
        metrics["ensemble"]["weights"],
        *(f["weights"] for f in metrics["ensemble"]["folds"]),
    ]
    for w in weights:
        assert sum(round(v * 1_000_000) for v in w.values()) == 1_000_000, w
