"""Gene-level TPM for one sample from a transcript or gene quantification.

Accepts kallisto's abundance.tsv (transcript TPM summed per gene through
tx2gene) and gene-level tables such as ENCODE's RSEM gene quantifications
(columns found by header name, never by position). ENCODE tables also hold tRNA
and spike-in rows that are not genes of the annotation; they are ignored, but if
fewer than half the annotated genes are found the sample is rejected: that is
the silent gene-id mismatch that emptied the proof of concept's dataset.
"""

from __future__ import annotations

import argparse
import logging
import math
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import GexpError
from ..files import atomic_write, ends_with_newline, reading, require_file
from ..io.ids import first_field, strip_versions
from .reference import read_genes, read_tx2gene

log = logging.getLogger("gexp")

FAIL_BELOW = 0.5
WARN_BELOW = 0.9


def _read_table(path: Path) -> pd.DataFrame:
    try:
        return pd.read_csv(path, sep="\t", comment=None, low_memory=False)
    except pd.errors.EmptyDataError:
        raise GexpError(f"quantification {path}: empty file") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise GexpError(f"quantification {path}: not a tab-separated table ({exc})") from None
    except (EOFError, OSError) as exc:
        raise GexpError(f"quantification {path}: truncated or corrupt ({exc})") from None


def _tpm_column(table: pd.DataFrame, path: Path) -> str:
    for name in ("tpm", "TPM"):
        if name in table.columns:
            return name
    raise GexpError(f"quantification {path}: no TPM column (found {', '.join(table.columns)})")


def _numeric(values: pd.Series, path: Path, column: str) -> pd.Series:
    numbers = pd.to_numeric(values, errors="coerce")
    if numbers.isna().any():
        row = int(numbers.isna().argmax())
        raise GexpError(
            f"quantification {path} line {row + 2}: non-numeric {column} '{values.iloc[row]}'"
        )
    return numbers


def sum_by_gene(tpm: pd.Series, gene: pd.Series) -> pd.Series:
    """Each gene's transcripts summed exactly rounded (math.fsum), genes sorted.

    pandas' groupby sum changed its summation between versions, and a last-bit difference
    in a gene's TPM can flip a rounded digit downstream: exact sums give the same bytes
    whatever pandas or numpy is installed. Transcripts without a gene are left out.
    """
    codes, genes = pd.factorize(gene, sort=True)
    keep = codes >= 0
    codes, values = codes[keep], tpm.to_numpy(dtype=np.float64)[keep]
    order = np.argsort(codes, kind="stable")
    values = values[order].tolist()
    bounds = np.searchsorted(codes[order], np.arange(len(genes) + 1)).tolist()
    sums = [math.fsum(values[a:b]) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
    return pd.Series(sums, index=pd.Index(genes, name=gene.name), name=tpm.name)


def gene_tpm(
    quant: str | Path, tx2gene: pd.DataFrame, genes: pd.DataFrame, sample: str
) -> pd.Series:
    """TPM per annotated gene (unversioned ids), zero for annotated genes not quantified."""
    path = require_file(quant, f"sample {sample} quantification")
    table = _read_table(path)
    tpm_col = _tpm_column(table, path)
    tpm = _numeric(table[tpm_col], path, tpm_col)
    if "target_id" in table.columns:
        transcript = strip_versions(first_field(table["target_id"]))
        gene = transcript.map(tx2gene.set_index("transcript_id")["gene_id"])
        if gene.isna().all():
            # Some transcriptomes name targets by gene; let the gene match decide.
            gene = strip_versions(first_field(table["target_id"]))
    elif "gene_id" in table.columns:
        gene = strip_versions(table["gene_id"].astype(str))
    else:
        raise GexpError(
            f"quantification {path}: expected a kallisto abundance.tsv (target_id, tpm) "
            "or a gene table (gene_id, TPM)"
        )
    per_gene = sum_by_gene(tpm, gene)
    annotated = pd.Index(genes["gene_id"])
    found = annotated.isin(per_gene.index).mean()
    if found < FAIL_BELOW:
        example = next(iter(per_gene.index), "none")
        raise GexpError(
            f"sample {sample}: only {found:.0%} of annotated genes found in {path} "
            f"(e.g. '{example}' vs annotation '{annotated[0]}'): wrong annotation or id format?"
        )
    if found < WARN_BELOW:
        log.warning(
            "sample %s: only %.0f%% of annotated genes found in %s", sample, 100 * found, path
        )
    result = per_gene.reindex(annotated, fill_value=0.0).rename(sample)
    if not (result > 0).any():
        raise GexpError(f"sample {sample}: expression is zero for every gene in {path}")
    return result


def write_gene_tpm(series: pd.Series, out: str | Path) -> None:
    with atomic_write(out) as fh:
        series.rename_axis("gene_id").rename("tpm").to_frame().to_csv(fh, sep="\t")


def read_sample_tpm(path: str | Path) -> pd.Series:
    path = require_file(path, "gene TPM")
    with reading(path, "gene TPM"):
        table = pd.read_csv(path, sep="\t", dtype={"gene_id": str})
    if list(table.columns[:2]) != ["gene_id", "tpm"]:
        raise GexpError(f"gene TPM {path}: expected columns gene_id, tpm (from `gexp gene-tpm`)")
    tpm = pd.to_numeric(table["tpm"], errors="coerce")
    if tpm.isna().any() or not ends_with_newline(path):
        line = int(tpm.isna().to_numpy().argmax()) + 2 if tpm.isna().any() else len(table) + 1
        raise GexpError(f"gene TPM {path} line {line}: not a number, or the file is cut short")
    return tpm.set_axis(table["gene_id"])


# -- the command line: `gexp gene-tpm` ---------------------------------------------------------


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--quant",
        required=True,
        type=Path,
        help="kallisto abundance.tsv or a gene quantification TSV",
    )
    p.add_argument("--tx2gene", required=True, type=Path, help="tx2gene.tsv from `gexp reference`")
    p.add_argument("--genes", required=True, type=Path, help="genes.tsv from `gexp reference`")
    p.add_argument("--sample", required=True, help="sample id: the output's column")
    p.add_argument("--out", required=True, type=Path, help="<sample>.gene_tpm.tsv to write")


def run(a: argparse.Namespace) -> None:
    series = gene_tpm(a.quant, read_tx2gene(a.tx2gene), read_genes(a.genes), a.sample)
    write_gene_tpm(series, a.out)
