"""kallisto index and quant, as `gexp run` calls them (Nextflow calls kallisto directly)."""

from __future__ import annotations

import errno
import json
import logging
import os
import subprocess
import tempfile
import time
from pathlib import Path

from ..errors import GexpError
from ..files import atomic_dir, atomic_path, atomic_write
from ..tools import dies_with_parent, require_tool, run_tool, run_tool_report, tool_failed
from .fastq_check import FastqFeed, check_fastqs, heads_are_valid, reads_if_valid

log = logging.getLogger("gexp")

KALLISTO_LOG = ".kallisto.log"  # kallisto quant's stderr: kallisto/<sample>.kallisto.log


def kallisto_index(transcriptome: str | Path, index: str | Path) -> Path:
    with atomic_path(index) as tmp:
        run_tool(["kallisto", "index", "-i", tmp, transcriptome], "kallisto index")
    return Path(index)


def kallisto_quant_command(
    index: str | Path,
    outdir: str | Path,
    read1: list[str],
    read2: list[str],
    fragment_length: float,
    fragment_sd: float,
    threads: int = 1,
) -> list[str]:
    """The same command line as modules/local/kallisto_quant."""
    cmd = ["kallisto", "quant", "-i", str(index), "-o", str(outdir), "-t", str(threads)]
    if not read2:
        cmd += ["--single", "-l", f"{fragment_length:g}", "-s", f"{fragment_sd:g}"]
    return cmd + quant_inputs(read1, read2)


def quant_inputs(read1: list[str], read2: list[str]) -> list[str]:
    """The FASTQ in the order kallisto quant takes them: pairs interleaved (r1a r2a r1b r2b)."""
    if read2:
        return [str(f) for pair in zip(read1, read2, strict=False) for f in pair]
    return [str(f) for f in read1]


def kallisto_quant(
    sample: str,
    index: Path,
    outdir: Path,
    read1: list[str],
    read2: list[str],
    fragment_length: float,
    fragment_sd: float,
    threads: int = 1,
) -> Path:
    with atomic_dir(outdir) as tmp:
        cmd = kallisto_quant_command(
            index, tmp, read1, read2, fragment_length, fragment_sd, threads
        )
        report = run_tool_report(cmd, f"sample {sample}: kallisto quant")
        check_quant_output(tmp, sample)
    write_log(outdir, sample, report, quant_inputs(read1, read2))
    return outdir / "abundance.tsv"


def log_path(outdir: Path, sample: str) -> Path:
    """kallisto quant's report beside its folder: kallisto/<sample>.kallisto.log."""
    return Path(outdir).parent / f"{sample}{KALLISTO_LOG}"


def write_log(outdir: Path, sample: str, stderr: bytes, files: list[str]) -> None:
    """kallisto's report (its stderr), where MultiQC's kallisto module finds it. The k-th
    input is named reads/<kkk>/<sample>, as the Nextflow task stages it: MultiQC names the
    sample after the first input's file name, and the two runners write the same log."""
    text = stderr.decode(errors="replace")
    for k, name in sorted(enumerate(files, start=1), key=lambda kv: -len(kv[1])):
        text = text.replace(name, f"reads/{k:03d}/{sample}")
    with atomic_write(log_path(outdir, sample)) as fh:
        fh.write(text)


def kallisto_quant_checked(
    sample: str,
    index: Path,
    outdir: Path,
    read1: list[str],
    read2: list[str],
    fragment_length: float,
    fragment_sd: float,
    threads: int = 1,
) -> int:
    """check_fastqs and kallisto_quant in one pass over the FASTQ; return the reads checked.

    kallisto reads the files through named pipes from a FastqFeed, which counts
    their lines on the way. When a file fails, kallisto is stopped, its output is
    discarded and check_fastqs reads the files again to raise its own message, so a
    bad FASTQ fails as it did when it was checked first.
    """
    files = [*read1, *read2]
    if len(set(files)) < len(files) or not heads_are_valid(files):
        reads = check_fastqs(sample, read1, read2)
        kallisto_quant(sample, index, outdir, read1, read2, fragment_length, fragment_sd, threads)
        return reads
    with tempfile.TemporaryDirectory() as fifos, atomic_dir(outdir) as tmp:
        feed = FastqFeed(files, Path(fifos))
        cmd = kallisto_quant_command(
            index, tmp, feed.paths(read1), feed.paths(read2), fragment_length, fragment_sd, threads
        )
        require_tool("kallisto")
        log.debug("running: %s", " ".join(cmd))
        feed.start()
        with tempfile.TemporaryFile() as err:
            proc = subprocess.Popen(dies_with_parent(cmd), stdout=subprocess.DEVNULL, stderr=err)
            while proc.poll() is None:
                if feed.failed():
                    proc.kill()
                time.sleep(0.01)
            feed.abort()  # feeds kallisto never opened (it failed first) end here
            lines = dict(zip(files, feed.counts(), strict=True))
            reads = reads_if_valid(read1, read2, lines)
            if reads is None:
                check_fastqs(sample, read1, read2)  # raises the check's message
            err.seek(0)
            stderr = err.read()
            if proc.returncode != 0:
                tool_failed(f"sample {sample}: kallisto quant", "kallisto", stderr, proc)
            check_quant_output(tmp, sample)
        _name_inputs(tmp / "run_info.json", feed.paths(files), files)
    write_log(outdir, sample, stderr, quant_inputs(feed.paths(read1), feed.paths(read2)))
    return reads


def check_quant_output(folder: Path, sample: str) -> None:
    """kallisto quant exits 0 after failing to write on a full disk, leaving an empty or cut
    abundance.tsv: a finished one has a header, a row and a final newline, or it is never
    kept (a full disk is said as one, with the file, so that a rerun redoes the sample)."""
    from ..files import ends_with_newline

    table = folder / "abundance.tsv"
    whole = table.is_file() and table.stat().st_size > 0 and ends_with_newline(table)
    if whole:
        with open(table, "rb") as fh:
            whole = len(fh.readlines(2**16)) >= 2  # a header and a row at least
    if whole:
        return
    try:
        stat = os.statvfs(folder)
        nearly_full = stat.f_bavail * stat.f_frsize < 16 * 2**20
    except OSError:
        nearly_full = False
    if nearly_full:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(table))
    raise GexpError(f"sample {sample}: kallisto quant wrote no complete {table.name} ({table})")


def _name_inputs(run_info: Path, pipes: list[str], files: list[str]) -> None:
    """kallisto records its command line: name the files it read, not the pipes they came by."""
    if not run_info.is_file():
        return
    text = run_info.read_text()
    for pipe, file in zip(pipes, files, strict=True):
        text = text.replace(json.dumps(pipe)[1:-1], json.dumps(str(file))[1:-1])
    run_info.write_text(text)
