"""The real MultiQC (1.35, in a venv of its own: `make test` makes .venv-multiqc and sets
GEXP_MULTIQC) on a finished run folder, as a user of nf-core pipelines runs it."""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
from pathlib import Path

import pytest


def multiqc_executable() -> str:
    found = os.environ.get("GEXP_MULTIQC") or shutil.which("multiqc")
    if not found:
        if os.environ.get("GEXP_MULTIQC_REQUIRED"):
            pytest.fail("no MultiQC: `make test` installs it in .venv-multiqc")
        pytest.skip("no MultiQC here (make test installs it in .venv-multiqc)")
    return found


def run_multiqc(run: Path, out: Path) -> dict[str, list[dict]]:
    """MultiQC on `run`; its data tables (multiqc_data/*.txt) by name, as rows."""
    proc = subprocess.run(
        [multiqc_executable(), str(run), "-o", str(out), "--no-ansi", "-q", "--force"],
        capture_output=True, text=True, env={**os.environ, "MULTIQC_NO_VERSION_CHECK": "1"},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    tables = {}
    for path in sorted((out / "multiqc_data").glob("*.txt")):
        with open(path, newline="") as fh:
            tables[path.stem] = list(csv.DictReader(fh, delimiter="\t"))
    return tables


def assert_multiqc_shows_every_sample(run: Path, out: Path, samples: list[str]) -> None:
    """Every sample in the kallisto section and gexp's QC table; the software versions."""
    tables = run_multiqc(run, out)
    kallisto = {row["Sample"]: row for row in tables.get("multiqc_kallisto", [])}
    assert sorted(kallisto) == sorted(samples), kallisto.keys()
    assert all(float(row["total_reads"]) > 0 for row in kallisto.values())
    qc = {row["Sample"] for row in tables["multiqc_gexp_qc"]}
    assert qc == set(samples), qc
    versions = tables["multiqc_software_versions"]
    found = {tool for row in versions for tool, v in row.items() if tool != "Sample" and v}
    assert {"gexp", "kallisto", "bedtools"} <= found, versions
