"""`gexp predictions`: the predicted samples in one table (PREDICTIONS).

`gexp predict` writes one <sample>.predicted_tpm.tsv and <sample>.prediction.json per sample
(one task per sample under Nextflow); this merges them: predicted_tpm.tsv holds genes ×
samples of predicted TPM, beside each gene's held-out r, and similarity.tsv one row per
sample with its nearest training sample and whether it lies outside what cross-validation
measured. Samples are sorted by name, so both runners write the same bytes.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd

from ..errors import GexpError
from ..files import atomic_write, reading, require_file

SUFFIX = ".predicted_tpm.tsv"
SUMMARY = ".prediction.json"
SIMILARITY_COLUMNS = [
    "sample",
    "model",
    "nearest_training_sample",
    "nearest_training_r",
    "lowest_held_out_r",
    "outside_training",
]


def _by_sample(paths: list[Path], suffix: str, what: str) -> dict[str, Path]:
    named: dict[str, Path] = {}
    for path in paths:
        path = require_file(path, what)
        if not path.name.endswith(suffix):
            raise GexpError(f"{path}: not a `gexp predict` {what} (<sample>{suffix})")
        sample = path.name[: -len(suffix)]
        if sample in named:
            raise GexpError(f"{path}: a second {what} of sample {sample} (first: {named[sample]})")
        named[sample] = path
    return named


def merge_predictions(
    tables: list[Path], outdir: Path, summaries: list[Path] | None = None
) -> list[Path]:
    """predicted_tpm.tsv and similarity.tsv of the samples whose tables are given (each
    table's summary from `summaries`, matched by sample, or else beside it)."""
    named = _by_sample(tables, SUFFIX, "prediction table")
    beside = [p.with_name(p.name[: -len(SUFFIX)] + SUMMARY) for p in named.values()]
    summary_of = _by_sample(summaries or beside, SUMMARY, "prediction summary")
    missing = sorted(set(named) - set(summary_of))
    if missing:
        raise GexpError(f"sample {missing[0]}: its {missing[0]}{SUMMARY} was not given")
    if not named:
        raise GexpError("gexp predictions: no prediction tables given")
    merged, rows = None, []
    for sample in sorted(named):
        path = named[sample]
        with reading(path, "prediction table"):
            table = pd.read_csv(path, sep="\t", dtype={"gene_id": str, "gene_name": str})
            table["predicted_tpm"]  # noqa: B018
        keys = [c for c in ("gene_id", "gene_name", "held_out_r") if c in table.columns]
        if merged is None:
            merged = table[keys].copy()
        elif not table["gene_id"].equals(merged["gene_id"]):
            raise GexpError(f"{path}: other genes than the first table's (another model?)")
        merged[sample] = table["predicted_tpm"].to_numpy()
        with reading(summary_of[sample], "prediction summary"):
            summary = json.loads(summary_of[sample].read_text())
        rows.append({c: summary.get(c, "") for c in SIMILARITY_COLUMNS})
    outdir = Path(outdir)
    with atomic_write(outdir / "predicted_tpm.tsv") as fh:
        merged.to_csv(fh, sep="\t", index=False, float_format="%.6g")
    with atomic_write(outdir / "similarity.tsv") as fh:
        pd.DataFrame(rows, columns=SIMILARITY_COLUMNS).to_csv(fh, sep="\t", index=False)
    return [outdir / "predicted_tpm.tsv", outdir / "similarity.tsv"]


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--predictions",
        required=True,
        type=Path,
        nargs="+",
        help=f"<sample>{SUFFIX} files from `gexp predict`",
    )
    p.add_argument(
        "--summaries",
        type=Path,
        nargs="+",
        help=f"their <sample>{SUMMARY} files (default: beside each table)",
    )
    p.add_argument("--outdir", required=True, type=Path, help="folder for the merged tables")


def run(a: argparse.Namespace) -> None:
    for path in merge_predictions(a.predictions, a.outdir, a.summaries):
        print(path)
