"""`-profile test,podman` and `test,docker`: every task in a real container (podman, and
Docker's own engine, dockerd 20.10; images built from envs/Dockerfile on a debootstrapped Debian
base), with the outputs of `gexp run`; and `-profile gpu,docker -stub`: TRAIN gets `--gpus all`.

This is the run that would have caught the image without `ps`: Nextflow's task wrapper
needs it for the trace and report this pipeline switches on.
"""

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
CONTAINERS = ROOT / "tests" / "containers"
# Docker's engine of the tests' own (setup-docker.sh): its data root, socket and the images built
# there are kept between runs, so that a rerun finds every layer in the cache.
DOCKER_DIR = Path(os.environ.get("GEXP_DOCKER_DIR", "/var/tmp/gexp-docker"))


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


@pytest.fixture(scope="module")
def docker():
    """Docker's own engine started (setup-docker.sh: a dockerd with its own data root and
    socket), the images built in it with docker build, and the engine stopped at the end: the
    environment that points docker, and Nextflow, at it."""
    if os.geteuid() != 0:
        require("Docker's engine and the images (tests/containers/setup-docker.sh) need root")
    elif not shutil.which("docker"):
        require("no docker client here: apt-get install docker.io")
    elif not (shutil.which("dockerd") or shutil.which("apt-get")):
        require("no dockerd here: apt-get install docker.io")
    engine = {"GEXP_DOCKER_DIR": str(DOCKER_DIR), "DOCKER_HOST": f"unix://{DOCKER_DIR}/docker.sock"}
    environment = {**os.environ, **engine}

    def stop() -> subprocess.CompletedProcess:
        return subprocess.run(
            ["bash", CONTAINERS / "setup-docker.sh", "stop"],
            env=environment, capture_output=True, text=True, timeout=300,
        )  # fmt: skip

    try:
        built = subprocess.run(
            ["bash", CONTAINERS / "build-images.sh"],
            env={**environment, "ENGINE": "docker"}, capture_output=True, text=True, timeout=3600,
        )  # fmt: skip
        assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
        assert "storage driver " in built.stdout, built.stdout
    except BaseException:
        stop()
        raise
    yield engine
    stopped = stop()
    assert stopped.returncode == 0, stopped.stdout + stopped.stderr


def run_in_containers(engine, profile, expected, tmp_path, env=None) -> None:
    """`-profile <profile>,<engine>` with the images of build-images.sh: every task in a
    container, and the data outputs and QC table of `gexp run` (`expected`), byte for byte.
    The samplesheets add samples to predict (issue 25): PREDICT and PREDICTIONS run too."""
    data = copy_test_data(tmp_path / "data")
    launch = tmp_path / "launch"
    log = assert_ok(
        run_test_profile(
            data, tmp_path / "results", launch, "-c", CONTAINERS / "nextflow.config",
            "--input", samplesheet_with_predictions(data, profile),
            profile=f"{profile},{engine}", env=env,
        )
    )  # fmt: skip
    assert any("PREDICT" in task for task in submitted(log))
    runs = list((launch / "work").glob("*/*/.command.run"))
    assert len(runs) == len(submitted(log)) > 20
    assert all(f"{engine} run" in p.read_text() for p in runs), "every task ran in a container"
    assert_same_data_outputs(expected, tmp_path / "results")
    qc = "multiqc/gexp_qc_mqc.tsv"
    assert (tmp_path / "results" / qc).read_text() == (expected / qc).read_text()


@pytest.mark.parametrize(
    "profile, expected", [("test", "gexp_predict_run"), ("test_multiome", "gexp_scatac_run")]
)
def test_profile_in_podman_equals_gexp_run(images, profile, expected, request, tmp_path):
    """Every task in the gexp image (test_multiome: PSEUDOBULK needs h5py and pysam there),
    with the outputs of `gexp run` on the same inputs."""
    run_in_containers("podman", profile, request.getfixturevalue(expected), tmp_path)


@pytest.mark.parametrize(
    "profile, expected", [("test", "gexp_predict_run"), ("test_multiome", "gexp_scatac_run")]
)
def test_profile_in_docker_equals_gexp_run(docker, profile, expected, request, tmp_path):
    """The same in Docker's own engine (dockerd 20.10, Nextflow's `docker run -u ...`)."""
    run_in_containers("docker", profile, request.getfixturevalue(expected), tmp_path, docker)


def test_gpu_profile_in_docker_gives_train_the_gpus(docker, tmp_path):
    # test last: under the strict config syntax profiles apply in command-line order, and
    # test's resourceLimits must win
    """No GPU here: a -stub run (TRAIN's stub imports torch but needs no GPU) shows that TRAIN
    alone runs with `--gpus all`, in the training image, and that dockerd accepts it (through
    the no-op GPU hook setup-docker.sh gives it)."""
    data = copy_test_data(tmp_path / "data")
    launch = tmp_path / "launch"
    log = assert_ok(
        run_test_profile(
            data, tmp_path / "results", launch, "-stub", "-c", CONTAINERS / "nextflow.config",
            profile="gpu,docker,test", env=docker,
        )
    )  # fmt: skip
    by_name: dict[str, list[str]] = {}
    for run in (launch / "work").glob("*/*/.command.run"):
        text = run.read_text()
        name = re.search(r"^### name: '([^' ]+)", text, re.M).group(1)
        by_name.setdefault(name.split(":")[-1], []).append(text)
    assert sum(map(len, by_name.values())) == len(submitted(log)) > 20
    (train,) = by_name["TRAIN"]
    (command,) = [line for line in train.splitlines() if "docker run" in line]
    assert "--gpus all" in command and "localhost/gexp-train:0.1.0" in command, command
    others = [t for name, texts in by_name.items() if name != "TRAIN" for t in texts]
    assert all("docker run" in t and "--gpus" not in t for t in others)
