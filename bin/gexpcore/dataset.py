"""Assemble per-sample results into the matrices used for training, with QC that fails loudly.

Accessibility stays sparse (a samples × bins CSR matrix), so the genome-wide
matrix of hundreds of samples costs memory in proportion to open bins only.
Expression is a genes × samples TPM table of the genes whose TSS lies in the
binned region. QC refuses what the proof of concept silently accepted: a
sample with no expression, a sample with no open bin, a sample with only one of
the two assays, and a region without genes.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

from .bins import read_bins
from .errors import GexpError
from .files import atomic_path, atomic_write
from .gene_tpm import read_sample_tpm
from .ids import SAMPLE_ID, harmonise_chroms
from .peak_bins import read_peak_bins
from .reference import read_genes

log = logging.getLogger("gexp")

EXPRESSION_SUFFIX = ".gene_tpm.tsv"
ACCESSIBILITY_SUFFIX = ".tsv.gz"


def sample_of(path: str | Path, suffix: str) -> str:
    """Per-sample files are named `<sample><suffix>`; the sample id is the rest."""
    name = Path(path).name
    if not name.endswith(suffix) or not SAMPLE_ID.match(name[: -len(suffix)]):
        raise GexpError(f"{path}: expected a file named <sample>{suffix}")
    return name[: -len(suffix)]


def _by_sample(paths: list[str], suffix: str, what: str) -> dict[str, str]:
    found: dict[str, str] = {}
    for p in paths:
        sample = sample_of(p, suffix)
        if sample in found:
            raise GexpError(f"duplicate sample id '{sample}' among {what} files")
        found[sample] = p
    return found


def genes_in_bins(genes: pd.DataFrame, bins: pd.DataFrame) -> pd.DataFrame:
    """Genes whose TSS lies in the binned span, on the bins' chromosome naming."""
    genes = genes.copy()
    genes["chrom"], renames = harmonise_chroms(genes["chrom"], set(bins["chrom"]))
    if renames:
        log.warning(
            "annotation chromosomes renamed to match the genome (e.g. %s->%s)",
            *next(iter(renames.items())),
        )
    span = bins.groupby("chrom").agg(lo=("start", "min"), hi=("end", "max"))
    g = genes.join(span, on="chrom")
    inside = (g["tss"] >= g["lo"]) & (g["tss"] < g["hi"])
    return genes[inside.fillna(False).to_numpy()].reset_index(drop=True)


def require_genes_in_bins(genes: pd.DataFrame, bins: pd.DataFrame, bins_path) -> pd.DataFrame:
    region_genes = genes_in_bins(genes, bins)
    if region_genes.empty:
        raise GexpError(f"no annotated gene has its TSS inside the bins of {bins_path}")
    return region_genes


def read_groups(samplesheet: str | Path | None, samples: list[str]) -> list[str]:
    if samplesheet is None:
        return [""] * len(samples)
    from .samplesheet import read_samplesheet

    groups = {s.sample: s.group for s in read_samplesheet(samplesheet, require_rna=False)}
    return [groups.get(s, "") for s in samples]


