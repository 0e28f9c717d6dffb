"""Held-out metrics that the per-gene mean cannot game.

All metrics compare log1p TPM. `pearson_across_samples` asks, gene by gene,
whether the model ranks the held-out samples right: it is computed within each
test fold (so a model that predicts each gene's training mean, constant within a
fold, scores exactly 0) and averaged over folds. Pooling out-of-fold predictions
instead would give the mean model a negative score, because a fold's training
mean moves against the held-out samples; that pooled number is reported too.
`pearson_deviation` pools every fold but correlates deviations from each fold's
training mean, so it also credits predicting differences between folds (groups).
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
    per_gene = (
        np.nanmean(
            np.stack(
                [
                    rowwise_pearson(pred[fold_of == k].T, obs[fold_of == k].T)
                    for k in range(len(folds))
                ]
            ),
            axis=0,
        )
        if len(folds)
        else np.array([])
    )
    pooled = rowwise_pearson(pred.T, obs.T)
    return {
        "pearson_across_samples": float(np.average(across[ok], weights=weights[ok]))
        if ok.any()
        else float("nan"),
        "pearson_deviation": _mean(rowwise_pearson((pred - train_means).T, (obs - train_means).T)),
        "pearson_across_genes": _mean(rowwise_pearson(pred, obs)),
        "mse_log1p": float(np.mean((pred - obs) ** 2)),
        "pearson_across_samples_pooled": _mean(pooled),
    }, per_gene
