"""ensemble: the default model, the mean of mixture_window, ridge and nearest, which the
evidence of nested cross-validation may move, and towards gene_score or locus_net.

Why a mean, and why these three. On a dozen samples no single model wins every
cohort: mixture_window leads on the blood cohort, nearest and ridge on a time course
of closely related conditions, and which one leads moves from fold to fold. The
three look at different things (a mixture of training samples corrected gene by
gene, a linear map of all bins, the most similar samples), so their errors differ
and their mean is steadier than any of them. These prior weights (a third each) are
fixed before any fold is seen; the held-out score of the default is therefore not
flattered by choosing it on the folds that score it.

gene_score (the cis baseline) and locus_net (the network shared by all genes) join
the members, when they are trained, with a prior weight of zero (issue 24): where a
cohort's expression follows its own loci rather than resemblance between samples
(the multiome simulation), the inner evidence can raise them; where it does not, they
cost nothing. Adding a member cannot move the default without evidence; equal
weights over five members would.

Weights move away from the prior only on evidence from inside the training samples.
Nested cross-validation (whole groups held out, as outside) gives every member
out-of-fold predictions of the training samples; the best weights on a 0.1 grid
are found there and then shrunk towards the prior by the positive-part
James–Stein factor max(0, 1 − (se / gain)²), where gain is their mean advantage
over the prior across the inner folds and se its standard error. With few
inner folds and a noisy gain the factor is 0 and the weights stay at the prior:
fitted weights on a dozen samples chase noise (issue 16 measured 0.078 for fitted
weights against 0.151 for equal ones on a real time course).

The final ensemble (fitted on every sample, what `gexp predict` uses) follows the rule that
the cross-validation scored: weights chosen by cross-validation inside its training samples
only where nested CV ran inside every outer training fold; otherwise the prior, in every
fold and in the final model alike (train.py applies it). Its training samples are all the
samples, and the outer folds are a cross-validation of them, so the final weights come from
the members' outer out-of-fold predictions (the same rule, no refits). Weights are exact
millionths summing to one, written as they are used.

A saved ensemble holds its weights; its members are the models saved beside it in
the same model folder (store.py loads them), so nothing is stored twice.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging

import numpy as np
import scipy.sparse as sp

from ..errors import GexpError
from ..evaluation.cv import make_folds
from .base import Context, Model, fits_in_memory

log = logging.getLogger("gexp")

MEMBERS = ("mixture_window", "ridge", "nearest")  # a third each before any evidence
EVIDENCE_MEMBERS = ("gene_score", "locus_net")  # weight zero unless nested CV raises it
ALL_MEMBERS = MEMBERS + EVIDENCE_MEMBERS
INNER_FOLDS = 3
GRID_STEP = 0.1
WEIGHT_UNITS = 1_000_000  # weights are whole millionths: six decimals that sum to one


def prior_weights(members: tuple[str, ...]) -> np.ndarray:
    """Equal weights over the members of MEMBERS present, zero for the evidence members (equal
    over all when none of MEMBERS is present)."""
    core = np.array([m in MEMBERS for m in members], dtype=float)
    if not core.any():
        core[:] = 1.0
    return core / core.sum()


def feasible_members(shape: tuple[int, int], members: tuple[str, ...] = MEMBERS) -> list[str]:
    """The members that fit in memory for samples × bins input (ridge is dense in samples)."""
    return [m for m in members if fits_in_memory(m, shape)]


class EnsembleModel(Model):
    name = "ensemble"
    arrays = ("weights",)
    settings = ("members", "inner")

    def __init__(self, members: tuple[str, ...] | list[str] = MEMBERS) -> None:
        self.members = tuple(members)
        self.fitted: dict[str, Model] = {}

    def fit(self, x: sp.csr_matrix, y: np.ndarray, ctx: Context) -> None:
        from . import create

        self.members = tuple(feasible_members(x.shape, self.members))
        self.choose_weights(x, y, ctx)
        self.fitted = {}
        for name in self.members:
            model = create(name)
            model.fit(x, y, dataclasses.replace(ctx, checkpoint=None, history=[]))
            self.fitted[name] = model

    def attach(self, fitted: dict[str, Model]) -> None:
        """Members fitted elsewhere on the same samples (train.py's final models, or loaded)."""
        missing = [m for m in self.members if m not in fitted]
        if missing:
            raise GexpError(f"ensemble: member model(s) {', '.join(missing)} not available")
        self.fitted = {m: fitted[m] for m in self.members}

    def predict(self, x: sp.csr_matrix, ctx: Context) -> np.ndarray:
        if not self.fitted:
            raise GexpError("ensemble: predict before its members were fitted or loaded")
        return combine(self.weights, [self.fitted[m].predict(x, ctx) for m in self.members])

    def choose_weights(self, x: sp.csr_matrix, y: np.ndarray, ctx: Context) -> np.ndarray:
        """Weights from nested CV inside these (training) samples, shrunk towards equal."""
        inner = _inner_predictions(self.members, x, y, ctx)
        if isinstance(inner, str):
            self.set_prior(inner)
        else:
            self.weights_from(*inner, y)
        log.debug("ensemble weights %s: %s", named(self.members, self.weights), self.inner)
        return self.weights

    def weights_from(self, preds: list[np.ndarray], fold_of: np.ndarray, y: np.ndarray):
        """Weights from the members' out-of-fold predictions of these samples (`preds`, in
        the order of self.members) under the folds `fold_of`, shrunk towards the prior."""
        weights, self.inner = shrunk_weights(preds, y, fold_of, prior_weights(self.members))
        self.weights = quantised(weights)
        return self.weights

    def set_prior(self, note: str) -> np.ndarray:
        """The prior weights (in millionths), and why nested CV did not choose them."""
        self.weights = quantised(prior_weights(self.members))
        self.inner = {"folds": 0, "note": note}
        return self.weights

    def load_state(self, arrays: dict, settings: dict) -> None:
        super().load_state(arrays, settings)
        self.members = tuple(self.members)
        if len(self.weights) != len(self.members):
            raise ValueError(f"{len(self.weights)} weights for {len(self.members)} members")


def named(members: tuple[str, ...], weights: np.ndarray) -> dict[str, float]:
    """Weights by member name, as metrics.json reports them."""
    return {m: round(float(w), 6) for m, w in zip(members, weights, strict=True)}


def quantised(weights: np.ndarray) -> np.ndarray:
    """Weights as whole millionths that sum to exactly one million (largest remainder), so
    that the six decimals metrics.json shows are the weights predict uses, and sum to one."""
    scaled = np.asarray(weights, dtype=np.float64) * WEIGHT_UNITS
    units = np.floor(scaled)
    short = WEIGHT_UNITS - int(units.sum())
    order = np.argsort(-(scaled - units), kind="stable")  # ties: the earlier member
    units[order[:short]] += 1
    return units / WEIGHT_UNITS


def combine(weights: np.ndarray, preds: list[np.ndarray]) -> np.ndarray:
    """The weighted mean of the members' predictions (log1p)."""
    return sum(w * p for w, p in zip(weights, preds, strict=True))


def _inner_predictions(
    members: list[str], x: sp.csr_matrix, y: np.ndarray, ctx: Context
) -> tuple[list[np.ndarray], np.ndarray] | str:
    """Every member's out-of-fold predictions of these samples, or why there are none.

    The inner folds follow the outer CV's rule. When the outer folds held out whole groups
    but these samples' groups are too few to do so, shuffled inner folds would put samples
    of one group (pseudo-replicates, donors of one cell type) on both sides and choose
    weights for another question (nearest wins it), so the weights stay at the prior instead.
    """
    from . import create

    groups = list(ctx.groups) if len(ctx.groups) == len(y) else [""] * len(y)
    try:
        fold_of, how = make_folds(
            groups, INNER_FOLDS, ctx.seed, min_groups_per_fold=ctx.groups_per_fold
        )
    except GexpError:
        return f"too few samples ({len(y)}) for nested CV"
    if ctx.grouped and how.startswith("shuffled"):
        return f"too few groups ({len(set(groups))}) for nested CV by whole groups"
    log.debug("ensemble: nested CV, %s", how)
    preds = [np.zeros_like(y) for _ in members]
    for k in np.unique(fold_of):
        tr, te = fold_of != k, fold_of == k
        inner_ctx = dataclasses.replace(
            ctx, seed=ctx.seed + 1000 + int(k), checkpoint=None, history=[], groups=()
        )
        for pred, name in zip(preds, members, strict=True):
            model = create(name)
            model.fit(x[tr], y[tr], inner_ctx)
            pred[te] = model.predict(x[te], inner_ctx)
    return preds, fold_of


def simplex_grid(n: int, step: float = GRID_STEP) -> np.ndarray:
    """All weight vectors of n non-negative multiples of step that sum to one."""
    units = round(1 / step)
    rows = [c for c in itertools.product(range(units + 1), repeat=n) if sum(c) == units]
    return np.array(rows, dtype=float) / units


def shrunk_weights(
    preds: list[np.ndarray], y: np.ndarray, fold_of: np.ndarray, prior: np.ndarray | None = None
) -> tuple[np.ndarray, dict]:
    """The prior weights (default: equal) moved towards the best grid weights by the
    James–Stein factor of the best weights' gain over the prior across folds (per-gene r
    across samples)."""
    n = len(preds)
    prior = np.full(n, 1.0 / n) if prior is None else np.asarray(prior, dtype=float)
    grid = np.vstack([prior, simplex_grid(n)])
    folds = np.unique(fold_of)
    scores = np.empty((len(grid), len(folds)))
    for j, k in enumerate(folds):
        rows = fold_of == k
        r = grid_pearson(grid, np.stack([p[rows] for p in preds]), y[rows])
        with np.errstate(invalid="ignore"):
            scores[:, j] = np.where(np.isfinite(r).any(axis=1), np.nanmean(r, axis=1), np.nan)
    mean = np.nanmean(scores, axis=1)
    best = int(np.nanargmax(mean)) if np.isfinite(mean).any() else 0
    gain = scores[best] - scores[0]
    gain = gain[np.isfinite(gain)]
    factor = 0.0
    se = float("nan")
    if gain.size > 1 and gain.mean() > 0:
        se = float(gain.std(ddof=1) / np.sqrt(gain.size))
        factor = max(0.0, 1.0 - (se / gain.mean()) ** 2)
    weights = prior + factor * (grid[best] - prior)
    evidence = {
        "folds": int(len(folds)),
        "best_grid_weights": [round(float(w), 3) for w in grid[best]],
        "gain_over_prior": float(gain.mean()) if gain.size else float("nan"),
        "gain_se": se,
        "shrinkage_factor": float(factor),
    }
    return weights, evidence


def grid_pearson(grid: np.ndarray, stacked: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Per-gene r across samples of every weighting in grid (weightings × genes), from each
    gene's covariances of members and expression (members × samples × genes in stacked), as
    rowwise_pearson scores the weighted predictions themselves, for a thousand weightings
    at once: NaN where a gene is constant, 0 where a weighting's prediction is."""
    p = stacked - stacked.mean(axis=1, keepdims=True)
    t = y - y.mean(axis=0)
    cross = np.einsum("msg,sg->mg", p, t)
    cov = np.einsum("asg,bsg->abg", p, p).reshape(len(p) ** 2, -1)
    pairs = np.einsum("ka,kb->kab", grid, grid).reshape(len(grid), -1)
    sa = np.sqrt(np.maximum(pairs @ cov, 0.0))
    sb = np.sqrt((t * t).sum(axis=0))
    with np.errstate(invalid="ignore", divide="ignore"):
        r = (grid @ cross) / (sa * sb)
    r[(sa <= 1e-12) & (sb > 1e-12)] = 0.0
    r[:, sb <= 1e-12] = np.nan
    return r
