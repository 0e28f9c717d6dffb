"""`gexp samplesheet`: validate a samplesheet and write it with absolute paths (SAMPLESHEET_CHECK).

The rules are the samplesheet reader's (io/samplesheet.py): every problem names its
line, relative paths resolve against `--base-dir` (default: the samplesheet's folder),
remote sources and object-store paths are kept as they are. `--check-files` also requires
local files to exist, as `gexp run` does before any work starts.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..io.samplesheet import (
    check_local_inputs,
    check_something_to_train,
    read_samplesheet,
    write_validated,
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--input", required=True, type=Path, help="samplesheet CSV")
    p.add_argument("--out", required=True, type=Path, help="validated samplesheet to write")
    p.add_argument(
        "--base-dir",  # str: a Path would turn s3://bucket into s3:/bucket
        help="where relative paths resolve (default: its folder; may be s3://, gs://, https://…)",
    )
    p.add_argument("--check-files", action="store_true", help="also require local files to exist")
    p.add_argument(
        "--with-model",
        action="store_true",
        help="the run predicts from a trained model (--model): every row must be ATAC-seq only "
        "(without it, some row must have RNA to train on)",
    )


def run(a: argparse.Namespace) -> None:
    samples = read_samplesheet(a.input, base_dir=a.base_dir)
    check_something_to_train(samples, a.input, a.with_model)
    if a.check_files:
        check_local_inputs(samples)
    write_validated(samples, a.out)
