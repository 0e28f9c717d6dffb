"""`gexp pseudobulk`: paired bulk-like samples from one single-cell multiome library.

A 10x Multiome (or SHARE-seq) library measures RNA and ATAC in the same cells. The
user's cell table (`barcode,group[,donor]`, barcodes as Cell Ranger writes them)
says which cells belong together; every (group[, donor]) with at least
`min_cells` cells becomes one pseudobulk sample, or K pseudo-replicates of disjoint
cells (assigned by a seeded shuffle) when `replicates` > 1.

- RNA: the cells' UMI counts (filtered_feature_bc_matrix.h5, "Gene Expression"
  features) summed per gene, then TPM with each gene's length taken as the union of
  its exons in the GTF (UMIs count molecules, not bases, so this only puts genes on
  the TPM scale that bulk samples use; it is what a bulk TPM of the same cells
  would be if coverage were uniform).
- ATAC: the cells' fragments (atac_fragments.tsv.gz, read through its tabix index
  one chromosome at a time, so memory does not grow with the file) counted per bin
  as Tn5 cut sites: both ends of each fragment (start and end − 1), each fragment
  once whatever its duplicate count. Written as a narrowPeak whose "peaks" are the
  bins with a cut and whose signalValue is the count, so PEAK_BINS (signal mode)
  gives back exactly these counts and `gexp predict` takes the file unchanged.

Each library also gets `<library>.samples.tsv` (cells, UMIs, fragments per sample)
and `<library>.samplesheet.csv`, a bulk samplesheet (sample, group[, donor], rna_tpm,
atac; paths relative to it, so the folder can move) that `gexp run --input` takes as
it is.
"""

from __future__ import annotations

import argparse
import csv
import io
import itertools
import logging
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ..errors import GexpError
from ..files import atomic_write, require_file
from ..io.ids import chrom_renames, strip_versions
from ..io.tabix import fetching, open_tabix
from ..io.tenx import GENE_EXPRESSION, read_10x_h5
from .bins import BinLayout, read_bin_layout
from .gene_tpm import write_gene_tpm
from .options import positive_int

log = logging.getLogger("gexp")

MIN_CELLS = 50
BATCH = 500_000  # fragments parsed at a time


@dataclass
class PseudobulkSample:
    sample: str
    library: str
    group: str
    donor: str
    replicate: int
    barcodes: list[str]


def read_cells(path: str | Path, known: set[str] | None) -> pd.DataFrame:
    """The cell table, checked: columns barcode, group[, donor]; every barcode in the h5 (when
    there is one: a scATAC-only library's barcodes are checked against its fragments)."""
    path = require_file(path, "cell table")
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise GexpError(f"cell table {path}: not a readable CSV ({exc})") from None
    missing = {"barcode", "group"} - set(table.columns)
    if missing:
        raise GexpError(
            f"cell table {path}: needs columns barcode,group[,donor]; missing "
            f"{', '.join(sorted(missing))}"
        )
    if "donor" not in table.columns:
        table["donor"] = ""
    for i, row in enumerate(table.itertuples(index=False), start=2):
        if not row.barcode or not row.group:
            raise GexpError(f"cell table {path}, line {i}: empty barcode or group")
        if known is not None and row.barcode not in known:
            raise GexpError(
                f"cell table {path}, line {i}: barcode {row.barcode} is not a cell of the "
                "library's h5 (barcodes as Cell Ranger writes them, e.g. AAACAGCCAAACTCAT-1)"
            )
    duplicated = table["barcode"].duplicated()
    if duplicated.any():
        line = int(np.flatnonzero(duplicated.to_numpy())[0]) + 2
        raise GexpError(f"cell table {path}, line {line}: barcode listed twice")
    return table[["barcode", "group", "donor"]]


def _name(*parts: str) -> str:
    """A sample name from its parts, safe as a file name and a samplesheet id."""
    return "_".join(re.sub(r"[^A-Za-z0-9.-]+", "-", p) for p in parts if p)


