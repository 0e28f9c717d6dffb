"""Training time and peak memory against the number of samples (issue 24, item 3).

    python benchmarks/scale.py [--sizes 14,100,500] [--genes 600] [--work DIR] [--out FILE.md]

For each size, a multiome experiment from `gexp simulate --multiome` (2 libraries; cell
types × donors chosen to give that many pseudobulk samples), its dataset built once by
`gexp run --models mean`, then `gexp train` timed in its own process with its peak RSS:
the default set (the ensemble with locus_net among its members), and locus_net and
mixture_window alone. Each is 4-fold cross-validation plus the final fit, one process.
The simulator has one 1 Mb chromosome per gene set, so at most 900 genes: the rows show
how cost grows with samples, not a genome-wide run (benchmarks/real.md has the blood
cohort's 11,194 genes × 1.6 M bins). Simulations are kept in --work and reused.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from real import timed

ROOT = Path(__file__).resolve().parents[1]
GEXP = [sys.executable, str(ROOT / "bin" / "gexp"), "-q"]
# pseudobulk samples = libraries (2) × cell types × donors
DESIGNS = {14: (7, 1), 32: (8, 2), 100: (10, 5), 200: (20, 5), 500: (25, 10)}
RUNS = {
    "default set": [],
    "locus_net": ["--models", "locus_net"],
    "mixture_window": ["--models", "mixture_window"],
}


def dataset(n: int, genes: int, work: Path) -> Path:
    """The dataset of an n-sample multiome simulation (built on first use)."""
    groups, donors = DESIGNS[n]
    sim, run = work / f"sim{n}", work / f"run{n}"
    if not (sim / "samplesheet.csv").is_file():  # written last: a finished simulation
        design = ["--groups", str(groups), "--donors", str(donors), "--libraries", "2"]
        timed(
            [*GEXP, "simulate", "--multiome", *design, "--genes", str(genes), "--outdir", str(sim)]
        )
    if not (run / "dataset" / "samples.tsv").is_file():
        timed([*GEXP, "run", "--input", str(sim / "samplesheet.csv"), "--gtf",
               str(sim / "genes.gtf.gz"), "--chrom-sizes", str(sim / "chrom.sizes"),
               "--outdir", str(run), "--models", "mean"])  # fmt: skip
    return run / "dataset"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="14,100,500")
    parser.add_argument("--genes", type=int, default=600)
    parser.add_argument("--work", type=Path, default=ROOT / "benchmarks" / "cohorts" / "scale")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--runs", default=",".join(RUNS), help=f"of {', '.join(RUNS)}")
    a = parser.parse_args()
    runs = {name: RUNS[name] for name in a.runs.split(",") if name in RUNS}
    if not runs:
        raise SystemExit(f"--runs: none of {a.runs}; choose from {', '.join(RUNS)}")
    sizes = [int(s) for s in a.sizes.split(",")]
    unknown = [n for n in sizes if n not in DESIGNS]
    if unknown:
        raise SystemExit(f"--sizes: no design for {unknown}; choose from {sorted(DESIGNS)}")
    lines = [
        f"`gexp train` on multiome simulations ({a.genes} genes, 2 libraries), "
        f"{os.cpu_count()} CPUs, 4-fold CV plus the final fit:",
        "",
        "| samples | " + " | ".join(f"{name}: s | {name}: peak MiB" for name in runs) + " |",
        "| ---: | " + " | ".join("---: | ---:" for _ in runs) + " |",
    ]
    for n in sizes:
        data = dataset(n, a.genes, a.work)
        cells = []
        for name, extra in runs.items():
            out = a.work / f"train{n}_{name.replace(' ', '_')}"
            seconds, mib = timed([*GEXP, "train", "--dataset", str(data), "--outdir", str(out),
                                  "--cv", "4", *extra])  # fmt: skip
            cells += [f"{seconds:.0f}", f"{mib:.0f}"]
            print(f"{n} samples, {name}: {seconds:.0f} s, {mib:.0f} MiB", flush=True)
        lines.append(f"| {n} | " + " | ".join(cells) + " |")
    text = "\n".join(lines) + "\n"
    print(text)
    if a.out:
        a.out.write_text(text)


if __name__ == "__main__":
    main()
