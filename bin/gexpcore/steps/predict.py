"""`gexp predict`: expression for samples that have ATAC-seq only, each gene with its reliability.

The peaks (or BAM) go through the same binning as the training data: the model
folder keeps the bins and the peak mode it was trained with. A sample whose peaks
lie on no chromosome of the model's bins (another assembly, another naming that
cannot be harmonised) or outside its region is refused, naming both sides. The model
is loaded once for all the samples given.

Every row carries the gene's held-out r across samples (the cross-validation's, for the
model used) and an 80 % prediction interval from the out-of-fold residuals; every sample
its accessibility correlation with its nearest training sample, against the lowest any
held-out sample had in cross-validation (evaluation/reliability.py). A sample further out
is flagged in the log and in <sample>.prediction.json. `gexp predictions` merges the
per-sample files into one table (PREDICTIONS).
"""

from __future__ import annotations

import argparse
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ..errors import GexpError
from ..evaluation import reliability
from ..files import atomic_write, reading, require_file
from ..models.base import Context, Model, accessibility_digest, accessibility_features
from ..models.store import check_model_files, load_model
from .bins import read_bins
from .peak_bins import bin_bam, bin_peaks, is_bam, read_peak_bins
from .reference import read_genes

log = logging.getLogger("gexp")


def _binned(atac: Path, model_dir: Path, info: dict, n_bins: int) -> pd.DataFrame:
    if atac.name.endswith(".tsv.gz") and not is_bam(atac):
        values = read_peak_bins(atac)  # already binned by `gexp peak-bins`
        if len(values) and (values["bin"].max() >= n_bins or values["bin"].min() < 0):
            raise GexpError(
                f"{atac}: bin index {values['bin'].max()} is beyond the model's {n_bins} bins; "
                "the model and the accessibility file disagree on bins"
            )
        return values
    bins_path = model_dir / "bins.bed"
    if is_bam(atac):
        return bin_bam(atac, bins_path)
    try:
        return bin_peaks(atac, bins_path, info.get("peak_mode", "signal"))
    except GexpError as exc:
        if "no peak is on a chromosome" not in str(exc):
            raise
        known = info["chromosomes"]
        raise GexpError(
            f"the model and {atac.name} disagree on the genome: the model's bins are on "
            f"{', '.join(known[:5])}{', …' if len(known) > 5 else ''} ({exc})"
        ) from None


def _warn_if_trained_on(x: sp.csr_matrix, atac: Path, info: dict) -> None:
    """A sample the model was trained on gets a prediction that is not held-out: say so."""
    digest = accessibility_digest(x)
    seen = [s for s, d in info.get("training_samples", {}).items() if d == digest]
    if seen:
        log.warning(
            "%s: the model was trained on this sample (its accessibility is that of training "
            "sample %s), so this prediction is not held-out; its held-out prediction is in the "
            "training run's model/predictions.tsv",
            atac.name,
            seen[0],
        )


@dataclass
class Predictor:
    """A model folder, read once: the model, its bins and genes, and its reliability."""

    folder: Path
    info: dict
    name: str
    model: Model
    genes: pd.DataFrame
    bins: pd.DataFrame
    ctx: Context
    held_out_r: np.ndarray | None  # per gene, the cross-validation's (per_gene_r.tsv)
    scales: np.ndarray | None  # per gene residual scale (intervals.tsv)
    training: sp.csr_matrix | None  # the training samples' accessibility (similarity.npz)


def load_predictor(model_dir: str | Path, model_name: str | None = None) -> Predictor:
    model_dir = Path(model_dir)
    info_path = model_dir / "model_info.json"
    if not info_path.is_file():
        raise GexpError(f"{model_dir}: not a model folder (no model_info.json from `gexp train`)")
    with reading(info_path, "model info"):
        info = json.loads(info_path.read_text())
        info["default_model"], info["models"], info["chromosomes"]  # noqa: B018
    digests = info.get("files", {})  # model files' SHA-256, checked before each is read
    check_model_files(model_dir, digests, ["bins.bed", "genes.tsv"])
    name = model_name or info["default_model"]
    if name not in info["models"]:
        raise GexpError(f"{model_dir}: has no model '{name}' (it has {', '.join(info['models'])})")
    bins, genes = read_bins(model_dir / "bins.bed"), read_genes(model_dir / "genes.tsv")
    model = load_model(model_dir / name, digests)
    ctx = Context(genes=genes, bins=bins, device="cpu", window=info.get("window", 100_000))
    held_out_r = _gene_column(model_dir, "per_gene_r.tsv", name, genes, digests)
    scales = _gene_column(model_dir, reliability.INTERVALS, name, genes, digests)
    training = None
    if (model_dir / reliability.SIMILARITY).is_file():
        check_model_files(model_dir, digests, [reliability.SIMILARITY])
        path = model_dir / reliability.SIMILARITY
        with reading(path, "training accessibility"):
            training = reliability.read_training_accessibility(path)
    return Predictor(model_dir, info, name, model, genes, bins, ctx, held_out_r, scales, training)


def _gene_column(folder: Path, file: str, name: str, genes: pd.DataFrame, digests: dict):
    """Model `name`'s column of a per-gene table of the model folder, in the genes' order
    (None for a model folder older than the table)."""
    path = folder / file
    if not path.is_file():
        return None
    check_model_files(folder, digests, [file])
    with reading(path, "per-gene table"):
        table = pd.read_csv(path, sep="\t", index_col=0)
        column = table[name].reindex(genes["gene_id"]).to_numpy(dtype=float)
    return column


