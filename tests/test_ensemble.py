"""The default model: an ensemble fixed before training, weights only from nested CV.

What must hold: its weights for a held-out fold never depend on that fold's samples;
they stay equal unless the inner folds show a consistent gain; it is the default
and says so; and a saved ensemble predicts exactly the weighted mean of its saved
members, through `gexp predict`.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from conftest import assert_user_error, run_gexp
from gexpcore.evaluation.metrics import rowwise_pearson
from gexpcore.models.ensemble import grid_pearson, prior_weights, shrunk_weights, simplex_grid
from gexpcore.steps.train import train_models

FAST = {"seed_mlp": 50}


def test_the_simplex_grid_holds_every_weighting_in_tenths():
    grid = simplex_grid(3)
    assert len(grid) == 66  # C(12, 2) compositions of 10 tenths into 3 parts
    assert np.allclose(grid.sum(axis=1), 1) and (grid >= 0).all()
    assert len({tuple(row) for row in grid}) == 66


def _folds(n_folds: int, per_fold: int) -> np.ndarray:
    return np.repeat(np.arange(n_folds), per_fold)


def test_weights_stay_equal_without_consistent_inner_evidence():
    rng = np.random.default_rng(0)
    fold_of = _folds(3, 4)
    y = rng.normal(size=(12, 200))
    # Three members of pure noise: any "best" weighting is chance, so the factor must be 0.
    preds = [rng.normal(size=y.shape) for _ in range(3)]
    weights, evidence = shrunk_weights(preds, y, fold_of)
    gain, se = evidence["gain_over_prior"], evidence["gain_se"]
    expected = max(0.0, 1 - (se / gain) ** 2) if gain > 0 else 0.0
    assert evidence["shrinkage_factor"] == pytest.approx(expected)
    grid_best = np.array(evidence["best_grid_weights"])
    np.testing.assert_allclose(weights, 1 / 3 + expected * (grid_best - 1 / 3), atol=1e-9)


def test_weights_follow_a_member_that_is_better_in_every_inner_fold():
    rng = np.random.default_rng(1)
    fold_of = _folds(4, 4)
    y = rng.normal(size=(16, 300))
    good = y + 0.3 * rng.normal(size=y.shape)
    preds = [good, rng.normal(size=y.shape), rng.normal(size=y.shape)]
    weights, evidence = shrunk_weights(preds, y, fold_of)
    assert evidence["best_grid_weights"] == [1.0, 0.0, 0.0]
    assert evidence["shrinkage_factor"] > 0.9
    assert weights[0] > 0.9 and np.isclose(weights.sum(), 1)


def test_the_grid_is_scored_as_each_weighted_prediction_would_be():
    rng = np.random.default_rng(4)
    y = rng.normal(size=(5, 60))
    y[:, 3] = 1.0  # a constant gene: NaN, as rowwise_pearson says
    preds = rng.normal(size=(4, 5, 60))
    preds[:, :, 7] = 2.0  # every member constant for gene 7: r 0
    grid = simplex_grid(4)
    fast = grid_pearson(grid, preds, y)
    for k in (0, 17, len(grid) - 1):
        slow = rowwise_pearson(np.tensordot(grid[k], preds, axes=1).T, y.T)
        np.testing.assert_allclose(fast[k], slow, rtol=1e-9, atol=1e-12)
    assert np.isnan(fast[:, 3]).all() and (fast[:, 7] == 0).all()


def test_members_outside_the_prior_start_at_zero():
    members = ("mixture_window", "ridge", "nearest", "gene_score", "locus_net")
    np.testing.assert_allclose(prior_weights(members), [1 / 3] * 3 + [0, 0])
    np.testing.assert_allclose(prior_weights(("ridge", "gene_score")), [1, 0])
    np.testing.assert_allclose(prior_weights(("gene_score", "locus_net")), [0.5, 0.5])


def test_a_zero_prior_member_gains_weight_only_on_consistent_evidence():
    rng = np.random.default_rng(2)
    fold_of = _folds(4, 4)
    y = rng.normal(size=(16, 300))
    prior = np.array([0.5, 0.5, 0.0])
    noise = [rng.normal(size=y.shape) for _ in range(3)]
    weights, evidence = shrunk_weights(noise, y, fold_of, prior)
    factor = evidence["shrinkage_factor"]
    best = np.array(evidence["best_grid_weights"])
    np.testing.assert_allclose(weights, prior + factor * (best - prior), atol=1e-12)
    # The third member predicts well in every inner fold: it takes most of the weight.
    good = [noise[0], noise[1], y + 0.3 * rng.normal(size=y.shape)]
    weights, evidence = shrunk_weights(good, y, fold_of, prior)
    assert evidence["best_grid_weights"] == [0.0, 0.0, 1.0]
    assert evidence["shrinkage_factor"] > 0.9 and weights[2] > 0.9


def _twelve_sample_dataset(run_result: Path, out: Path) -> Path:
    """The simulated 6-sample dataset twice over (the copy perturbed), in 4 groups of 3, so
    that each outer training fold (9 samples, 3 groups) is large enough for nested CV."""
    src = run_result / "dataset"
    shutil.copytree(src, out)
    rng = np.random.default_rng(7)
    x = sp.load_npz(src / "accessibility.npz").tocsr()
    copy = x.copy()
    copy.data = copy.data * rng.uniform(0.5, 1.5, size=copy.data.size).astype(copy.data.dtype)
    sp.save_npz(out / "accessibility.npz", sp.vstack([x, copy]).tocsr())
    expression = pd.read_csv(src / "expression.tsv", sep="\t", index_col=0)
    twin = expression * rng.uniform(0.5, 1.5, size=expression.shape)
    twin.columns = [f"{c}b" for c in expression.columns]
    # 6 significant digits, as DATASET writes them: every pandas parses those exactly (pandas
    # 2's default parser can miss the last bit of 17-digit values, and a rewrite would move
    # the training columns that a test below must leave untouched)
    pd.concat([expression, twin], axis=1).to_csv(
        out / "expression.tsv", sep="\t", float_format="%.6g"
    )
    samples = pd.read_csv(src / "samples.tsv", sep="\t", dtype=str, keep_default_na=False)
    twins = samples.assign(sample=samples["sample"] + "b")
    both = pd.concat([samples, twins], ignore_index=True)
    both["group"] = [f"G{i // 3}" for i in range(len(both))]
    both.to_csv(out / "samples.tsv", sep="\t", index=False)
    return out


def test_a_folds_weights_never_see_that_fold(run_result, tmp_path):
    data = _twelve_sample_dataset(run_result, tmp_path / "ds")
    first = train_models(data, tmp_path / "a", ["ensemble"], epochs=FAST)
    fold0 = first["ensemble"]["folds"][0]
    assert first["ensemble"]["cv"] == "leave-one-group-out over 4 groups"
    assert fold0["inner_cv"]["folds"] == 3, fold0  # nested CV ran inside the 9 training samples
    # ...and inside every fold, so the final model chooses its weights by CV on all samples
    # too: the 4 outer folds' out-of-fold predictions of its members
    assert first["ensemble"]["inner_cv"]["folds"] == 4
    info = json.loads((tmp_path / "a" / "model_info.json").read_text())
    assert info["ensemble"]["rule"].startswith("cross-validation on all samples")
    assert info["ensemble"]["weights"] == first["ensemble"]["weights"]
    # Scramble the held-out fold's expression: its score moves, its weights must not.
    expression = pd.read_csv(data / "expression.tsv", sep="\t", index_col=0)
    held_out = expression.columns[:3]  # group G0, fold 0
    rng = np.random.default_rng(3)
    expression[held_out] = rng.permutation(expression[held_out].to_numpy())
    expression.to_csv(data / "expression.tsv", sep="\t", float_format="%.6g")
    second = train_models(data, tmp_path / "b", ["ensemble"], epochs=FAST)
    again = second["ensemble"]["folds"][0]
    assert again["weights"] == fold0["weights"] and again["inner_cv"] == fold0["inner_cv"]
    assert again["pearson_across_samples"] != fold0["pearson_across_samples"]
    # Folds 1-3 train on the scrambled samples, so their inner evidence may move.
    assert list(first) == ["mixture_window", "ridge", "nearest", "ensemble"]  # members added


def test_the_ensemble_is_the_default_and_says_how_it_was_chosen(run_result):
    info = json.loads((run_result / "model" / "model_info.json").read_text())
    assert info["default_model"] == "ensemble"
    assert info["default_chosen_by"] == "fixed before training"
    metrics = json.loads((run_result / "model" / "metrics.json").read_text())
    weights = metrics["ensemble"]["weights"]
    # gene_score and locus_net are in the default set: members at a prior weight of zero
    assert list(weights) == ["mixture_window", "ridge", "nearest", "gene_score", "locus_net"]
    assert sum(weights.values()) == pytest.approx(1, abs=1e-12)  # as written
    # 6 samples: no fold's 4-5 training samples allow nested CV, so every fold scored equal
    # weights, and the final model (6 samples, enough for it) must keep them too.
    assert all(f["inner_cv"]["folds"] == 0 for f in metrics["ensemble"]["folds"])
    assert weights == {
        "mixture_window": 0.333334,
        "ridge": 0.333333,
        "nearest": 0.333333,
        "gene_score": 0.0,
        "locus_net": 0.0,
    }
    saved = np.load(run_result / "model" / "ensemble" / "model.npz")["weights"]
    assert saved.tolist() == list(weights.values())  # what predict uses is what is written
    used = info["ensemble"]
    assert used["weights"] == weights and "as in every cross-validation fold" in used["rule"]
    assert used["held_out_pearson_across_samples"] == metrics["ensemble"]["pearson_across_samples"]
    assert metrics["ensemble"]["vs_best_baseline"]["baseline"] in ("ridge", "nearest", "gene_score")
    report = (run_result / "report.html").read_text()
    assert "fixed before training" in report


def test_without_the_ensemble_the_default_is_flagged_as_chosen_on_the_folds(run_result, tmp_path):
    train_models(run_result / "dataset", tmp_path / "m", ["ridge", "nearest"], epochs=FAST)
    info = json.loads((tmp_path / "m" / "model_info.json").read_text())
    assert info["default_chosen_by"] == "best held-out score"
    assert info["default_model"] in ("ridge", "nearest")


def _predicted(model_dir: Path, sim: Path, out: Path, name: str) -> np.ndarray:
    proc = run_gexp(
        "predict", "--model", model_dir, "--atac", sim / "peaks" / "S001.narrowPeak.gz",
        "--outdir", out / name, "--model-name", name,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    table = pd.read_csv(out / name / "S001.predicted_tpm.tsv", sep="\t")
    return table["predicted_log1p_tpm"].to_numpy()


def test_a_saved_ensemble_predicts_the_weighted_mean_of_its_saved_members(
    run_result, sim, tmp_path
):
    model_dir = run_result / "model"
    saved = json.loads((model_dir / "ensemble" / "model.json").read_text())
    weights = np.load(model_dir / "ensemble" / "model.npz")["weights"]
    members = saved["settings"]["members"]
    expected = sum(
        w * _predicted(model_dir, sim, tmp_path, m) for w, m in zip(weights, members, strict=True)
    )
    np.testing.assert_allclose(_predicted(model_dir, sim, tmp_path, "ensemble"), expected, 1e-5)


def test_an_ensemble_without_its_member_folder_is_refused_in_one_line(run_result, sim, tmp_path):
    copy = tmp_path / "model"
    shutil.copytree(run_result / "model", copy)
    shutil.rmtree(copy / "ridge")
    proc = run_gexp(
        "predict", "--model", copy, "--atac", sim / "peaks" / "S001.narrowPeak.gz",
        "--outdir", tmp_path / "out",
    )  # fmt: skip
    assert_user_error(proc, "its member ridge cannot be loaded")
    assert not (tmp_path / "out").exists()


def test_inner_folds_that_cannot_hold_out_whole_groups_leave_the_weights_equal(
    run_result, tmp_path
):
    """Outer folds hold out whole groups; 2 groups of 6 samples (one held-out cell type's
    donors and replicates, say) cannot be held out whole in 3 inner folds, and shuffled ones
    would put samples of one group on both sides, so the weights stay equal."""
    from gexpcore.models.base import Context, accessibility_features
    from gexpcore.models.ensemble import EnsembleModel
    from gexpcore.steps.dataset import load_dataset

    data = _twelve_sample_dataset(run_result, tmp_path / "ds")
    x, expression, genes, _, bins = load_dataset(data)
    x, y = accessibility_features(x), np.log1p(expression.to_numpy().T)
    groups = tuple(["A"] * 6 + ["B"] * 6)
    for grouped, folds in ((True, 0), (False, 3)):
        model = EnsembleModel()
        ctx = Context(genes=genes, bins=bins, groups=groups, grouped=grouped, epochs=FAST)
        model.choose_weights(x, y, ctx)
        assert model.inner["folds"] == folds, model.inner
    assert model.inner["folds"] == 3  # the shuffled inner CV when the outer one was shuffled too
    model = EnsembleModel()
    model.choose_weights(x, y, Context(genes=genes, bins=bins, groups=groups, grouped=True))
    assert np.allclose(model.weights, 1 / 3)
    assert model.inner["note"] == "too few groups (2) for nested CV by whole groups"
