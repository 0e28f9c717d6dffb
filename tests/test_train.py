"""`gexp train`, `gexp predict` and `gexp report` on a real run of the small cohort."""

from __future__ import annotations

import gzip
import json
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch
from conftest import ROOT, assert_user_error, run_gexp
from gexpcore.errors import GexpError
from gexpcore.models import NAMES, create
from gexpcore.models.base import Context, accessibility_features
from gexpcore.models.store import load_model
from gexpcore.steps.dataset import load_dataset
from gexpcore.steps.train import DEFAULT_MODELS, train_models

FAST = {"seed_mlp": 20}
KEYS = {
    "pearson_across_samples",
    "pearson_deviation",
    "pearson_across_genes",
    "mse_log1p",
    "n_samples",
    "n_genes",
    "n_folds",
    "cv",
    "folds",
}


def test_metrics_for_every_model(run_result):
    metrics = json.loads((run_result / "model" / "metrics.json").read_text())
    assert list(metrics) == list(NAMES)
    for name, m in metrics.items():
        assert KEYS <= set(m), name
        assert len(m["folds"]) == m["n_folds"] >= 2 and m["n_samples"] == 6
        for fold in m["folds"]:
            assert {"pearson_across_samples", "pearson_deviation", "mse_log1p"} <= set(fold)
    assert metrics["mean"]["pearson_across_samples"] == 0
    assert metrics["mean"]["pearson_deviation"] == 0
    assert metrics["mean"]["cv"].startswith("group")  # the samplesheet's groups were used


def test_metrics_carry_fold_spread_and_the_default_vs_the_best_baseline(run_result):
    """Issue 16, item 3: every model's fold scores and standard error; the default model's
    paired comparison with the best baseline; the report's headline says which way it went."""
    metrics = json.loads((run_result / "model" / "metrics.json").read_text())
    for m in metrics.values():
        folds = [f["pearson_across_samples"] for f in m["folds"]]
        assert m["pearson_across_samples_folds"] == folds
        assert m["pearson_across_samples_se"] == pytest.approx(
            np.std(folds, ddof=1) / np.sqrt(len(folds))
        )
    default = json.loads((run_result / "model" / "model_info.json").read_text())["default_model"]
    vs = metrics[default]["vs_best_baseline"]
    assert vs["baseline"] in {"ridge", "nearest", "gene_score"} and vs["baseline"] != default
    assert vs["ci95"][0] <= vs["difference"] <= vs["ci95"][1]
    assert len(vs["fold_differences"]) == metrics[default]["n_folds"]
    words = {"better": "It beat the best baseline", "worse": "It did worse than the baseline",
             "not distinguishable": "It is not distinguishable from"}[vs["verdict"]]  # fmt: skip
    page = (run_result / "report.html").read_text()
    assert f"Default model <strong>{default}</strong>" in page and words in page


def test_every_prediction_comes_from_a_model_that_never_saw_the_sample(run_result):
    """Refit ridge on each fold's training samples by hand: the same held-out predictions."""
    x, expression, genes, samples, bins = load_dataset(run_result / "dataset")
    x = accessibility_features(x)
    y = np.log1p(expression.to_numpy().T)
    table = pd.read_csv(run_result / "model" / "predictions.tsv", sep="\t")
    ridge = table[table["model"] == "ridge"]
    assert len(ridge) == y.size and not ridge.duplicated(["sample", "gene_id"]).any()
    fold_of = ridge.groupby("sample")["fold"].first().reindex(samples["sample"]).to_numpy()
    for k in np.unique(fold_of):
        tr, te = fold_of != k, fold_of == k
        model = create("ridge")
        ctx = Context(genes=genes, bins=bins, seed=int(k))
        model.fit(x[tr], y[tr], ctx)
        expected = model.predict(x[te], ctx)
        got = (
            ridge[ridge["fold"] == k]
            .pivot(index="sample", columns="gene_id", values="predicted_log1p")
            .reindex(index=samples["sample"][te], columns=genes["gene_id"])
            .to_numpy()
        )
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)