def pseudobulk_samples(
    cells: pd.DataFrame,
    library: str,
    min_cells: int = MIN_CELLS,
    replicates: int = 1,
    seed: int = 0,
    warn: bool = True,
) -> list[PseudobulkSample]:
    """One sample per (group, donor) with at least min_cells cells, or `replicates` disjoint
    pseudo-replicates of it; smaller ones are left out with a warning naming them."""
    rng = np.random.default_rng(seed)
    samples = []
    for (group, donor), part in cells.groupby(["group", "donor"], sort=True):
        barcodes = part["barcode"].to_numpy()
        if len(barcodes) < min_cells * replicates:
            (log.warning if warn else log.debug)(
                "pseudobulk %s: group %s%s has %d cells, fewer than %d; left out",
                library,
                group,
                f" (donor {donor})" if donor else "",
                len(barcodes),
                min_cells * replicates,
            )
            continue
        shuffled = barcodes[rng.permutation(len(barcodes))]
        for k in range(replicates):
            chosen = sorted(shuffled[k::replicates].tolist())
            rep = f"rep{k + 1}" if replicates > 1 else ""
            samples.append(
                PseudobulkSample(
                    _name(library, group, donor, rep), library, group, donor, k + 1, chosen
                )  # fmt: skip
            )
    made: dict[str, PseudobulkSample] = {}
    for s in samples:
        if s.sample in made:
            first = made[s.sample]
            raise GexpError(
                f"pseudobulk {library}: groups {first.group} and {s.group} (donors "
                f"'{first.donor}', '{s.donor}') both make sample {s.sample}; rename one in "
                "the cell table (names keep letters, digits, '.' and '-')"
            )
        made[s.sample] = s
    if not samples:
        raise GexpError(
            f"pseudobulk {library}: no group has {min_cells * replicates} cells "
            f"(--min-cells {min_cells}, --replicates {replicates})"
        )
    return samples


def exonic_lengths(gtf: str | Path) -> pd.Series:
    """Each gene's length: the bases covered by the union of its exons (version-less ids)."""
    gtf = require_file(gtf, "GTF")
    columns = ["chrom", "source", "feature", "start", "end", "score", "strand", "frame", "attrs"]
    exons = []
    for chunk in pd.read_csv(gtf, sep="\t", header=None, names=columns, comment="#",
                             usecols=["feature", "start", "end", "attrs"], chunksize=500_000,
                             dtype={"feature": str, "attrs": str}):  # fmt: skip
        part = chunk[chunk["feature"] == "exon"]
        gene = part["attrs"].str.extract(r'gene_id "([^"]+)"', expand=False)
        exons.append(pd.DataFrame({"gene_id": gene, "start": part["start"], "end": part["end"]}))
    table = pd.concat(exons).dropna(subset=["gene_id"]) if exons else pd.DataFrame()
    if table.empty:
        raise GexpError(f"GTF {gtf}: no exon lines, so no gene lengths for TPM")
    table["gene_id"] = strip_versions(table["gene_id"])
    table = table.sort_values(["gene_id", "start", "end"])
    lengths = {}
    for gene, part in table.groupby("gene_id", sort=False):
        total, cur_start, cur_end = 0, None, None
        for s, e in zip(part["start"].to_numpy(), part["end"].to_numpy(), strict=True):
            if cur_end is None or s > cur_end + 1:
                if cur_end is not None:
                    total += cur_end - cur_start + 1
                cur_start, cur_end = s, e
            else:
                cur_end = max(cur_end, e)
        total += cur_end - cur_start + 1
        lengths[gene] = total
    return pd.Series(lengths, name="length")


def rna_counts(h5_counts, barcodes: list[str], samples: list[PseudobulkSample]) -> pd.DataFrame:
    """Genes × samples: the summed UMI counts of each sample's cells."""
    column = {b: i for i, b in enumerate(barcodes)}
    sums = np.column_stack(
        [
            np.asarray(h5_counts[:, [column[b] for b in s.barcodes]].sum(axis=1)).ravel()
            for s in samples
        ]
    )
    return pd.DataFrame(sums, columns=[s.sample for s in samples])


def tpm(counts: pd.DataFrame, lengths: pd.Series) -> pd.DataFrame:
    """TPM from counts per gene and gene lengths (bp); genes without a length are left out."""
    known = counts.index.intersection(lengths.index)
    if len(known) == 0:
        raise GexpError("no gene of the h5 has an exon in the GTF: is it the same annotation?")
    rate = counts.loc[known].div(lengths.loc[known] / 1000.0, axis=0)
    return rate.div(rate.sum(axis=0).replace(0, np.nan), axis=1).mul(1e6).fillna(0.0)


