"""Metrics, folds, windows and the training loop, checked against independent computations."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch
from gexpcore.errors import GexpError
from gexpcore.evaluation.cv import make_folds
from gexpcore.evaluation.metrics import fold_metrics, rowwise_pearson
from gexpcore.models.base import Context
from gexpcore.models.windows import WindowIndex


def test_rowwise_pearson_equals_numpy():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(20, 9)), rng.normal(size=(20, 9))
    expected = [np.corrcoef(a[i], b[i])[0, 1] for i in range(20)]
    np.testing.assert_allclose(rowwise_pearson(a, b), expected, rtol=1e-10)


def test_mean_predictor_scores_zero_and_a_perfect_one_scores_one():
    rng = np.random.default_rng(1)
    obs = rng.normal(size=(8, 30))  # samples × genes
    train_mean = rng.normal(size=30)
    mean = fold_metrics(np.tile(train_mean, (8, 1)), obs, train_mean)
    assert mean["pearson_across_samples"] == 0 and mean["pearson_deviation"] == 0
    perfect = fold_metrics(obs, obs, train_mean)
    assert perfect["pearson_across_samples"] == pytest.approx(1)
    assert perfect["pearson_deviation"] == pytest.approx(1) and perfect["mse_log1p"] == 0


@pytest.mark.parametrize(
    "groups, expected",
    [
        (["a"] * 4 + ["b"] * 4 + ["c"] * 4, "leave-one-group-out over 3 groups"),
        ([f"g{i % 9}" for i in range(36)], "group 5-fold over 9 groups"),
        (["a"] * 6 + ["b"] * 6, "shuffled 4-fold (fewer than 3 groups)"),
        ([""] * 20, "shuffled 5-fold (fewer than 3 groups)"),
    ],
)
def test_folds(groups, expected):
    fold_of, how = make_folds(groups, 5, seed=0)
    assert how == expected
    sizes = np.bincount(fold_of)
    assert sizes.min() >= 3 and len(sizes) >= 2
    if how.startswith(("leave-one-group", "group")):
        for g in set(groups):
            assert len({fold_of[i] for i, x in enumerate(groups) if x == g}) == 1


def test_too_few_samples_for_cross_validation():
    with pytest.raises(GexpError, match="at least 6 samples"):
        make_folds(["a"] * 5, 5, 0)


def test_windows_are_centred_on_the_tss_and_oriented_by_strand():
    bins = pd.DataFrame(
        {
            "chrom": ["chr1"] * 50,
            "start": np.arange(50) * 100,
            "end": np.arange(1, 51) * 100,
            "bin": np.arange(50),
        }
    )
    genes = pd.DataFrame(
        {
            "gene_id": ["P", "M", "E"],
            "chrom": "chr1",
            "tss": [2050, 2050, 120],
            "strand": ["+", "-", "+"],
        }
    )
    index = WindowIndex(genes, bins, window=500)  # 5 bins each side
    assert index.width == 11 and list(index.centre) == [20, 20, 1]
    x = sp.csr_matrix(([1.0, 2.0], ([0, 0], [17, 0])), shape=(1, 50))  # 3 bins left of 20
    windows = index.matrix(x).toarray()
    assert windows[0].tolist() == [0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0]  # + strand: upstream left
    assert windows[1].tolist() == [0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0]  # − strand: mirrored
    assert windows[2].tolist() == [0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0]  # clipped at the start


def test_interrupted_training_resumes_to_the_same_weights(tmp_path):
    """Checkpoints every epoch; a run killed at epoch 4 and restarted ends where an
    uninterrupted run ends, because each epoch's shuffle is seeded by the epoch."""
    import gexpcore.models.neural as neural

    def run(folder, stop_after=None):
        torch.manual_seed(0)
        net = torch.nn.Linear(3, 1)
        data = torch.randn(64, 3), torch.randn(64)
        calls = {"n": 0}

        def batches(generator):
            order = torch.randperm(64, generator=generator)
            for i in range(0, 64, 16):
                yield data[0][order[i : i + 16]], data[1][order[i : i + 16]]

        def loss_of(net, batch, device):
            calls["n"] += 1
            if stop_after is not None and calls["n"] > stop_after * 4:
                raise KeyboardInterrupt
            return ((net(batch[0]).squeeze(1) - batch[1]) ** 2).mean()

        ctx = Context(
            genes=pd.DataFrame(),
            bins=pd.DataFrame(),
            checkpoint=folder / "c.ckpt",
            checkpoint_every=0,
        )
        return neural.train("tiny", net, batches, loss_of, 10, ctx, key="k", lr=0.05), ctx

    whole, ctx_whole = run(tmp_path / "a")
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path / "b", stop_after=4)
    saved = torch.load(tmp_path / "b" / "c.ckpt", weights_only=False)
    assert saved["epoch"] == 4
    resumed, ctx_resumed = run(tmp_path / "b")
    assert ctx_resumed.history == ctx_whole.history
    for a, b in zip(whole.state_dict().values(), resumed.state_dict().values(), strict=True):
        assert torch.equal(a, b)


