"""One model of one training against another, on the same held-out samples and folds.

    python benchmarks/paired.py NEW_MODEL_DIR[:MODEL] OLD_MODEL_DIR[:MODEL]

Each argument is a `gexp train` output folder (or a `gexp run`'s model/), with the model to
take from its predictions.tsv (default: ensemble). Both must hold the same samples in the
same folds. Prints the per-gene difference in pearson_across_samples, NEW − OLD, with the
95 % interval of gexp's own paired comparison (two-level bootstrap over folds and genes,
evaluation/metrics.py) and the difference per fold: how a change of the default is judged
against the default it replaces (benchmarks/real.md).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bin"))

import gexpcore  # noqa: E402,F401  (pins the kernels before numpy's first use)
from gexpcore.evaluation.metrics import paired_comparison  # noqa: E402


def held_out(spec: str) -> pd.DataFrame:
    """(sample, gene) → fold, observed, predicted of one model's out-of-fold predictions."""
    folder, _, model = spec.partition(":")
    table = pd.read_csv(Path(folder) / "predictions.tsv", sep="\t")
    table = table[table["model"] == (model or "ensemble")]
    if table.empty:
        raise SystemExit(f"{spec}: no predictions of model {model or 'ensemble'}")
    return table.set_index(["sample", "gene_id"]).sort_index()


def main() -> None:
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    new, old = held_out(sys.argv[1]), held_out(sys.argv[2])
    if not new.index.equals(old.index) or not (new["fold"] == old["fold"]).all():
        raise SystemExit("the two trainings hold different samples, genes or folds")
    samples = new.index.get_level_values(0).unique()

    def matrix(column: pd.Series) -> np.ndarray:  # samples × genes
        return column.unstack().reindex(samples).to_numpy(dtype=float)

    folds = new["fold"].groupby(level=0).first().reindex(samples).to_numpy()
    result = paired_comparison(
        matrix(new["predicted_log1p"]), matrix(old["predicted_log1p"]),
        matrix(new["observed_log1p"]), folds,
    )  # fmt: skip
    low, high = result["ci95"]
    by_fold = ", ".join(f"{d:+.3f}" for d in result["fold_differences"])
    print(
        f"{sys.argv[1]} − {sys.argv[2]}: {result['difference']:+.3f} "
        f"[{low:+.3f}, {high:+.3f}] (by fold {by_fold}): {result['verdict']}"
    )


if __name__ == "__main__":
    main()
