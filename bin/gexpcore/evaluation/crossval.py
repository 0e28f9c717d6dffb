"""One model's cross-validation: out-of-fold predictions and their held-out metrics.

Each sample's prediction comes from a model fitted on the other folds (cv.py forms them);
metrics.py scores them. Finished folds are kept under work/<model>/ with the key of the
run, so an interrupted `gexp train` resumes where it stopped. The ensemble predicts a fold
by combining its members' out-of-fold predictions under the same folds (`Folds.oof`),
with weights chosen by nested CV inside the fold's training samples only.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from ..files import write_npz
from ..models import create
from ..models.base import Context
from ..models.ensemble import ALL_MEMBERS, EnsembleModel, combine, named
from .metrics import fold_metrics, fold_spread, summarise

log = logging.getLogger("gexp")


@dataclass
class Folds:
    """One fold assignment and what every model's cross-validation under it needs."""

    x: sp.csr_matrix  # samples × bins, as models see them
    y: np.ndarray  # samples × genes, log1p TPM
    fold_of: np.ndarray  # fold index per sample
    how: str  # how the folds were formed, for metrics.json
    context: Callable[[int, np.ndarray, Path | None], Context]  # fold k's training context
    work: Path  # finished folds: work/<model>/fold<k>.npz
    key: str  # what a finished fold of an interrupted run must match to be reused
    oof: dict[str, np.ndarray] = field(default_factory=dict)  # out-of-fold, by model

    @property
    def n_folds(self) -> int:
        return int(self.fold_of.max()) + 1


def evaluate(name: str, folds: Folds) -> tuple[dict, np.ndarray, dict]:
    """Cross-validate one model: its metrics.json entry, per-gene r and training histories
    (its out-of-fold predictions go to folds.oof)."""
    scores, per_fold, per_gene, histories = _scored(name, folds)
    entry = {
        **scores,
        "n_samples": int(folds.y.shape[0]),
        "n_genes": int(folds.y.shape[1]),
        "n_folds": folds.n_folds,
        "cv": folds.how,
        "folds": per_fold,
    }
    return entry, per_gene, histories


def evaluate_by_donor(name: str, folds: Folds, donors: list[str]) -> dict:
    """The same under leave-one-donor-out folds (one per donor, named in each fold)."""
    scores, per_fold, _, _ = _scored(name, folds, donors)
    return {**scores, "n_folds": len(donors), "cv": folds.how, "folds": per_fold}


def _scored(name: str, folds: Folds, donors: list[str] | None = None):
    pred, means, per_fold, histories = cross_validate(name, folds)
    for fold, donor in zip(per_fold, donors or [], strict=bool(donors)):
        fold["donor"] = donor
    summary, per_gene = summarise(per_fold, pred, folds.y, means, folds.fold_of)
    folds.oof[name] = pred
    return {**summary, **fold_spread(per_fold)}, per_fold, per_gene, histories


def cross_validate(name: str, folds: Folds):
    """One model's out-of-fold predictions: predictions, each sample's training mean,
    per-fold metrics and training histories."""
    y = folds.y
    pred, means, per_fold, histories = np.zeros_like(y), np.zeros_like(y), [], {}
    weights = ensemble_weights(folds) if name == "ensemble" else None
    for k in range(folds.n_folds):
        tr, te = folds.fold_of != k, folds.fold_of == k
        if weights is not None:
            p, history, extra = _ensemble_fold(weights[k], te, folds.oof)
        else:
            ctx = folds.context(k, tr, folds.work / name / f"fold{k}.ckpt")
            p, history, validation = _fold(name, k, tr, te, ctx, folds)
            extra = {}
            if validation:  # seed_mlp with --early-stopping: its validation split's loss
                histories[f"fold{k} validation"] = validation
        pred[te], means[te] = p, y[tr].mean(axis=0)
        per_fold.append({"fold": k, **fold_metrics(p, y[te], y[tr].mean(axis=0)), **extra})
        histories[f"fold{k}"] = history
    return pred, means, per_fold, histories


def _fold(name: str, k: int, tr: np.ndarray, te: np.ndarray, ctx: Context, folds: Folds):
    """Predictions for one held-out fold, reusing a finished fold of an interrupted run."""
    done = folds.work / name / f"fold{k}.npz"
    if done.is_file():
        saved = np.load(done, allow_pickle=False)
        shape = (int(te.sum()), folds.y.shape[1])
        if str(saved["key"]) == folds.key and saved["pred"].shape == shape:
            log.info("%s fold %d: finished in an earlier run, reused", name, k)
            validation = saved["validation"].tolist() if "validation" in saved.files else []
            return saved["pred"], saved["history"].tolist(), validation
    model = create(name)
    model.fit(folds.x[tr], folds.y[tr], ctx)
    pred = model.predict(folds.x[te], ctx)
    write_npz(
        done,
        {
            "pred": pred,
            "key": folds.key,
            "history": np.asarray(ctx.history, dtype=float),
            "validation": np.asarray(ctx.validation, dtype=float),
        },
    )
    if ctx.checkpoint is not None:
        ctx.checkpoint.unlink(missing_ok=True)
    return pred, list(ctx.history), list(ctx.validation)


def members(models) -> tuple[str, ...]:
    """The ensemble's members among the models trained (those that fit in memory): the three
    of its prior, and gene_score and locus_net at weight zero when they were trained."""
    return tuple(m for m in ALL_MEMBERS if m in models)


def ensemble_weights(folds: Folds) -> list[tuple[np.ndarray, dict]]:
    """Each fold's (weights, inner evidence), chosen by nested CV inside the fold's training
    samples and never from the fold itself. The rule the cross-validation scores, and the
    final model follows (nested_in_every_fold): nested-CV weights only where nested CV ran
    inside every fold; otherwise the prior weights in every fold."""
    names = members(folds.oof)
    chosen = []
    for k in range(folds.n_folds):
        tr = folds.fold_of != k
        done = folds.work / "ensemble" / f"fold{k}.npz"
        weights = None
        if done.is_file():
            saved = np.load(done, allow_pickle=False)
            if str(saved["key"]) == folds.key and len(saved["weights"]) == len(names):
                log.info("ensemble fold %d: finished in an earlier run, reused", k)
                weights, inner = saved["weights"], json.loads(str(saved["inner"]))
        if weights is None:
            model = EnsembleModel(names)
            ctx = folds.context(k, tr, None)
            weights, inner = model.choose_weights(folds.x[tr], folds.y[tr], ctx), model.inner
            write_npz(done, {"weights": weights, "inner": json.dumps(inner), "key": folds.key})
        chosen.append((weights, inner))
    if nested_in_every_fold([inner for _, inner in chosen]):
        return chosen
    prior = EnsembleModel(names)
    return [(prior.set_prior(_prior_note(inner)), inner) for _, inner in chosen]


def nested_in_every_fold(inner: list[dict]) -> bool:
    """Whether nested CV chose the weights inside every outer fold (else all stay at the prior)."""
    return bool(inner) and all(fold.get("folds", 0) > 0 for fold in inner)


def _prior_note(inner: dict) -> str:
    return inner.get("note") or "prior weights: nested CV could not run inside every fold"


def _ensemble_fold(chosen: tuple, te: np.ndarray, oof: dict):
    """The ensemble's predictions for one held-out fold: its weights applied to the members'
    own predictions for the fold."""
    weights, inner = chosen
    names = members(oof)
    pred = combine(weights, [oof[m][te] for m in names])
    return pred, [], {"weights": named(names, weights), "inner_cv": inner}
