"""`-profile test,podman`: every task in a real container (podman, images built from
envs/Dockerfile on a debootstrapped Debian base), with the outputs of `gexp run`.

This is the run that would have caught the image without `ps`: Nextflow's task wrapper
needs it for the trace and report this pipeline switches on.
"""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest
from pipeline import (
    ROOT,
    assert_ok,
    assert_same_data_outputs,
    copy_test_data,
    require,
    run_test_profile,
    submitted,
)

pytestmark = pytest.mark.pipeline
CONTAINERS = ROOT / "tests" / "containers"


@pytest.fixture(scope="module")
def images():
    if not shutil.which("podman"):
        require("no podman here: apt-get install podman runc debootstrap")
    elif os.geteuid() != 0:
        require("building the images (tests/containers/build-images.sh) needs root")
    built = subprocess.run(
        ["bash", CONTAINERS / "build-images.sh"], capture_output=True, text=True, timeout=3600
    )
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]


@pytest.mark.parametrize(
    "profile, expected", [("test", "gexp_test_run"), ("test_multiome", "gexp_multiome_run")]
)
def test_profile_in_podman_equals_gexp_run(images, profile, expected, request, tmp_path):
    """Every task in the gexp image (test_multiome: PSEUDOBULK needs h5py and pysam there),
    with the outputs of `gexp run` on the same inputs."""
    expected = request.getfixturevalue(expected)
    data = copy_test_data(tmp_path / "data")
    launch = tmp_path / "launch"
    log = assert_ok(
        run_test_profile(
            data, tmp_path / "results", launch, "-c", CONTAINERS / "nextflow.config",
            profile=f"{profile},podman",
        )
    )  # fmt: skip
    runs = list((launch / "work").glob("*/*/.command.run"))
    assert len(runs) == len(submitted(log)) > 20
    assert all("podman run" in p.read_text() for p in runs), "every task ran in a container"
    assert_same_data_outputs(expected, tmp_path / "results")
    qc = "multiqc/gexp_qc_mqc.tsv"
    assert (tmp_path / "results" / qc).read_text() == (expected / qc).read_text()
