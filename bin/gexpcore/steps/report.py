"""`gexp report`: one self-contained HTML page (plots embedded) and MultiQC custom content.

The page holds the per-sample QC (reads and pseudoalignment rate from kallisto's
run_info.json, peaks, open bins, genes detected), the held-out metrics of every
model beside the best baseline's, per-gene r split by expression level (a model
that only predicts highly expressed genes well shows it there), observed against
predicted expression, the distribution of per-gene correlations and the training
curves. It opens offline: every image is a data URI
and there is no script or stylesheet from elsewhere.
"""

from __future__ import annotations

import argparse
import base64
import html
import io
import json
import logging
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from .. import __version__
from ..errors import GexpError
from ..files import atomic_write
from ..models import BASELINES
from .dataset import PSEUDOBULK_COUNTS

log = logging.getLogger("gexp")

METRIC_COLUMNS = [
    ("pearson_across_samples", "r across samples (per fold)"),
    ("pearson_deviation", "r of deviations"),
    ("pearson_across_genes", "r across genes"),
    ("mse_log1p", "MSE log1p"),
    ("pearson_across_samples_pooled", "r across samples (pooled)"),
    ("median_gene_r_pooled", "median per-gene r (pooled)"),
    ("skill_over_mean", "skill over mean"),
]
# The baselines a learned model is compared with in the metrics table (the mean scores 0
# by construction).
COMPARED = tuple(name for name in BASELINES if name != "mean")
LEVELS = ("low", "mid", "high")
# The QC table as the page shows it: names with units (qc.json and MultiQC keep the keys).
QC_HEADERS = {
    "reads": "RNA-seq fragments",
    "pseudoaligned_pct": "pseudoaligned (%)",
    "peaks": "ATAC-seq peaks",
    "open_bins": "open bins (count)",
    "genes_detected": "genes detected (TPM > 0)",
    # samples.tsv's pseudobulk columns, shown only when the dataset has them
    "cells": "cells",
    "umis": "RNA UMIs",
    "fragments": "ATAC fragments",
}
# The pseudobulk columns of samples.tsv, in the order the QC table shows them after the group
# (a bulk sample in a pseudobulk dataset has none of them: "–").
PSEUDOBULK_IDS = ("donor", "library")
DONOR_CV = (
    "<p>Every model was also scored leave-one-donor-out: trained on the other donors' "
    "samples, all cell types included, and tested on the held-out donor's. It measures "
    "predicting a new donor of cell types seen in training, so it is optimistic about new "
    "cell types, which the grouped cross-validation above holds out whole; the default "
    "model and the comparisons come from the grouped one.</p>"
)
INTRO = (
    "<p>gexp predicts each gene's expression (log1p TPM) in a sample from that sample's "
    "chromatin accessibility (ATAC-seq) alone. Every number below is <em>held-out</em>: each "
    "sample was predicted by models trained without it (and, when the samplesheet has "
    "groups, without any sample of its group), so the scores say how well a model does on "
    "samples it has never seen.</p>"
)
METRIC_LEGEND = (
    "<dl>"
    "<dt>r across samples (per fold)</dt><dd>the headline: each gene's Pearson r between "
    "predicted and observed over the held-out samples of one fold, averaged over genes, then "
    "over folds. Predicting each gene's training mean scores exactly 0.</dd>"
    "<dt>± SE (folds)</dt><dd>standard error of that score over folds: differences smaller "
    "than about twice it are noise.</dd>"
    "<dt>r of deviations</dt><dd>per-gene r between predicted and observed differences from "
    "the gene's training mean, all folds pooled (also credits predicting differences between "
    "groups).</dd>"
    "<dt>r across genes</dt><dd>per sample, r over genes: high for every model, the mean "
    "included, because genes differ far more from each other than samples do.</dd>"
    "<dt>MSE log1p</dt><dd>mean squared error of log1p TPM.</dd>"
    "<dt>r across samples (pooled)</dt><dd>the headline computed over all folds at once. "
    "Baselines go below 0 here by construction: a fold's training mean moves away from its "
    "held-out samples, so pooling folds anti-correlates it with them.</dd>"
    "<dt>median per-gene r (pooled)</dt><dd>the median over genes of the pooled r; negative "
    "for the mean for the same reason.</dd>"
    "<dt>skill over mean</dt><dd>1 − squared error of the model / squared error of the "
    "training mean: above 0 when the model's errors are smaller.</dd>"
    "<dt>vs best baseline</dt><dd>a learned model's r across samples minus that of the best "
    "of ridge, nearest and gene_score.</dd>"
    "</dl>"
)


