#!/usr/bin/env python3
"""`gexp pseudobulk` on a large fragments file against the floor of reading it once.

    python benchmarks/pseudobulk.py [--fragments 5000000] [--cells 5000]

Writes a synthetic library: GRCh38's autosomes, `--cells` barcodes in 10 groups,
fragments at random positions (bgzipped and tabix-indexed by pysam, as Cell Ranger
ARC writes them), a small h5 and GTF (the RNA side is cheap and not what is
measured). Then it times, each in its own process (wall seconds, peak MiB):

- the floor: every line of the file read once through pysam's tabix iterator;
- `gexp pseudobulk` as a user runs it (RNA, cut sites per 1 kb bin, outputs).

Issue 18's target: 50 million fragments in under 5 minutes and 2 GB on 2 cores.
The table gives seconds per million fragments, so a smaller run extrapolates.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bin"))
GEXP = [sys.executable, str(ROOT / "bin" / "gexp"), "-q"]

FLOOR = """
import sys, pysam
n = 0
with pysam.TabixFile(sys.argv[1]) as tbx:
    for contig in tbx.contigs:
        for _ in tbx.fetch(contig):
            n += 1
print(n)
"""


def timed(cmd: list[str]) -> tuple[float, float]:
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stderr.read()[-2000:]}")
    return seconds, usage.ru_maxrss / 1024


def write_library(work: Path, n_fragments: int, n_cells: int, rng: np.random.Generator) -> None:
    import pysam
    import scipy.sparse as sp
    from gexpcore.io.tenx import GENE_EXPRESSION, FeatureMatrix, write_10x_h5
    from gexpcore.steps.simulate_multiome import _barcodes

    sizes = {}
    for line in (ROOT / "assets" / "GRCh38.chrom.sizes").read_text().splitlines():
        chrom, size = line.split("\t")[:2]
        if chrom.removeprefix("chr").isdigit():
            sizes[chrom] = int(size)
    chroms = list(sizes)
    barcodes = _barcodes(rng, n_cells)
    weights = np.array([sizes[c] for c in chroms], dtype=float)
    which = np.sort(rng.choice(len(chroms), n_fragments, p=weights / weights.sum()))
    plain = work / "atac_fragments.tsv"
    with open(plain, "w") as fh:
        for c, count in zip(*np.unique(which, return_counts=True), strict=True):
            starts = np.sort(rng.integers(0, sizes[chroms[c]] - 1000, count))
            lengths = rng.integers(50, 600, count)
            cells = rng.integers(0, n_cells, count)
            fh.writelines(
                f"{chroms[c]}\t{s}\t{s + n}\t{barcodes[b]}\t1\n"
                for s, n, b in zip(starts.tolist(), lengths.tolist(), cells.tolist(), strict=True)
            )
    pysam.tabix_index(str(plain), preset="bed", force=True)
    genes = [f"ENSG{800000 + g:011d}" for g in range(1000)]
    counts = sp.random(len(genes), n_cells, density=0.05, format="csc", random_state=1) * 10
    counts.data = np.ceil(counts.data)
    matrix = FeatureMatrix(counts, barcodes, genes, genes, [GENE_EXPRESSION] * len(genes),
                           ["GRCh38"] * len(genes))  # fmt: skip
    write_10x_h5(work / "filtered_feature_bc_matrix.h5", matrix, ["chr1:1-2"] * len(genes))
    with open(work / "genes.gtf", "w") as fh:
        for g, gid in enumerate(genes):
            a = 10_000 + 5_000 * g
            attrs = f'gene_id "{gid}"; transcript_id "T{g}";'
            fh.write(f"chr1\tb\texon\t{a}\t{a + 999}\t.\t+\t.\t{attrs}\n")
    with open(work / "cells.csv", "w") as fh:
        fh.write("barcode,group\n")
        fh.writelines(f"{b},type{i % 10}\n" for i, b in enumerate(barcodes))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fragments", type=int, default=5_000_000)
    parser.add_argument("--cells", type=int, default=5000)
    parser.add_argument("--write-library", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.write_library:
        write_library(args.write_library, args.fragments, args.cells, np.random.default_rng(0))
        return
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        # In a process of its own: a child's peak memory (ru_maxrss) counts the pages it
        # inherits at fork, so this process must stay small while the commands are timed.
        subprocess.run(
            [sys.executable, __file__, "--write-library", str(work),
             "--fragments", str(args.fragments), "--cells", str(args.cells)],
            check=True,
        )  # fmt: skip
        frags = work / "atac_fragments.tsv.gz"
        subprocess.run([*GEXP, "bins", "--genome", "GRCh38", "--out", str(work / "bins.bed")],
                       check=True)  # fmt: skip
        rows = {
            "floor: every line read once through pysam's tabix iterator": timed(
                [sys.executable, "-c", FLOOR, str(frags)]
            ),
            "gexp pseudobulk (10 groups; RNA, cut sites per 1 kb bin, outputs)": timed(
                [
                    *GEXP,
                    "pseudobulk",
                    "--library",
                    "bench",
                    "--h5",
                    str(work / "filtered_feature_bc_matrix.h5"),
                    "--fragments",
                    str(frags),
                    "--cells",
                    str(work / "cells.csv"),
                    "--gtf",
                    str(work / "genes.gtf"),
                    "--bins",
                    str(work / "bins.bed"),
                    "--outdir",
                    str(work / "out"),
                ]
            ),  # fmt: skip
        }
    millions = args.fragments / 1e6
    floor = next(iter(rows.values()))[0]
    print(f"| {millions:g} M fragments, {args.cells} cells | seconds | s per M | × floor | "
          "peak MiB |")  # fmt: skip
    print("| --- | ---: | ---: | ---: | ---: |")
    for name, (seconds, mib) in rows.items():
        print(f"| {name} | {seconds:.1f} | {seconds / millions:.2f} | {seconds / floor:.2f} | "
              f"{mib:.0f} |")  # fmt: skip


if __name__ == "__main__":
    main()
