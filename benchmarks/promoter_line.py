"""A promoter-only diagnostic beside a finished `gexp run`'s models: how far does each gene's
own TSS bin go?

For each gene, a least-squares line from the TSS bin's accessibility (the features every
model sees: per million of the sample's signal, log1p) to log1p TPM, fitted on each fold's
training samples and scored on its held-out samples with gexp's own metric, on the run's
own folds (from model/predictions.tsv). It is not a gexp model: it answers whether the
simulators' expression leans on the promoter more than real data's does.

    python benchmarks/promoter_line.py RUN_DIR [RUN_DIR ...]

prints a table of pearson_across_samples ± SE over folds: the promoter line, then the
run's own models from model/metrics.json.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bin"))

from gexpcore.evaluation.metrics import fold_metrics  # noqa: E402
from gexpcore.models.base import accessibility_features  # noqa: E402
from gexpcore.models.windows import WindowIndex  # noqa: E402


def promoter_line_scores(run: Path) -> np.ndarray:
    """pearson_across_samples of the per-gene TSS-bin line, one value per fold."""
    dataset = run / "dataset"
    samples = pd.read_csv(dataset / "samples.tsv", sep="\t", dtype=str)["sample"].tolist()
    expression = pd.read_csv(dataset / "expression.tsv", sep="\t", index_col=0)[samples]
    genes = pd.read_csv(dataset / "genes.tsv", sep="\t").set_index("gene_id")
    genes = genes.loc[expression.index].reset_index()
    bins = pd.read_csv(dataset / "bins.bed", sep="\t", header=None, usecols=[0, 1, 2])
    bins.columns = ["chrom", "start", "end"]
    bins["bin"] = np.arange(len(bins))
    centre = WindowIndex(genes, bins, window=1).centre
    x = accessibility_features(sp.load_npz(dataset / "accessibility.npz").tocsr())
    tss = x.tocsc()[:, centre].toarray()  # samples × genes
    y = np.log1p(expression.to_numpy().T)
    predictions = pd.read_csv(
        run / "model" / "predictions.tsv", sep="\t", usecols=["sample", "fold"]
    )
    fold_of = predictions.drop_duplicates("sample").set_index("sample")["fold"]
    fold_of = fold_of.reindex(samples).to_numpy()
    scores = []
    for fold in np.unique(fold_of):
        train, test = fold_of != fold, fold_of == fold
        a_mean, y_mean = tss[train].mean(axis=0), y[train].mean(axis=0)
        a, b = tss[train] - a_mean, y[train] - y_mean
        spread = (a * a).sum(axis=0)
        slope = np.divide((a * b).sum(axis=0), spread, out=np.zeros_like(spread), where=spread > 0)
        predicted = y_mean + slope * (tss[test] - a_mean)
        scores.append(fold_metrics(predicted, y[test], y_mean)["pearson_across_samples"])
    return np.array(scores)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", type=Path, help="output folders of `gexp run`")
    args = parser.parse_args()
    print("| run | model | pearson_across_samples ± SE (folds) |")
    print("| --- | --- | --- |")
    for run in args.runs:
        scores = promoter_line_scores(run)
        se = scores.std(ddof=1) / np.sqrt(len(scores))
        print(f"| {run.name} | promoter line (diagnostic) | {scores.mean():.3f} ± {se:.3f} |")
        metrics = json.loads((run / "model" / "metrics.json").read_text())
        for name, m in metrics.items():
            if isinstance(m, dict) and "pearson_across_samples" in m:
                score, se = m["pearson_across_samples"], m["pearson_across_samples_se"]
                print(f"| {run.name} | {name} | {score:.3f} ± {se:.3f} |")


if __name__ == "__main__":
    main()
