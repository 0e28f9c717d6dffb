"""The image recipes in envs/, statically: what every image needs for Nextflow to run in it.

Nextflow's task wrapper runs `ps` for its trace and metrics, so each image must install procps
(procps-ng in conda). envs/Dockerfile takes its base from ARG BASE, which must default to a
public image (CI builds it from a local one, tests/containers/build-images.sh).
Building and running the images is tests/containers/build-images.sh's job, not these tests'.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ENVS = Path(__file__).resolve().parents[1] / "envs"
RECIPES = sorted(ENVS.glob("*Dockerfile"))
PS_PACKAGE = re.compile(r"(?<![\w-])procps(-ng)?(?![\w-])")
# Recipes known to lack ps: remove the entry once the recipe installs it (strict: an XPASS fails).
KNOWN_WITHOUT_PS: dict[str, str] = {}  # recipe → why it may lack ps (none may, today)


def instructions(recipe: Path) -> str:
    """The recipe's instructions, one per line: comments dropped, continued lines joined."""
    lines = [line for line in recipe.read_text().splitlines() if not line.lstrip().startswith("#")]
    return re.sub(r"\\\n\s*", " ", "\n".join(lines))


def installs_ps(recipe: Path) -> bool:
    """procps in a RUN that installs packages, or in every envs/ conda file the recipe names."""
    text = instructions(recipe)
    runs = [line for line in text.splitlines() if line.startswith("RUN") and "install" in line]
    if any(PS_PACKAGE.search(run) for run in runs):
        return True
    # envs/ files named anywhere, usage comments included (the GPU one comes as a --build-arg)
    names = sorted(set(re.findall(r"[\w.-]+\.ya?ml", recipe.read_text())))
    env_files = [ENVS / name for name in names if (ENVS / name).is_file()]
    return bool(env_files) and all(PS_PACKAGE.search(f.read_text()) for f in env_files)


def recipe_param(recipe: Path):
    reason = KNOWN_WITHOUT_PS.get(recipe.name)
    marks = [pytest.mark.xfail(strict=True, reason=reason)] if reason else []
    return pytest.param(recipe, id=recipe.name, marks=marks)


def test_recipes_found():
    assert ENVS / "Dockerfile" in RECIPES


@pytest.mark.parametrize("recipe", [recipe_param(r) for r in RECIPES])
def test_recipe_installs_ps(recipe):
    assert installs_ps(recipe), f"{recipe.name} installs no procps: Nextflow's wrapper needs ps"


def test_debian_recipe_base_defaults_to_a_public_image():
    text = instructions(ENVS / "Dockerfile")
    arg = re.search(r"^ARG BASE=(\S+)$", text, re.M)
    assert arg, "envs/Dockerfile: no ARG BASE=<image> with a default"
    first_from = re.search(r"^FROM\s+(\S+)", text, re.M)
    assert first_from and first_from.group(1) in ("${BASE}", "$BASE")
    assert arg.start() < first_from.start(), "ARG BASE must come before FROM to be usable there"
    default = arg.group(1)
    assert not default.startswith(("localhost/", "localhost:")), "the default must be public"
    assert re.fullmatch(r"debian:[\w.-]+", default), f"not a public Debian image: {default}"


def test_processes_that_load_torch_models_get_the_torch_image_in_ci():
    """tests/containers/nextflow.config gives the data image (no torch) to every process but
    those named for the training image: each process whose script runs `gexp train` or
    `gexp predict` (which load locus_net, a torch model) must be among them."""
    root = ENVS.parent
    config = (root / "tests" / "containers" / "nextflow.config").read_text()
    selector = re.search(r"withName:\s*'([^']+)'\s*\{\s*container = 'localhost/gexp-train", config)
    assert selector, "no process gets the training image"
    torch_users = set()
    for module in sorted((root / "modules" / "local").glob("*/main.nf")):
        text = module.read_text()
        script = text[text.index("script:") :]
        if re.search(r"gexp (train|predict)\b", script):
            torch_users.add(re.search(r"process (\w+)", text).group(1))
    assert torch_users == {"TRAIN", "PREDICT"}
    assert torch_users <= set(selector.group(1).split("|"))
