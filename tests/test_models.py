"""Metrics, folds, windows and the training loop, checked against independent computations."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch
from gexpcore.cv import make_folds
from gexpcore.errors import GexpError
from gexpcore.metrics import fold_metrics, rowwise_pearson
from gexpcore.models.base import Context
from gexpcore.windows import WindowIndex


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
