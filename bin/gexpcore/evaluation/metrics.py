"""Held-out metrics that the per-gene mean cannot game.

All metrics compare log1p TPM. `pearson_across_samples` asks, gene by gene,
whether the model ranks the held-out samples right: it is computed within each
test fold (so a model that predicts each gene's training mean, constant within a
fold, scores exactly 0) and averaged over folds. Pooling out-of-fold predictions
instead would give the mean model a negative score, because a fold's training
mean moves against the held-out samples; that pooled number is reported too.
`pearson_deviation` pools every fold but correlates deviations from each fold's
training mean, so it also credits predicting differences between folds (groups).
`median_gene_r_pooled` is the median over genes of r over all out-of-fold
predictions at once, and `skill_over_mean` is 1 − SSE(model) / SSE(training mean)
on log1p: above 0 only when the model's errors are smaller than the mean's.
"""

from __future__ import annotations

import numpy as np


def rowwise_pearson(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pearson r of each row of a with the same row of b; NaN where b is constant, 0 where a is."""
    a = a - a.mean(axis=1, keepdims=True)
    b = b - b.mean(axis=1, keepdims=True)
    sa = np.sqrt((a * a).sum(axis=1))
    sb = np.sqrt((b * b).sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        r = (a * b).sum(axis=1) / (sa * sb)
    r[(sa <= 1e-12) & (sb > 1e-12)] = 0.0  # a constant prediction carries no information
    r[sb <= 1e-12] = np.nan  # nothing to predict: gene left out
    return r


def _mean(values: np.ndarray) -> float:
    values = values[np.isfinite(values)]
    return float(values.mean()) if values.size else float("nan")


def fold_metrics(pred: np.ndarray, obs: np.ndarray, train_mean: np.ndarray) -> dict:
    """Metrics of one test fold; arrays are samples × genes (log1p), train_mean is per gene."""
    return {
        "pearson_across_samples": _mean(rowwise_pearson(pred.T, obs.T)),
        "pearson_across_genes": _mean(rowwise_pearson(pred, obs)),
        "pearson_deviation": _mean(rowwise_pearson((pred - train_mean).T, (obs - train_mean).T)),
        "mse_log1p": float(np.mean((pred - obs) ** 2)),
        "n_samples": int(pred.shape[0]),
    }


def summarise(
    folds: list[dict],
    pred: np.ndarray,
    obs: np.ndarray,
    train_means: np.ndarray,
    fold_of: np.ndarray,
) -> tuple[dict, np.ndarray]:
    """Headline metrics over all folds, and per-gene r across samples (for plots).

    `train_means` holds, for every sample, the training mean of the fold it was held out in.
    """
    weights = np.array([f["n_samples"] for f in folds], dtype=float)
    across = np.array([f["pearson_across_samples"] for f in folds])
    ok = np.isfinite(across)
    per_fold = [
        rowwise_pearson(pred[fold_of == k].T, obs[fold_of == k].T) for k in range(len(folds))
    ]
    per_gene = _nanmean_rows(np.stack(per_fold)) if per_fold else np.array([])
    pooled = rowwise_pearson(pred.T, obs.T)
    finite = pooled[np.isfinite(pooled)]
    sse_mean = float(np.sum((train_means - obs) ** 2))
    return {
        "pearson_across_samples": float(np.average(across[ok], weights=weights[ok]))
        if ok.any()
        else float("nan"),
        "pearson_deviation": _mean(rowwise_pearson((pred - train_means).T, (obs - train_means).T)),
        "pearson_across_genes": _mean(rowwise_pearson(pred, obs)),
        "mse_log1p": float(np.mean((pred - obs) ** 2)),
        "pearson_across_samples_pooled": _mean(pooled),
        "median_gene_r_pooled": float(np.median(finite)) if finite.size else float("nan"),
        "skill_over_mean": 1.0 - float(np.sum((pred - obs) ** 2)) / sse_mean
        if sse_mean > 0
        else float("nan"),
    }, per_gene


def _nanmean_rows(stack: np.ndarray) -> np.ndarray:
    """Column means over the finite entries; NaN (without a warning) where none is finite."""
    finite = np.isfinite(stack)
    count = finite.sum(axis=0)
    total = np.where(finite, stack, 0.0).sum(axis=0)
    return np.divide(total, count, out=np.full(stack.shape[1], np.nan), where=count > 0)


def fold_spread(folds: list[dict], key: str = "pearson_across_samples") -> dict:
    """A metric's fold-level scores, their mean and its standard error: with a dozen samples in
    three to five folds the folds disagree, and a difference inside that spread is noise."""
    scores = np.array([f[key] for f in folds], dtype=float)
    finite = scores[np.isfinite(scores)]
    se = float(finite.std(ddof=1) / np.sqrt(finite.size)) if finite.size > 1 else float("nan")
    return {f"{key}_folds": [float(s) for s in scores], f"{key}_se": se}


def paired_comparison(
    pred: np.ndarray,
    other: np.ndarray,
    obs: np.ndarray,
    fold_of: np.ndarray,
    n_boot: int = 2000,
    seed: int = 0,
) -> dict:
    """`pred` against `other` on the same held-out samples: per-gene differences in r across
    samples within each fold, and a 95 % interval for their mean from a two-level bootstrap
    (folds, then genes within each drawn fold), so that the interval carries the fold-to-fold
    spread as well as the genes'. Seeded: the same inputs give the same interval."""
    diffs = []
    for k in np.unique(fold_of):
        rows = fold_of == k
        d = rowwise_pearson(pred[rows].T, obs[rows].T) - rowwise_pearson(other[rows].T, obs[rows].T)
        diffs.append(d[np.isfinite(d)])
    diffs = [d for d in diffs if d.size]
    if not diffs:
        nan = float("nan")
        return {"difference": nan, "ci95": [nan, nan], "fold_differences": [], "verdict": "n/a"}
    rng = np.random.default_rng(seed)
    stats = np.empty(n_boot)
    for b in range(n_boot):
        drawn = rng.integers(len(diffs), size=len(diffs))
        stats[b] = np.mean(
            [diffs[k][rng.integers(diffs[k].size, size=diffs[k].size)].mean() for k in drawn]
        )
    low, high = np.percentile(stats, [2.5, 97.5])
    fold_means = [float(d.mean()) for d in diffs]
    verdict = "better" if low > 0 else "worse" if high < 0 else "not distinguishable"
    return {
        "difference": float(np.mean(fold_means)),
        "ci95": [float(low), float(high)],
        "fold_differences": fold_means,
        "verdict": verdict,
    }
