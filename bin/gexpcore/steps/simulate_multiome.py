"""A small single-cell multiome library with per-cell truth, in Cell Ranger ARC's formats.

Generative model (one numpy Generator, seeded):

- Two chromosomes of 1 Mb; `genes` genes, each with 2–3 exons on a random strand,
  written as a GTF (gene, transcript and exon lines; versioned ids).
- Cells: every (group, donor) gets 60–120 cells with random 16-base barcodes
  (`…-1`); a tenth of the h5's cells are left out of the cell table, as a user's
  annotation leaves out doublets and low-quality cells.
- RNA: each gene's log rate is a baseline plus 3 × (how open its promoter
  element is in the cell's group, centred over groups), plus a donor factor; each
  cell's UMI counts are Poisson with a per-cell depth. Written as the "Gene
  Expression" features of filtered_feature_bc_matrix.h5, beside a few "Peaks"
  features, as ARC writes both.
- ATAC: an element at every TSS plus random ones; each group opens an element with
  its own probability (drawn first: expression follows it); each cell draws Poisson
  fragments from its open elements (50–600 bp, around the element), with 1–3
  duplicates each. Written as a bgzipped, tabix-indexed atac_fragments.tsv.gz
  (chrom, start, end, barcode, count).

Libraries share the genes, elements and groups; each holds its own donors and cells
(`lib<k>/`), and `samplesheet.csv` lists them as multiome rows for `gexp run`.

Each library's truth/ holds, for every (group, donor), the summed UMI counts per gene and the Tn5
cut sites per 1 kb bin (both fragment ends), computed from the in-memory draws, not
from the written files.
"""

from __future__ import annotations

import csv
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ..errors import GexpError
from ..files import atomic_write
from ..io.tenx import GENE_EXPRESSION, PEAKS, FeatureMatrix, write_10x_h5

log = logging.getLogger("gexp")

CHROM_SIZE = 1_000_000
BIN = 1000


def _barcodes(rng: np.random.Generator, n: int) -> list[str]:
    seen: set[str] = set()
    out = []
    while len(out) < n:
        code = "".join(rng.choice(list("ACGT"), 16)) + "-1"
        if code not in seen:
            seen.add(code)
            out.append(code)
    return out


def simulate_multiome(
    outdir: str | Path,
    seed: int = 1,
    groups: int = 4,
    donors: int = 2,
    genes: int = 120,
    libraries: int = 1,
) -> Path:
    """Write the experiment: genes.gtf.gz, chrom.sizes, samplesheet.csv, and per library
    lib<k>/ with its h5, fragments, cell table and truth; returns the samplesheet."""
    slots = len(range(50_000, CHROM_SIZE - 50_000, 1000))
    if genes > slots:
        raise GexpError(
            f"--genes {genes}: the multiome simulation places TSSs 1 kb apart on "
            f"{CHROM_SIZE // 1_000_000} Mb, so it holds at most {slots} genes"
        )
    rng = np.random.default_rng(seed)
    out = Path(outdir)
    chroms = ["chr1", "chr2"]
    gene_chrom = rng.integers(0, 2, genes)
    tss = np.sort(rng.choice(np.arange(50_000, CHROM_SIZE - 50_000, 1000), genes, replace=False))
    strand = np.where(rng.random(genes) < 0.5, "+", "-")
    gene_ids = [f"ENSG{900000 + g:011d}" for g in range(genes)]
    _write_gtf(out / "genes.gtf.gz", rng, chroms, gene_chrom, tss, strand, gene_ids)
    with atomic_write(out / "chrom.sizes") as fh:
        fh.write("".join(f"{c}\t{CHROM_SIZE}\n" for c in chroms))

    # Accessibility first: element e (the first `genes` sit at the TSSs) is open in a cell of
    # group k with probability open_p[k, e].
    elements_chrom = np.concatenate([gene_chrom, rng.integers(0, 2, genes)])
    elements_pos = np.concatenate([tss, rng.integers(20_000, CHROM_SIZE - 20_000, genes)])
    open_p = rng.uniform(0.05, 0.6, (groups, len(elements_pos)))
    # Expression follows the gene's promoter: log rate = base + 3·(open_p − its mean over
    # groups), plus a donor factor and per-cell depth (as the bulk simulator's promoter effects).
    promoter = open_p[:, :genes]
    base = rng.normal(0.0, 1.0, genes)
    effect = 3.0 * (promoter - promoter.mean(axis=0, keepdims=True))
    donor_factor = rng.normal(0, 0.2, (donors * libraries, genes))
    shared = Shared(chroms, elements_chrom, elements_pos, open_p, base, effect, donor_factor)
    names = [f"lib{k + 1}" for k in range(libraries)]
    for k, library in enumerate(names):
        # each library holds its own donors (donor numbers go on across libraries)
        _write_library(out / library, library, rng, shared, gene_ids, groups,
                       range(k * donors, (k + 1) * donors))  # fmt: skip
    sheet = out / "samplesheet.csv"
    with atomic_write(sheet) as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(["sample", "multiome_h5", "fragments", "cells"])
        for lib in names:
            files = ("filtered_feature_bc_matrix.h5", "atac_fragments.tsv.gz", "cells.csv")
            writer.writerow([lib, *(f"{lib}/{name}" for name in files)])
    return sheet


