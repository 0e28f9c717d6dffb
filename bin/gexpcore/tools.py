"""Running the external tools (kallisto, bedtools) with errors a user can act on."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

from .errors import GexpError

log = logging.getLogger("gexp")

INSTALL_HINT = "install it (Debian: apt-get install kallisto bedtools samtools; or conda envs/)"


def require_tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise GexpError(f"{name} not found on PATH; {INSTALL_HINT}")
    return path


def dies_with_parent(cmd: list) -> list[str]:
    """cmd, run so that the kernel kills it when gexp dies (PR_SET_PDEATHSIG via util-linux
    setpriv, which then execs the tool). A gexp killed alone, by SIGKILL or the OOM killer,
    would otherwise leave kallisto blocked on a FASTQ pipe that nobody feeds any more."""
    cmd = [str(c) for c in cmd]
    setpriv = shutil.which("setpriv") if sys.platform.startswith("linux") else None
    return [setpriv, "--pdeathsig", "KILL", "--", *cmd] if setpriv else cmd


def run_tool(cmd: list[str], what: str, stdout: Path | None = None) -> str:
    """Run a tool; on failure raise one line with the tool's own last words."""
    proc = _completed(cmd, what, stdout)
    return "" if stdout else proc.stdout.decode(errors="replace")


def run_tool_report(cmd: list[str], what: str) -> bytes:
    """The same, returning the tool's standard error: where kallisto quant writes its report."""
    return _completed(cmd, what, None).stderr


def _completed(cmd: list[str], what: str, stdout: Path | None) -> subprocess.CompletedProcess:
    require_tool(cmd[0])
    log.debug("running: %s", " ".join(map(str, cmd)))
    out = open(stdout, "wb") if stdout else subprocess.PIPE
    try:
        proc = subprocess.run(dies_with_parent(cmd), stdout=out, stderr=subprocess.PIPE)
    finally:
        if stdout:
            out.close()
    if proc.returncode != 0:
        tool_failed(what, cmd[0], proc.stderr, proc)
    return proc


def tool_failed(what: str, name: str, stderr: bytes, proc) -> None:
    """Raise one line with the tool's own last words (or its exit code)."""
    lines = [ln for ln in stderr.decode(errors="replace").splitlines() if ln.strip()]
    detail = lines[-1].strip() if lines else f"exit code {proc.returncode}"
    raise GexpError(f"{what}: {name} failed: {detail}")


def tool_version(name: str) -> str:
    """Version string as the tool reports it, for versions.yml."""
    if shutil.which(name) is None:
        return "not installed"
    args = {"kallisto": ["version"], "bedtools": ["--version"], "samtools": ["--version"]}[name]
    proc = subprocess.run([name, *args], capture_output=True)
    lines = (proc.stdout or proc.stderr).decode(errors="replace").splitlines()
    return lines[0].split()[-1].lstrip("v") if lines else "unknown"


def default_threads() -> int:
    """CPUs this process may use (its affinity mask, e.g. a slurm allocation)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
