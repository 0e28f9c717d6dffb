"""Gene-centred windows of accessibility, oriented by strand, without a dense samples × bins matrix.

For each gene, the bins within ±window of its TSS form a vector of 2H+1 values
(H = window // bin size), position H being the bin that holds the TSS; on the
minus strand the vector is reversed, so position 0 is always upstream. Windows
are cut from the sparse accessibility matrix one gene at a time (a column slice
of a CSC matrix) and kept sparse, as rows of a (genes·samples) × (2H+1) matrix:
gene g, sample s is row g·n_samples + s. Bins beyond a chromosome's end are zero.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ..errors import GexpError


class WindowIndex:
    """Where each gene's window lies among the bins."""

    def __init__(self, genes: pd.DataFrame, bins: pd.DataFrame, window: int) -> None:
        sizes = (bins["end"] - bins["start"]).to_numpy()
        bin_size = int(np.median(sizes))
        self.half = max(1, window // bin_size)
        self.width = 2 * self.half + 1
        self.centre = np.full(len(genes), -1, dtype=np.int64)
        self.chrom_lo = np.zeros(len(genes), dtype=np.int64)
        self.chrom_hi = np.zeros(len(genes), dtype=np.int64)
        for chrom, part in bins.groupby("chrom", sort=False):
            starts = part["start"].to_numpy()
            idx = part["bin"].to_numpy()
            mask = (genes["chrom"] == chrom).to_numpy()
            tss = genes.loc[mask, "tss"].to_numpy()
            pos = np.searchsorted(starts, tss, side="right") - 1
            inside = (pos >= 0) & (tss < part["end"].to_numpy()[np.clip(pos, 0, None)])
            centre = np.where(inside, idx[np.clip(pos, 0, None)], -1)
            self.centre[mask] = centre
            self.chrom_lo[mask] = idx.min()
            self.chrom_hi[mask] = idx.max() + 1
        if (self.centre < 0).any():
            missing = genes.loc[self.centre < 0, "gene_id"].iloc[0]
            raise GexpError(f"gene {missing}: its TSS is in no bin")
        self.minus = (genes["strand"] == "-").to_numpy()

    def matrix(self, x: sp.csr_matrix) -> sp.csr_matrix:
        """(genes·samples) × width sparse matrix of windows for the samples (rows) of x."""
        n_samples = x.shape[0]
        csc = x.tocsc()
        rows, cols, vals = [], [], []
        for g in range(len(self.centre)):
            lo = max(self.centre[g] - self.half, self.chrom_lo[g])
            hi = min(self.centre[g] + self.half + 1, self.chrom_hi[g])
            block = csc[:, lo:hi].tocoo()
            if block.nnz == 0:
                continue
            pos = block.col + (lo - (self.centre[g] - self.half))
            if self.minus[g]:
                pos = self.width - 1 - pos
            rows.append(g * n_samples + block.row)
            cols.append(pos)
            vals.append(block.data)
        return csr_from_pieces(rows, cols, vals, (len(self.centre) * n_samples, self.width))


def csr_from_pieces(
    rows: list[np.ndarray], cols: list[np.ndarray], vals: list[np.ndarray], shape: tuple[int, int]
) -> sp.csr_matrix:
    """A float32 CSR matrix from per-gene pieces of coordinates and values (empty if none)."""
    if not rows:
        return sp.csr_matrix(shape, dtype=np.float32)
    return sp.csr_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
        shape=shape,
        dtype=np.float32,
    )
