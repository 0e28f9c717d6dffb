"""Running the real `nextflow run main.nf` from pytest (where nf-test would, were it reachable).

Nextflow is the one `make nextflow` builds from Maven Central (.nextflow-bin/nextflow), or
$NEXTFLOW. Without it the pipeline tests skip, unless GEXP_PIPELINE_TESTS=required (CI),
where a missing Nextflow fails them: CI must not pass by skipping what it is there to run.
"""

from __future__ import annotations

import filecmp
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data"

# The data outputs both runners write byte for byte alike (issue 15). Not compared: kallisto's
# run_info.json (start time, command line), model_info.json (library versions),
# fit_seconds.json (timings), report.html (times, paths) and pipeline_info/ (each runner's own
# records).
DATA_OUTPUTS = (
    "reference/tx2gene.tsv",
    "reference/genes.tsv",
    "expression/",
    "accessibility/",
    "pseudobulk/",
    "dataset/",
    "kallisto/*/abundance.tsv",
    "kallisto/*.kallisto.log",
    "model/metrics.json",
    "model/predictions.tsv",
    "model/per_gene_r.tsv",
    "model/history.json",
    "model/*/model.npz",
    "model/*/model.json",
    "model/intervals.tsv",
    "model/similarity.npz",
    "predictions/",
)


def require(missing: str | None) -> None:
    """Skip a test whose tool is missing, or fail it where CI says the tools must be there."""
    if missing is None:
        return
    if os.environ.get("GEXP_PIPELINE_TESTS") == "required":
        pytest.fail(missing)
    pytest.skip(missing)


def nextflow_executable() -> Path:
    found = Path(os.environ.get("NEXTFLOW") or ROOT / ".nextflow-bin" / "nextflow")
    require(None if found.is_file() else f"no Nextflow at {found}: run `make nextflow`")
    return found


def nextflow(*args: object, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    """`nextflow …` in its own launch folder (its .nextflow/ cache and work/), with the project
    venv's Python first on PATH: the local executor runs bin/gexp with the host's tools."""
    environment = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "NXF_ANSI_LOG": "false",
        **(env or {}),
    }
    cwd.mkdir(parents=True, exist_ok=True)
    return subprocess.run(
        [str(nextflow_executable()), *map(str, args)],
        cwd=cwd,
        env=environment,
        capture_output=True,
        text=True,
    )


def run_test_profile(
    data: Path, outdir: Path, launch: Path, *options: object, profile: str = "test", env=None
) -> subprocess.CompletedProcess:
    """`nextflow run main.nf -profile <profile> <options>` on a copy of the bundled cohort, or
    of the bundled multiome experiment when the profile names test_multiome; `options` come
    last, so they may override an input."""
    inputs = multiome_args if "test_multiome" in profile.split(",") else profile_args
    return nextflow(
        "run", ROOT / "main.nf", "-profile", profile, *inputs(data, outdir), *options,
        cwd=launch, env=env,
    )  # fmt: skip


def assert_ok(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-3000:]
    return proc.stdout


def submitted(log: str) -> list[str]:
    """The tasks a run started (not taken from the cache), e.g. 'GEXP:PEAK_BINS (S003)'."""
    return re.findall(r"Submitted process > (.+)", log)


def cached(log: str) -> list[str]:
    return re.findall(r"Cached process > (.+)", log)


def data_files(outdir: Path) -> list[str]:
    """The DATA_OUTPUTS present in a run folder, as paths relative to it."""
    found = set()
    for pattern in DATA_OUTPUTS:
        if pattern.endswith("/"):
            found |= {p for p in (outdir / pattern).rglob("*") if p.is_file()}
        else:
            found |= set(outdir.glob(pattern))
    return sorted(str(p.relative_to(outdir)) for p in found if not p.name.startswith("."))


def assert_same_data_outputs(expected: Path, actual: Path) -> None:
    """Every data output of `expected` exists in `actual` with the same bytes, and no more."""
    names = data_files(expected)
    assert len(names) > 20, names
    assert data_files(actual) == names
    different = [n for n in names if not filecmp.cmp(expected / n, actual / n, shallow=False)]
    assert different == [], f"outputs differ from gexp run's: {different}"


def copy_test_data(dest: Path) -> Path:
    """The bundled cohort in a folder of the test's own (its samplesheet uses relative paths)."""
    shutil.copytree(DATA, dest, ignore=shutil.ignore_patterns("corces2016", "truth"))
    return dest


def multiome_args(data: Path, outdir: Path) -> list[str]:
    """The test_multiome profile's inputs, pointed at a copy of the bundled experiment."""
    experiment = data / "multiome"
    return [
        "--input", experiment / "samplesheet.csv",
        "--gtf", experiment / "genes.gtf.gz",
        "--chrom_sizes", experiment / "chrom.sizes",
        "--outdir", outdir,
    ]  # fmt: skip


def profile_args(data: Path, outdir: Path) -> list[str]:
    """The test profile's inputs, pointed at a copy of the bundled cohort."""
    return [
        "--input",
        data / "samplesheet.csv",
        "--transcriptome",
        data / "reference" / "transcripts.fa.gz",
        "--gtf",
        data / "reference" / "genes.gtf.gz",
        "--chrom_sizes",
        data / "reference" / "chrom.sizes",
        "--outdir",
        outdir,
    ]


# Rows with ATAC-seq only, added to the bundled samplesheet: samples to predict (issue 25).
# Their peaks are two training samples' under new names, so their predictions are not held-out
# (gexp predict says so); what they test is that they never reach DATASET or TRAIN.
PREDICT_ROWS = "P001,,,,,peaks/S001.narrowPeak.gz,,\nP002,,,,,peaks/S004.narrowPeak.gz,,\n"


def with_samples_to_predict(data: Path) -> Path:
    """The bundled samplesheet plus PREDICT_ROWS, beside it (its relative paths still hold)."""
    sheet = data / "samplesheet_predict.csv"
    sheet.write_text((data / "samplesheet.csv").read_text() + PREDICT_ROWS)
    return sheet


def with_scatac_library(experiment: Path) -> Path:
    """The bundled multiome samplesheet with lib2 as a scATAC-only library (its h5 left out):
    lib1 trains, lib2's pseudobulk samples are predicted (issue 25)."""
    sheet = experiment / "samplesheet_scatac.csv"
    rows = (experiment / "samplesheet.csv").read_text().splitlines()
    rows = [r.replace("lib2/filtered_feature_bc_matrix.h5", "") for r in rows]
    sheet.write_text("\n".join(rows) + "\n")
    return sheet


def samplesheet_with_predictions(data: Path, profile: str) -> Path:
    """test: the bundled cohort with two samples to predict; test_multiome: the experiment
    with lib2 scATAC-only (conftest's gexp_predict_run and gexp_scatac_run on the same)."""
    if profile == "test_multiome":
        return with_scatac_library(data / "multiome")
    return with_samples_to_predict(data)
