"""Gene annotation from a GENCODE or Ensembl GTF: tx2gene and a gene table.

Ids are stored without versions (see io/ids.py). The TSS is the 0-based position of
the gene's first base on its strand: `start - 1` on +, `end - 1` on −, which is
what every window around the TSS is measured from.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import logging
from pathlib import Path

import pandas as pd

from ..errors import GexpError
from ..files import atomic_write, is_gzip, reading, require_file
from ..io.ids import strip_versions

log = logging.getLogger("gexp")

GTF_COLUMNS = ["chrom", "source", "feature", "start", "end", "score", "strand", "frame", "attrs"]
GENE_COLUMNS = ["gene_id", "gene_name", "gene_type", "chrom", "start", "end", "strand", "tss"]


def _attr(attrs: pd.Series, key: str) -> pd.Series:
    return attrs.str.extract(rf'(?:^|;)\s*{key} "([^"]*)"', expand=False)


def _leading_comments(path: Path) -> int:
    opener = gzip.open if is_gzip(path) else open
    n = 0
    with opener(path, "rt") as fh:
        for line in fh:
            if not line.startswith("#"):
                break
            n += 1
    return n


def _validate(chunk: pd.DataFrame, path: Path, first_line: int) -> None:
    """Stop at the first malformed line and name it."""
    lines = chunk.index + first_line
    bad_cols = chunk["attrs"].isna()
    if bad_cols.any():
        raise GexpError(
            f"GTF {path} line {lines[bad_cols.argmax()]}: fewer than 9 tab-separated columns"
        )
    for col in ("start", "end"):
        numeric = pd.to_numeric(chunk[col], errors="coerce")
        bad = numeric.isna()
        if bad.any():
            i = bad.argmax()
            raise GexpError(f"GTF {path} line {lines[i]}: non-numeric {col} '{chunk[col].iloc[i]}'")
        chunk[col] = numeric.astype("int64")
    bad = chunk["end"] < chunk["start"]
    if bad.any():
        raise GexpError(f"GTF {path} line {lines[bad.argmax()]}: end before start")


def read_gtf(path: str | Path) -> pd.DataFrame:
    """Gene and transcript lines of a GTF, validated, with parsed attributes."""
    path = require_file(path, "GTF")
    with reading(path, "GTF"):
        skip = _leading_comments(path)
    parts = []
    try:
        reader = pd.read_csv(
            path,
            sep="\t",
            header=None,
            names=GTF_COLUMNS,
            dtype=str,
            skiprows=skip,
            comment=None,
            quoting=csv.QUOTE_NONE,
            chunksize=500_000,
            compression="infer",
        )
        offset = 0
        for chunk in reader:
            chunk = chunk.reset_index(drop=True)
            first_line = skip + offset + 1
            offset += len(chunk)
            chunk = chunk[~chunk["chrom"].str.startswith("#")]
            _validate(chunk, path, first_line)
            parts.append(chunk[chunk["feature"].isin(["gene", "transcript"])])
    except (EOFError, OSError) as exc:
        raise GexpError(f"GTF {path}: truncated or corrupt gzip ({exc})") from None
    except pd.errors.ParserError as exc:
        raise GexpError(f"GTF {path}: malformed ({str(exc).strip()})") from None
    except pd.errors.EmptyDataError:
        raise GexpError(f"GTF {path}: empty file") from None
    if not parts:
        raise GexpError(f"GTF {path}: no annotation lines")
    gtf = pd.concat(parts, ignore_index=True)
    if gtf.empty:
        raise GexpError(f"GTF {path}: no gene or transcript lines")
    attrs = gtf["attrs"]
    gtf["gene_id"] = _attr(attrs, "gene_id")
    gtf["transcript_id"] = _attr(attrs, "transcript_id")
    gtf["gene_name"] = _attr(attrs, "gene_name")
    gtf["gene_type"] = _attr(attrs, "gene_type").fillna(_attr(attrs, "gene_biotype"))
    if gtf["gene_id"].isna().any():
        raise GexpError(f"GTF {path}: a gene or transcript line has no gene_id attribute")
    return gtf.drop(columns=["attrs", "source", "score", "frame"])


def build_reference(gtf: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """tx2gene and the gene table; genes without a gene line are spanned by their transcripts."""
    gtf = gtf.copy()
    gtf["gene_id"] = strip_versions(gtf["gene_id"])
    tx = gtf[gtf["feature"] == "transcript"].dropna(subset=["transcript_id"]).copy()
    tx["transcript_id"] = strip_versions(tx["transcript_id"])
    tx2gene = tx[["transcript_id", "gene_id"]].drop_duplicates("transcript_id")

    genes = gtf[gtf["feature"] == "gene"]
    spanned = (
        tx.groupby("gene_id")
        .agg(
            chrom=("chrom", "first"),
            start=("start", "min"),
            end=("end", "max"),
            strand=("strand", "first"),
            gene_name=("gene_name", "first"),
            gene_type=("gene_type", "first"),
        )
        .reset_index()
    )
    genes = pd.concat([genes, spanned[~spanned["gene_id"].isin(genes["gene_id"])]])
    genes = genes.drop_duplicates("gene_id")
    genes["gene_name"] = genes["gene_name"].fillna(genes["gene_id"])
    genes["gene_type"] = genes["gene_type"].fillna("unknown")
    genes = genes[genes["strand"].isin(["+", "-"])].copy()
    genes["tss"] = (genes["start"] - 1).where(genes["strand"] == "+", genes["end"] - 1)
    genes = genes[GENE_COLUMNS].sort_values(["chrom", "tss"]).reset_index(drop=True)
    if genes.empty:
        raise GexpError("GTF has no stranded genes")
    return tx2gene.reset_index(drop=True), genes


def write_reference(gtf_path: str | Path, outdir: str | Path) -> tuple[Path, Path]:
    tx2gene, genes = build_reference(read_gtf(gtf_path))
    outdir = Path(outdir)
    with atomic_write(outdir / "tx2gene.tsv") as fh:
        tx2gene.to_csv(fh, sep="\t", index=False)
    with atomic_write(outdir / "genes.tsv") as fh:
        genes.to_csv(fh, sep="\t", index=False)
    log.info("reference: %d genes, %d transcripts", len(genes), len(tx2gene))
    return outdir / "tx2gene.tsv", outdir / "genes.tsv"


def read_genes(path: str | Path) -> pd.DataFrame:
    path = require_file(path, "gene table")
    with reading(path, "gene table"):
        genes = pd.read_csv(path, sep="\t", dtype={"gene_id": str, "chrom": str})
    missing = set(GENE_COLUMNS) - set(genes.columns)
    if missing:
        raise GexpError(f"gene table {path}: missing column(s) {', '.join(sorted(missing))}")
    return genes


def read_tx2gene(path: str | Path) -> pd.DataFrame:
    path = require_file(path, "tx2gene")
    with reading(path, "tx2gene"):
        table = pd.read_csv(path, sep="\t", dtype=str)
    if not {"transcript_id", "gene_id"} <= set(table.columns):
        raise GexpError(f"tx2gene {path}: needs columns transcript_id and gene_id")
    return table


# -- the command line: `gexp reference` --------------------------------------------------------


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--gtf", required=True, type=Path, help="GENCODE or Ensembl GTF (.gz)")
    p.add_argument(
        "--outdir", required=True, type=Path, help="folder for tx2gene.tsv and genes.tsv"
    )


def run(a: argparse.Namespace) -> None:
    write_reference(a.gtf, a.outdir)