# --- gene activity, mixtures and the models built on them -----------------------------------


def _bins(n: int, size: int, chrom: str = "chr1") -> pd.DataFrame:
    start = np.arange(n) * size
    return pd.DataFrame({"chrom": chrom, "start": start, "end": start + size, "bin": np.arange(n)})


def test_gene_activity_weights_follow_archr_s_gene_model():
    """Each bin's weight, recomputed bin by bin from the formula: exp(-d/5 kb) + exp(-1)
    within 100 kb of the gene body (d = 0 inside it), nothing beyond."""
    from gexpcore.models.gene_activity import gene_activity_weights

    bins = _bins(400, 1000)  # 400 kb
    genes = pd.DataFrame(  # GTF coordinates: 1-based, inclusive
        {"gene_id": ["A", "B"], "chrom": "chr1", "start": [150_001, 10_001],
         "end": [160_000, 10_001], "strand": ["+", "-"], "tss": [150_000, 10_000]}
    )  # fmt: skip
    weights = gene_activity_weights(genes, bins).toarray()
    for g, (lo, hi) in enumerate([(150_000, 160_000), (10_000, 10_001)]):
        for b in range(len(bins)):
            centre = b * 1000 + 500
            d = max(0, lo - centre, centre - hi)
            expected = np.exp(-d / 5000) + np.exp(-1) if d <= 100_000 else 0.0
            assert weights[b, g] == pytest.approx(expected, rel=1e-6, abs=1e-12), (g, b)


def test_pooled_windows_average_each_distance_class():
    from gexpcore.models.gene_activity import pooled_windows, pooling_matrix

    bins = _bins(300, 1000)
    genes = pd.DataFrame({"gene_id": ["P"], "chrom": "chr1", "tss": [150_500], "strand": ["+"]})
    index = WindowIndex(genes, bins, window=100_000)
    pooling = pooling_matrix(index, 1000)
    x = sp.csr_matrix(np.arange(300, dtype=np.float32)[None, :])
    pooled = pooled_windows(x, index, pooling)[0, 0]
    assert pooled.shape == (15,)
    assert pooled[0] == 150  # the TSS bin
    upstream = [(1, 2), (2, 3), (3, 5), (5, 10), (10, 20), (20, 50), (50, 101)]
    for k, (lo, hi) in enumerate(upstream):
        assert pooled[1 + k] == pytest.approx(np.mean([150 - d for d in range(lo, hi)]))
        assert pooled[8 + k] == pytest.approx(np.mean([150 + d for d in range(lo, hi)]))


def test_a_mixture_of_training_profiles_is_recovered():
    from gexpcore.models.mixture import _mixture

    rng = np.random.default_rng(1)
    profiles = rng.gamma(2.0, 1.0, size=(5, 400))
    target = 0.3 * profiles[1] + 0.7 * profiles[3]
    weights = _mixture(profiles @ profiles.T, profiles @ target)
    np.testing.assert_allclose(weights, [0, 0.3, 0, 0.7, 0], atol=0.02)
    assert (weights >= 0).all() and weights.sum() == pytest.approx(1.0)


def test_gene_score_is_a_least_squares_line_per_gene():
    from gexpcore.models import create
    from gexpcore.models.gene_activity import gene_activity, gene_activity_weights

    rng = np.random.default_rng(2)
    bins = _bins(300, 1000)
    genes = pd.DataFrame(
        {"gene_id": ["A", "B", "C"], "chrom": "chr1", "start": [50_001, 150_001, 250_001],
         "end": [52_000, 150_001, 251_000], "strand": ["+", "-", "+"],
         "tss": [50_000, 150_000, 250_000]}
    )  # fmt: skip
    x = sp.csr_matrix(rng.gamma(1.0, 1.0, size=(8, 300)) * (rng.random((8, 300)) < 0.2))
    y = rng.normal(size=(8, 3))
    model = create("gene_score")
    ctx = Context(genes=genes, bins=bins)
    model.fit(x[:6], y[:6], ctx)
    score = gene_activity(x, gene_activity_weights(genes, bins))
    for g in range(3):
        slope, intercept = np.polyfit(score[:6, g], y[:6, g], 1)
        np.testing.assert_allclose(
            model.predict(x[6:], ctx)[:, g], intercept + slope * score[6:, g], rtol=1e-6
        )
