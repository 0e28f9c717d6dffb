"""mixture_window: what the held-out sample resembles overall, corrected by each gene's own locus.

Two parts, both fitted on the training samples only:

1. The mixture. The sample's genome-wide gene activity profile (gene_activity.py)
   is written as a non-negative combination, summing to one, of the training
   samples' profiles; its expression is predicted as the same combination of
   their expression. On hierarchical cohorts (blood: MPP lies between HSC and
   LMPP) a mixture says more than the nearest sample, and it is where ridge and
   nearest get their strength on real data.
2. The local correction. Where the sample's accessibility around a gene differs
   from that of its mixture, expression tends to differ too. One ridge regression
   shared by all genes maps the difference between the sample's distance-pooled
   TSS window and the mixture's (15 classes from the TSS bin to ±100 kb) to the
   difference in expression, once plainly and once scaled by the gene's spread
   across the training samples (genes that vary more move more). To learn it as it
   will be used, each training sample gets its mixture from the other training
   samples; the ridge penalty is chosen by leave-one-sample-out within them.

Every (gene, sample) pair is an example of the correction, so its 30 weights are
learned from hundreds of thousands of examples; nothing here builds a dense
samples × bins matrix, so it runs genome-wide.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from scipy.optimize import nnls

from .base import Context, Model
from .gene_activity import (
    gene_activity,
    gene_activity_weights,
    pooled_windows,
    pooling_matrix,
)
from .windows import WindowIndex


class MixtureWindowModel(Model):
    name = "mixture_window"
    arrays = ("activity", "windows", "y", "gene_sd", "gram", "coef")
    settings = ("alpha",)
    alphas = np.logspace(-3, 3, 7)  # ridge penalties, relative to the design's mean variance
    _summaries: tuple | None = None  # rebuilt from the Context when loaded

    def fit(self, x: sp.csr_matrix, y: np.ndarray, ctx: Context) -> None:
        self.activity, self.windows = self._summarise(x, ctx)
        self.y = y.copy()
        self.gene_sd = y.std(axis=0)
        self.gram = self.activity @ self.activity.T
        mix = _leave_one_out_mixtures(self.gram)
        residual = y - mix @ y
        n_features = 2 * self.windows.shape[2]
        grams = np.empty((len(y), n_features, n_features))
        cross = np.empty((len(y), n_features))
        for i in range(len(y)):  # one sample's design at a time: memory stays genes × features
            design = self._design(self.windows[i] - np.tensordot(mix[i], self.windows, axes=1))
            grams[i], cross[i] = design.T @ design, design.T @ residual[i]
        self.alpha = _choose_alpha(grams, cross, residual, self.alphas)
        self.coef = _solve(grams.sum(axis=0), cross.sum(axis=0), self.alpha)

    def predict(self, x: sp.csr_matrix, ctx: Context) -> np.ndarray:
        activity, windows = self._summarise(x, ctx)
        out = np.empty((x.shape[0], self.y.shape[1]))
        for i, a in enumerate(activity):
            mix = _mixture(self.gram, self.activity @ a)
            design = self._design(windows[i] - np.tensordot(mix, self.windows, axes=1))
            out[i] = mix @ self.y + design @ self.coef
        return out

    def _summarise(self, x: sp.csr_matrix, ctx: Context) -> tuple[np.ndarray, np.ndarray]:
        """Gene activity (samples × genes) and pooled windows (samples × genes × classes)."""
        if self._summaries is None:
            index = ctx.summary(
                f"window_index:{ctx.window}", lambda: WindowIndex(ctx.genes, ctx.bins, ctx.window)
            )
            bin_size = int(np.median((ctx.bins["end"] - ctx.bins["start"]).to_numpy()))
            weights = ctx.summary(
                "gene_activity_weights", lambda: gene_activity_weights(ctx.genes, ctx.bins)
            )
            pooling = ctx.summary(
                f"pooling:{ctx.window}:{bin_size}", lambda: pooling_matrix(index, bin_size)
            )
            self._summaries = (weights, index, pooling)
        weights, index, pooling = self._summaries
        return gene_activity(x, weights), pooled_windows(x, index, pooling)

    def _design(self, difference: np.ndarray) -> np.ndarray:
        """genes × features: the window difference, plain and times the gene's spread."""
        difference = difference.astype(np.float64)
        return np.concatenate([difference, difference * self.gene_sd[:, None]], axis=1)


def _mixture(gram: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Non-negative weights summing to one whose combination of the profiles best fits the target.

    Works on Gram matrices (profiles · profiles), so its cost does not grow with genes:
    minimises ‖Σ wᵢ pᵢ − t‖² + m (Σ wᵢ − 1)² over w ≥ 0 through a Cholesky factor.
    """
    n = len(gram)
    m = float(np.trace(gram)) / n
    g = gram + m * np.ones((n, n)) + 1e-9 * m * np.eye(n)
    factor = np.linalg.cholesky(g)
    w, _ = nnls(factor.T, np.linalg.solve(factor, target + m))
    total = w.sum()
    return w / total if total > 0 else np.full(n, 1.0 / n)


def _leave_one_out_mixtures(gram: np.ndarray) -> np.ndarray:
    """n × n: row i is sample i's mixture of the other samples (zero on the diagonal)."""
    n = len(gram)
    mix = np.zeros((n, n))
    for i in range(n):
        others = np.delete(np.arange(n), i)
        mix[i, others] = _mixture(gram[np.ix_(others, others)], gram[others, i])
    return mix


def _solve(gram: np.ndarray, cross: np.ndarray, alpha: float) -> np.ndarray:
    scale = max(float(np.trace(gram)) / len(gram), 1e-12)
    return np.linalg.solve(gram + alpha * scale * np.eye(len(gram)), cross)


def _choose_alpha(
    grams: np.ndarray, cross: np.ndarray, residual: np.ndarray, alphas: np.ndarray
) -> float:
    """The penalty with the least squared error on each training sample left out in turn."""
    total_gram, total_cross = grams.sum(axis=0), cross.sum(axis=0)
    sq = (residual**2).sum(axis=1)
    errors = []
    for alpha in alphas:
        error = 0.0
        for i in range(len(grams)):
            coef = _solve(total_gram - grams[i], total_cross - cross[i], alpha)
            error += sq[i] - 2 * coef @ cross[i] + coef @ grams[i] @ coef
        errors.append(error)
    return float(alphas[int(np.argmin(errors))])
