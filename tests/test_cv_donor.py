"""Pseudobulk cross-validation: several whole cell types per fold, and leave-one-donor-out.

With one cell type held out per fold, the held-out samples of a fold differ only by donor
and pseudo-replicate, so `pearson_across_samples` (per gene, within a fold) measures
nothing about predicting a new cell type. Pseudobulk datasets (samples.tsv names a
library) therefore hold out at least 2 groups per fold; with donors, every model is also
scored leave-one-donor-out, reported beside the grouped CV.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from gexpcore.evaluation.cv import donor_folds, make_folds
from gexpcore.evaluation.metrics import fold_metrics
from gexpcore.models import create
from gexpcore.models.base import Context, accessibility_features
from gexpcore.steps.dataset import load_dataset
from gexpcore.steps.report import write_report
from gexpcore.steps.train import train_models

TYPES, DONORS, REPLICATES, GENES, BINS_PER_GENE = 6, 2, 2, 30, 10


def _dataset(run: Path, pseudobulk: bool = True, seed: int = 0) -> Path:
    """A run folder with dataset/ of TYPES × DONORS × REPLICATES samples: each cell type opens
    its own bins around each gene's TSS, and expression follows the gene's open bins."""
    rng = np.random.default_rng(seed)
    ds = run / "dataset"
    ds.mkdir(parents=True)
    n_bins = GENES * BINS_PER_GENE
    bins = pd.DataFrame(
        {"chrom": "chr1", "start": np.arange(n_bins) * 1000, "end": np.arange(1, n_bins + 1) * 1000}
    )
    bins["index"] = np.arange(n_bins)
    bins.to_csv(ds / "bins.bed", sep="\t", header=False, index=False)
    tss = np.arange(GENES) * BINS_PER_GENE * 1000 + 5500
    genes = pd.DataFrame(
        {
            "gene_id": [f"G{g:03d}" for g in range(GENES)],
            "gene_name": [f"g{g}" for g in range(GENES)],
            "gene_type": "protein_coding",
            "chrom": "chr1",
            "start": tss - 500,
            "end": tss + 2000,
            "strand": "+",
            "tss": tss,
        }
    )
    genes.to_csv(ds / "genes.tsv", sep="\t", index=False)
    type_profile = rng.uniform(0, 3, size=(TYPES, n_bins)) * (rng.random((TYPES, n_bins)) < 0.5)
    rows, names, acc, expr = [], [], [], []
    for t in range(TYPES):
        for d in range(DONORS):
            for r in range(REPLICATES):
                name = f"T{t}_D{d}_r{r}"
                a = type_profile[t] * rng.uniform(0.7, 1.3, n_bins)
                local = a.reshape(GENES, BINS_PER_GENE).sum(axis=1)
                acc.append(a)
                expr.append(np.expm1(0.4 * local + rng.normal(0, 0.2, GENES)).clip(0) + 0.5)
                names.append(name)
                row = {"sample": name, "group": f"type{t}"}
                if pseudobulk:
                    row.update(
                        donor=f"donor{d}",
                        library=f"lib{d}",
                        cells=str(100 + t),
                        umis=str(5000 * (t + 1)),
                        fragments=str(9000 * (r + 1)),
                    )
                rows.append(row)
    sp.save_npz(ds / "accessibility.npz", sp.csr_matrix(np.array(acc, dtype=np.float32)))
    expression = pd.DataFrame(np.array(expr).T, index=genes["gene_id"], columns=names)
    expression.rename_axis("gene_id").to_csv(ds / "expression.tsv", sep="\t")
    pd.DataFrame(rows).to_csv(ds / "samples.tsv", sep="\t", index=False)
    qc = {"samples": {s: {"open_bins": int((a > 0).sum()), "genes_detected": GENES}
                      for s, a in zip(names, acc, strict=True)}}  # fmt: skip
    (ds / "qc.json").write_text(json.dumps(qc))
    return ds


# -- folds ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "groups, k, expected",
    [
        ([f"g{i % 6}" for i in range(24)], 5, "group 3-fold over 6 groups (≥ 2 groups per fold)"),
        ([f"g{i % 4}" for i in range(12)], 5, "group 2-fold over 4 groups (≥ 2 groups per fold)"),
        ([f"g{i % 9}" for i in range(36)], 5, "group 4-fold over 9 groups (≥ 2 groups per fold)"),
        ([f"g{i % 9}" for i in range(36)], 2, "group 2-fold over 9 groups (≥ 2 groups per fold)"),
        # one large group and many small ones: balancing samples alone would leave the large
        # group alone in its fold
        (["big"] * 12 + [f"s{i % 5}" for i in range(10)], 5,
         "group 3-fold over 6 groups (≥ 2 groups per fold)"),
    ],
)  # fmt: skip
def test_pseudobulk_folds_hold_several_whole_groups(groups, k, expected):
    fold_of, how = make_folds(groups, k, seed=0, min_groups_per_fold=2)
    assert how == expected
    assert np.bincount(fold_of).min() >= 3
    for g in set(groups):  # never split: no replicate or donor of a held-out type trains
        assert len({fold_of[i] for i, x in enumerate(groups) if x == g}) == 1, g
    for f in np.unique(fold_of):
        assert len({g for g, x in zip(groups, fold_of, strict=True) if x == f}) >= 2


def test_below_four_groups_the_usual_rule_applies():
    groups = ["a"] * 4 + ["b"] * 4 + ["c"] * 4
    fold_of, how = make_folds(groups, 5, 0, min_groups_per_fold=2)
    assert how == "leave-one-group-out over 3 groups"
    np.testing.assert_array_equal(fold_of, make_folds(groups, 5, 0)[0])
    # the default is today's behaviour: leave-one-group-out over 4 groups
    assert make_folds([f"g{i % 4}" for i in range(12)], 5, 0)[1] == (
        "leave-one-group-out over 4 groups"
    )


def test_donor_folds_need_two_donors_each_with_three_samples():
    fold_of, how = donor_folds(["b", "a", "b", "a", "a", "b"])
    assert how == "leave-one-donor-out over 2 donors"
    assert fold_of.tolist() == [1, 0, 1, 0, 0, 1]
    assert donor_folds(["a"] * 6)[0] is None
    assert donor_folds(["a"] * 3 + ["b"] * 2 + [""])[1] == "1 sample(s) have no donor"
    assert "donor b has 2 sample(s)" in donor_folds(["a"] * 4 + ["b"] * 2)[1]


# -- training -----------------------------------------------------------------------------------


def _types_per_fold(model: Path) -> dict[int, set[str]]:
    table = pd.read_csv(model / "predictions.tsv", sep="\t")
    folds = table.groupby("sample")["fold"].first()
    return {int(k): {s.split("_")[0] for s in folds.index[folds == k]} for k in folds.unique()}


def test_pseudobulk_folds_hold_several_types_and_each_donor_is_scored(tmp_path):
    ds = _dataset(tmp_path / "run")
    model = tmp_path / "run" / "model"
    metrics = train_models(ds, model, ["mean", "ridge"])
    info = json.loads((model / "model_info.json").read_text())
    assert info["groups_per_fold"] == 2  # samples.tsv names libraries: pseudobulk
    per_fold = _types_per_fold(model)
    assert len(per_fold) == 3 and all(len(types) == 2 for types in per_fold.values())
    assert set.union(*per_fold.values()) == {f"T{t}" for t in range(TYPES)}  # none split
    x, expression, genes, samples, bins = load_dataset(ds)
    x, y = accessibility_features(x), np.log1p(expression.to_numpy().T)
    donors = samples["donor"].to_numpy()
    for m in metrics.values():
        assert m["cv"] == "group 3-fold over 6 groups (≥ 2 groups per fold)" == info["cv"]
        lodo = m["leave_one_donor_out"]
        assert lodo["cv"] == "leave-one-donor-out over 2 donors" and lodo["n_folds"] == 2
        assert [f["donor"] for f in lodo["folds"]] == ["donor0", "donor1"]
        summary = {"pearson_across_samples", "pearson_deviation", "skill_over_mean"}
        assert summary | {"pearson_across_samples_se", "pearson_across_samples_folds"} <= set(lodo)
    # Each donor fold, recomputed by hand from a model fitted on the other donor's samples only:
    # the same scores, so no sample of the held-out donor was in training.
    for fold in metrics["ridge"]["leave_one_donor_out"]["folds"]:
        te = donors == fold["donor"]
        tr = ~te
        assert fold["n_samples"] == te.sum() == 12
        ridge = create("ridge")
        ctx = Context(genes=genes, bins=bins, seed=fold["fold"], groups=tuple(samples["group"][tr]))
        ridge.fit(x[tr], y[tr], ctx)
        expected = fold_metrics(ridge.predict(x[te], ctx), y[te], y[tr].mean(axis=0))
        for key in ("pearson_across_samples", "pearson_deviation", "mse_log1p"):
            assert fold[key] == pytest.approx(expected[key], rel=1e-6), key
    for fold in metrics["mean"]["leave_one_donor_out"]["folds"]:
        te = donors == fold["donor"]
        assert fold["mse_log1p"] == pytest.approx(np.mean((y[te] - y[~te].mean(axis=0)) ** 2))
    # Secondary: the headline score stays the grouped CV's (a new donor of seen types is easier).
    ridge = metrics["ridge"]
    assert ridge["leave_one_donor_out"]["pearson_across_samples"] > ridge["pearson_across_samples"]
    assert len(ridge["folds"]) == 3 and info["default_model"] == "ridge"


def test_the_ensemble_is_scored_leave_one_donor_out_on_its_members_donor_folds(tmp_path):
    ds = _dataset(tmp_path / "run")
    metrics = train_models(ds, tmp_path / "m", ["ensemble"])
    for name in ("mixture_window", "ridge", "nearest", "ensemble"):
        assert len(metrics[name]["leave_one_donor_out"]["folds"]) == 2
    for fold in metrics["ensemble"]["leave_one_donor_out"]["folds"]:
        assert set(fold["weights"]) == {"mixture_window", "ridge", "nearest"}
        assert fold["inner_cv"]["folds"] >= 2  # nested CV inside the other donor's samples


def test_groups_per_fold_can_be_set(tmp_path):
    ds = _dataset(tmp_path / "run")
    metrics = train_models(ds, tmp_path / "m", ["mean"], groups_per_fold=1)
    assert metrics["mean"]["cv"] == "group 5-fold over 6 groups"
    info = json.loads((tmp_path / "m" / "model_info.json").read_text())
    assert info["groups_per_fold"] == 1


def test_a_bulk_dataset_keeps_its_folds_and_has_no_donor_cv(tmp_path):
    ds = _dataset(tmp_path / "run", pseudobulk=False)
    assert list(pd.read_csv(ds / "samples.tsv", sep="\t").columns) == ["sample", "group"]
    metrics = train_models(ds, tmp_path / "m", ["mean", "ridge"])
    groups = pd.read_csv(ds / "samples.tsv", sep="\t")["group"].tolist()
    for m in metrics.values():
        assert m["cv"] == make_folds(groups, 5, 0)[1] == "group 5-fold over 6 groups"
        assert "leave_one_donor_out" not in m
    assert json.loads((tmp_path / "m" / "model_info.json").read_text())["groups_per_fold"] == 1


def test_donor_cv_is_skipped_with_a_reason_when_a_sample_has_no_donor(tmp_path, caplog):
    ds = _dataset(tmp_path / "run")
    samples = pd.read_csv(ds / "samples.tsv", sep="\t", dtype=str, keep_default_na=False)
    samples.loc[0, "donor"] = ""
    samples.to_csv(ds / "samples.tsv", sep="\t", index=False)
    caplog.set_level("INFO", logger="gexp")
    metrics = train_models(ds, tmp_path / "m", ["mean"])
    assert "leave_one_donor_out" not in metrics["mean"]
    assert "leave-one-donor-out skipped: 1 sample(s) have no donor" in caplog.text


def test_interrupted_donor_folds_resume_apart_from_the_grouped_ones(tmp_path, monkeypatch, caplog):
    from gexpcore.models.baselines import RidgeModel

    ds = _dataset(tmp_path / "run")
    original, calls = RidgeModel.fit, {"n": 0}

    def failing_fit(self, x, y, ctx):
        calls["n"] += 1
        if calls["n"] == 5:  # 3 grouped folds and donor fold 0 are done
            raise KeyboardInterrupt
        return original(self, x, y, ctx)

    monkeypatch.setattr(RidgeModel, "fit", failing_fit)
    with pytest.raises(KeyboardInterrupt):
        train_models(ds, tmp_path / "m", ["ridge"])
    work = tmp_path / "m" / "work"
    assert sorted(p.name for p in (work / "ridge").glob("*.npz")) == [
        "fold0.npz", "fold1.npz", "fold2.npz"
    ]  # fmt: skip
    assert [p.name for p in (work / "donor" / "ridge").glob("*.npz")] == ["fold0.npz"]
    monkeypatch.setattr(RidgeModel, "fit", original)
    caplog.set_level("INFO", logger="gexp")
    resumed = train_models(ds, tmp_path / "m", ["ridge"])
    assert caplog.text.count("ridge fold 0: finished in an earlier run, reused") == 2
    assert json.dumps(resumed) == json.dumps(train_models(ds, tmp_path / "w", ["ridge"]))


# -- report -------------------------------------------------------------------------------------


def test_the_report_shows_pseudobulk_qc_and_the_donor_table(tmp_path):
    run = tmp_path / "run"
    _dataset(run)
    train_models(run / "dataset", run / "model", ["mean", "ridge"])
    page = write_report(run).read_text()
    for header in ("donor", "library", "cells", "RNA UMIs", "ATAC fragments"):
        assert f"<th>{header}</th>" in page, header
    assert "<td>donor1</td>" in page and "<td>lib0</td>" in page and "<td>10000</td>" in page
    assert "Cross-validation: group 3-fold over 6 groups (≥ 2 groups per fold)" in page
    assert "<h3>Leave-one-donor-out</h3>" in page and 'id="donor_cv"' in page
    donor_table = page.split('id="donor_cv"')[1].split("</table>")[0]
    assert "<td>ridge</td>" in donor_table and "<td>2</td>" in donor_table
    mqc = pd.read_csv(run / "multiqc" / "gexp_qc_mqc.tsv", sep="\t", comment="#")
    assert {"donor", "library", "cells", "umis", "fragments"} <= set(mqc.columns)
    assert mqc["umis"].tolist()[:4] == [5000] * 4


def test_a_bulk_report_keeps_its_qc_table(tmp_path):
    run = tmp_path / "run"
    _dataset(run, pseudobulk=False)
    train_models(run / "dataset", run / "model", ["mean"])
    page = write_report(run).read_text()
    qc = page.split('id="qc"')[1].split("</thead>")[0]
    headers = [h.split("</th>")[0] for h in qc.split("<th>")[1:]]
    assert headers == [
        "sample", "group", "RNA-seq fragments", "pseudoaligned (%)", "ATAC-seq peaks",
        "open bins (count)", "genes detected (TPM &gt; 0)",
    ]  # fmt: skip
    assert "Leave-one-donor-out" not in page
    mqc = (run / "multiqc" / "gexp_qc_mqc.tsv").read_text().splitlines()
    assert (
        mqc[2] == "# description: 'Reads, pseudoalignment, peaks, open bins and genes per sample'"
    )
    assert mqc[4].split("\t") == ["sample", "reads", "pseudoaligned_pct", "peaks", "open_bins",
                                  "genes_detected"]  # fmt: skip