@dataclass
class BinGrid:
    """A bins.bed's layout and width, with every bin's chromosome and start: read once per
    library and shared by the cut-site counts and every sample's peak file."""

    layout: BinLayout
    width: int
    chrom_of: np.ndarray  # bin → chromosome
    starts: np.ndarray  # bin → start
    ends: np.ndarray  # bin → end (the last bin of a chromosome ends with it)

    @classmethod
    def read(cls, bins_path: str | Path) -> BinGrid:
        layout = read_bin_layout(bins_path)
        with open(bins_path) as fh:
            fields = fh.readline().split("\t")
        width = int(fields[2]) - int(fields[1])
        chrom_of = np.empty(layout.n_bins, dtype=object)
        starts = np.empty(layout.n_bins, dtype=np.int64)
        ends = np.empty(layout.n_bins, dtype=np.int64)
        for run in layout.chroms:
            span = slice(run.first, run.first + run.count)
            chrom_of[span] = run.chrom
            starts[span] = run.start + width * np.arange(run.count)
            ends[span] = np.minimum(starts[span] + width, run.end)
        return cls(layout, width, chrom_of, starts, ends)


def cut_sites(
    fragments: str | Path,
    samples: list[PseudobulkSample],
    grid: BinGrid,
) -> tuple[sp.csr_matrix, np.ndarray]:
    """Samples × bins Tn5 cut-site counts, and fragments per sample, streamed by chromosome."""
    layout, width = grid.layout, grid.width
    barcodes = [b for s in samples for b in s.barcodes]
    sample_of = pd.Series(
        np.repeat(np.arange(len(samples)), [len(s.barcodes) for s in samples]), index=barcodes
    )  # barcode → sample, looked up by the index's hash table
    shape = (len(samples), layout.n_bins)
    matrix = sp.csr_matrix(shape, dtype=np.float32)
    per_sample = np.zeros(len(samples), dtype=np.int64)
    with open_tabix(fragments, "fragments") as tbx:
        contigs = list(tbx.contigs)
        renames = chrom_renames(dict.fromkeys(contigs), {c.chrom for c in layout.chroms})
        by_bins = {renames.get(c, c): c for c in contigs}
        for run in layout.chroms:
            if run.chrom not in by_bins:
                continue
            rows: list[np.ndarray] = []
            cols: list[np.ndarray] = []
            with fetching(fragments, "fragments", by_bins[run.chrom]):
                lines = tbx.fetch(by_bins[run.chrom])
                while batch := list(itertools.islice(lines, BATCH)):  # taken in C, not by line
                    _count(batch, sample_of, run, width, rows, cols, per_sample)
            # One chromosome's cut sites summed into their bins before the next is read, so
            # memory holds the largest chromosome's cuts, not the file's.
            matrix = matrix + _summed(rows, cols, shape)
    return matrix.tocsr(), per_sample


def _summed(rows: list[np.ndarray], cols: list[np.ndarray], shape) -> sp.csr_matrix:
    if not rows:
        return sp.csr_matrix(shape, dtype=np.float32)
    r, c = np.concatenate(rows), np.concatenate(cols)
    return sp.csr_matrix((np.ones(len(r), dtype=np.float32), (r, c)), shape=shape)


