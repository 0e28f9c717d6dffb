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
import collections
import contextlib
import csv
import itertools
import logging
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ..errors import GexpError
from ..files import atomic_write, open_gzip, require_file
from ..io.ids import chrom_renames, strip_versions
from ..io.tabix import open_tabix, reading_fragments
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
    """A bins.bed's layout and width, with every bin's start and end: read once per library
    and shared by the cut-site counts and every sample's peak file."""

    layout: BinLayout
    width: int
    starts: np.ndarray  # bin → start
    ends: np.ndarray  # bin → end (the last bin of a chromosome ends with it)

    @classmethod
    def read(cls, bins_path: str | Path) -> BinGrid:
        layout = read_bin_layout(bins_path)
        with open(bins_path) as fh:
            fields = fh.readline().split("\t")
        width = int(fields[2]) - int(fields[1])
        starts = np.empty(layout.n_bins, dtype=np.int64)
        ends = np.empty(layout.n_bins, dtype=np.int64)
        for run in layout.chroms:
            span = slice(run.first, run.first + run.count)
            starts[span] = run.start + width * np.arange(run.count)
            ends[span] = np.minimum(starts[span] + width, run.end)
        return cls(layout, width, starts, ends)


def cut_sites(
    fragments: str | Path,
    samples: list[PseudobulkSample],
    grid: BinGrid,
) -> tuple[dict[str, sp.csr_matrix], np.ndarray]:
    """Each bins chromosome's samples × bins Tn5 cut-site counts, and fragments per sample.

    One pass over the file in its own order (a tabix file is sorted, so each chromosome's
    lines come together), decompressed by ISA-L and parsed by pandas' C reader in batches:
    no Python operation runs per fragment. Counts are summed into one chromosome's dense
    array at a time, kept sparse once it is done, so memory follows the largest chromosome.
    """
    layout = grid.layout
    barcodes = [b for s in samples for b in s.barcodes]
    sample_of = pd.Series(
        np.repeat(np.arange(len(samples)), [len(s.barcodes) for s in samples]), index=barcodes
    )  # barcode → sample, looked up by the index's hash table
    with open_tabix(fragments, "fragments") as tbx:  # its checks, and its contigs' names
        contigs = list(tbx.contigs)
    renames = chrom_renames(dict.fromkeys(contigs), {c.chrom for c in layout.chroms})
    counter = _CutCounter({r.chrom: r for r in layout.chroms}, grid.width, len(samples))
    with reading_fragments(fragments), open_gzip(fragments) as fh:
        batches = pd.read_csv(
            fh, sep="\t", header=None, usecols=[0, 1, 2, 3], comment="#", chunksize=BATCH,
            names=["chrom", "start", "end", "barcode"], engine="c", dtype={"chrom": "category",
            "start": np.int64, "end": np.int64, "barcode": "category"},
        )  # fmt: skip
        for batch in batches:
            chroms, barcode = batch["chrom"].cat, batch["barcode"].cat
            found = sample_of.index.get_indexer(barcode.categories)  # per distinct barcode
            sample = np.where(found >= 0, sample_of.to_numpy()[found], -1)
            codes = barcode.codes.to_numpy()  # -1: no barcode on the line
            who = np.where(codes >= 0, sample[codes], -1)
            code = chroms.codes.to_numpy()
            starts, ends = batch["start"].to_numpy(), batch["end"].to_numpy()
            edges = [0, *(np.flatnonzero(code[1:] != code[:-1]) + 1).tolist(), len(code)]
            for lo, hi in itertools.pairwise(edges):  # the batch's run of each chromosome
                if code[lo] < 0:  # no chromosome on the line: counts nowhere
                    continue
                name = str(chroms.categories[code[lo]])
                part = slice(lo, hi)
                counter.add(renames.get(name, name), who[part], starts[part], ends[part])
    return counter.finish(), counter.per_sample


