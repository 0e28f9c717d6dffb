"""Cross-validation over samples, never leave-one-sample-out.

Folds hold at least 3 samples, so that a per-gene correlation within a fold is
defined and the per-gene mean scores 0 (with single held-out samples it scores
−1). With at least 3 groups in the samplesheet, whole groups are held out
(leave-one-group-out when there are no more groups than folds), so a model is
judged on biosamples of a kind it has not seen; otherwise samples are shuffled
into K folds with the seed.

`min_groups_per_fold` (2 for pseudobulk datasets) makes every fold hold several whole
groups: the headline metric correlates each gene over the held-out samples of one
fold, and with one cell type per fold those samples differ only by donor and
pseudo-replicate, which says nothing about predicting a new cell type. K is then
capped at n_groups // min_groups_per_fold and leave-one-group-out is not used;
with fewer than 2 × min_groups_per_fold groups the rule above applies.
"""

from __future__ import annotations

import numpy as np

from ..errors import GexpError

MIN_FOLD = 3


def make_folds(
    groups: list[str], k: int, seed: int, min_groups_per_fold: int = 1
) -> tuple[np.ndarray, str]:
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
        per_fold = max(1, min_groups_per_fold)
        if per_fold > 1 and len(distinct) >= 2 * per_fold:
            several = _several_groups_per_fold(groups, sizes, k, per_fold)
            if several is not None:
                return several
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


def _several_groups_per_fold(
    groups: list[str], sizes: dict[str, int], k: int, per_fold: int
) -> tuple[np.ndarray, str] | None:
    """Whole groups, at least `per_fold` of them in every fold, folds balanced in samples;
    None when no such folds hold MIN_FOLD samples each (from K down to 2 folds)."""
    distinct = sorted(sizes)
    for folds in range(min(k, len(distinct) // per_fold), 1, -1):
        loads = np.zeros(folds, dtype=int)
        counts = np.zeros(folds, dtype=int)
        fold_of_group = {}
        ordered = sorted(distinct, key=lambda g: (-sizes[g], g))
        for i, g in enumerate(ordered):
            short = np.maximum(per_fold - counts, 0)
            # Once the groups left are just enough to fill the folds still short of groups,
            # they go only to those folds.
            open_ = short > 0 if len(ordered) - i <= short.sum() else np.ones(folds, dtype=bool)
            target = int(np.flatnonzero(open_)[np.argmin(loads[open_])])
            fold_of_group[g] = target
            loads[target] += sizes[g]
            counts[target] += 1
        if loads.min() >= MIN_FOLD:
            return (
                np.array([fold_of_group[g] for g in groups]),
                f"group {folds}-fold over {len(distinct)} groups (≥ {per_fold} groups per fold)",
            )
    return None


def donor_folds(donors: list[str]) -> tuple[np.ndarray | None, str]:
    """Leave-one-donor-out: one fold per donor (in sorted order) and its description, or None
    and why not. Every sample needs a donor, and every donor MIN_FOLD samples."""
    distinct = sorted({d for d in donors if d})
    if len(distinct) < 2:
        return None, f"{len(distinct)} donor(s); it needs at least 2"
    missing = sum(1 for d in donors if not d)
    if missing:
        return None, f"{missing} sample(s) have no donor"
    sizes = {d: donors.count(d) for d in distinct}
    small = [d for d in distinct if sizes[d] < MIN_FOLD]
    if small:
        return None, (
            f"donor {small[0]} has {sizes[small[0]]} sample(s); a fold needs at least {MIN_FOLD}"
        )
    fold_of_donor = {d: i for i, d in enumerate(distinct)}
    return (
        np.array([fold_of_donor[d] for d in donors]),
        f"leave-one-donor-out over {len(distinct)} donors",
    )
