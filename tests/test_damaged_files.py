"""Every input kind and every model file, truncated, corrupted or swapped for another format,
fails in one line that names the file, with no traceback and nothing under a final name.

A reader must check on open that its file is what its name promises: gzip streams that end,
bgzip with a matching tabix index, npz archives whose members are whole, HDF5 with the 10x
layout, tables with their columns, model folders whose files are whole.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import ROOT, assert_user_error, run_gexp

MULTIOME = ROOT / "tests" / "data" / "multiome"


def truncate(path: Path, other: bytes) -> None:
    """Cut at two thirds: mid-line in every file here (a plain-text file cut exactly at a line
    end is a shorter whole file, which no reader can tell apart)."""
    data = path.read_bytes()
    path.write_bytes(data[: max(1, len(data) * 2 // 3)])


def corrupt(path: Path, other: bytes) -> None:
    """Overwrite 1 kB at the middle with bytes that no format expects there."""
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    size = min(1024, max(1, len(data) // 4))
    data[middle : middle + size] = bytes((i * 97 + 13) % 256 for i in range(size))
    path.write_bytes(bytes(data))


def swap(path: Path, other: bytes) -> None:
    """Another format's bytes under this file's name."""
    path.write_bytes(other)


DAMAGES = {"truncated": truncate, "corrupted": corrupt, "swapped": swap}


def _other(kind: str, sim: Path) -> bytes:
    """What a file of `kind` is swapped for: a file of another format."""
    if kind in ("h5", "npz", "json", "tsv"):
        return (sim / "peaks" / "S001.narrowPeak.gz").read_bytes()  # gzip
    return (MULTIOME / "lib1" / "filtered_feature_bc_matrix.h5").read_bytes()  # HDF5


# Each case: the file's kind, how to lay out its inputs under tmp, which file to damage, and
# the command that reads it. The command's outputs all go under tmp/"out".
Case = tuple[str, Callable[[Path, Path, Path], tuple[Path, list]]]


def _peaks(tmp: Path, sim: Path, run: Path):
    peaks = shutil.copy(sim / "peaks" / "S001.narrowPeak.gz", tmp / "S001.narrowPeak.gz")
    bins = run / "accessibility" / "bins.bed"
    return Path(peaks), [
        "peak-bins",
        "--peaks",
        peaks,
        "--bins",
        bins,
        "--out",
        tmp / "out" / "S001.tsv.gz",
    ]


def _fastq(tmp: Path, sim: Path, run: Path):
    src = sim / "fastq" / "S001_R1.fastq.gz"
    fastq = Path(shutil.copy(src, tmp / src.name))
    return fastq, ["check-fastq", "--sample", "S1", "--read1", fastq]


def _quant(tmp: Path, sim: Path, run: Path):
    quant = Path(shutil.copy(run / "kallisto" / "S001" / "abundance.tsv", tmp / "abundance.tsv"))
    ref = run / "reference"
    out = tmp / "out" / "S001.tsv"
    return quant, ["gene-tpm", "--quant", quant, "--tx2gene", ref / "tx2gene.tsv", "--genes",
                   ref / "genes.tsv", "--sample", "S001", "--out", out]  # fmt: skip


def _library(tmp: Path, name: str):
    lib = tmp / "lib1"
    shutil.copytree(MULTIOME / "lib1", lib)
    files = {
        "h5": lib / "filtered_feature_bc_matrix.h5",
        "fragments": lib / "atac_fragments.tsv.gz",
        "index": lib / "atac_fragments.tsv.gz.tbi",
        "cells": lib / "cells.csv",
    }
    args = ["pseudobulk", "--library", "lib1", "--h5", files["h5"], "--fragments",
            files["fragments"], "--cells", files["cells"], "--gtf", MULTIOME / "genes.gtf.gz",
            "--bins", tmp / "bins.bed", "--outdir", tmp / "out"]  # fmt: skip
    sizes = MULTIOME / "chrom.sizes"
    assert run_gexp("bins", "--chrom-sizes", sizes, "--out", tmp / "bins.bed").returncode == 0
    return files[name], args


def _dataset_file(name: str):
    def layout(tmp: Path, sim: Path, run: Path):
        data = tmp / "dataset"
        shutil.copytree(run / "dataset", data)
        return data / name, ["train", "--dataset", data, "--outdir", tmp / "out",
                             "--models", "mean,ridge"]  # fmt: skip

    return layout


def _model_file(name: str, model: str = "ensemble"):
    def layout(tmp: Path, sim: Path, run: Path):
        folder = tmp / "model"
        shutil.copytree(run / "model", folder)
        peaks = sim / "peaks" / "S001.narrowPeak.gz"
        return folder / name, ["predict", "--model", folder, "--atac", peaks, "--outdir",
                               tmp / "out", "--model-name", model]  # fmt: skip

    return layout


def _dataset_input(kind: str):
    """`gexp dataset` on the run's per-sample tables, one of them (S001's) damaged."""

    def layout(tmp: Path, sim: Path, run: Path):
        expression = [
            Path(shutil.copy(p, tmp / p.name))
            for p in sorted((run / "expression" / "samples").glob("*.gene_tpm.tsv"))
        ]
        accessibility = [
            Path(shutil.copy(p, tmp / p.name))
            for p in sorted((run / "accessibility").glob("S*.tsv.gz"))
        ]
        target = (expression if kind == "expression" else accessibility)[0]
        return target, ["dataset", "--bins", run / "accessibility" / "bins.bed", "--genes",
                        run / "reference" / "genes.tsv", "--expression", *expression,
                        "--accessibility", *accessibility, "--outdir", tmp / "out"]  # fmt: skip

    return layout


def _gtf(tmp: Path, sim: Path, run: Path):
    gtf = Path(shutil.copy(sim / "reference" / "genes.gtf.gz", tmp / "genes.gtf.gz"))
    return gtf, ["reference", "--gtf", gtf, "--outdir", tmp / "out"]


def _chrom_sizes(tmp: Path, sim: Path, run: Path):
    sizes = Path(shutil.copy(sim / "reference" / "chrom.sizes", tmp / "chrom.sizes"))
    return sizes, ["bins", "--chrom-sizes", sizes, "--out", tmp / "out" / "bins.bed"]


def _samplesheet(tmp: Path, sim: Path, run: Path):
    sheet = Path(shutil.copy(sim / "samplesheet.csv", tmp / "samplesheet.csv"))
    return sheet, ["samplesheet", "--input", sheet, "--out", tmp / "out" / "valid.csv",
                   "--base-dir", sim]  # fmt: skip


CASES: dict[str, tuple[str, Callable]] = {
    "gtf": ("gz", _gtf),
    "chrom sizes": ("tsv", _chrom_sizes),
    "samplesheet": ("tsv", _samplesheet),
    "sample gene TPM": ("tsv", _dataset_input("expression")),
    "sample binned accessibility": ("gz", _dataset_input("accessibility")),
    "peaks": ("gz", _peaks),
    "fastq": ("gz", _fastq),
    "kallisto abundance": ("tsv", _quant),
    "10x h5": ("h5", lambda t, s, r: _library(t, "h5")),
    "fragments": ("gz", lambda t, s, r: _library(t, "fragments")),
    "fragments index": ("gz", lambda t, s, r: _library(t, "index")),
    "cells": ("tsv", lambda t, s, r: _library(t, "cells")),
    "dataset accessibility.npz": ("npz", _dataset_file("accessibility.npz")),
    "dataset expression.tsv": ("tsv", _dataset_file("expression.tsv")),
    "dataset samples.tsv": ("tsv", _dataset_file("samples.tsv")),
    "dataset genes.tsv": ("tsv", _dataset_file("genes.tsv")),
    "dataset bins.bed": ("tsv", _dataset_file("bins.bed")),
    "model model_info.json": ("json", _model_file("model_info.json")),
    "model bins.bed": ("tsv", _model_file("bins.bed")),
    "model genes.tsv": ("tsv", _model_file("genes.tsv")),
    "ensemble model.json": ("json", _model_file("ensemble/model.json")),
    "ensemble model.npz": ("npz", _model_file("ensemble/model.npz")),
    "member ridge model.npz": ("npz", _model_file("ridge/model.npz")),
    "member mixture_window model.json": ("json", _model_file("mixture_window/model.json")),
    "gene_score model.npz": ("npz", _model_file("gene_score/model.npz", "gene_score")),
}


@pytest.mark.parametrize("damage", DAMAGES)
@pytest.mark.parametrize("case", CASES)
def test_a_damaged_file_fails_in_one_line_naming_it(case, damage, sim, run_result, tmp_path):
    kind, layout = CASES[case]
    target, args = layout(tmp_path, sim, run_result)
    DAMAGES[damage](target, _other(kind, sim))
    proc = run_gexp(*args)
    line = assert_user_error(proc)
    assert target.name in line, line
    out = tmp_path / "out"
    out.mkdir(exist_ok=True)
    written = [p for p in out.rglob("*") if p.is_file() and p.name != ".gexp.lock"]  # a lock
    assert written == [], written


def test_a_quantification_kallisto_left_empty_is_never_kept(tmp_path):
    """kallisto quant exits 0 when it could not write its table (a full disk): an empty or
    cut abundance.tsv stops the step before its folder gets its final name."""
    from gexpcore.errors import GexpError
    from gexpcore.steps.quantify import check_quant_output

    (tmp_path / "abundance.tsv").write_text("")
    with pytest.raises(GexpError, match="kallisto quant wrote no complete abundance.tsv"):
        check_quant_output(tmp_path, "S001")
    (tmp_path / "abundance.tsv").write_text("target_id\tlength\teff_length\test_counts\ttpm\nT1\t9")
    with pytest.raises(GexpError, match="S001"):
        check_quant_output(tmp_path, "S001")
    (tmp_path / "abundance.tsv").write_text(
        "target_id\tlength\teff_length\test_counts\ttpm\nT1\t9\t9\t1\t1\n"
    )
    check_quant_output(tmp_path, "S001")