def _count_peaks(path: str) -> int | None:
    from ..files import read_text

    try:
        if not path or not Path(path).is_file():
            return None
        return sum(
            1
            for ln in read_text(path, "peaks").splitlines()
            if ln.strip() and not ln.startswith(("#", "track", "browser"))
        )
    except (GexpError, UnicodeDecodeError):
        return None  # a BAM, or unreadable: the QC column stays empty


def _samplesheet_peaks(run: Path) -> dict[str, str]:
    """sample → peak file, as the run's samplesheet names it (localised if it was), and each
    pseudobulk sample's from its library's samplesheet (paths relative to it)."""
    found = {}
    for name in ("samplesheet.local.csv", "samplesheet.valid.csv"):
        path = run / "pipeline_info" / name
        if path.is_file():
            table = pd.read_csv(path, dtype=str, keep_default_na=False)
            found = dict(zip(table["sample"], table["atac"], strict=True))
            break
    for sheet in sorted((run / "pseudobulk").glob("*.samplesheet.csv")):
        table = pd.read_csv(sheet, dtype=str, keep_default_na=False)
        found |= {
            s: str(sheet.parent / a) for s, a in zip(table["sample"], table["atac"], strict=True)
        }
    return found


def sample_qc(run: Path, peaks: dict[str, str] | None = None) -> pd.DataFrame:
    """One row per sample. Peaks are counted in `peaks` (sample → file) when given: a
    pipeline task sees only its staged files, not the host paths the samplesheet names."""
    qc_path = run / "dataset" / "qc.json"
    if not qc_path.is_file():
        raise GexpError(f"{run}: no dataset/qc.json; run `gexp run` (or `gexp dataset`) first")
    qc = json.loads(qc_path.read_text())
    groups, extra = {}, pd.DataFrame()
    if (run / "dataset" / "samples.tsv").is_file():
        table = pd.read_csv(
            run / "dataset" / "samples.tsv", sep="\t", dtype=str, keep_default_na=False
        )
        groups = dict(zip(table["sample"], table["group"], strict=True))
        # donor, library, cells, UMIs, fragments: columns only when samples.tsv has them
        columns = [c for c in (*PSEUDOBULK_IDS, *PSEUDOBULK_COUNTS) if c in table.columns]
        extra = table.set_index("sample")[columns]
        for column in PSEUDOBULK_COUNTS:
            if column in extra:
                extra[column] = pd.to_numeric(extra[column], errors="coerce").astype("Int64")
    sheet = dict(peaks) if peaks is not None else _samplesheet_peaks(run)
    rows = []
    for sample, values in qc["samples"].items():
        info_path = run / "kallisto" / sample / "run_info.json"
        info = json.loads(info_path.read_text()) if info_path.is_file() else {}
        rows.append(
            {
                "sample": sample,
                "group": groups.get(sample, ""),
                **{c: extra.at[sample, c] if sample in extra.index else None for c in extra},
                "reads": info.get("n_processed"),
                "pseudoaligned_pct": info.get("p_pseudoaligned"),
                "peaks": _count_peaks(sheet.get(sample, "")),
                "open_bins": values.get("open_bins"),
                "genes_detected": values.get("genes_detected"),
            }
        )
    return pd.DataFrame(rows)


def _shown(qc: pd.DataFrame) -> pd.DataFrame:
    """The QC table as the page shows it: headers with units, counts as whole numbers, and
    "–" where a value does not apply (a BAM has no peaks; given TPM, no kallisto run)."""

    def text(column: str, value) -> str:
        if value is None or pd.isna(value) or (column in PSEUDOBULK_IDS and value == ""):
            return "–"
        if column == "pseudoaligned_pct":
            return f"{float(value):.1f}"
        return f"{int(value)}" if column in QC_HEADERS else str(value)

    shown = pd.DataFrame({c: [text(c, v) for v in qc[c]] for c in qc.columns})
    return shown.rename(columns=QC_HEADERS)


