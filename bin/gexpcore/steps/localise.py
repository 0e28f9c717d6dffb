"""`gexp localise`: point a samplesheet's remote sources at the files FETCH wrote (LOCALISE).

Each remote source (URL, ENCODE or SRA/ENA accession) is replaced by its downloaded file;
an SRA/ENA run in rna_1 that ENA serves as two files becomes read 1 and read 2. The files
are found in a `gexp fetch --outdir` folder (`gexp run`, and `--fetched` by hand) or in
main.nf's map of where each source was fetched to (`--fetched-map`). A source that has not
been fetched fails in one line, naming it.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import GexpError
from ..io.samplesheet import Sample, read_samplesheet, remote_sources, write_validated


def localise(samples: list[Sample], fetched: dict[str, list[str]]) -> list[Sample]:
    """Replace remote sources by their downloaded files.

    An SRA/ENA run in rna_1 that ENA serves as two files becomes read 1 and read 2.
    """
    from dataclasses import replace

    def one(value: str, s: Sample, column: str) -> str:
        files = fetched.get(value, [value]) if value else [value]
        if len(files) != 1:
            raise GexpError(f"sample {s.sample}: {column} '{value}' is paired-end; put it in rna_1")
        return files[0]

    result = []
    for s in samples:
        read1, read2 = [], []
        for i, value in enumerate(s.rna_1):
            files = fetched.get(value, [value])
            if len(files) == 2:
                if s.rna_2:
                    raise GexpError(
                        f"sample {s.sample}: run '{value}' is paired-end by itself; "
                        "leave rna_2 empty"
                    )
                read1.append(files[0])
                read2.append(files[1])
            else:
                read1.append(files[0])
                if s.rna_2:
                    read2.append(one(s.rna_2[i], s, "rna_2"))
        if read2 and len(read2) != len(read1):
            raise GexpError(f"sample {s.sample}: mixes single-end and paired-end runs")
        result.append(
            replace(
                s,
                rna_1=read1,
                rna_2=read2,
                rna_tpm=one(s.rna_tpm, s, "rna_tpm"),
                atac=one(s.atac, s, "atac"),
            )
        )
    return result


def fetched_map(sources: list[str], path: Path) -> dict[str, list[str]]:
    """Where each source was fetched to, as the pipeline saw it: main.nf names FETCH's outputs
    by the paths Nextflow has for them (work folder or bucket URIs, valid where main.nf reads
    the samplesheet), not by the task-local copies a cloud task would see."""
    from ..files import read_json

    mapping = read_json(path, "fetched-files map", empty={})
    missing = [s for s in sources if not mapping.get(s)]
    if missing:
        raise GexpError(f"'{missing[0]}' has not been fetched (no file in the fetched-files map)")
    return {s: sorted(mapping[s]) for s in sources}


def fetched_files(sources: list[str], folder: Path, verify: bool = False) -> dict[str, list[str]]:
    """Map each remote source to its files in a fetch folder; fail naming a missing one."""
    from .fetch import cached_files

    mapping = {}
    for source in sources:
        files = cached_files(source, folder, verify=verify)
        if not files:
            raise GexpError(f"'{source}' has not been fetched into {folder}")
        mapping[source] = [str(Path(f).resolve()) for f in files]
    return mapping


# -- the command line: `gexp localise` ---------------------------------------------------------


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--input", required=True, type=Path, help="validated samplesheet")
    given = p.add_mutually_exclusive_group(required=True)
    given.add_argument("--fetched", type=Path, help="folder of `gexp fetch --outdir`")
    given.add_argument(
        "--fetched-map",
        type=Path,
        help="JSON {source: [file, …]} of where each source was fetched to; - reads stdin",
    )
    p.add_argument("--out", required=True, type=Path, help="samplesheet to write")


def run(a: argparse.Namespace) -> None:
    samples = read_samplesheet(a.input)
    sources = remote_sources(samples)
    if a.fetched_map is not None:
        fetched = fetched_map(sources, a.fetched_map)
    else:
        fetched = fetched_files(sources, a.fetched) if sources else {}
    write_validated(localise(samples, fetched), a.out)
