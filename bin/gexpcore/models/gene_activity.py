"""Per-gene summaries of accessibility: ArchR's gene activity score and distance-pooled windows.

The gene activity score (Granja et al. 2021, ArchR's default gene model) sums the
bins within ±100 kb of a gene, each weighted by exp(−d / 5 kb) + exp(−1), where d is
the distance from the bin's centre to the gene body (0 inside it), and then scales
each sample to the same total. It is the per-gene number the field uses, so every
learned model is compared with it (models.baselines.GeneScoreModel).

Pooled windows keep where the accessibility lies: the strand-oriented window of
windows.py averaged within distance classes (the TSS bin, then 1, 2, 3–4, 5–9,
10–19, 20–49 and 50+ kb up- and downstream), so that a model shared by all genes can
weigh promoter and distal changes differently without one weight per bin.

Both work from the sparse samples × bins matrix; neither builds a dense one.
"""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import scipy.sparse as sp

from .windows import WindowIndex, csr_from_pieces

REACH = 100_000  # bp either side of the gene body
DECAY = 5_000  # bp
# Upper edges (bp, exclusive) of the distance classes of a pooled window, either side of the TSS.
POOL_EDGES = (1_000, 2_000, 3_000, 5_000, 10_000, 20_000, 50_000)


def gene_activity_weights(
    genes: pd.DataFrame, bins: pd.DataFrame, *, reach: int = REACH, decay: float = DECAY
) -> sp.csr_matrix:
    """bins × genes weights of the gene activity score."""
    centre = ((bins["start"] + bins["end"]) / 2).to_numpy()
    rows, cols, vals = [], [], []
    for chrom, part in bins.groupby("chrom", sort=False):
        idx = part["bin"].to_numpy()
        at = centre[idx]
        on = genes.index[(genes["chrom"] == chrom).to_numpy()]
        body_lo = genes.loc[on, "start"].to_numpy() - 1  # GTF is 1-based, bins 0-based
        body_hi = genes.loc[on, "end"].to_numpy()
        first = np.searchsorted(at, body_lo - reach)
        last = np.searchsorted(at, body_hi + reach)
        for g, lo, hi, a, b in zip(on, body_lo, body_hi, first, last, strict=True):
            where = at[a:b]
            distance = np.maximum(0.0, np.maximum(lo - where, where - hi))
            rows.append(idx[a:b])
            cols.append(np.full(b - a, g))
            vals.append(np.exp(-distance / decay) + np.exp(-1.0))
    return csr_from_pieces(rows, cols, vals, (len(bins), len(genes)))


def gene_activity(x: sp.csr_matrix, weights: sp.csr_matrix) -> np.ndarray:
    """samples × genes log1p gene activity, each sample scaled to a mean of 1 per gene.

    The scaling is ArchR's per-cell normalisation (there to 10 000 per cell): it is
    a property of the sample alone, so it needs no fitting and leaks nothing.
    """
    score = np.asarray((x @ weights).todense(), dtype=np.float64)
    total = score.sum(axis=1, keepdims=True)
    scaled = np.divide(score * score.shape[1], total, out=np.zeros_like(score), where=total > 0)
    return np.log1p(scaled)


def pooling_matrix(index: WindowIndex, bin_size: int) -> sp.csr_matrix:
    """width × classes matrix that averages a window's positions within each distance class."""
    edges = [0] + [max(1, e // bin_size) for e in POOL_EDGES] + [index.half + 1]
    edges = sorted(set(min(e, index.half + 1) for e in edges))
    classes: list[np.ndarray] = [np.array([index.half])]
    for side in (-1, 1):
        for lo, hi in itertools.pairwise(edges):
            lo = max(lo, 1)
            if lo < hi:
                classes.append(index.half + side * np.arange(lo, hi))
    rows = np.concatenate(classes)
    cols = np.concatenate([np.full(len(c), k) for k, c in enumerate(classes)])
    vals = np.concatenate([np.full(len(c), 1.0 / len(c)) for c in classes])
    return sp.csr_matrix((vals, (rows, cols)), shape=(index.width, len(classes)), dtype=np.float32)


def pooled_windows(x: sp.csr_matrix, index: WindowIndex, pooling: sp.csr_matrix) -> np.ndarray:
    """samples × genes × classes float32 array of distance-pooled, strand-oriented windows."""
    n_samples, n_genes = x.shape[0], len(index.centre)
    pooled = np.asarray((index.matrix(x) @ pooling).todense(), dtype=np.float32)
    return pooled.reshape(n_genes, n_samples, -1).transpose(1, 0, 2).copy()