def _png(fig) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def _plots(model_dir: Path, metrics: dict) -> list[tuple[str, str]]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plots = []
    names = list(metrics)
    fig, ax = plt.subplots(figsize=(6.5, 3.4))
    values = [metrics[m]["pearson_across_samples"] for m in names]
    errors = [metrics[m].get("pearson_across_samples_se", 0.0) for m in names]
    bars = ax.bar(names, values, yerr=np.nan_to_num(errors), capsize=3, color="#4c72b0")
    ax.bar_label(bars, labels=[f"{v:.2f}" for v in values], padding=2, fontsize=8)
    ax.axhline(0, color="black", lw=0.8)
    ax.set_xlabel("model")
    ax.set_ylabel("held-out r across samples")
    ax.set_title("Held-out performance by model (bars: ± SE over folds)")
    ax.tick_params(axis="x", labelrotation=30)
    for label in ax.get_xticklabels():
        label.set_horizontalalignment("right")
    ax.margins(y=0.15)
    plots.append(("Held-out r across samples, by model", _png(fig)))

    predictions = pd.read_csv(model_dir / "predictions.tsv", sep="\t")
    centred = predictions.groupby(["model", "gene_id"])["observed_log1p"].transform("mean")
    predictions = predictions.assign(
        obs=predictions["observed_log1p"] - centred, pred=predictions["predicted_log1p"] - centred
    )
    # One scale for every panel, from the observed deviations (a wild model must not squeeze the
    # others); points beyond it are drawn on the edge.
    low, high = np.nanpercentile(predictions["obs"], [0.5, 99.5]) if len(predictions) else (0, 0)
    limit = 1.1 * max(abs(low), abs(high), 0.1)
    fig, axes = plt.subplots(1, len(names), figsize=(3 * len(names), 3.3), squeeze=False)
    rng = np.random.default_rng(0)
    for ax, name in zip(axes[0], names, strict=True):
        part = predictions[predictions["model"] == name]
        if len(part) > 20_000:
            part = part.iloc[rng.choice(len(part), 20_000, replace=False)]
        ax.scatter(
            part["obs"].clip(-limit, limit), part["pred"].clip(-limit, limit),
            s=2, alpha=0.3, color="#55a868",
        )  # fmt: skip
        ax.plot([-limit, limit], [-limit, limit], color="grey", lw=0.8, ls="--")
        ax.set_xlim(-limit, limit)
        ax.set_ylim(-limit, limit)
        ax.set_title(name)
        ax.set_xlabel("observed − gene mean")
    axes[0][0].set_ylabel("predicted − gene mean")
    fig.suptitle(
        "Held-out predictions: deviations from each gene's mean (log1p TPM; dashed: perfect; "
        "same scale in every panel, points beyond it on the edge)",
        y=1.04,
    )
    plots.append(("Observed against predicted (held-out)", _png(fig)))

    per_gene = pd.read_csv(model_dir / "per_gene_r.tsv", sep="\t", index_col=0)
    fig, ax = plt.subplots(figsize=(6, 3.2))
    for name in names:
        if name in per_gene and name != "mean":
            ax.hist(per_gene[name].dropna(), bins=30, histtype="step", lw=1.5, label=name)
    ax.set_xlabel("per-gene r across held-out samples")
    ax.set_ylabel("genes")
    if ax.get_legend_handles_labels()[0]:  # no histogram when only the mean was trained
        ax.legend(fontsize=8)
    plots.append(("Distribution of per-gene r", _png(fig)))

    history_path = model_dir / "history.json"
    history = json.loads(history_path.read_text()) if history_path.is_file() else {}
    curves = {m: h for m, h in history.items() if any(h.values())}
    if curves:
        fig, axes = plt.subplots(1, len(curves), figsize=(4 * len(curves), 3), squeeze=False)
        for ax, (name, runs) in zip(axes[0], curves.items(), strict=True):
            for run_name, losses in runs.items():
                if losses:
                    dashed = run_name.endswith("validation")  # --early-stopping's held-out split
                    ax.plot(range(1, len(losses) + 1), losses, label=run_name, lw=1,
                            ls="--" if dashed else "-")  # fmt: skip
            ax.set_title(name)
            ax.set_xlabel("epoch")
            ax.set_yscale("log")
        axes[0][0].set_ylabel("loss (MSE; dashed: validation split)")
        axes[0][-1].legend(fontsize=7)
        plots.append(("Training curves", _png(fig)))
    return plots


def _table(frame: pd.DataFrame, table_id: str) -> str:
    return frame.to_html(
        index=False, table_id=table_id, na_rep="–", float_format="%.3f", border=0, classes="data"
    )


