"""Shared fixtures: the real `bin/gexp` executable and a small simulated cohort."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
GEXP = ROOT / "bin" / "gexp"
sys.path.insert(0, str(ROOT / "bin"))

import gexpcore  # noqa: E402,F401  before numpy: in-process tests compute with gexp's pinned kernels


def run_gexp(*args: object, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """Run the same executable that Nextflow processes call."""
    return subprocess.run(
        [sys.executable, str(GEXP), *map(str, args)], cwd=cwd, capture_output=True, text=True
    )


def assert_user_error(proc: subprocess.CompletedProcess, *fragments: str) -> str:
    """A user mistake: non-zero exit, one `gexp: error:` line naming the cause, no traceback."""
    assert proc.returncode != 0, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("gexp: error:")]
    assert len(errors) == 1, proc.stderr
    for fragment in fragments:
        assert fragment in errors[0], errors[0]
    return errors[0]


def assert_nothing_written(folder: Path) -> None:
    """No output and no temporary file left behind."""
    leftovers = [p.name for p in folder.iterdir()] if folder.exists() else []
    assert leftovers == [], leftovers


@pytest.fixture(scope="session")
def sim(tmp_path_factory) -> Path:
    """A small cohort (6 samples, 2 single-end) shared by the tests that need real data."""
    from gexpcore.steps.simulate import simulate

    out = tmp_path_factory.mktemp("sim")
    simulate(out, seed=3, samples=6, genes=80, reads=20_000)
    return out


@pytest.fixture(scope="session")
def reference(sim, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("reference")
    proc = run_gexp("reference", "--gtf", sim / "reference" / "genes.gtf.gz", "--outdir", out)
    assert proc.returncode == 0, proc.stderr
    return out


# Full-length training is for real runs; the tests check behaviour, not convergence.
FAST_TRAINING = ("--mlp-epochs", 50)


def gexp_run(sim: Path, sheet: Path, outdir: Path, *extra: object) -> subprocess.CompletedProcess:
    """`gexp run` on a simulated cohort's reference."""
    ref = sim / "reference"
    return run_gexp(
        "run",
        "--input",
        sheet,
        "--transcriptome",
        ref / "transcripts.fa.gz",
        "--gtf",
        ref / "genes.gtf.gz",
        "--chrom-sizes",
        ref / "chrom.sizes",
        "--outdir",
        outdir,
        *FAST_TRAINING,
        *extra,
    )


@pytest.fixture(scope="session")
def run_result(sim, tmp_path_factory) -> Path:
    """One complete `gexp run` on the small cohort, shared read-only by several suites; every
    model is asked for, the opt-in seed_mlp included, so each one's folder is tested."""
    from gexpcore.models import NAMES

    out = tmp_path_factory.mktemp("res")
    proc = gexp_run(sim, sim / "samplesheet.csv", out, "--threads", 2, "--models", ",".join(NAMES))
    assert proc.returncode == 0, proc.stderr
    return out


def bundled_run(data: Path, sheet: Path, outdir: Path) -> Path:
    """`gexp run` on the bundled cohort with the test profile's settings."""
    proc = run_gexp(
        "run",
        "--input", sheet,
        "--transcriptome", data / "reference" / "transcripts.fa.gz",
        "--gtf", data / "reference" / "genes.gtf.gz",
        "--chrom-sizes", data / "reference" / "chrom.sizes",
        "--mlp-epochs", 100,  # conf/test.config's mlp_epochs
        "--outdir", outdir,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return outdir


@pytest.fixture(scope="session")
def gexp_predict_run(tmp_path_factory) -> Path:
    """gexp_test_run's cohort and settings with two samples to predict: what `-profile test
    --input samplesheet_predict.csv` must reproduce byte for byte."""
    from pipeline import copy_test_data, with_samples_to_predict

    data = copy_test_data(tmp_path_factory.mktemp("gexp-predict-run") / "data")
    return bundled_run(data, with_samples_to_predict(data), data.parent / "results")


@pytest.fixture(scope="session")
def gexp_test_run(tmp_path_factory) -> Path:
    """`gexp run` on the bundled cohort with the test profile's settings: what every real
    Nextflow run (local, containers, slurm) must reproduce byte for byte."""
    from pipeline import copy_test_data

    base = tmp_path_factory.mktemp("gexp-test-run")
    data = copy_test_data(base / "data")
    return bundled_run(data, data / "samplesheet.csv", base / "results")


def multiome_run(experiment: Path, sheet: Path, outdir: Path) -> Path:
    """`gexp run` on the bundled multiome experiment with the test_multiome profile's settings
    (the defaults)."""
    proc = run_gexp(
        "run",
        "--input", sheet,
        "--gtf", experiment / "genes.gtf.gz",
        "--chrom-sizes", experiment / "chrom.sizes",
        "--outdir", outdir,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return outdir


@pytest.fixture(scope="session")
def gexp_multiome_run(tmp_path_factory) -> Path:
    """`gexp run` on the bundled multiome experiment with the test_multiome profile's
    settings (the defaults): what its Nextflow runs must reproduce byte for byte."""
    from pipeline import copy_test_data

    base = tmp_path_factory.mktemp("gexp-multiome-run")
    experiment = copy_test_data(base / "data") / "multiome"
    return multiome_run(experiment, experiment / "samplesheet.csv", base / "results")


@pytest.fixture(scope="session")
def gexp_scatac_run(tmp_path_factory) -> Path:
    """`gexp run` on the multiome experiment with lib2 scATAC-only (test_multiome's settings)."""
    from pipeline import copy_test_data, with_scatac_library

    base = tmp_path_factory.mktemp("gexp-scatac-run")
    experiment = copy_test_data(base / "data") / "multiome"
    return multiome_run(experiment, with_scatac_library(experiment), base / "results")
