"""benchmarks/promoter_line.py on a run folder with known truth: where expression is a line of
the TSS bin's features, held-out r is 1; where it ignores the TSS bin, it is near 0."""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from conftest import ROOT

spec = importlib.util.spec_from_file_location(
    "promoter_line", ROOT / "benchmarks" / "promoter_line.py"
)
promoter_line = importlib.util.module_from_spec(spec)
spec.loader.exec_module(promoter_line)


def write_run(run, follows_tss: bool, seed: int = 0):
    """12 samples in 3 folds, 2 chromosomes of 20 bins of 1 kb, 6 genes (both strands)."""
    rng = np.random.default_rng(seed)
    samples = [f"S{i:02d}" for i in range(12)]
    bins = pd.DataFrame(
        {"chrom": ["chr1"] * 20 + ["chr2"] * 20, "start": list(range(0, 20_000, 1000)) * 2}
    )
    bins["end"] = bins["start"] + 1000
    genes = pd.DataFrame(
        {
            "gene_id": [f"ENSG{g:011d}" for g in range(6)],
            "chrom": ["chr1", "chr1", "chr1", "chr2", "chr2", "chr2"],
            "tss": [1500, 7200, 15_000, 2500, 9999, 18_100],
            "strand": ["+", "-", "+", "-", "+", "-"],
        }
    )
    x = rng.gamma(2.0, 5.0, (12, 40)) * (rng.random((12, 40)) < 0.7)
    x[:, [1, 7, 15, 22, 29, 38]] += rng.gamma(2.0, 5.0, (12, 6)) + 1  # TSS bins never 0
    features = promoter_line.accessibility_features(sp.csr_matrix(x)).toarray()
    tss_bins = [1, 7, 15, 22, 29, 38]
    if follows_tss:
        log1p = 1.0 + np.array([0.5, 1, 2, 3, 0.7, 1.5]) * features[:, tss_bins]
    else:
        log1p = 1.0 + rng.normal(0, 1, (12, 6))
    dataset, model = run / "dataset", run / "model"
    dataset.mkdir(parents=True)
    model.mkdir()
    sp.save_npz(dataset / "accessibility.npz", sp.csr_matrix(x))
    pd.DataFrame({"sample": samples, "group": samples}).to_csv(
        dataset / "samples.tsv", sep="\t", index=False
    )
    expression = pd.DataFrame(np.expm1(log1p).T, index=genes["gene_id"], columns=samples)
    expression.to_csv(dataset / "expression.tsv", sep="\t")
    genes.to_csv(dataset / "genes.tsv", sep="\t", index=False)
    bins.to_csv(dataset / "bins.bed", sep="\t", header=False, index=False)
    folds = np.repeat([0, 1, 2], 4)
    rng.shuffle(folds)
    rows = [(s, f, g) for s, f in zip(samples, folds, strict=True) for g in genes["gene_id"]]
    pd.DataFrame(rows, columns=["sample", "fold", "gene_id"]).assign(model="mean").to_csv(
        model / "predictions.tsv", sep="\t", index=False
    )
    metrics = {"mean": {"pearson_across_samples": 0.0, "pearson_across_samples_se": 0.0}}
    (model / "metrics.json").write_text(json.dumps(metrics))


def test_expression_on_the_tss_bin_scores_one(tmp_path):
    write_run(tmp_path / "run", follows_tss=True)
    scores = promoter_line.promoter_line_scores(tmp_path / "run")
    assert len(scores) == 3
    assert scores == pytest.approx(1.0, abs=1e-6)


def test_expression_without_the_tss_bin_scores_near_zero(tmp_path):
    means = []
    for seed in range(5):
        write_run(tmp_path / str(seed), follows_tss=False, seed=seed)
        means.append(promoter_line.promoter_line_scores(tmp_path / str(seed)).mean())
    assert abs(np.mean(means)) < 0.25


def test_prints_the_line_beside_the_runs_models(tmp_path, capsys, monkeypatch):
    write_run(tmp_path / "cohort", follows_tss=True)
    monkeypatch.setattr("sys.argv", ["promoter_line.py", str(tmp_path / "cohort")])
    promoter_line.main()
    out = capsys.readouterr().out
    assert "| cohort | promoter line (diagnostic) | 1.000 ± 0.000 |" in out
    assert "| cohort | mean | 0.000 ± 0.000 |" in out
