"""The `gexp` subcommands: one module each, holding the step's work and its command line.

Each command's module offers `add_arguments(parser)` (its flags, beside the code they
feed; flags shared by several commands come from options.py) and `run(args)`. COMMANDS
lists them in `gexp --help` order with their one-line summaries, as pip's commands_dict
does, so that `gexp` imports only the module of the command it runs: a module holds its
step's imports (numpy, pandas, …), and every `gexp` call would otherwise pay for all of them.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from types import ModuleType


@dataclass(frozen=True)
class Command:
    module: str  # in gexpcore.steps; named by the step, as modules/local/<step>/
    summary: str  # the command's line in `gexp --help`


COMMANDS = {
    "simulate": Command("simulate", "write a small cohort with known truth"),
    "samplesheet": Command(
        "samplesheet_check", "validate a samplesheet; write it with absolute paths"
    ),
    "check-params": Command(
        "params_check", "check the pipeline's parameters against nextflow_schema.json"
    ),
    "check-fastq": Command(
        "fastq_check", "validate one sample's FASTQ files (gzip, records, mates)"
    ),
    "fetch": Command("fetch", "download a URL, ENCODE file or SRA/ENA run, md5-checked"),
    "encode-samplesheet": Command(
        "encode_samplesheet", "pair ENCODE ATAC-seq and RNA-seq by biosample"
    ),
    "localise": Command("localise", "point a samplesheet's remote sources at fetched files"),
    "reference": Command("reference", "tx2gene and gene table from a GTF"),
    "gene-tpm": Command("gene_tpm", "gene TPM of one sample from kallisto or a gene table"),
    "bins": Command("bins", "fixed-width bins over the genome or a region"),
    "peak-bins": Command("peak_bins", "accessibility per bin for one sample"),
    "pseudobulk": Command("pseudobulk", "pseudobulk samples from one single-cell multiome library"),
    "dataset": Command("dataset", "merge samples into training matrices + qc.json"),
    "train": Command("train", "cross-validate and fit the models"),
    "predict": Command("predict", "expression for samples with ATAC-seq only, with reliability"),
    "predictions": Command("predictions", "merge predicted samples into one table"),
    "report": Command("report", "HTML report and MultiQC files for a run folder"),
    "run": Command("run", "all steps for every sample on this machine"),
}


def load(command: str) -> ModuleType:
    """The module of a `gexp` subcommand, imported now."""
    return importlib.import_module(f"{__name__}.{COMMANDS[command].module}")