def default_model(model_dir: Path) -> tuple[str | None, str | None]:
    """The default model and how it was chosen (model_info.json), or Nones before training."""
    path = model_dir / "model_info.json"
    info = json.loads(path.read_text()) if path.is_file() else {}
    return info.get("default_model"), info.get("default_chosen_by")


def predict_weights(model_dir: Path) -> str:
    """Which ensemble weights `gexp predict` uses, the rule that chose them, and the held-out
    score that belongs to that rule (model_info.json's `ensemble`), as one paragraph."""
    path = model_dir / "model_info.json"
    used = (json.loads(path.read_text()) if path.is_file() else {}).get("ensemble")
    if not used:
        return ""
    weights = ", ".join(f"{html.escape(m)} {w:.6f}" for m, w in used["weights"].items())
    return (
        f"<p>The saved ensemble, which <code>gexp predict</code> uses, weighs its members "
        f"{weights} ({html.escape(used['rule'])}). Its held-out r across samples, "
        f"{used['held_out_pearson_across_samples']:.3f}, was scored with "
        f"{html.escape(used['held_out_by'])}.</p>"
    )


def metrics_table(metrics: dict, default: str | None) -> pd.DataFrame:
    """One row per model: its kind, the held-out metrics, and its margin over the best baseline."""
    compared = [metrics[m]["pearson_across_samples"] for m in COMPARED if m in metrics]
    best_baseline = max(compared) if compared else float("nan")
    rows = []
    for name, values in metrics.items():
        kind = "baseline" if name in BASELINES else "learned"
        rows.append(
            {
                "model": name,
                "kind": kind + (" (default)" if name == default else ""),
                **{label: values.get(key, float("nan")) for key, label in METRIC_COLUMNS[:1]},
                "± SE (folds)": values.get("pearson_across_samples_se", float("nan")),
                **{label: values.get(key, float("nan")) for key, label in METRIC_COLUMNS[1:]},
                "vs best baseline": values["pearson_across_samples"] - best_baseline
                if kind == "learned"
                else float("nan"),
            }
        )
    return pd.DataFrame(rows)


def donor_table(metrics: dict) -> pd.DataFrame | None:
    """model, r across samples ± SE and folds of leave-one-donor-out, or None without it."""
    rows = [
        {
            "model": name,
            "r across samples (per fold)": donor["pearson_across_samples"],
            "± SE (folds)": donor.get("pearson_across_samples_se", float("nan")),
            "folds": donor["n_folds"],
        }
        for name, values in metrics.items()
        if (donor := values.get("leave_one_donor_out"))
    ]
    return pd.DataFrame(rows) if rows else None


def per_gene_by_level(run: Path) -> pd.DataFrame | None:
    """Models × expression thirds: the median per-gene r among low, mid and high genes."""
    per_gene_path = run / "model" / "per_gene_r.tsv"
    expression_path = run / "dataset" / "expression.tsv"
    if not per_gene_path.is_file() or not expression_path.is_file():
        return None
    per_gene = pd.read_csv(per_gene_path, sep="\t", index_col=0)
    expression = pd.read_csv(expression_path, sep="\t", index_col=0)
    level = np.log1p(expression).mean(axis=1).reindex(per_gene.index).to_numpy()
    # Lowest first; sizes differ by at most one gene.
    thirds = np.array_split(np.argsort(level, kind="stable"), len(LEVELS))
    rows = []
    for name in per_gene.columns:
        if name == "mean":
            continue  # 0 for every gene by construction
        row = {"model": name}
        for third, genes in zip(LEVELS, thirds, strict=True):
            values = per_gene[name].to_numpy()[genes]
            values = values[np.isfinite(values)]
            row[f"{third} (n={len(genes)})"] = float(np.median(values)) if len(values) else np.nan
        rows.append(row)
    return pd.DataFrame(rows)