def build_dataset(
    expression: list[str],
    accessibility: list[str],
    bins_path: str | Path,
    genes_path: str | Path,
    outdir: str | Path,
    samplesheet: str | Path | None = None,
) -> dict:
    """Write expression/gene_tpm.tsv and dataset/ under outdir; return the QC record."""
    expr_files = _by_sample(expression, EXPRESSION_SUFFIX, "expression")
    acc_files = _by_sample(accessibility, ACCESSIBILITY_SUFFIX, "accessibility")
    only_rna = sorted(set(expr_files) - set(acc_files))
    only_atac = sorted(set(acc_files) - set(expr_files))
    if only_rna or only_atac:
        which = only_rna[0] if only_rna else only_atac[0]
        missing = "accessibility" if only_rna else "expression"
        raise GexpError(f"sample {which}: has no {missing} file; every sample needs both")
    samples = sorted(expr_files)

    bins = read_bins(bins_path)
    genes = read_genes(genes_path)
    region_genes = require_genes_in_bins(genes, bins, bins_path)
    tpm = pd.concat([read_sample_tpm(expr_files[s]).rename(s) for s in samples], axis=1)
    tpm = tpm.reindex(genes["gene_id"]).fillna(0.0)
    qc_samples = {}
    for s in samples:
        if not (tpm[s] > 0).any():
            raise GexpError(f"sample {s}: expression is zero for every gene ({expr_files[s]})")

    n_bins = len(bins)
    rows, cols, vals = [], [], []
    for i, s in enumerate(samples):
        acc = read_peak_bins(acc_files[s])
        acc = acc[acc["value"] != 0]
        if acc.empty:
            raise GexpError(f"sample {s}: no open bin in the region ({acc_files[s]})")
        if acc["bin"].max() >= n_bins or acc["bin"].min() < 0:
            raise GexpError(f"sample {s}: bin index out of range for {bins_path} ({acc_files[s]})")
        rows.append(np.full(len(acc), i))
        cols.append(acc["bin"].to_numpy())
        vals.append(acc["value"].to_numpy(dtype=np.float32))
        qc_samples[s] = {"open_bins": int(len(acc)), "genes_detected": int((tpm[s] > 0).sum())}
    matrix = sp.csr_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
        shape=(len(samples), n_bins),
        dtype=np.float32,
    )

    region_tpm = tpm.loc[region_genes["gene_id"]]
    for s in samples:
        qc_samples[s]["genes_detected_in_region"] = int((region_tpm[s] > 0).sum())
        if qc_samples[s]["genes_detected_in_region"] == 0:
            log.warning("sample %s: no gene in the region is expressed", s)

    outdir = Path(outdir)
    table = tpm.copy()
    table.insert(0, "gene_name", genes.set_index("gene_id")["gene_name"])
    with atomic_write(outdir / "expression" / "gene_tpm.tsv") as fh:
        table.rename_axis("gene_id").to_csv(fh, sep="\t", float_format="%.6g")
    ds = outdir / "dataset"
    with atomic_path(ds / "accessibility.npz") as tmp:
        with open(tmp, "wb") as fh:
            sp.save_npz(fh, matrix)
    with atomic_write(ds / "expression.tsv") as fh:
        region_tpm.rename_axis("gene_id").to_csv(fh, sep="\t", float_format="%.6g")
    with atomic_write(ds / "genes.tsv") as fh:
        region_genes.to_csv(fh, sep="\t", index=False)
    with atomic_write(ds / "samples.tsv") as fh:
        pd.DataFrame({"sample": samples, "group": read_groups(samplesheet, samples)}).to_csv(
            fh, sep="\t", index=False
        )
    with atomic_write(ds / "bins.bed") as fh:
        bins.to_csv(fh, sep="\t", header=False, index=False)
    qc = {
        "n_samples": len(samples),
        "n_bins": n_bins,
        "n_genes_annotated": len(genes),
        "n_genes_in_region": len(region_genes),
        "n_genes_variable": int((region_tpm.std(axis=1) > 0).sum()),
        "accessibility_nonzero_fraction": float(matrix.nnz / max(1, matrix.shape[0] * n_bins)),
        "samples": qc_samples,
        "status": "pass",
    }
    with atomic_write(ds / "qc.json") as fh:
        json.dump(qc, fh, indent=2)
    log.info(
        "dataset: %d samples, %d genes in region, %d bins", len(samples), len(region_genes), n_bins
    )
    return qc


def load_dataset(
    path: str | Path,
) -> tuple[sp.csr_matrix, pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """accessibility (samples × bins), expression (genes × samples), genes, samples, bins."""
    ds = Path(path)
    for name in ("accessibility.npz", "expression.tsv", "genes.tsv", "samples.tsv", "bins.bed"):
        if not (ds / name).is_file():
            raise GexpError(f"dataset {ds}: missing {name} (run `gexp dataset` first)")
    matrix = sp.load_npz(ds / "accessibility.npz").tocsr()
    expression = pd.read_csv(ds / "expression.tsv", sep="\t", index_col=0)
    genes = read_genes(ds / "genes.tsv")
    samples = pd.read_csv(ds / "samples.tsv", sep="\t", dtype=str, keep_default_na=False)
    bins = read_bins(ds / "bins.bed")
    return matrix, expression, genes, samples, bins
