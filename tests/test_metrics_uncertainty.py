"""Fold-level spread and the paired comparison of two models (issue 16, item 3)."""

from __future__ import annotations

import numpy as np
import pytest
from gexpcore.evaluation.metrics import fold_spread, paired_comparison

RNG = np.random.default_rng(5)
FOLD_OF = np.repeat(np.arange(4), 4)  # 16 samples in 4 folds
OBS = RNG.normal(size=(16, 60))


def per_gene_r(a, b):
    return np.array([np.corrcoef(a[:, g], b[:, g])[0, 1] for g in range(a.shape[1])])


def test_fold_spread_is_the_standard_error_of_the_fold_scores():
    folds = [{"pearson_across_samples": v} for v in (0.1, 0.3, 0.2, 0.6)]
    spread = fold_spread(folds)
    assert spread["pearson_across_samples_folds"] == [0.1, 0.3, 0.2, 0.6]
    assert spread["pearson_across_samples_se"] == pytest.approx(
        np.std([0.1, 0.3, 0.2, 0.6], ddof=1) / 2
    )


def test_difference_is_the_mean_over_folds_of_per_gene_differences():
    good = OBS + RNG.normal(scale=0.5, size=OBS.shape)
    poor = OBS + RNG.normal(scale=3.0, size=OBS.shape)
    result = paired_comparison(good, poor, OBS, FOLD_OF)
    expected = [
        np.mean(
            per_gene_r(good[FOLD_OF == k], OBS[FOLD_OF == k])
            - per_gene_r(poor[FOLD_OF == k], OBS[FOLD_OF == k])
        )
        for k in range(4)
    ]
    assert result["fold_differences"] == pytest.approx(expected)
    assert result["difference"] == pytest.approx(np.mean(expected))
    low, high = result["ci95"]
    assert 0 < low < result["difference"] < high
    assert result["verdict"] == "better"
    assert paired_comparison(poor, good, OBS, FOLD_OF)["verdict"] == "worse"


def test_equal_models_are_not_distinguishable_and_the_interval_is_reproducible():
    a = OBS + RNG.normal(scale=1.0, size=OBS.shape)
    b = OBS + RNG.normal(scale=1.0, size=OBS.shape)  # as good as a, other noise
    first = paired_comparison(a, b, OBS, FOLD_OF)
    assert first["verdict"] == "not distinguishable"
    assert first["ci95"][0] < 0 < first["ci95"][1]
    assert paired_comparison(a, b, OBS, FOLD_OF) == first
    same = paired_comparison(a, a, OBS, FOLD_OF)
    assert same["difference"] == 0 and same["ci95"] == [0, 0]
    assert same["verdict"] == "not distinguishable"


def test_one_good_fold_does_not_make_a_difference_certain():
    """The interval carries the folds' spread: a gain in one fold of four, losses elsewhere."""
    a = OBS.copy()
    b = OBS + RNG.normal(scale=1.0, size=OBS.shape)
    a[FOLD_OF != 0] = OBS[FOLD_OF != 0] + RNG.normal(scale=1.2, size=(12, 60))
    result = paired_comparison(a, b, OBS, FOLD_OF)
    assert result["fold_differences"][0] > 0.2 and min(result["fold_differences"][1:]) < 0
    assert result["verdict"] == "not distinguishable", result