def write_multiqc(run: Path, qc: pd.DataFrame, metrics: dict | None) -> None:
    """Custom-content files that a MultiQC run over the output folder picks up."""
    what = "Reads, pseudoalignment, peaks, open bins and genes per sample"
    if any(c in qc.columns for c in PSEUDOBULK_COUNTS):
        what = "Donor, library, cells, RNA UMIs, ATAC fragments, " + what[0].lower() + what[1:]
    header = (
        f"# id: 'gexp_qc'\n# section_name: 'gexp sample QC'\n# description: '{what}'\n"
        "# plot_type: 'table'\n"
    )
    with atomic_write(run / "multiqc" / "gexp_qc_mqc.tsv") as fh:
        fh.write(header)
        qc.drop(columns="group").to_csv(fh, sep="\t", index=False)
    if metrics:
        header = (
            "# id: 'gexp_metrics'\n# section_name: 'gexp held-out metrics'\n"
            "# description: 'Out-of-fold metrics per model (log1p TPM)'\n"
            "# plot_type: 'table'\n"
        )
        table = pd.DataFrame(
            [
                {"model": m, **{k: v.get(k, float("nan")) for k, _ in METRIC_COLUMNS}}
                for m, v in metrics.items()
            ]
        )
        with atomic_write(run / "multiqc" / "gexp_metrics_mqc.tsv") as fh:
            fh.write(header)
            table.to_csv(fh, sep="\t", index=False, float_format="%.4f")


SEVERAL_GROUPS = (
    " Each fold holds out at least two whole groups (cell types): with one per fold the "
    "held-out samples would differ only by donor and pseudo-replicate, and r across samples "
    "would say nothing about predicting a new cell type."
)

CHOSEN = {
    "fixed before training": (
        "The default was fixed before training (the ensemble of mixture_window, ridge and "
        "nearest at a third each, with gene_score and locus_net, when trained, at zero; "
        "nested cross-validation inside each training fold may move the weights, shrunk "
        "back towards those where its evidence is weak, and they stay there where it cannot "
        "run in every fold), so its held-out score is not flattered by the choice."
    ),
    "best held-out score": (
        "The default is the model with the best held-out score, so that score is somewhat "
        "optimistic: the same folds chose it."
    ),
}


def headline(metrics: dict, default: str | None, chosen_by: str | None = None) -> str:
    """One plain sentence: did the default beat the best baseline on this cohort, and how sure."""
    if default not in metrics:
        return ""
    ours = metrics[default]
    vs = ours.get("vs_best_baseline")
    se = ours.get("pearson_across_samples_se", float("nan"))
    head = (
        f"Default model <strong>{html.escape(default)}</strong>: r across samples "
        f"{ours['pearson_across_samples']:.3f} ± {se:.3f} (mean ± standard error over folds)."
    )
    if not vs:
        return f"<p>{head}</p>"
    base = html.escape(vs["baseline"])
    low, high = vs["ci95"]
    words = {
        "better": f"It beat the best baseline, {base}",
        "worse": f"It did worse than the baseline {base}",
        "not distinguishable": f"It is not distinguishable from {base}",
    }.get(vs["verdict"], f"Compared with {base}")
    folds = ", ".join(f"{d:+.3f}" for d in vs["fold_differences"])
    return (
        f'<p class="headline">{head} {words}: per-gene difference in r {vs["difference"]:+.3f}, '
        f"95 % interval [{low:+.3f}, {high:+.3f}] (bootstrap over folds and genes; by fold: "
        f"{folds}). {CHOSEN.get(chosen_by or '', CHOSEN['best held-out score'])}</p>"
    )


RELIABLE_R = 0.5  # held-out r from which the report calls a gene's prediction reliable
TOP_GENES = 5