class _CutCounter:
    """Cut sites summed per chromosome: a dense samples × bins array for the chromosome being
    read, made sparse when the next begins (a chromosome read again is added to)."""

    def __init__(self, runs: dict, width: int, n_samples: int) -> None:
        self.runs, self.width, self.n = runs, width, n_samples
        self.done: dict[str, sp.csr_matrix] = {}
        self.chrom: str | None = None
        self.dense = np.zeros(0, dtype=np.int32)
        self.per_sample = np.zeros(n_samples, dtype=np.int64)

    def add(self, chrom: str, who: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> None:
        run = self.runs.get(chrom)
        if run is None:  # a contig without bins: its fragments count nowhere
            return
        if chrom != self.chrom:
            self._close()
            self.chrom, self.dense = chrom, np.zeros(self.n * run.count, dtype=np.int32)
        keep = who >= 0
        who, starts, ends = who[keep], starts[keep], ends[keep]
        self.per_sample += np.bincount(who, minlength=self.n)
        sites = np.concatenate([starts, ends - 1])
        local = np.clip((sites - run.start) // self.width, 0, run.count - 1)
        flat = np.tile(who, 2) * run.count + local
        if len(self.dense) <= 4 * len(flat):  # a pass over the whole array is the cheaper
            self.dense += np.bincount(flat, minlength=len(self.dense)).astype(np.int32)
        else:
            np.add.at(self.dense, flat, 1)

    def _close(self) -> None:
        if self.chrom is None:
            return
        run = self.runs[self.chrom]
        counts = sp.csr_matrix(self.dense.reshape(self.n, run.count))
        previous = self.done.get(self.chrom)
        self.done[self.chrom] = counts if previous is None else previous + counts

    def finish(self) -> dict[str, sp.csr_matrix]:
        self._close()
        self.chrom = None
        return self.done


def _tails(largest: int) -> np.ndarray:
    """The end of a line for every count up to the largest: `score . signal -1 -1 -1`."""
    return np.array(
        [f"{min(v, 1000)}\t.\t{v}\t-1\t-1\t-1\n" for v in range(largest + 1)], dtype=object
    )


def write_samples_as_peaks(paths: list[Path], cuts: dict[str, sp.csr_matrix], grid: BinGrid):
    """Each sample's non-zero bins as a narrowPeak: signalValue is the cut sites in the bin,
    and the score (0–1000, as ENCODE's) the same capped at 1000, so `--min-score N` keeps bins
    with at least N cuts. Lines go in the bins' order, chromosome by chromosome.

    Millions of lines: each bin's `chrom start end .` is formatted once for every sample,
    each distinct count's tail once per chromosome, and a line is the two joined in C. A
    writer thread compresses one block while the next is formatted (zlib lets go of the GIL).
    """
    with contextlib.ExitStack() as stack, ThreadPoolExecutor(max_workers=1) as writer:
        handles = [stack.enter_context(atomic_write(p, level=1)) for p in paths]
        pending: collections.deque = collections.deque()
        for run in grid.layout.chroms:
            counts = cuts.get(run.chrom)
            if counts is None:
                continue
            hit = np.flatnonzero(counts.getnnz(axis=0))
            span = slice(run.first, run.first + run.count)
            heads = np.array(
                list(map("{}\t{}\t{}\t.\t".format, itertools.repeat(run.chrom),
                         grid.starts[span][hit].tolist(), grid.ends[span][hit].tolist())),
                dtype=object,
            )  # fmt: skip
            head_of = np.zeros(run.count, dtype=np.int64)
            head_of[hit] = np.arange(len(hit))
            tails = _tails(int(counts.max()))
            for i, fh in enumerate(handles):
                row = counts[i]
                row.sort_indices()
                parts = np.empty(2 * len(row.indices), dtype=object)
                parts[0::2], parts[1::2] = heads[head_of[row.indices]], tails[row.data]
                pending.append(writer.submit(fh.write, "".join(parts.tolist())))
                while len(pending) > 2:  # at most two blocks wait: memory stays bounded
                    pending.popleft().result()
        for block in pending:
            block.result()


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
    rows, atac = [], []
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
        atac.append(outdir / f"{s.sample}.narrowPeak.gz")
        rows.append({**row, "fragments": int(per_sample[i]), "atac": atac[-1].name})
    write_samples_as_peaks(atac, cuts, grid)
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
