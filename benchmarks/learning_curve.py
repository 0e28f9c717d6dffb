"""Held-out r against the number of training samples (issue 24, item 3): does a network
shared by all genes gain more from more paired samples than the other models do?

    python benchmarks/learning_curve.py RUN_DIR [--sizes 4,6,8] [--repeats 2] [--out FILE.md]

RUN_DIR is a finished `gexp run` (or a folder with dataset/ and model/ from `gexp train`).
Its own cross-validation folds are kept (model/predictions.tsv): every held-out fold is
predicted by models fitted on a random subset of n of that fold's training *groups* (all
their samples), for each n of --sizes and the whole training fold, --repeats subsets each
(seeded). Scored with gexp's metric (pearson_across_samples per fold), as mean ± SE over
folds × repeats. The ensemble is the default's procedure on each subset: its weights by
nested CV inside the subset (EnsembleModel.choose_weights), applied to its members'
predictions, fitted once on the subset. Prints a markdown table (and writes it to --out).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bin"))

import gexpcore  # noqa: E402,F401  (pins the kernels before numpy's first use)
from gexpcore.evaluation.metrics import fold_metrics  # noqa: E402
from gexpcore.models import create  # noqa: E402
from gexpcore.models.base import Context, accessibility_features  # noqa: E402
from gexpcore.models.ensemble import ALL_MEMBERS, EnsembleModel, combine  # noqa: E402
from gexpcore.steps.dataset import load_dataset  # noqa: E402
from gexpcore.steps.train import _torch_setup, auto_groups_per_fold  # noqa: E402

CURVE = ("gene_score", "mixture_window", "locus_net", "ensemble")
MEMBERS = ("mixture_window", "ridge", "nearest", "gene_score", "locus_net")


def run_folds(run: Path, samples: list[str]) -> np.ndarray:
    predictions = pd.read_csv(
        run / "model" / "predictions.tsv", sep="\t", usecols=["sample", "fold"]
    )
    fold_of = predictions.drop_duplicates("sample").set_index("sample")["fold"]
    return fold_of.reindex(samples).to_numpy()


def fit_subset(x, y, genes, bins, groups, tr, te, seed: int, per_fold: int) -> dict[str, float]:
    """Every model of CURVE fitted on samples `tr`, scored on `te` (nested CV as gexp train's:
    whole groups, at least `per_fold` of them per inner fold)."""
    ctx_args = {
        "genes": genes, "bins": bins, "seed": seed, "grouped": True, "groups_per_fold": per_fold
    }  # fmt: skip
    preds = {}
    for name in MEMBERS:
        model = create(name)
        ctx = Context(**ctx_args, groups=tuple(groups[tr]), shared=SHARED)
        model.fit(x[tr], y[tr], ctx)
        preds[name] = model.predict(x[te], ctx)
    ensemble = EnsembleModel(tuple(m for m in ALL_MEMBERS if m in preds))
    ensemble.choose_weights(
        x[tr], y[tr], Context(**ctx_args, groups=tuple(groups[tr]), shared=SHARED)
    )
    preds["ensemble"] = combine(ensemble.weights, [preds[m] for m in ensemble.members])
    mean = y[tr].mean(axis=0)
    return {m: fold_metrics(preds[m], y[te], mean)["pearson_across_samples"] for m in CURVE}


SHARED: dict = {}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("run", type=Path)
    parser.add_argument("--sizes", default="4,6,8", help="training groups per subset")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--out", type=Path)
    a = parser.parse_args()
    _torch_setup(["locus_net"], "cpu")
    x, expression, genes, samples, bins = load_dataset(a.run / "dataset")
    x = accessibility_features(x)
    y = np.log1p(expression.to_numpy(dtype=np.float64).T)
    names = samples["sample"].tolist()
    groups = np.array([g or s for g, s in zip(samples["group"].fillna(""), names, strict=True)])
    fold_of = run_folds(a.run, names)
    per_fold = auto_groups_per_fold(samples)
    sizes = [int(s) for s in a.sizes.split(",")]
    rows, started = [], time.perf_counter()
    for k in np.unique(fold_of):
        te = fold_of == k
        train_groups = np.unique(groups[~te])
        for n in [*sizes, len(train_groups)]:
            if n > len(train_groups):
                continue
            for rep in range(a.repeats if n < len(train_groups) else 1):
                rng = np.random.default_rng(1000 * int(k) + 10 * n + rep)
                chosen = rng.choice(train_groups, size=n, replace=False)
                tr = np.isin(groups, chosen) & ~te
                scores = fit_subset(x, y, genes, bins, groups, tr, te, int(k), per_fold)
                rows.append({"fold": int(k), "groups": n, "samples": int(tr.sum()), **scores})
                shown = " ".join(f"{m} {v:.3f}" for m, v in scores.items())
                print(f"fold {k} groups {n} ({tr.sum()} samples) rep {rep}: {shown}", flush=True)
    table = pd.DataFrame(rows)
    lines = [
        f"Learning curve of `{a.run}` ({len(names)} samples, {y.shape[1]} genes; its own "
        f"{len(np.unique(fold_of))} folds; {a.repeats} subsets of each size; "
        f"{time.perf_counter() - started:.0f} s):",
        "",
        "| training groups | training samples (mean) | " + " | ".join(CURVE) + " |",
        "| ---: | ---: | " + " | ".join("---:" for _ in CURVE) + " |",
    ]
    full = table.groupby("fold")["groups"].transform("max") == table["groups"]
    table["size"] = np.where(full, "all", table["groups"].astype(str))
    for size, part in table.groupby("size", sort=False):
        cells = []
        for m in CURVE:
            se = part[m].std(ddof=1) / np.sqrt(len(part)) if len(part) > 1 else float("nan")
            cells.append(f"{part[m].mean():.3f} ± {se:.3f}")
        lines.append(f"| {size} | {part['samples'].mean():.1f} | " + " | ".join(cells) + " |")
    text = "\n".join(lines) + "\n"
    print(text)
    if a.out:
        a.out.write_text(text)


if __name__ == "__main__":
    main()