def test_training_is_deterministic_on_the_cpu(run_result, tmp_path):
    a = train_models(run_result / "dataset", tmp_path / "a", epochs=FAST, seed=3)
    b = train_models(run_result / "dataset", tmp_path / "b", epochs=FAST, seed=3)
    assert json.dumps(a) == json.dumps(b)
    assert (tmp_path / "a" / "predictions.tsv").read_bytes() == (
        tmp_path / "b" / "predictions.tsv"
    ).read_bytes()


def test_interrupted_training_resumes_finished_folds(run_result, tmp_path, monkeypatch, caplog):
    from gexpcore.models.mixture import MixtureWindowModel

    original, calls = MixtureWindowModel.fit, {"n": 0}

    def failing_fit(self, x, y, ctx):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt  # the user pressed ^C during the second fold
        return original(self, x, y, ctx)

    monkeypatch.setattr(MixtureWindowModel, "fit", failing_fit)
    with pytest.raises(KeyboardInterrupt):
        train_models(
            run_result / "dataset", tmp_path / "m", ["mean", "mixture_window"], epochs=FAST
        )
    assert (tmp_path / "m" / "work" / "mixture_window" / "fold0.npz").is_file()
    assert not (tmp_path / "m" / "metrics.json").exists()
    monkeypatch.setattr(MixtureWindowModel, "fit", original)
    caplog.set_level("INFO", logger="gexp")
    resumed = train_models(
        run_result / "dataset", tmp_path / "m", ["mean", "mixture_window"], epochs=FAST
    )
    assert "mixture_window fold 0: finished in an earlier run, reused" in caplog.text
    whole = train_models(
        run_result / "dataset", tmp_path / "w", ["mean", "mixture_window"], epochs=FAST
    )
    assert json.dumps(resumed) == json.dumps(whole)
    assert not (tmp_path / "m" / "work").exists()


def test_threads_are_respected(run_result, tmp_path):
    train_models(run_result / "dataset", tmp_path / "m", ["seed_mlp"], threads=1, epochs=FAST)
    assert torch.get_num_threads() == 1


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA device is present")
def test_cuda_requested_without_a_gpu(run_result, tmp_path):
    proc = run_gexp(
        "train", "--dataset", run_result / "dataset", "--outdir", tmp_path / "m", "--device", "cuda"
    )
    assert_user_error(proc, "no CUDA device is available")
    assert not (tmp_path / "m" / "metrics.json").exists()


def test_dense_models_refuse_what_does_not_fit(run_result, monkeypatch):
    import gexpcore.models.base as base

    x, expression, genes, samples, bins = load_dataset(run_result / "dataset")
    monkeypatch.setattr(base, "DENSE_LIMIT", 100)
    for name in ("ridge", "seed_mlp"):
        with pytest.raises(GexpError, match="use mixture_window, which trains genome-wide"):
            create(name).fit(x, np.zeros((x.shape[0], len(genes))), Context(genes, bins))


def test_mixture_window_never_builds_a_samples_by_bins_matrix(run_result, monkeypatch):
    x, expression, genes, samples, bins = load_dataset(run_result / "dataset")
    x = accessibility_features(x)
    y = np.log1p(expression.to_numpy().T)
    n_bins = x.shape[1]
    for cls in (sp.csr_matrix, sp.csc_matrix, sp.coo_matrix):
        real = cls.toarray

        def guarded(self, *args, _real=real, **kw):
            assert self.shape[1] != n_bins, "a dense samples × bins matrix was built"
            return _real(self, *args, **kw)

        monkeypatch.setattr(cls, "toarray", guarded)
    model = create("mixture_window")
    ctx = Context(genes, bins, epochs=FAST)
    model.fit(x, y, ctx)
    assert model.predict(x[:2], ctx).shape == (2, len(genes))


def test_the_default_set_trains_locus_net_and_leaves_out_seed_mlp(run_result):
    """locus_net trains by default, as an ensemble member at a prior weight of zero (issue
    24); seed_mlp stays opt-in (issue 17)."""
    assert list(DEFAULT_MODELS) == [m for m in NAMES if m != "seed_mlp"]
    metrics = json.loads((run_result / "model" / "metrics.json").read_text())
    assert "locus_net" in metrics["ensemble"]["weights"]