def predict_sample(predictor: Predictor, atac: Path, sample: str) -> tuple[pd.DataFrame, dict]:
    """One sample's prediction table and its similarity to the training samples."""
    p = predictor
    atac = require_file(atac, f"sample {sample} ATAC-seq input")
    values = _binned(atac, p.folder, p.info, len(p.bins))
    if values.empty or not (values["value"] > 0).any():
        raise GexpError(
            f"{atac}: no accessibility in any of the model's bins (chromosomes "
            f"{', '.join(p.info['chromosomes'][:5])}); wrong genome or region?"
        )
    x = sp.csr_matrix(
        (
            values["value"].to_numpy(np.float32),
            (np.zeros(len(values), dtype=int), values["bin"].to_numpy()),
        ),
        shape=(1, len(p.bins)),
    )
    _warn_if_trained_on(x, atac, p.info)
    features = accessibility_features(x)
    log1p = p.model.predict(features, p.ctx)[0]
    table = pd.DataFrame(
        {
            "gene_id": p.genes["gene_id"],
            "gene_name": p.genes["gene_name"],
            "predicted_log1p_tpm": log1p,
            "predicted_tpm": np.expm1(log1p).clip(0),
        }
    )
    interval = p.info.get("intervals", {}).get(p.name)
    if p.scales is not None and interval:
        half = interval["quantile"] * p.scales
        table["lower_tpm"] = np.expm1(log1p - half).clip(0)
        table["upper_tpm"] = np.expm1(log1p + half).clip(0)
    if p.held_out_r is not None:
        table["held_out_r"] = p.held_out_r
    return table, _similarity(p, features, sample, interval)


def _similarity(p: Predictor, features: sp.csr_matrix, sample: str, interval) -> dict:
    summary: dict = {"sample": sample, "model": p.name}
    if interval:
        summary["interval"] = {k: interval[k] for k in ("level", "method", "coverage")}
    if p.training is None:
        return summary
    every = reliability.correlations(features, p.training)[0]  # r with each training sample
    r, lowest = float(every.max()), p.info["similarity"]["lowest_held_out"]
    nearest = list(p.info["similarity"]["held_out_nearest_r"])[int(np.argmax(every))]
    summary |= {
        "nearest_training_sample": nearest,
        "nearest_training_r": round(float(r), 4),
        "lowest_held_out_r": lowest,
        "outside_training": bool(r < lowest),
    }
    if r < lowest:
        log.warning(
            "sample %s: its accessibility correlates at most %.3f with a training sample "
            "(%s), below the lowest any held-out sample had in cross-validation (%.3f); its "
            "predictions lie outside what the cross-validation measured",
            sample, r, nearest, lowest,
        )  # fmt: skip
    return summary


def write_sample(table: pd.DataFrame, summary: dict, outdir: Path) -> Path:
    """<sample>.predicted_tpm.tsv and <sample>.prediction.json, each written whole."""
    sample = summary["sample"]
    out = outdir / f"{sample}.predicted_tpm.tsv"
    with atomic_write(out) as fh:
        table.to_csv(fh, sep="\t", index=False, float_format="%.6g")
    with atomic_write(outdir / f"{sample}.prediction.json") as fh:
        json.dump(summary, fh, indent=2)
    return out


def predict(
    model_dir: str | Path,
    atac: str | Path | list,
    outdir: str | Path,
    model_name: str | None = None,
    sample: str | list | None = None,
) -> list[Path]:
    """Predict every ATAC-seq input with one loaded model; the per-sample files' paths."""
    inputs = [Path(a) for a in (atac if isinstance(atac, list) else [atac])]
    names = sample if isinstance(sample, list) else [sample] if sample else []
    if names and len(names) != len(inputs):
        raise GexpError(f"--sample: {len(names)} name(s) for {len(inputs)} --atac input(s)")
    names = names or [a.name.split(".")[0] for a in inputs]
    if len(set(names)) != len(names):
        twice = next(n for n in names if names.count(n) > 1)
        raise GexpError(f"two --atac inputs would both be sample {twice}; name them with --sample")
    for a, n in zip(inputs, names, strict=True):
        require_file(a, f"sample {n} ATAC-seq input")
    predictor = load_predictor(model_dir, model_name)
    written = []
    for a, n in zip(inputs, names, strict=True):
        table, summary = predict_sample(predictor, a, n)
        written.append(write_sample(table, summary, Path(outdir)))
        log.info("predict: %s with %s → %s (%d genes)", a.name, predictor.name, written[-1],
                 len(table))  # fmt: skip
    return written


# -- the command line: `gexp predict` ----------------------------------------------------------


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, type=Path, help="model/ folder from `gexp train`")
    p.add_argument(
        "--atac",
        required=True,
        type=Path,
        nargs="+",
        help="peaks (BED/narrowPeak), ATAC BAM, or a `gexp peak-bins` .tsv.gz; several at once "
        "share one loaded model",
    )
    p.add_argument(
        "--outdir",
        required=True,
        type=Path,
        help="folder for <sample>.predicted_tpm.tsv and <sample>.prediction.json",
    )
    p.add_argument(
        "--model-name", help="which model (default: the default model of model_info.json, ensemble)"
    )
    p.add_argument(
        "--sample", nargs="+", help="sample ids, one per --atac (default: from the file names)"
    )


def run(a: argparse.Namespace) -> None:
    for path in predict(a.model, a.atac, a.outdir, model_name=a.model_name, sample=a.sample):
        print(path)