@dataclass
class Shared:
    """What every library of the experiment shares: elements, groups' openness, expression."""

    chroms: list[str]
    elements_chrom: np.ndarray
    elements_pos: np.ndarray
    open_p: np.ndarray  # group × element
    base: np.ndarray  # gene
    effect: np.ndarray  # group × gene
    donor_factor: np.ndarray  # donor × gene


def _write_library(out: Path, library: str, rng, shared: Shared, gene_ids, groups: int,
                   donors: range) -> None:  # fmt: skip
    n_genes = len(gene_ids)
    cell_group, cell_donor = [], []
    for g in range(groups):
        for d in donors:
            n = int(rng.integers(60, 121))
            cell_group += [g] * n
            cell_donor += [d] * n
    cell_group, cell_donor = np.array(cell_group), np.array(cell_donor)
    n_cells = len(cell_group)
    barcodes = _barcodes(rng, n_cells)

    depth = rng.uniform(0.5, 1.5, n_cells)
    log_rate = shared.base[None, :] + shared.effect[cell_group] + shared.donor_factor[cell_donor]
    umis = rng.poisson(np.exp(log_rate) * depth[:, None])  # cells × genes
    frags = []  # (chrom index, start, end, cell)
    for c in range(n_cells):
        is_open = rng.random(len(shared.elements_pos)) < shared.open_p[cell_group[c]]
        for e in np.flatnonzero(is_open):
            for _ in range(int(rng.poisson(1.0))):
                length = int(rng.integers(50, 601))
                start = int(shared.elements_pos[e] + rng.integers(-300, 301) - length // 2)
                frags.append((int(shared.elements_chrom[e]), start, start + length, c))
    frags_arr = np.array(frags, dtype=np.int64).reshape(-1, 4)

    peaks = [f"chr1:{p - 250}-{p + 250}" for p in shared.elements_pos[:5]]
    peak_counts = rng.poisson(1.0, (n_cells, len(peaks)))
    counts = sp.csc_matrix(np.hstack([umis, peak_counts]).T)
    matrix = FeatureMatrix(
        counts,
        barcodes,
        gene_ids + peaks,
        [f"SIMG{g + 1:04d}" for g in range(n_genes)] + peaks,
        [GENE_EXPRESSION] * n_genes + [PEAKS] * len(peaks),
        ["sim"] * (n_genes + len(peaks)),
    )
    tss = shared.elements_pos[:n_genes]
    chrom_of = shared.elements_chrom[:n_genes]
    intervals = [f"{shared.chroms[chrom_of[g]]}:{tss[g]}-{tss[g] + 1}" for g in range(n_genes)]
    write_10x_h5(out / "filtered_feature_bc_matrix.h5", matrix, intervals + peaks)
    _write_fragments(out / "atac_fragments.tsv.gz", rng, shared.chroms, frags_arr, barcodes)

    annotated = rng.random(n_cells) >= 0.1
    with atomic_write(out / "cells.csv") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(["barcode", "group", "donor"])
        for c in np.flatnonzero(annotated):
            writer.writerow([barcodes[c], f"type{cell_group[c] + 1}", f"donor{cell_donor[c] + 1}"])
    _write_truth(out / "truth", library, umis, frags_arr, cell_group, cell_donor, annotated,
                 gene_ids)  # fmt: skip
    log.info("simulate --multiome %s: %d cells, %d fragments", library, n_cells, len(frags_arr))


def _write_gtf(path, rng, chroms, gene_chrom, tss, strand, gene_ids) -> None:
    lines = []
    for g, gid in enumerate(gene_ids):
        chrom, s = chroms[gene_chrom[g]], strand[g]
        n_exons = int(rng.integers(2, 4))
        lengths = rng.integers(100, 600, n_exons)
        gaps = rng.integers(200, 2000, n_exons)
        exons, cursor = [], 0
        for k in range(n_exons):
            exons.append((cursor, cursor + int(lengths[k])))
            cursor += int(lengths[k]) + int(gaps[k])
        if s == "+":
            coords = [(tss[g] + a + 1, tss[g] + b) for a, b in exons]
        else:
            coords = [(tss[g] - b + 2, tss[g] - a + 1) for a, b in exons]
        lo, hi = min(c[0] for c in coords), max(c[1] for c in coords)
        attrs = f'gene_id "{gid}.1"; gene_name "SIMG{g + 1:04d}"; gene_type "protein_coding";'
        tx = f'{attrs} transcript_id "ENST{900000 + g:011d}.1";'
        lines.append(f"{chrom}\tsim\tgene\t{lo}\t{hi}\t.\t{s}\t.\t{attrs}\n")
        lines.append(f"{chrom}\tsim\ttranscript\t{lo}\t{hi}\t.\t{s}\t.\t{tx}\n")
        lines += [f"{chrom}\tsim\texon\t{a}\t{b}\t.\t{s}\t.\t{tx}\n" for a, b in sorted(coords)]
    with atomic_write(path) as fh:
        fh.write("".join(lines))


def _write_fragments(path: Path, rng, chroms, frags: np.ndarray, barcodes: list[str]) -> None:
    """bgzipped and tabix-indexed, sorted by position, as Cell Ranger ARC writes it."""
    import pysam

    order = np.lexsort((frags[:, 2], frags[:, 1], frags[:, 0]))
    duplicates = rng.integers(1, 4, len(frags))
    plain = path.with_name(path.name[: -len(".gz")])
    with open(plain, "w") as fh:
        fh.write("# simulated by gexp simulate --multiome\n")
        for i in order:
            c, s, e, cell = frags[i]
            fh.write(f"{chroms[c]}\t{s}\t{e}\t{barcodes[cell]}\t{duplicates[i]}\n")
    pysam.tabix_index(str(plain), preset="bed", force=True, keep_original=False)


def _write_truth(truth: Path, library, umis, frags, cell_group, cell_donor, annotated, gene_ids):
    """Per (group, donor) of annotated cells: summed UMIs per gene, cut sites per bin."""
    n_bins = CHROM_SIZE // BIN
    counts, cuts = {}, []
    for g in np.unique(cell_group):
        for d in np.unique(cell_donor):
            cells = annotated & (cell_group == g) & (cell_donor == d)
            name = f"{library}_type{g + 1}_donor{d + 1}"
            counts[name] = umis[cells].sum(axis=0)
            mine = frags[cells[frags[:, 3]]]
            for site in (mine[:, 1], mine[:, 2] - 1):
                global_bin = mine[:, 0] * n_bins + np.clip(site // BIN, 0, n_bins - 1)
                cuts.append(pd.DataFrame({"sample": name, "bin": global_bin}))
    with atomic_write(truth / "umi_counts.tsv") as fh:
        pd.DataFrame(counts, index=pd.Index(gene_ids, name="gene_id")).to_csv(fh, sep="\t")
    table = pd.concat(cuts).value_counts(["sample", "bin"]).rename("cuts").reset_index()
    with atomic_write(truth / "cut_sites.tsv") as fh:
        table.sort_values(["sample", "bin"]).to_csv(fh, sep="\t", index=False)