def predicted_section(run: Path, model_dir: Path) -> str:
    """The samples with ATAC-seq only: how like the training samples they are, how well the
    intervals covered held-out samples, and their genes furthest from the training mean."""
    folder = run / "predictions"
    if not (folder / "similarity.tsv").is_file():
        return ""
    similarity = pd.read_csv(folder / "similarity.tsv", sep="\t")
    table = pd.read_csv(folder / "predicted_tpm.tsv", sep="\t", dtype={"gene_id": str})
    info = json.loads((model_dir / "model_info.json").read_text())
    name = similarity["model"].iloc[0]
    interval = info.get("intervals", {}).get(name, {})
    outside = similarity.loc[similarity["outside_training"].astype(bool), "sample"].tolist()
    parts = [
        "<h2>Predicted samples</h2>",
        f"<p>{len(similarity)} sample(s) with ATAC-seq only, predicted by "
        f"{html.escape(str(name))} after training (predictions/). Each one's accessibility "
        "correlation with its nearest training sample is set against the lowest any held-out "
        "sample had in cross-validation; below it, the predictions lie outside what the "
        "cross-validation measured."
        + (f" <strong>Outside: {html.escape(', '.join(outside))}.</strong>" if outside else "")
        + "</p>",
        _table(similarity, "predicted_similarity"),
    ]
    if interval:
        by_fold = ", ".join(f"{c:.0%}" for c in interval["coverage_by_fold"])
        parts.append(
            f"<p>Each gene's {interval['level']:.0%} interval ({html.escape(interval['method'])}) "
            f"covered {interval['coverage']:.1%} of held-out observations on this run's own "
            f"folds ({by_fold}), each fold's intervals built from the other folds.</p>"
        )
    for library, uri in library_heatmaps(run, table):
        parts.append(
            f"<h3>Library {html.escape(library)} (scATAC-seq only)</h3><p>Predicted expression "
            f"(log1p TPM, each gene centred and scaled across cell types) of the "
            f"{HEATMAP_GENES} reliable genes (held-out r ≥ {RELIABLE_R}) that vary most "
            "between this library's cell types, the samples of a cell type averaged.</p>"
            f'<img alt="cell types by genes, library {html.escape(library)}" src="{uri}">'
        )
    top = top_genes(run, table, similarity["sample"].tolist())
    if top is not None:
        parts.append(
            f"<p>Among the genes whose held-out r is at least {RELIABLE_R}, the {TOP_GENES} "
            "predicted furthest above and below their training mean (log1p TPM difference):"
            "</p>" + _table(top, "predicted_top_genes")
        )
    return "".join(parts)


HEATMAP_GENES = 30


def library_heatmaps(run: Path, table: pd.DataFrame) -> list[tuple[str, str]]:
    """(library, PNG) for each single-cell library whose samples were all predicted (a
    scATAC-only library): cell types × its most variable reliable genes."""
    found = []
    for path in sorted((run / "pseudobulk").glob("*.samples.tsv")):
        samples = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
        if samples.empty or not set(samples["sample"]) <= set(table.columns):
            continue
        if "held_out_r" not in table.columns:
            continue
        reliable = table[table["held_out_r"] >= RELIABLE_R]
        if reliable.empty:
            continue
        values = np.log1p(reliable.set_index("gene_name")[samples["sample"].tolist()])
        by_type = values.T.groupby(samples["group"].to_numpy()).mean()  # cell types × genes
        spread = by_type.std(axis=0)
        genes = spread[spread > 0].sort_values(ascending=False, kind="stable").index
        by_type = by_type[genes[:HEATMAP_GENES]]
        if by_type.shape[1] == 0:
            continue
        found.append((path.name.split(".")[0], _heatmap(by_type)))
    return found


def _heatmap(by_type: pd.DataFrame) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    z = (by_type - by_type.mean(axis=0)) / by_type.std(axis=0).replace(0, 1)
    fig, ax = plt.subplots(figsize=(max(4, 0.28 * z.shape[1] + 2), 0.4 * z.shape[0] + 1.5))
    image = ax.imshow(z.to_numpy(), aspect="auto", cmap="RdBu_r", vmin=-2, vmax=2)
    ax.set_xticks(range(z.shape[1]), [str(g) for g in z.columns], rotation=90, fontsize=7)
    ax.set_yticks(range(z.shape[0]), [str(t) for t in z.index], fontsize=8)
    fig.colorbar(image, ax=ax, label="z (across cell types)")
    return _png(fig)


def top_genes(run: Path, table: pd.DataFrame, samples: list[str]) -> pd.DataFrame | None:
    expression = run / "dataset" / "expression.tsv"
    if "held_out_r" not in table.columns or not expression.is_file():
        return None
    mean = np.log1p(pd.read_csv(expression, sep="\t", index_col=0)).mean(axis=1)
    reliable = table[table["held_out_r"] >= RELIABLE_R]
    if reliable.empty:
        return None
    change = np.log1p(reliable[samples]).sub(mean.reindex(reliable["gene_id"]).to_numpy(), axis=0)
    names = reliable["gene_name"].fillna(reliable["gene_id"]).to_numpy()
    rows = []
    for sample in samples:
        values = change[sample].to_numpy()
        order = np.argsort(values, kind="stable")
        rows.append(
            {
                "sample": sample,
                "most above the training mean": _genes(
                    names, values, [i for i in order[::-1][:TOP_GENES] if values[i] > 0]
                ),
                "most below": _genes(
                    names, values, [i for i in order[:TOP_GENES] if values[i] < 0]
                ),
            }
        )
    return pd.DataFrame(rows)


