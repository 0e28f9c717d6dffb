"""locus_net, the network shared by all genes: before training it is the mixture, its
early-stopping samples are whole groups, and on the CPU the same seed gives the same bytes."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")


@pytest.fixture(scope="module")
def data(run_result):
    from gexpcore.models.base import Context, accessibility_features
    from gexpcore.steps.dataset import load_dataset

    x, expression, genes, samples, bins = load_dataset(run_result / "dataset")
    x, y = accessibility_features(x), np.log1p(expression.to_numpy().T)
    groups = tuple(samples["group"])

    def ctx(epochs: int, tr) -> Context:
        return Context(genes=genes, bins=bins, epochs={"locus_net": epochs},
                       groups=tuple(np.array(groups)[tr]))  # fmt: skip

    return x, y, ctx


def test_before_training_it_predicts_the_mixture(data):
    from gexpcore.models import create
    from gexpcore.models.mixture import _mixture

    x, y, ctx = data
    tr, te = np.arange(len(y)) >= 2, np.arange(len(y)) < 2
    model = create("locus_net")
    model.fit(x[tr], y[tr], ctx(0, tr))
    pred = model.predict(x[te], ctx(0, tr))
    gram = model.activity @ model.activity.T
    test_activity = model._activity(x[te], ctx(0, tr))
    mix = np.stack([_mixture(gram, model.activity @ a) for a in test_activity])
    np.testing.assert_allclose(pred, mix @ y[tr], rtol=0, atol=1e-9)


def test_too_few_samples_to_validate_on_keep_the_mixture(data):
    """With 4 training samples none can be held out to show that a correction helps (on the
    progenitor cohort's folds one trained anyway scored -0.34): the mixture alone is kept."""
    from gexpcore.models import create

    x, y, ctx = data
    tr, te = np.arange(len(y)) >= 2, np.arange(len(y)) < 2
    untrained, asked = create("locus_net"), create("locus_net")
    untrained.fit(x[tr], y[tr], ctx(0, tr))
    context = ctx(5, tr)
    asked.fit(x[tr], y[tr], context)
    assert context.history == []  # no epoch ran
    np.testing.assert_array_equal(
        asked.predict(x[te], context), untrained.predict(x[te], ctx(0, tr))
    )


def test_early_stopping_holds_out_whole_groups():
    from gexpcore.models.base import Context
    from gexpcore.models.locus_net import _validation_split

    groups = ("a", "a", "b", "b", "c", "c", "d", "d", "e", "e")
    ctx = Context(genes=None, bins=None, groups=groups, seed=3)
    train, held = _validation_split(len(groups), ctx)
    assert len(held) == 2 and len(train) == 8
    held_groups = {groups[i] for i in held}
    assert not held_groups & {groups[i] for i in train}, "a group on both sides"


def test_the_same_seed_gives_the_same_bytes_on_the_cpu(data):
    from gexpcore.models import create

    x, y, ctx = data
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    tr = np.ones(len(y), dtype=bool)
    runs = []
    for _ in range(2):
        model, context = create("locus_net"), ctx(3, tr)
        model.fit(x, y, context)
        assert context.history, "6 samples: one held out, so the network trains"
        runs.append(model.predict(x, context))
    assert runs[0].tobytes() == runs[1].tobytes()


def test_the_gpu_check_runs_its_cpu_half_and_refuses_without_cuda(run_result, tmp_path):
    """benchmarks/gpu_check.py, prepared for a lent accelerator: here (no GPU) its CPU run
    gives a held-out metric and epoch times, and the script itself says in one line why it
    cannot compare."""
    import subprocess
    import sys

    from conftest import ROOT

    sys.path.insert(0, str(ROOT / "benchmarks"))
    import gpu_check

    row = gpu_check.run(run_result / "dataset", "cpu", 2)
    assert np.isfinite(row["pearson_across_samples"]) and row["epochs"] >= 2
    assert row["per_epoch"] > 0
    if not torch.cuda.is_available():
        proc = subprocess.run(
            [sys.executable, ROOT / "benchmarks" / "gpu_check.py", "--dataset",
             run_result / "dataset"], capture_output=True, text=True,
        )  # fmt: skip
        assert proc.returncode != 0 and "no CUDA device here" in proc.stderr
        assert "Traceback" not in proc.stderr


def test_a_training_samples_pool_leaves_out_its_own_group():
    """A held-out sample's group is never among the training samples: in training, a sample's
    z-scores and mixture come from the other groups only (itself alone when it is the only
    group), checked against a direct computation."""
    from gexpcore.models.locus_net import _grouping, _own_groups, _standardised

    groups = np.array(["a", "a", "b", "c", "c"], dtype=object)
    excluded = _own_groups(groups)
    assert excluded.tolist()[0] == [True, True, False, False, False]
    assert _own_groups(np.array(["a", "a"], dtype=object)).tolist() == [
        [True, False],
        [False, True],
    ]
    rng = np.random.default_rng(0)
    pool = rng.gamma(1.0, size=(3, 5, 7))  # genes × samples × width
    for labels in (groups, np.array(["a"] * 5, dtype=object)):
        left_out = _own_groups(labels)
        z = _standardised(pool, pool, _grouping(labels))
        for i in range(5):
            rest = pool[:, ~left_out[i], :]
            mean, var = rest.mean(axis=1), rest.var(axis=1)
            expected = np.clip((pool[:, i, :] - mean) / np.sqrt(var + 0.01), -5, 5)
            np.testing.assert_allclose(z[:, i, :], expected, rtol=1e-10, atol=1e-12)
