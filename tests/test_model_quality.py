"""A correctness check on simulated data with known structure (real data decides models:
tests/test_real_data.py).

The simulator puts the signal in each gene's local accessibility, so a model that reads
it right must find it: on `gexp simulate --seed 11 --samples 40` run through `gexp run`,
mixture_window must predict held-out samples (pearson_across_samples ≥ 0.5) no worse
than every baseline and the proof of concept's network, the default ensemble no worse
than every baseline, and the per-gene mean must score 0. seed_mlp uses early stopping
here to keep CI short.
"""

from __future__ import annotations

import json

import pytest
from conftest import run_gexp

pytestmark = pytest.mark.slow


def test_mixture_window_finds_the_simulated_local_signal(tmp_path):
    sim = tmp_path / "sim"
    proc = run_gexp("-q", "simulate", "--outdir", sim, "--seed", 11, "--samples", 40)
    assert proc.returncode == 0, proc.stderr
    ref = sim / "reference"
    proc = run_gexp(
        "-q",
        "run",
        "--input",
        sim / "samplesheet.csv",
        "--transcriptome",
        ref / "transcripts.fa.gz",
        "--gtf",
        ref / "genes.gtf.gz",
        "--chrom-sizes",
        ref / "chrom.sizes",
        "--outdir",
        tmp_path / "res",
        "--early-stopping",
        "--models",
        "mean,ridge,nearest,gene_score,seed_mlp,mixture_window,ensemble",  # seed_mlp is opt-in
    )
    assert proc.returncode == 0, proc.stderr
    metrics = json.loads((tmp_path / "res" / "model" / "metrics.json").read_text())
    score = {name: m["pearson_across_samples"] for name, m in metrics.items()}
    assert score["mixture_window"] >= 0.5, score
    for baseline in ("ridge", "nearest", "gene_score", "seed_mlp"):
        assert score["mixture_window"] >= score[baseline], score
    # The default, fixed before training, must not fall below any baseline either.
    for baseline in ("ridge", "nearest", "gene_score"):
        assert score["ensemble"] >= score[baseline], score
    assert metrics["ensemble"]["vs_best_baseline"]["verdict"] != "worse", metrics["ensemble"]
    assert score["mean"] == 0 and metrics["mean"]["pearson_deviation"] == 0
    assert metrics["mixture_window"]["cv"] == "leave-one-group-out over 4 groups"
    assert (tmp_path / "res" / "report.html").stat().st_size > 10_000
    # The 80 % intervals, built from the other folds, cover close to 80 % of each held-out
    # fold's observations (issue 25): calibrated on held-out samples, for every model.
    info = json.loads((tmp_path / "res" / "model" / "model_info.json").read_text())
    for name, interval in info["intervals"].items():
        assert abs(interval["coverage"] - 0.8) < 0.05, (name, interval)
