"""`gexp predict`: expression for a sample that has ATAC-seq only.

The peaks (or BAM) go through the same binning as the training data: the model
folder keeps the bins and the peak mode it was trained with. A sample whose peaks
lie on no chromosome of the model's bins (another assembly, another naming that
cannot be harmonised) or outside its region is refused, naming both sides.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ..errors import GexpError
from ..files import atomic_write, reading, require_file
from ..models.base import Context, accessibility_digest, accessibility_features
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


def predict(
    model_dir: str | Path,
    atac: str | Path,
    outdir: str | Path,
    model_name: str | None = None,
    sample: str | None = None,
) -> Path:
    model_dir, atac, outdir = Path(model_dir), require_file(atac, "ATAC-seq input"), Path(outdir)
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
    values = _binned(atac, model_dir, info, len(bins))
    if values.empty or not (values["value"] > 0).any():
        raise GexpError(
            f"{atac}: no accessibility in any of the model's bins (chromosomes "
            f"{', '.join(info['chromosomes'][:5])}); wrong genome or region?"
        )
    x = sp.csr_matrix(
        (
            values["value"].to_numpy(np.float32),
            (np.zeros(len(values), dtype=int), values["bin"].to_numpy()),
        ),
        shape=(1, len(bins)),
    )
    _warn_if_trained_on(x, atac, info)
    model = load_model(model_dir / name, digests)
    ctx = Context(genes=genes, bins=bins, device="cpu", window=info.get("window", 100_000))
    log1p = model.predict(accessibility_features(x), ctx)[0]
    sample = sample or atac.name.split(".")[0]
    table = pd.DataFrame(
        {
            "gene_id": genes["gene_id"],
            "gene_name": genes["gene_name"],
            "predicted_log1p_tpm": log1p,
            "predicted_tpm": np.expm1(log1p).clip(0),
        }
    )
    out = outdir / f"{sample}.predicted_tpm.tsv"
    with atomic_write(out) as fh:
        table.to_csv(fh, sep="\t", index=False, float_format="%.6g")
    log.info("predict: %s with %s → %s (%d genes)", atac.name, name, out, len(table))
    return out


# -- the command line: `gexp predict` ----------------------------------------------------------


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, type=Path, help="model/ folder from `gexp train`")
    p.add_argument(
        "--atac",
        required=True,
        type=Path,
        help="peaks (BED/narrowPeak), ATAC BAM, or a `gexp peak-bins` .tsv.gz",
    )
    p.add_argument(
        "--outdir", required=True, type=Path, help="folder for <sample>.predicted_tpm.tsv"
    )
    p.add_argument(
        "--model-name", help="which model (default: the default model of model_info.json, ensemble)"
    )
    p.add_argument("--sample", help="sample id for the output name (default: from the file)")


def run(a: argparse.Namespace) -> None:
    print(predict(a.model, a.atac, a.outdir, model_name=a.model_name, sample=a.sample))
