"""A quiet and helpful command line: every flag explained with its default, no stray output."""

from __future__ import annotations

import argparse
import re
import subprocess
import sys

import pytest
from conftest import FAST_TRAINING, ROOT, run_gexp
from gexpcore.cli import build_parser

DATA = ROOT / "tests" / "data"
PARSER = build_parser()
COMMANDS = {"gexp": PARSER, **PARSER._subparsers._group_actions[0].choices}
LOG_LINE = re.compile(r"^\d\d:\d\d:\d\d gexp (INFO|WARNING): \S")


def options(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    return [
        a
        for a in parser._actions
        if a.option_strings and not isinstance(a, (argparse._HelpAction, argparse._VersionAction))
    ]


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_flag_has_a_help_line_that_shows_its_default(command):
    parser = COMMANDS[command]
    formatter = parser._get_formatter()
    for action in options(parser):
        assert action.help, f"{command} {action.option_strings[-1]} has no help"
        text = formatter._expand_help(action)
        assert "(default" in text or "(required)" in text, (command, text)
        if action.default not in (None, False):
            assert str(action.default) in text, (command, text)


def test_run_help_shows_the_defaults_a_user_asks_about():
    proc = run_gexp("run", "--help")
    assert proc.returncode == 0, proc.stderr
    text = " ".join(proc.stdout.split("options:")[1].split())  # argparse wraps lines
    for flag, shown in [
        ("--gtf GTF", "(required)"),
        ("--outdir OUTDIR", "(required)"),
        ("--transcriptome TRANSCRIPTOME", "(default: none)"),
        ("--bin-size BIN_SIZE", "(default: 1000)"),
        ("--threads THREADS", "(default: the CPUs available,"),
        ("--seed SEED", "(default: 0)"),
        ("--cv CV", "(default: 5)"),
        ("--peak-mode {", "(default: signal)"),
        ("--early-stopping", "(default: off)"),
    ]:
        start = text.index(flag)
        end = text.find(" --", start + len(flag))
        following = text[start : end if end > 0 else None]
        assert shown in following, (flag, following)


def test_a_run_prints_nothing_but_its_own_log_lines(tmp_path):
    """Not matplotlib's notes on its font cache (a fresh machine, a container whose home is
    read-only), not Python warnings: only gexp's lines, between which a user reads the run."""
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("")
    env_code = (
        "import os, sys; os.environ['MPLCONFIGDIR'] = sys.argv[1]; "
        f"sys.path.insert(0, {str(ROOT / 'bin')!r}); "
        "from gexpcore.cli import main; sys.exit(main(sys.argv[2:]))"
    )
    ref = DATA / "reference"
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            env_code,
            str(blocked / "mpl"),
            "run",
            *("--input", str(DATA / "samplesheet.csv")),
            *(
                "--transcriptome",
                str(ref / "transcripts.fa.gz"),
                "--gtf",
                str(ref / "genes.gtf.gz"),
            ),
            *("--chrom-sizes", str(ref / "chrom.sizes"), "--outdir", str(tmp_path / "out")),
            *map(str, FAST_TRAINING),
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stderr.splitlines()
    assert lines and all(LOG_LINE.match(line) for line in lines), proc.stderr
    assert not re.search(r"Warning\b|matplotlib|fontManager", proc.stderr, re.I), proc.stderr


def test_an_unexpected_python_warning_is_one_gexp_line(tmp_path):
    code = (
        "import sys, warnings; "
        f"sys.path.insert(0, {str(ROOT / 'bin')!r}); "
        "from gexpcore import cli; from gexpcore.steps import bins; run = bins.run; "
        "bins.run = lambda a: (warnings.warn('odd input', RuntimeWarning), run(a)); "
        "sys.exit(cli.main(sys.argv[1:]))"
    )
    out = tmp_path / "bins.bed"
    proc = subprocess.run(
        [sys.executable, "-c", code, "bins", "--genome", "GRCh38", "--region", "chrM"]
        + ["--out", str(out)],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    (line,) = [ln for ln in proc.stderr.splitlines() if "odd input" in ln]
    assert LOG_LINE.match(line) and "RuntimeWarning: odd input" in line
    assert all(LOG_LINE.match(ln) for ln in proc.stderr.splitlines()), proc.stderr