def test_without_a_torch_model_training_never_imports_torch(run_result, tmp_path):
    """Training that needs no torch must not pay for importing it (seconds), and a GPU asked
    for by --device cuda would stay idle: that is said (here no GPU exists, so it is refused)."""
    code = (
        "import sys; from gexpcore.steps.train import train_models; "
        f"m = train_models({str(run_result / 'dataset')!r}, {str(tmp_path / 'm')!r}, "
        "['ridge', 'mixture_window', 'ensemble']); print(list(m), 'torch' in sys.modules)"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT / "bin", capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split("] ")[1].strip() == "False", proc.stdout
    info = json.loads((tmp_path / "m" / "model_info.json").read_text())
    assert "torch" not in info["versions"] and info["default_model"] == "ensemble"


def test_a_gpu_for_models_without_torch_is_named_idle(caplog, monkeypatch):
    import torch
    from gexpcore.steps import train

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    caplog.set_level("WARNING", logger="gexp")
    assert train._torch_setup(["ridge", "ensemble"], "cuda") == "cpu"
    assert "--device cuda: none of the models trained (ridge, ensemble) uses torch" in caplog.text
    assert "GPU stays idle" in caplog.text


def test_saved_models_hold_what_prediction_needs(run_result):
    model_dir = run_result / "model"
    info = json.loads((model_dir / "model_info.json").read_text())
    assert info["models"] == list(NAMES)
    assert info["peak_mode"] == "signal" and info["window"] == 100_000
    assert {"gexp", "torch", "numpy"} <= set(info["versions"])
    for name in info["models"]:
        assert sorted(p.name for p in (model_dir / name).iterdir()) == ["model.json", "model.npz"]
    assert (model_dir / "bins.bed").read_bytes() == (
        run_result / "dataset" / "bins.bed"
    ).read_bytes()


# --- predict -------------------------------------------------------------------------------


def test_predict_from_peaks_equals_the_model_on_the_training_matrix(run_result, sim, tmp_path):
    proc = run_gexp(
        "predict",
        "--model",
        run_result / "model",
        "--atac",
        sim / "peaks" / "S002.narrowPeak.gz",
        "--outdir",
        tmp_path,
        "--model-name",
        "mixture_window",
    )
    assert proc.returncode == 0, proc.stderr
    table = pd.read_csv(tmp_path / "S002.predicted_tpm.tsv", sep="\t")
    assert list(table.columns) == [
        "gene_id", "gene_name", "predicted_log1p_tpm", "predicted_tpm",
        "lower_tpm", "upper_tpm", "held_out_r",
    ]  # fmt: skip
    x, expression, genes, samples, bins = load_dataset(run_result / "dataset")
    row = accessibility_features(x[samples["sample"].tolist().index("S002")])
    model = load_model(run_result / "model" / "mixture_window")
    expected = model.predict(row, Context(genes, bins))[0]
    np.testing.assert_allclose(table["predicted_log1p_tpm"], expected, rtol=1e-5, atol=1e-5)
    assert (table["predicted_tpm"] >= 0).all()


def test_predict_refuses_peaks_of_another_genome(run_result, tmp_path):
    peaks = tmp_path / "other.bed"
    peaks.write_text("scaffold_12\t100\t600\tp\t50\t.\t4.0\t3\t2\t250\n")
    proc = run_gexp(
        "predict", "--model", run_result / "model", "--atac", peaks, "--outdir", tmp_path / "out"
    )
    assert_user_error(proc, "the model and other.bed disagree on the genome", "chr1")
    assert not (tmp_path / "out").exists()


def test_predict_refuses_accessibility_binned_differently(run_result, tmp_path):
    binned = tmp_path / "X.tsv.gz"
    binned.write_bytes(gzip.compress(b"bin\tvalue\n5\t1\n9999999\t2\n"))
    proc = run_gexp(
        "predict", "--model", run_result / "model", "--atac", binned, "--outdir", tmp_path / "out"
    )
    assert_user_error(proc, "disagree on bins")


def test_predict_unknown_model_name(run_result, sim, tmp_path):
    proc = run_gexp(
        "predict",
        "--model",
        run_result / "model",
        "--atac",
        sim / "peaks" / "S001.narrowPeak.gz",
        "--outdir",
        tmp_path,
        "--model-name",
        "transformer",
    )
    assert_user_error(proc, "has no model 'transformer'")


# --- report --------------------------------------------------------------------------------


def test_report_page_is_self_contained(run_result):
    page = (run_result / "report.html").read_text()
    assert 'id="qc"' in page and 'id="metrics"' in page
    for name in NAMES:
        assert f"<td>{name}</td>" in page
    for sample in ("S001", "S006"):
        assert f"<td>{sample}</td>" in page
    assert page.count('src="data:image/png;base64,') >= 4
    assert "http://" not in page and "https://" not in page and "<script" not in page
    qc = pd.read_csv(run_result / "multiqc" / "gexp_qc_mqc.tsv", sep="\t", comment="#")
    assert (qc["pseudoaligned_pct"] > 50).all() and (qc["reads"] > 1000).all()
    assert (qc["peaks"] > 0).all() and (qc["open_bins"] > 0).all()
    for reads in qc["reads"]:
        assert f"<td>{reads}</td>" in page  # the page shows the same QC


def test_multiqc_custom_content(run_result):
    qc = (run_result / "multiqc" / "gexp_qc_mqc.tsv").read_text().splitlines()
    assert qc[0] == "# id: 'gexp_qc'" and "# plot_type: 'table'" in qc[:5]
    table = pd.read_csv(run_result / "multiqc" / "gexp_qc_mqc.tsv", sep="\t", comment="#")
    assert len(table) == 6 and "pseudoaligned_pct" in table
    metrics = pd.read_csv(run_result / "multiqc" / "gexp_metrics_mqc.tsv", sep="\t", comment="#")
    assert metrics["model"].tolist() == list(NAMES)


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium (make test installs it)")
def test_report_renders_in_headless_chromium(run_result, tmp_path):
    """The browser shows the tables and decodes every plot (offline: no network at all)."""
    import matplotlib.image

    url = (run_result / "report.html").as_uri()
    profile = ["--user-data-dir=" + str(tmp_path / "profile")]
    dom = subprocess.run(
        [CHROMIUM, *FLAGS, *profile, "--dump-dom", url], capture_output=True, text=True, timeout=120
    )
    assert 'id="metrics"' in dom.stdout and dom.stdout.count("<img") >= 4
    shot = tmp_path / "page.png"
    subprocess.run(
        [CHROMIUM, *FLAGS, *profile, f"--screenshot={shot}", "--window-size=1280,4000", url],
        capture_output=True,
        timeout=120,
    )
    pixels = matplotlib.image.imread(shot)[..., :3]
    bar_blue = np.all(np.abs(pixels - np.array([0x4C, 0x72, 0xB0]) / 255) < 0.03, axis=-1)
    assert bar_blue.sum() > 500, "the bar chart's colour is not on the rendered page"
    assert pixels.std() > 0.05


def test_default_models_leave_out_dense_ones_that_cannot_fit(
    run_result, tmp_path, monkeypatch, caplog
):
    import gexpcore.models.base as base

    monkeypatch.setattr(base, "DENSE_LIMIT", 1000)
    caplog.set_level("WARNING", logger="gexp")
    metrics = train_models(run_result / "dataset", tmp_path / "m", epochs=FAST)
    assert list(metrics) == [m for m in DEFAULT_MODELS if m != "ridge"]
    assert "ridge left out" in caplog.text
    assert metrics["ensemble"]["weights"].keys() == {
        "mixture_window",
        "nearest",
        "gene_score",
        "locus_net",
    }
    with pytest.raises(GexpError, match="use mixture_window"):
        train_models(run_result / "dataset", tmp_path / "n", ["ridge"], epochs=FAST)
    # seed_mlp's size is its network, not the input matrix
    with pytest.raises(GexpError, match="× 500 first-layer weights, with their gradients"):
        train_models(run_result / "dataset", tmp_path / "o", ["seed_mlp"], epochs=FAST)


def test_report_splits_per_gene_r_by_expression_level(run_result):
    """Thirds of genes by mean log1p expression, recomputed here with numpy alone."""
    from gexpcore.steps.report import per_gene_by_level

    per_gene = pd.read_csv(run_result / "model" / "per_gene_r.tsv", sep="\t", index_col=0)
    expression = pd.read_csv(run_result / "dataset" / "expression.tsv", sep="\t", index_col=0)
    level = np.log1p(expression.to_numpy()).mean(axis=1)
    rank = np.empty(len(level), dtype=int)
    rank[np.argsort(level, kind="stable")] = np.arange(len(level))
    third_of = 3 * rank // len(level)  # 0 low, 1 mid, 2 high
    table = per_gene_by_level(run_result).set_index("model")
    assert "mean" not in table.index and len(table.columns) == 3
    for name in table.index:
        r = per_gene[name].to_numpy()
        for column, k in zip(table.columns, range(3), strict=True):
            genes = third_of == k
            expected = np.nanmedian(r[genes]) if np.isfinite(r[genes]).any() else np.nan
            np.testing.assert_allclose(table.loc[name, column], expected, equal_nan=True)
    page = (run_result / "report.html").read_text()
    assert 'id="levels"' in page and "vs best baseline" in page
    assert "learned (default)" in page


def test_gene_summaries_are_built_once_per_training(run_result, tmp_path, monkeypatch):
    """Issue 16, item 4: gene activity weights and window indexes depend on genes and bins
    only; one training builds each once for every fold and final fit of every model."""
    import gexpcore.models.baselines as baselines
    import gexpcore.models.mixture as mixture

    calls = []
    original = mixture.gene_activity_weights

    def counted(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(mixture, "gene_activity_weights", counted)
    monkeypatch.setattr(baselines, "gene_activity_weights", counted)
    train_models(run_result / "dataset", tmp_path / "m", models=["gene_score", "mixture_window"])
    assert len(calls) == 1
    ours = json.loads((tmp_path / "m" / "metrics.json").read_text())
    theirs = json.loads((run_result / "model" / "metrics.json").read_text())
    for name in ("gene_score", "mixture_window"):  # the same numbers as built per fit
        assert ours[name]["pearson_across_samples"] == theirs[name]["pearson_across_samples"]


def test_predict_warns_when_the_sample_was_in_training(run_result, sim, tmp_path):
    """Issue 17: a training sample's prediction is not held-out, whatever its file is called."""
    peaks = sim / "peaks" / "S001.narrowPeak.gz"
    renamed = tmp_path / "unknown.narrowPeak.gz"
    shutil.copyfile(peaks, renamed)
    proc = run_gexp("predict", "--model", run_result / "model", "--atac", renamed,
                    "--outdir", tmp_path / "a")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "trained on this sample" in proc.stderr and "training sample S001" in proc.stderr
    # One peak fewer: a sample the model has not seen, and no warning.
    lines = gzip.decompress(peaks.read_bytes()).decode().splitlines(keepends=True)
    new = tmp_path / "new.narrowPeak"
    new.write_text("".join(lines[1:]))
    proc = run_gexp("predict", "--model", run_result / "model", "--atac", new,
                    "--outdir", tmp_path / "b")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "trained on this sample" not in proc.stderr


def test_early_stopping_records_the_validation_curve_beside_the_training_one(run_result, tmp_path):
    train_models(run_result / "dataset", tmp_path / "m", ["seed_mlp"], epochs=FAST,
                 early_stopping=True)  # fmt: skip
    history = json.loads((tmp_path / "m" / "history.json").read_text())["seed_mlp"]
    # A validation split needs 5 training samples: the final fit (6) has one, the folds (3) not.
    assert len(history["final validation"]) == len(history["final"]) > 0
    assert "fold0 validation" not in history
    plain = tmp_path / "plain"
    train_models(run_result / "dataset", plain, ["seed_mlp"], epochs=FAST)
    assert not any(
        "validation" in run for run in json.loads((plain / "history.json").read_text())["seed_mlp"]
    )


def test_the_sample_table_never_shows_none_or_nan(run_result):
    from gexpcore.steps.report import _shown

    row = {"sample": "B", "group": "", "reads": None, "pseudoaligned_pct": None}
    missing = pd.DataFrame([{**row, "peaks": float("nan"), "open_bins": 3, "genes_detected": 30}])
    row = _shown(missing).iloc[0]
    assert row["RNA-seq fragments"] == row["pseudoaligned (%)"] == row["ATAC-seq peaks"] == "–"
    assert row["open bins (count)"] == "3"
    page = (run_result / "report.html").read_text()
    table = page[page.index('id="qc"') : page.index("</table>", page.index('id="qc"'))]
    assert "None" not in table and "nan" not in table.lower() and "pseudoaligned (%)" in table