def _count(lines, sample_of, run, width, rows, cols, per_sample) -> None:
    """Add one batch of a chromosome's fragments: both cut sites of each kept fragment.

    The batch is parsed by pandas' C reader and its barcodes looked up in a hash index
    (`sample_of`, barcode → sample), so no Python operation runs per fragment.
    """
    if not lines:
        return
    table = pd.read_csv(
        io.StringIO("\n".join(lines)), sep="\t", header=None, usecols=[1, 2, 3],
        names=["start", "end", "barcode"], dtype={"start": np.int64, "end": np.int64,
        "barcode": str}, engine="c",
    )  # fmt: skip
    who = sample_of.index.get_indexer(table["barcode"])
    keep = who >= 0
    who = sample_of.to_numpy()[who[keep]]
    starts, ends = table["start"].to_numpy()[keep], table["end"].to_numpy()[keep]
    per_sample += np.bincount(who, minlength=len(per_sample))
    for site in (starts, ends - 1):
        local = np.clip((site - run.start) // width, 0, run.count - 1)
        rows.append(who)
        cols.append(run.first + local)


def write_bins_as_peaks(path: Path, row: sp.csr_matrix, grid: BinGrid) -> None:
    """One sample's non-zero bins as a narrowPeak: signalValue is the cut sites in the bin, and
    the score (0–1000, as ENCODE's) the same capped at 1000, so `--min-score N` keeps bins with
    at least N cuts."""
    row = sp.csr_matrix(row)
    row.sort_indices()
    bins, cuts = row.indices, row.data.astype(np.int64)
    # Plain Python ints (tolist) in one f-string per line, written in blocks: the fastest way
    # Python has to format them (pandas' to_csv takes four times as long).
    with atomic_write(path, level=1) as fh:
        for first in range(0, len(bins), BATCH):
            block = bins[first : first + BATCH]
            values = cuts[first : first + BATCH]
            fh.write(
                "".join(
                    f"{c}\t{s}\t{e}\t.\t{min(v, 1000)}\t.\t{v}\t-1\t-1\t-1\n"
                    for c, s, e, v in zip(
                        grid.chrom_of[block].tolist(),
                        grid.starts[block].tolist(),
                        grid.ends[block].tolist(),
                        values.tolist(),
                        strict=True,
                    )  # fmt: skip
                )
            )


def check_library(
    library: str,
    h5: str | Path,
    cells: str | Path,
    genome: str | None = None,
    min_cells: int = MIN_CELLS,
    replicates: int = 1,
) -> list[str]:
    """The names of the library's samples-to-be, after the user's mistakes in it (a genome
    mismatch, an unknown or repeated barcode, a malformed cell table, no group large enough)
    are found, before any work starts. The fragments' index is checked with the other files."""
    from ..io.tenx import read_10x_barcodes

    if h5:
        barcodes, genomes = read_10x_barcodes(h5)
        _check_genome(h5, genomes, genome)
        table = read_cells(cells, set(barcodes))
    else:  # scATAC-only: no h5 to check against
        table = read_cells(cells, None)
    samples = pseudobulk_samples(table, library, min_cells, replicates, warn=False)
    return [s.sample for s in samples]


def pseudobulk(
    library: str,
    h5: str | Path,
    fragments: str | Path,
    cells: str | Path,
    gtf: str | Path,
    bins: str | Path,
    outdir: str | Path,
    *,
    min_cells: int = MIN_CELLS,
    replicates: int = 1,
    seed: int = 0,
    genome: str | None = None,
) -> pd.DataFrame:
    """Write one library's pseudobulk samples under outdir; returns their QC table. Without an
    h5 (a scATAC-only library) the samples have ATAC-seq only: samples to predict."""
    outdir = Path(outdir)
    if h5:
        matrix = read_10x_h5(h5)
        _check_genome(h5, matrix.genomes, genome)
        table = read_cells(cells, set(matrix.barcodes))
    else:
        table = read_cells(cells, None)
    samples = pseudobulk_samples(table, library, min_cells, replicates, seed)
    counts = values = None
    if h5:
        counts, values = _rna(matrix, h5, samples, gtf)
    grid = BinGrid.read(bins)
    cuts, per_sample = cut_sites(fragments, samples, grid)
    rows = []
    for i, s in enumerate(samples):
        if per_sample[i] == 0:
            raise GexpError(
                f"pseudobulk {library}: none of sample {s.sample}'s {len(s.barcodes)} cells has "
                f"a fragment in {fragments}: are the cell table's barcodes those of the "
                "fragments file?"
            )
        row = {"sample": s.sample, "library": library, "group": s.group, "donor": s.donor,
               "replicate": s.replicate, "cells": len(s.barcodes)}  # fmt: skip
        if values is not None:
            rna = outdir / f"{s.sample}.gene_tpm.tsv"
            write_gene_tpm(values[s.sample], rna)
            row |= {"umis": int(counts[s.sample].sum()), "rna_tpm": rna.name}
        atac = outdir / f"{s.sample}.narrowPeak.gz"
        write_bins_as_peaks(atac, cuts[i], grid)
        rows.append({**row, "fragments": int(per_sample[i]), "atac": atac.name})
    qc = pd.DataFrame(rows)
    order = ["sample", "library", "group", "donor", "replicate", "cells", "umis", "fragments"]
    with atomic_write(outdir / f"{library}.samples.tsv") as fh:
        qc[[c for c in order if c in qc.columns]].to_csv(fh, sep="\t", index=False)
    with atomic_write(outdir / f"{library}.samplesheet.csv") as fh:
        donors = ["donor"] if (qc["donor"] != "").any() else []
        rna = ["rna_tpm"] if values is not None else []
        sheet = qc[["sample", "group", *donors, *rna, "atac"]]
        sheet.to_csv(fh, index=False, quoting=csv.QUOTE_MINIMAL)
    log.info("pseudobulk %s: %d samples from %d cells", library, len(qc), int(qc["cells"].sum()))
    return qc


def _rna(matrix, h5, samples: list[PseudobulkSample], gtf) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Summed UMI counts (genes × samples) and their TPM."""
    genes = matrix.of_type(GENE_EXPRESSION)
    if not genes.ids:
        raise GexpError(f"multiome h5 {h5}: no '{GENE_EXPRESSION}' features")
    counts = rna_counts(genes.counts, matrix.barcodes, samples)
    counts.index = strip_versions(pd.Series(genes.ids)).to_numpy()
    counts = counts.groupby(level=0).sum()
    return counts, tpm(counts, exonic_lengths(gtf))


def _check_genome(h5, genomes: list[str], genome: str | None) -> None:
    """The h5's genome must be --genome's assembly (hg38 and GRCh38 are one: genome.GENOMES)."""
    from ..io.genome import GENOMES

    def assembly(name: str) -> str:
        return GENOMES.get(name, name.lower())

    named = {g for g in genomes if g}
    if genome and named and assembly(genome) not in {assembly(g) for g in named}:
        raise GexpError(
            f"multiome h5 {h5}: its features are on genome {', '.join(sorted(named))}, "
            f"not --genome {genome}"
        )


# -- the command line: `gexp pseudobulk` -------------------------------------------------------


def pseudobulk_options(p: argparse.ArgumentParser, replicates_flag: str) -> None:
    """--min-cells and the pseudo-replicates flag (`--replicates` here, `--pseudobulk-replicates`
    in `gexp run`, among its other flags)."""
    p.add_argument(
        "--min-cells",
        type=positive_int,
        default=MIN_CELLS,
        help="multiome: cells a pseudobulk sample needs; smaller groups are left out "
        "(default: %(default)s)",
    )
    p.add_argument(
        replicates_flag,
        type=positive_int,
        default=1,
        help="multiome: pseudo-replicates of disjoint cells per group (default: %(default)s)",
    )


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--library", required=True, help="library name: the samples' name prefix")
    p.add_argument(
        "--h5",
        type=Path,
        help="filtered_feature_bc_matrix.h5 (none for a scATAC-only library: its samples have "
        "ATAC-seq only, to predict)",
    )
    p.add_argument(
        "--fragments", required=True, type=Path, help="atac_fragments.tsv.gz, with its .tbi"
    )
    p.add_argument("--cells", required=True, type=Path, help="CSV: barcode,group[,donor]")
    p.add_argument("--gtf", required=True, type=Path, help="GTF: gene lengths for TPM (exons)")
    p.add_argument("--bins", required=True, type=Path, help="bins.bed from `gexp bins`")
    p.add_argument("--outdir", required=True, type=Path, help="folder for the samples")
    pseudobulk_options(p, "--replicates")
    p.add_argument("--seed", type=int, default=0, help="seed for pseudo-replicates (default: 0)")
    p.add_argument(
        "--genome", help="assembly the h5 must be on (checked against its features' genome)"
    )


def run(a: argparse.Namespace) -> None:
    pseudobulk(
        a.library, a.h5, a.fragments, a.cells, a.gtf, a.bins, a.outdir,
        min_cells=a.min_cells, replicates=a.replicates, seed=a.seed, genome=a.genome,
    )  # fmt: skip
    print(a.outdir / f"{a.library}.samplesheet.csv")
