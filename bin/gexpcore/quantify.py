"""kallisto index and quant, as `gexp run` calls them (Nextflow calls kallisto directly)."""

from __future__ import annotations

import logging
from pathlib import Path

from .files import atomic_dir, atomic_path
from .tools import run_tool

log = logging.getLogger("gexp")


def kallisto_index(transcriptome: str | Path, index: str | Path) -> Path:
    with atomic_path(index) as tmp:
        run_tool(["kallisto", "index", "-i", tmp, transcriptome], "kallisto index")
    return Path(index)


def kallisto_quant_command(
    index: str | Path,
    outdir: str | Path,
    read1: list[str],
    read2: list[str],
    fragment_length: float,
    fragment_sd: float,
    threads: int = 1,
) -> list[str]:
    """The same command line as modules/local/kallisto_quant."""
    cmd = ["kallisto", "quant", "-i", str(index), "-o", str(outdir), "-t", str(threads)]
    if read2:
        return cmd + [f for pair in zip(read1, read2, strict=False) for f in pair]
    return cmd + ["--single", "-l", f"{fragment_length:g}", "-s", f"{fragment_sd:g}", *read1]


def kallisto_quant(
    sample: str,
    index: Path,
    outdir: Path,
    read1: list[str],
    read2: list[str],
    fragment_length: float,
    fragment_sd: float,
    threads: int = 1,
) -> Path:
    with atomic_dir(outdir) as tmp:
        cmd = kallisto_quant_command(
            index, tmp, read1, read2, fragment_length, fragment_sd, threads
        )
        run_tool(cmd, f"sample {sample}: kallisto quant")
    return outdir / "abundance.tsv"
