"""Chromosome sizes and genomic regions."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from ..errors import GexpError
from ..files import read_text

# Chromosome sizes bundled with gexp (assets/ beside bin/ in the repository; each file's
# source is in assets/README.md), primary assemblies only. A GRC name and its UCSC name
# share one file: their chromosomes are the same sequences. main.nf and
# nextflow_schema.json list the same names (a test compares them).
GENOMES = {
    "GRCh38": "GRCh38.chrom.sizes",
    "hg38": "GRCh38.chrom.sizes",
    "GRCh37": "GRCh37.chrom.sizes",
    "hg19": "GRCh37.chrom.sizes",
    "GRCm39": "GRCm39.chrom.sizes",
    "mm39": "GRCm39.chrom.sizes",
    "GRCm38": "GRCm38.chrom.sizes",
    "mm10": "GRCm38.chrom.sizes",
}
ASSETS = Path(__file__).resolve().parents[3] / "assets"


def chrom_sizes_for(chrom_sizes: str | Path | None, genome: str | None) -> Path:
    """--chrom-sizes if given, else the bundled sizes of --genome."""
    if chrom_sizes:
        return Path(chrom_sizes)
    if not genome:
        raise GexpError("give --chrom-sizes FILE or --genome (one of: " + ", ".join(GENOMES) + ")")
    if genome not in GENOMES:
        raise GexpError(f"unknown --genome '{genome}'; bundled: {', '.join(GENOMES)}")
    path = ASSETS / GENOMES[genome]
    if not path.is_file():
        raise GexpError(f"--genome {genome}: {path} is missing; give --chrom-sizes instead")
    return path


@dataclass(frozen=True)
class Region:
    """A half-open, 0-based interval parsed from `chr1:1-10000000` (1-based, inclusive)."""

    chrom: str
    start: int
    end: int

    def __str__(self) -> str:
        return f"{self.chrom}:{self.start + 1}-{self.end}"


def read_chrom_sizes(path: str | Path) -> dict[str, int]:
    sizes: dict[str, int] = {}
    text = read_text(path, "chrom sizes")
    if text and not text.endswith("\n"):
        raise GexpError(
            f"chrom sizes {path}: its last line has no newline at its end: cut short? "
            "(add one if the file is whole)"
        )
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.startswith("#"):
            continue
        fields = line.split("\t") if "\t" in line else line.split()
        if len(fields) < 2:
            raise GexpError(f"chrom sizes {path} line {lineno}: expected 'chrom<TAB>size'")
        try:
            size = int(fields[1])
        except ValueError:
            raise GexpError(
                f"chrom sizes {path} line {lineno}: non-numeric size '{fields[1]}'"
            ) from None
        if size <= 0:
            raise GexpError(f"chrom sizes {path} line {lineno}: size must be positive")
        if fields[0] in sizes:
            raise GexpError(f"chrom sizes {path} line {lineno}: duplicate chromosome {fields[0]}")
        sizes[fields[0]] = size
    if not sizes:
        raise GexpError(f"chrom sizes {path}: no chromosomes")
    return sizes


def parse_region(text: str, sizes: dict[str, int]) -> Region:
    match = re.fullmatch(r"([^:\s]+)(?::([\d,]+)-([\d,]+))?", text.strip())
    if not match:
        raise GexpError(f"invalid region '{text}': expected chrom or chrom:start-end")
    chrom = match.group(1)
    if chrom not in sizes:
        alt = chrom[3:] if chrom.startswith("chr") else "chr" + chrom
        if alt not in sizes:
            raise GexpError(f"region '{text}': chromosome {chrom} is not in the chrom sizes")
        chrom = alt
    if match.group(2) is None:
        return Region(chrom, 0, sizes[chrom])
    start = int(match.group(2).replace(",", "")) - 1
    end = min(int(match.group(3).replace(",", "")), sizes[chrom])
    if start < 0 or end <= start:
        raise GexpError(f"invalid region '{text}': start must be >= 1 and before end")
    return Region(chrom, start, end)
