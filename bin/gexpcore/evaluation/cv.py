"""Cross-validation over samples, never leave-one-sample-out.

Folds hold at least 3 samples, so that a per-gene correlation within a fold is
defined and the per-gene mean scores 0 (with single held-out samples it scores
−1). With at least 3 groups in the samplesheet, whole groups are held out
(leave-one-group-out when there are no more groups than folds), so a model is
judged on biosamples of a kind it has not seen; otherwise samples are shuffled
into K folds with the seed.
"""

from __future__ import annotations

import numpy as np

from ..errors import GexpError

MIN_FOLD = 3


def make_folds(groups: list[str], k: int, seed: int) -> tuple[np.ndarray, str]:
    """Fold index per sample, and a description of how folds were formed."""
    n = len(groups)
    if n < 2 * MIN_FOLD:
        raise GexpError(
            f"cross-validation needs at least {2 * MIN_FOLD} samples (folds of at least "
            f"{MIN_FOLD}); the dataset has {n}"
        )
    k = max(2, min(k, n // MIN_FOLD))
    rng = np.random.default_rng(seed)
    labels = [g for g in groups if g]
    distinct = sorted(set(labels))
    if len(labels) == n and len(distinct) >= 3:
        sizes = {g: groups.count(g) for g in distinct}
        if len(distinct) <= k and min(sizes.values()) >= MIN_FOLD:
            fold_of_group = {g: i for i, g in enumerate(distinct)}
            return (
                np.array([fold_of_group[g] for g in groups]),
                f"leave-one-group-out over {len(distinct)} groups",
            )
        # Greedy balanced assignment of whole groups (largest first) to k folds.
        loads = np.zeros(k, dtype=int)
        fold_of_group = {}
        for g in sorted(distinct, key=lambda g: (-sizes[g], g)):
            target = int(np.argmin(loads))
            fold_of_group[g] = target
            loads[target] += sizes[g]
        if loads.min() >= MIN_FOLD:
            return (
                np.array([fold_of_group[g] for g in groups]),
                f"group {k}-fold over {len(distinct)} groups",
            )
    order = rng.permutation(n)
    fold_of = np.empty(n, dtype=int)
    fold_of[order] = np.arange(n) % k
    reason = "fewer than 3 groups" if len(distinct) < 3 else "groups too small for grouped folds"
    return fold_of, f"shuffled {k}-fold ({reason})"
