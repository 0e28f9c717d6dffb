"""Assemble per-sample results into the matrices used for training, with QC that fails loudly.

Accessibility stays sparse (a samples × bins CSR matrix), so the genome-wide
matrix of hundreds of samples costs memory in proportion to open bins only.
Expression is a genes × samples TPM table of the genes whose TSS lies in the
binned region. QC refuses what the proof of concept silently accepted: a
sample with no expression, a sample with no open bin, a sample with only one of
the two assays, and a region without genes.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ..errors import GexpError
from ..files import atomic_path, atomic_write, reading, require_file, write_sparse_npz
from ..io.ids import SAMPLE_ID, harmonise_chroms
from .bins import BinLayout, read_bin_layout, read_bins
from .gene_tpm import read_sample_tpm
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


def genes_in_bins(genes: pd.DataFrame, bins: pd.DataFrame | BinLayout) -> pd.DataFrame:
    """Genes whose TSS lies in the binned span, on the bins' chromosome naming."""
    if isinstance(bins, BinLayout):
        span = pd.DataFrame(
            {"lo": [c.start for c in bins.chroms], "hi": [c.end for c in bins.chroms]},
            index=pd.Index([c.chrom for c in bins.chroms], name="chrom"),
        ).sort_index()
    else:
        span = bins.groupby("chrom").agg(lo=("start", "min"), hi=("end", "max"))
    genes = genes.copy()
    genes["chrom"], renames = harmonise_chroms(genes["chrom"], set(span.index))
    if renames:
        log.warning(
            "annotation chromosomes renamed to match the genome (e.g. %s->%s)",
            *next(iter(renames.items())),
        )
    g = genes.join(span, on="chrom")
    inside = (g["tss"] >= g["lo"]) & (g["tss"] < g["hi"])
    return genes[inside.fillna(False).to_numpy()].reset_index(drop=True)


def require_genes_in_bins(
    genes: pd.DataFrame, bins: pd.DataFrame | BinLayout, bins_path
) -> pd.DataFrame:
    region_genes = genes_in_bins(genes, bins)
    if region_genes.empty:
        raise GexpError(f"no annotated gene has its TSS inside the bins of {bins_path}")
    return region_genes


def write_named_tpm(tpm: pd.DataFrame, genes: pd.DataFrame, out: Path, rows: int = 5000) -> None:
    """genes × samples TPM with each gene's name, written a block of rows at a time: at 1,000
    samples a named copy of the whole table would cost another 0.48 GB (issue 17)."""
    names = genes.set_index("gene_id")["gene_name"]
    with atomic_write(out) as fh:
        for start in range(0, max(len(tpm), 1), rows):
            block = tpm.iloc[start : start + rows]
            named = pd.concat([names.reindex(block.index).rename("gene_name"), block], axis=1)
            named.rename_axis("gene_id").to_csv(
                fh, sep="\t", float_format="%.6g", header=start == 0
            )


# samples.tsv's columns for pseudobulk samples (after group and donor); the counts also go
# into qc.json and the report.
PSEUDOBULK_COUNTS = ("cells", "umis", "fragments")
PSEUDOBULK_COLUMNS = ["library", *PSEUDOBULK_COUNTS]


def sample_table(
    samples: list[str],
    samplesheets: list[str | Path] | str | Path | None = None,
    pseudobulk: list[str | Path] | None = None,
) -> pd.DataFrame:
    """samples.tsv: each sample's group (the CV unit), and for multiome-derived samples their
    donor, library, cells, UMIs and fragments (from `gexp pseudobulk`'s <library>.samples.tsv).

    Bulk-only datasets keep the two columns sample and group.
    """
    from ..io.samplesheet import read_samplesheet

    if samplesheets is None:
        samplesheets = []
    elif isinstance(samplesheets, (str, Path)):
        samplesheets = [samplesheets]
    info: dict[str, dict[str, str]] = {}
    for sheet in samplesheets:
        for s in read_samplesheet(sheet):
            info[s.sample] = {"group": s.group, "donor": s.donor}
    for path in pseudobulk or []:
        table = pd.read_csv(
            require_file(path, "pseudobulk samples table"),
            sep="\t", dtype=str, keep_default_na=False,
        )  # fmt: skip
        for row in table.to_dict("records"):
            info[row["sample"]] = {
                k: row.get(k, "") for k in ["group", "donor", *PSEUDOBULK_COLUMNS]
            }
    table = pd.DataFrame(
        [{"sample": s, **info.get(s, {})} for s in samples],
        columns=["sample", "group", "donor", *PSEUDOBULK_COLUMNS],
        dtype=object,
    ).fillna("")
    if not (table["donor"] != "").any() and not (table["library"] != "").any():
        return table[["sample", "group"]]
    return table


