"""The default model, and how it compares with the best baseline on the same folds."""

from __future__ import annotations

import numpy as np

from ..models import BASELINES
from .metrics import paired_comparison


def compare_default(metrics: dict, oof: dict, y, fold_of, seed: int) -> tuple[str, str]:
    """The default model and how it was chosen, with its paired comparison against the best
    baseline kept in its metrics as `vs_best_baseline`.

    The ensemble, when trained, is the default whatever it scores: it was fixed before any
    fold was seen, so its held-out score is honest. Without it the best held-out score picks
    the default, and that score is optimistic (the same folds choose and score it).
    """

    def score(m: str) -> float:
        return np.nan_to_num(metrics[m]["pearson_across_samples"], nan=-9)

    if "ensemble" in metrics:
        default, chosen_by = "ensemble", "fixed before training"
    else:
        default, chosen_by = max(metrics, key=score), "best held-out score"
    compared = [m for m in metrics if m in BASELINES and m != "mean" and m != default]
    if compared:
        baseline = max(compared, key=score)
        metrics[default]["vs_best_baseline"] = {
            "baseline": baseline,
            **paired_comparison(oof[default], oof[baseline], y, fold_of, seed=seed),
        }
    return default, chosen_by
