"""Flags that several subcommands share, each declared once (as pip's cli/cmdoptions.py).

A step's own flags live in its module's `add_arguments`. Here: the argument types and the
genome flags (bins, peak-bins, run). A shared group that fills one step's object is
declared beside that object instead, so that this module imports no step:
training_options and train_settings in train.py (train, run), network_options and fetcher
in fetch.py (fetch, encode-samplesheet, run), peak_options in peak_bins.py (peak-bins, run).
"""

from __future__ import annotations

import argparse
from pathlib import Path


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got '{text}'") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {value}")
    return value


def non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got '{text}'") from None
    if not value >= 0:  # also refuses nan
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {text}")
    return value


def genome_options(
    p: argparse.ArgumentParser, chrom_sizes_help: str = "chrom<TAB>size file; or --genome"
) -> None:
    """--chrom-sizes, or --genome for a bundled one (io.genome.chrom_sizes_for picks the file)."""
    from ..io.genome import GENOMES

    p.add_argument("--chrom-sizes", type=Path, help=chrom_sizes_help)
    p.add_argument(
        "--genome",
        choices=GENOMES,
        metavar="NAME",
        help="bundled chromosome sizes instead of --chrom-sizes: "
        + ", ".join(GENOMES)
        + " (primary assemblies; sources in assets/README.md)",
    )