def build_dataset(
    expression: list[str],
    accessibility: list[str],
    bins_path: str | Path,
    genes_path: str | Path,
    outdir: str | Path,
    samplesheet: list[str | Path] | str | Path | None = None,
    pseudobulk: list[str | Path] | None = None,
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

    layout = read_bin_layout(bins_path)  # all of bins.bed is never held: it is copied as it is
    genes = read_genes(genes_path)
    region_genes = require_genes_in_bins(genes, layout, bins_path)
    tpm = _expression_matrix(samples, expr_files, genes["gene_id"])
    qc_samples = {}
    for s in samples:
        if not (tpm[s] > 0).any():
            raise GexpError(f"sample {s}: expression is zero for every gene ({expr_files[s]})")

    n_bins = layout.n_bins
    matrix, open_bins = _accessibility_matrix(samples, acc_files, n_bins, bins_path)
    for s, n in zip(samples, open_bins, strict=True):
        qc_samples[s] = {"open_bins": n, "genes_detected": int((tpm[s] > 0).sum())}

    region_tpm = tpm.loc[region_genes["gene_id"]]
    for s in samples:
        qc_samples[s]["genes_detected_in_region"] = int((region_tpm[s] > 0).sum())
        if qc_samples[s]["genes_detected_in_region"] == 0:
            log.warning("sample %s: no gene in the region is expressed", s)

    outdir = Path(outdir)
    write_named_tpm(tpm, genes, outdir / "expression" / "gene_tpm.tsv")
    ds = outdir / "dataset"
    write_sparse_npz(ds / "accessibility.npz", matrix.tocsr())
    with atomic_write(ds / "expression.tsv") as fh:
        region_tpm.rename_axis("gene_id").to_csv(fh, sep="\t", float_format="%.6g")
    with atomic_write(ds / "genes.tsv") as fh:
        region_genes.to_csv(fh, sep="\t", index=False)
    table = sample_table(samples, samplesheet, pseudobulk)
    for row in table.to_dict("records"):
        for key in PSEUDOBULK_COUNTS:
            if row.get(key):
                qc_samples[row["sample"]][key] = int(row[key])
    with atomic_write(ds / "samples.tsv") as fh:
        table.to_csv(fh, sep="\t", index=False)
    with atomic_path(ds / "bins.bed") as tmp:
        shutil.copyfile(bins_path, tmp)
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


def _expression_matrix(samples: list[str], files: dict[str, str], gene_ids) -> pd.DataFrame:
    """Genes × samples TPM on the annotation's genes (0 where a sample lacks one).

    Each sample is placed in one preallocated float64 array as it is read, so no
    sample's parsed table (60 k gene ids each) outlives its turn.
    """
    tpm = np.zeros((len(gene_ids), len(samples)))
    for j, s in enumerate(samples):
        values = read_sample_tpm(files[s])
        if values.dtype != np.float64:  # integer-only tables keep their dtype, as concat did
            return _expression_table(samples, files, gene_ids)
        tpm[:, j] = values.reindex(gene_ids).fillna(0.0).to_numpy()
    return pd.DataFrame(tpm, index=pd.Index(gene_ids), columns=samples, copy=False)


def _expression_table(samples: list[str], files: dict[str, str], gene_ids) -> pd.DataFrame:
    tpm = pd.concat([read_sample_tpm(files[s]).rename(s) for s in samples], axis=1)
    return tpm.reindex(gene_ids).fillna(0.0)


def _accessibility_matrix(
    samples: list[str], files: dict[str, str], n_bins: int, bins_path
) -> tuple[sp.csr_matrix, list[int]]:
    """Samples × bins CSR (float32 values, int32 indices) built row by row; open bins each.

    Each sample's table is cut down to its two compact columns as soon as it is
    read, so memory holds those (8 bytes per open bin) and one parsed table, never
    every sample's table at once; the rows are joined once at the end.
    """
    # The index dtype scipy picks when it builds the matrix from coordinates (int32 unless
    # the matrix is too large for it), so the .npz is the same as before.
    index_dtype = np.int32 if n_bins <= np.iinfo(np.int32).max else np.int64
    values, columns, open_bins = [], [], []
    for s in samples:
        acc = read_peak_bins(files[s])
        acc = acc[acc["value"] != 0]
        if acc.empty:
            raise GexpError(f"sample {s}: no open bin in the region ({files[s]})")
        if acc["bin"].max() >= n_bins or acc["bin"].min() < 0:
            raise GexpError(f"sample {s}: bin index out of range for {bins_path} ({files[s]})")
        values.append(acc["value"].to_numpy(dtype=np.float32))
        columns.append(acc["bin"].to_numpy().astype(index_dtype))
        open_bins.append(int(len(acc)))
    indptr = np.concatenate([[0], np.cumsum(open_bins)])
    if indptr[-1] > np.iinfo(index_dtype).max:
        index_dtype = np.int64
    data = np.concatenate(values)
    del values
    indices = np.concatenate(columns).astype(index_dtype, copy=False)
    del columns
    matrix = sp.csr_matrix(
        (data, indices, indptr.astype(index_dtype)),
        shape=(len(samples), n_bins),
        copy=False,
    )
    matrix.sum_duplicates()  # sorts and sums, as building from coordinates did
    return matrix, open_bins


def load_dataset(
    path: str | Path,
) -> tuple[sp.csr_matrix, pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """accessibility (samples × bins), expression (genes × samples), genes, samples, bins."""
    ds = Path(path)
    for name in ("accessibility.npz", "expression.tsv", "genes.tsv", "samples.tsv", "bins.bed"):
        if not (ds / name).is_file():
            raise GexpError(f"dataset {ds}: missing {name} (run `gexp dataset` first)")
    with reading(ds / "accessibility.npz", "dataset"):
        matrix = sp.load_npz(ds / "accessibility.npz").tocsr()
    with reading(ds / "expression.tsv", "dataset"):
        expression = pd.read_csv(ds / "expression.tsv", sep="\t", index_col=0)
        expression = expression.astype(np.float64)
    genes = read_genes(ds / "genes.tsv")
    with reading(ds / "samples.tsv", "dataset"):
        samples = pd.read_csv(ds / "samples.tsv", sep="\t", dtype=str, keep_default_na=False)
        samples["sample"], samples["group"]  # noqa: B018  (the columns training needs)
    bins = read_bins(ds / "bins.bed")
    _check_agree(ds, matrix, expression, genes, samples, bins)
    return matrix, expression, genes, samples, bins


def _check_agree(ds: Path, matrix, expression, genes, samples, bins) -> None:
    """The five files describe one dataset: a damaged or swapped one disagrees with the rest."""

    def refuse(name: str, why: str) -> None:
        raise GexpError(f"dataset {ds / name}: {why} (damaged, or from another dataset)")

    if matrix.shape[1] != len(bins):
        refuse("accessibility.npz", f"{matrix.shape[1]} bins, bins.bed has {len(bins)}")
    if matrix.shape[0] != len(samples):
        refuse("samples.tsv", f"{len(samples)} samples, accessibility.npz has {matrix.shape[0]}")
    if list(expression.columns) != samples["sample"].tolist():
        refuse("expression.tsv", "its sample columns are not those of samples.tsv")
    if expression.index.astype(str).tolist() != genes["gene_id"].astype(str).tolist():
        refuse("genes.tsv", "its genes are not the rows of expression.tsv")
    if not np.isfinite(expression.to_numpy()).all():
        refuse("expression.tsv", "a value that is not a finite number")


# -- the command line: `gexp dataset` ----------------------------------------------------------


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--bins", required=True, type=Path, help="bins.bed from `gexp bins`")
    p.add_argument("--genes", required=True, type=Path, help="genes.tsv from `gexp reference`")
    p.add_argument("--expression", required=True, nargs="+", help="<sample>.gene_tpm.tsv files")
    p.add_argument("--accessibility", required=True, nargs="+", help="<sample>.tsv.gz files")
    p.add_argument(
        "--samplesheet",
        type=Path,
        nargs="+",
        help="samplesheet(s) for the group and donor columns (default: none, no groups)",
    )
    p.add_argument(
        "--pseudobulk",
        type=Path,
        nargs="+",
        help="<library>.samples.tsv from `gexp pseudobulk`: groups, donors, cells and fragments",
    )
    p.add_argument(
        "--outdir",
        required=True,
        type=Path,
        help="run folder: dataset/ and expression/gene_tpm.tsv are written in it",
    )


def run(a: argparse.Namespace) -> None:
    build_dataset(
        a.expression, a.accessibility, a.bins, a.genes, a.outdir, a.samplesheet, a.pseudobulk
    )
