"""Baselines every learned model must beat: the per-gene mean, ridge regression, nearest samples,
and the calibrated gene activity score."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from .base import Context, Model, refuse_dense
from .gene_activity import gene_activity, gene_activity_weights


class MeanModel(Model):
    """Each gene's training mean: scores 0 on the across-samples metrics by construction."""

    name = "mean"
    arrays = ("mean",)

    def fit(self, x: sp.csr_matrix, y: np.ndarray, ctx: Context) -> None:
        self.mean = y.mean(axis=0)

    def predict(self, x: sp.csr_matrix, ctx: Context) -> np.ndarray:
        return np.tile(self.mean, (x.shape[0], 1))


def _centred_gram(a: sp.csr_matrix, b: sp.csr_matrix, mu: np.ndarray) -> np.ndarray:
    """(a − μ)(b − μ)ᵀ from sparse rows without densifying them."""
    ab = (a @ b.T).toarray()
    am, bm = a @ mu, b @ mu
    return ab - am[:, None] - bm[None, :] + mu @ mu


class RidgeModel(Model):
    """Ridge regression on all bins, in its dual form (samples ≪ bins), alpha by inner CV.

    Bins and genes are centred on the training samples; alpha is chosen from a grid
    scaled to the kernel's diagonal by 3-fold CV inside the training samples only.
    """

    name = "ridge"
    arrays = ("x", "mu", "ymean", "coef")
    settings = ("alpha",)
    grid = np.logspace(-3, 2, 11)

    def fit(self, x: sp.csr_matrix, y: np.ndarray, ctx: Context) -> None:
        refuse_dense(self.name, x.shape)
        self.x = x.copy()
        self.mu = np.asarray(x.mean(axis=0)).ravel()
        self.ymean = y.mean(axis=0)
        yc = y - self.ymean
        gram = _centred_gram(x, x, self.mu)
        scale = max(float(np.mean(np.diag(gram))), 1e-9)
        self.alpha = float(scale * self._choose_alpha(x, y, scale, ctx))
        self.coef = np.linalg.solve(gram + self.alpha * np.eye(len(yc)), yc)

    def _choose_alpha(self, x: sp.csr_matrix, y: np.ndarray, scale: float, ctx: Context) -> float:
        n = x.shape[0]
        if n < 6:
            return 1.0
        fold = np.random.default_rng(ctx.seed).permutation(n) % 3
        errors = np.zeros(len(self.grid))
        for k in range(3):
            tr, te = fold != k, fold == k
            mu = np.asarray(x[tr].mean(axis=0)).ravel()
            ym = y[tr].mean(axis=0)
            gram = _centred_gram(x[tr], x[tr], mu)
            cross = _centred_gram(x[te], x[tr], mu)
            for i, a in enumerate(self.grid):
                coef = np.linalg.solve(gram + a * scale * np.eye(tr.sum()), y[tr] - ym)
                errors[i] += np.sum((cross @ coef + ym - y[te]) ** 2)
        return float(self.grid[int(np.argmin(errors))])

    def predict(self, x: sp.csr_matrix, ctx: Context) -> np.ndarray:
        return _centred_gram(x, self.x, self.mu) @ self.coef + self.ymean


class NearestModel(Model):
    """Each held-out sample gets the mean expression of its k most similar training samples.

    Similarity is the Pearson correlation of accessibility over all bins, computed
    from sparse rows; k is 3, or fewer when training samples are few (k = n/4), so
    that it never degenerates into the training mean.
    """

    name = "nearest"
    arrays = ("x", "y")

    def fit(self, x: sp.csr_matrix, y: np.ndarray, ctx: Context) -> None:
        self.x, self.y = x.copy(), y.copy()

    def predict(self, x: sp.csr_matrix, ctx: Context) -> np.ndarray:
        sim = _correlation(x, self.x)
        k = min(3, max(1, self.x.shape[0] // 4))
        top = np.argsort(-sim, axis=1)[:, :k]
        return self.y[top].mean(axis=1)


def _correlation(a: sp.csr_matrix, b: sp.csr_matrix) -> np.ndarray:
    n = a.shape[1]
    ma, mb = np.asarray(a.mean(axis=1)).ravel(), np.asarray(b.mean(axis=1)).ravel()
    sa = np.sqrt(np.asarray(a.multiply(a).sum(axis=1)).ravel() / n - ma**2)
    sb = np.sqrt(np.asarray(b.multiply(b).sum(axis=1)).ravel() / n - mb**2)
    cov = (a @ b.T).toarray() / n - ma[:, None] * mb[None, :]
    with np.errstate(invalid="ignore", divide="ignore"):
        r = cov / (sa[:, None] * sb[None, :])
    return np.nan_to_num(r, nan=-1.0)


class GeneScoreModel(Model):
    """ArchR's gene activity score (gene_activity.py), calibrated per gene on the training samples.

    Each gene gets its own least-squares line from its score to its log1p expression;
    a gene whose score does not vary across the training samples keeps its mean.
    This is what the field does with a gene score, so every learned model must beat it.
    """

    name = "gene_score"
    arrays = ("score_mean", "ymean", "slope")
    weights: sp.csr_matrix | None = None  # bins × genes, rebuilt from the Context when loaded

    def fit(self, x: sp.csr_matrix, y: np.ndarray, ctx: Context) -> None:
        score = self._score(x, ctx)
        self.score_mean, self.ymean = score.mean(axis=0), y.mean(axis=0)
        sc, yc = score - self.score_mean, y - self.ymean
        var = (sc * sc).sum(axis=0)
        self.slope = np.divide((sc * yc).sum(axis=0), var, out=np.zeros_like(var), where=var > 1e-9)

    def predict(self, x: sp.csr_matrix, ctx: Context) -> np.ndarray:
        return self.ymean + (self._score(x, ctx) - self.score_mean) * self.slope

    def _score(self, x: sp.csr_matrix, ctx: Context) -> np.ndarray:
        if self.weights is None:
            self.weights = ctx.summary(
                "gene_activity_weights", lambda: gene_activity_weights(ctx.genes, ctx.bins)
            )
        return gene_activity(x, self.weights)
