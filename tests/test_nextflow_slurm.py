"""`-profile slurm,test` on a real one-node slurm cluster (tests/slurm/start.sh), every
process submitted through sbatch, with the outputs of the local run and `gexp run`."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from pipeline import (
    ROOT,
    assert_ok,
    assert_same_data_outputs,
    copy_test_data,
    require,
    run_test_profile,
    samplesheet_with_predictions,
    submitted,
)

pytestmark = pytest.mark.pipeline
SLURM = ROOT / "tests" / "slurm"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A running cluster: started here and stopped after the module, unless one was up."""
    missing = [t for t in ("slurmctld", "slurmd", "munged", "sbatch") if not shutil.which(t)]
    if missing:
        require(f"no slurm here ({', '.join(missing)}): apt-get install slurm-wlm munge")
    elif os.geteuid() != 0:
        require("starting the test cluster (tests/slurm/start.sh) needs root")
    folder = tmp_path_factory.mktemp("slurm")
    started = subprocess.run(
        ["bash", SLURM / "start.sh", folder], capture_output=True, text=True, timeout=180
    )
    assert started.returncode == 0, started.stdout + started.stderr
    yield {"SLURM_CONF": str(folder / "slurm.conf")}
    subprocess.run(["bash", SLURM / "stop.sh", folder], capture_output=True, timeout=180)


def sbatch_header(task_dir: Path) -> list[str]:
    return re.findall(r"^#SBATCH (.+)$", (task_dir / ".command.run").read_text(), re.M)


@pytest.mark.parametrize(
    "profile, expected", [("test", "gexp_predict_run"), ("test_multiome", "gexp_scatac_run")]
)
def test_profile_on_slurm_equals_gexp_run(cluster, profile, expected, request, tmp_path):
    """Every task through sbatch (test_multiome: both PSEUDOBULK tasks too; samples to
    predict in both: PREDICT and PREDICTIONS), with the outputs of `gexp run` on the same
    inputs."""
    expected = request.getfixturevalue(expected)
    data = copy_test_data(tmp_path / "data")
    launch = tmp_path / "launch"
    log = assert_ok(
        run_test_profile(
            data, tmp_path / "results", launch, "-c", SLURM / "nextflow.config",
            "--input", samplesheet_with_predictions(data, profile),
            profile=f"slurm,{profile}", env=cluster,
        )
    )  # fmt: skip
    assert sum("PREDICT (" in task for task in submitted(log)) == (
        8 if "multiome" in profile else 2
    )
    headers = [sbatch_header(p.parent) for p in (launch / "work").glob("*/*/.command.run")]
    assert len(headers) == len(submitted(log)) > 20
    assert all(any(h.startswith("-J nf-") for h in header) for header in headers)
    if profile == "test_multiome":
        assert sum("PSEUDOBULK" in task for task in submitted(log)) == 2
    assert_same_data_outputs(expected, tmp_path / "results")


def test_gpu_profile_asks_slurm_for_a_gpu(cluster, tmp_path):
    # test last: under the strict config syntax profiles apply in command-line order, and
    # test's resourceLimits must win over slurm's
    """No GPU here: a -stub run (TRAIN's stub needs none) on the cluster's fake GPU shows what
    TRAIN asks sbatch for, and that slurm accepts it; other tasks ask for none."""
    data = copy_test_data(tmp_path / "data")
    launch = tmp_path / "launch"
    assert_ok(
        run_test_profile(
            data,
            tmp_path / "results",
            launch,
            "-stub",
            "-c",
            SLURM / "nextflow.config",
            profile="slurm,gpu,test",
            env=cluster,
        )
    )
    by_name = {}
    for run in (launch / "work").glob("*/*/.command.run"):
        name = re.search(r"^### name: '([^' ]+)", run.read_text(), re.M).group(1)
        by_name.setdefault(name.split(":")[-1], []).append(sbatch_header(run.parent))
    (train,) = by_name["TRAIN"]
    assert "--gres=gpu:1" in train
    assert all("--gres=gpu:1" not in h for n, hs in by_name.items() if n != "TRAIN" for h in hs)
