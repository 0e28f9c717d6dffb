"""How far to trust a prediction: prediction intervals and similarity to the training samples.

Both come from the cross-validation, so they describe held-out samples, which is what a
sample with ATAC-seq only is.

Intervals (normalised split-conformal, pooled over genes). Each out-of-fold residual
e = observed − predicted (log1p TPM) is divided by its gene's residual scale s_g (the root
mean square of that gene's out-of-fold residuals, floored at a tenth of the median scale so
that genes that never vary do not get zero-width intervals); the interval at level L is
prediction ± q·s_g, with q the ⌈(n + 1)·L⌉-th smallest of the n scaled residuals of all
genes and samples. Pooling the scaled residuals gives q from hundreds of thousands of
values; the scale lets each gene's width follow its own errors. The coverage reported is
honest: for each fold, q and the scales come from the other folds only and the share of
that fold's observations inside its intervals is counted (cross-conformal).

Similarity. A sample's accessibility correlation (Pearson over bins of what the models
see) with its nearest training sample. In cross-validation every sample has one with its
nearest sample among its fold's training samples: the range a held-out sample showed. A
new sample whose nearest training sample is further than any held-out sample's was lies
outside what the cross-validation measured, and its predictions deserve less trust.
"""

from __future__ import annotations

import math

import numpy as np
import scipy.sparse as sp

LEVEL = 0.8  # the interval's nominal coverage
SCALE_FLOOR = 0.1  # of the median gene's residual scale


def residual_scales(residuals: np.ndarray) -> np.ndarray:
    """Per gene (columns), the RMS of its residuals, floored (see the module docstring)."""
    rms = np.sqrt(np.mean(residuals**2, axis=0))
    floor = SCALE_FLOOR * float(np.median(rms)) if rms.size else 0.0
    return np.maximum(rms, max(floor, 1e-6))


def conformal_quantile(scores: np.ndarray, level: float = LEVEL) -> float:
    """The ⌈(n + 1)·level⌉-th smallest score: split-conformal's finite-sample quantile."""
    scores = np.sort(scores[np.isfinite(scores)].ravel())
    if scores.size == 0:
        return float("nan")
    rank = min(scores.size, math.ceil((scores.size + 1) * level))
    return float(scores[rank - 1])


def interval_model(residuals: np.ndarray, level: float = LEVEL) -> tuple[np.ndarray, float]:
    """(per-gene scales, quantile) from samples × genes out-of-fold residuals."""
    scales = residual_scales(residuals)
    return scales, conformal_quantile(np.abs(residuals) / scales, level)


def fold_coverage(residuals: np.ndarray, fold_of: np.ndarray, level: float = LEVEL) -> list[float]:
    """Per fold, the share of its residuals inside intervals built from the other folds."""
    shares = []
    for k in np.unique(fold_of):
        scales, q = interval_model(residuals[fold_of != k], level)
        inside = np.abs(residuals[fold_of == k]) <= q * scales
        shares.append(float(inside.mean()))
    return shares


def intervals(oof: np.ndarray, y: np.ndarray, fold_of: np.ndarray, level: float = LEVEL):
    """What a model's prediction intervals need (scales, q) and what the report shows."""
    residuals = y - oof
    scales, q = interval_model(residuals, level)
    coverage = fold_coverage(residuals, fold_of, level)
    summary = {
        "level": level,
        "method": "normalised split-conformal over the out-of-fold residuals, pooled over genes",
        "quantile": round(q, 6),
        "coverage_by_fold": [round(c, 4) for c in coverage],
        "coverage": round(float(np.mean(coverage)), 4),
    }
    return scales, summary


def correlations(a: sp.csr_matrix, b: sp.csr_matrix) -> np.ndarray:
    """Pearson r of every row of a with every row of b, over all columns, kept sparse."""
    n = a.shape[1]

    def moments(m: sp.csr_matrix) -> tuple[np.ndarray, np.ndarray]:
        total = np.asarray(m.sum(axis=1), dtype=np.float64).ravel()
        squares = np.asarray(m.multiply(m).sum(axis=1), dtype=np.float64).ravel()
        mean = total / n
        return mean, np.sqrt(np.maximum(squares - n * mean**2, 0.0))

    (ma, sa), (mb, sb) = moments(a), moments(b)
    cross = (a.astype(np.float64) @ b.astype(np.float64).T).toarray()
    cov = cross - n * np.outer(ma, mb)
    with np.errstate(invalid="ignore", divide="ignore"):
        r = cov / np.outer(sa, sb)
    return np.nan_to_num(r, nan=0.0)


def held_out_similarity(x: sp.csr_matrix, fold_of: np.ndarray) -> np.ndarray:
    """Each sample's nearest-training-sample r within the cross-validation: its fold's
    training samples only, as a held-out sample saw them."""
    r = correlations(x, x)
    out = np.empty(x.shape[0])
    for i in range(x.shape[0]):
        others = fold_of != fold_of[i]
        out[i] = r[i, others].max() if others.any() else float("nan")
    return out


# -- what `gexp train` keeps for `gexp predict` (model/intervals.tsv, model/similarity.npz) -----

INTERVALS = "intervals.tsv"
SIMILARITY = "similarity.npz"


def write_reliability(
    out, x: sp.csr_matrix, y: np.ndarray, fold_of: np.ndarray, oof: dict, gene_ids, samples
) -> dict:
    """Write each model's per-gene residual scales and the training samples' accessibility;
    return model_info.json's `intervals` (per model) and `similarity`."""
    import pandas as pd

    from ..files import atomic_write, write_npz

    summaries, scales = {}, {}
    for name, pred in oof.items():
        scales[name], summaries[name] = intervals(pred, y, fold_of)
    with atomic_write(out / INTERVALS) as fh:
        table = pd.DataFrame(scales, index=pd.Index(gene_ids, name="gene_id"))
        table.to_csv(fh, sep="\t", float_format="%.6g")
    x = sp.csr_matrix(x, dtype=np.float32)
    write_npz(
        out / SIMILARITY,
        {"data": x.data, "indices": x.indices, "indptr": x.indptr, "shape": np.array(x.shape)},
    )
    held_out = held_out_similarity(x, fold_of)
    similarity = {
        "measure": "Pearson r over bins with the nearest training sample (accessibility as "
        "the models see it)",
        "held_out_nearest_r": {
            s: round(float(r), 4) for s, r in zip(samples, held_out, strict=True)
        },
        "lowest_held_out": round(float(np.nanmin(held_out)), 4),
    }
    return {"intervals": summaries, "similarity": similarity}


def read_training_accessibility(path) -> sp.csr_matrix:
    with np.load(path, allow_pickle=False) as saved:
        shape = tuple(int(v) for v in saved["shape"])
        return sp.csr_matrix((saved["data"], saved["indices"], saved["indptr"]), shape=shape)