def _genes(names: np.ndarray, values: np.ndarray, idx: list) -> str:
    return ", ".join(f"{names[i]} ({values[i]:+.2f})" for i in idx) or "–"


def write_report(
    run: str | Path, out: str | Path | None = None, peaks: dict[str, str] | None = None
) -> Path:
    run = Path(run)
    out = Path(out) if out else run / "report.html"
    qc = sample_qc(run, peaks)
    model_dir = run / "model"
    metrics = None
    if (model_dir / "metrics.json").is_file():
        metrics = json.loads((model_dir / "metrics.json").read_text())
    sections = [INTRO, f"<h2>Samples</h2>{_table(_shown(qc), 'qc')}"]
    if metrics:
        default, chosen_by = default_model(model_dir)
        shown = metrics.get(default) or next(iter(metrics.values()))
        table = metrics_table(metrics, default)
        sections.append(
            "<h2>Held-out metrics</h2>"
            + headline(metrics, default, chosen_by)
            + predict_weights(model_dir)
            + f"<p>{shown['n_samples']} samples, {shown['n_genes']} genes. Cross-validation: "
            f"{html.escape(shown['cv'])} ({shown['n_folds']} folds)."
            + (SEVERAL_GROUPS if "groups per fold" in shown["cv"] else "")
            + " Every prediction comes from a model that never saw the sample; the columns are "
            "explained below.</p>" + _table(table, "metrics") + METRIC_LEGEND
        )
        donors = donor_table(metrics)
        if donors is not None:
            sections.append("<h3>Leave-one-donor-out</h3>" + DONOR_CV + _table(donors, "donor_cv"))
        levels = per_gene_by_level(run)
        if levels is not None:
            sections.append(
                "<h2>Per-gene r by expression level</h2><p>Median per-gene r across held-out "
                "samples, genes split into thirds by their mean expression (log1p TPM over all "
                "samples).</p>" + _table(levels, "levels")
            )
        for title, uri in _plots(model_dir, metrics):
            sections.append(
                f'<h2>{html.escape(title)}</h2><img alt="{html.escape(title)}" src="{uri}">'
            )
        predicted = predicted_section(run, model_dir)
        if predicted:
            sections.append(predicted)
    else:
        sections.append("<p>No trained models yet (run <code>gexp train</code>).</p>")
    write_multiqc(run, qc, metrics)
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>gexp report</title>
<style>
body {{ font-family: sans-serif; margin: 2em; max-width: 1200px; color: #222; }}
table.data {{ border-collapse: collapse; margin: 1em 0; font-size: 0.9em; }}
table.data th, table.data td {{ padding: 0.3em 0.8em; border-bottom: 1px solid #ddd; }}
table.data th {{ background: #f3f3f3; text-align: left; }}
img {{ max-width: 100%; }}
dt {{ font-weight: bold; margin-top: 0.4em; }}
dd {{ margin-left: 1.5em; }}
</style></head><body>
<h1>gexp report</h1>
<p>{html.escape(str(run.resolve()))} · gexp {__version__} ·
{datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}</p>
{"".join(sections)}
</body></html>
"""
    with atomic_write(out) as fh:
        fh.write(page)
    log.info("report: %s", out)
    return out


# -- the command line: `gexp report` -----------------------------------------------------------


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--run", required=True, type=Path, help="a `gexp run` output folder")
    p.add_argument("--out", type=Path, help="default: RUN/report.html")
    p.add_argument(
        "--peaks",
        nargs="*",
        metavar="SAMPLE=FILE",
        help="each sample's ATAC-seq peaks, counted in the QC table "
        "(default: the files RUN/pipeline_info/samplesheet.local.csv names)",
    )


def run(a: argparse.Namespace) -> None:
    peaks = None
    if a.peaks is not None:
        pairs = [item.partition("=") for item in a.peaks]
        bad = [
            item for item, (_, eq, path) in zip(a.peaks, pairs, strict=True) if not eq or not path
        ]
        if bad:
            raise GexpError(f"--peaks takes SAMPLE=FILE, got '{bad[0]}'")
        peaks = {sample: path for sample, _, path in pairs}
    print(write_report(a.run, a.out, peaks))
