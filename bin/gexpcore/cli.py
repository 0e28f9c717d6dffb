"""The `gexp` command line: one subcommand per pipeline step, plus `run` and `simulate`.

Subcommand and flag names are the contract with modules/local/*/main.nf; the
pipeline tests check every `gexp` call there against this parser.
"""

from __future__ import annotations

import argparse
import errno
import logging
import sys
import warnings
from collections.abc import Collection
from pathlib import Path

from . import __version__, kernels, steps
from .errors import GexpError

log = logging.getLogger("gexp")


class _HelpWithDefaults(argparse.HelpFormatter):
    """Every option's help ends with its default, or says that it is required."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        shown = "(default" in text or "%(default)" in text
        if not action.option_strings or action.default is argparse.SUPPRESS or shown:
            return text
        if action.required:
            return f"{text} (required)"
        if action.nargs == 0:  # a switch
            return f"{text} (default: off)"
        if action.default is None:
            return f"{text} (default: none)"
        return f"{text} (default: %(default)s)"


def build_parser(commands: Collection[str] | None = None) -> argparse.ArgumentParser:
    """The command line; `commands`: the subcommands to give their flags (default: all).

    Every subcommand is listed (from steps.COMMANDS), but only those in `commands` import
    their step's module to add its flags: main() asks for the one it runs.
    """
    parser = argparse.ArgumentParser(
        prog="gexp", description="Predict gene expression from chromatin accessibility."
    )
    parser.add_argument("--version", action="version", version=f"gexp {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("-q", "--quiet", action="store_true", help="warnings and errors only")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, info in steps.COMMANDS.items():
        p = sub.add_parser(name, help=info.summary)
        if commands is None or name in commands:
            step = steps.load(name)
            step.add_arguments(p)
            p.set_defaults(func=step.run)
    for command in (parser, *sub.choices.values()):
        command.formatter_class = _HelpWithDefaults
    return parser


def _named_command(argv: list[str]) -> list[str]:
    """The subcommand on a command line: its first word that is not an option (gexp's own
    options take no value), or none (`gexp --version`)."""
    return [word for word in argv if not word.startswith("-")][:1]


def _own_or_error(record: logging.LogRecord) -> bool:
    """gexp's records, and other libraries' errors: matplotlib's font cache notes are not news."""
    return record.name.split(".")[0] == "gexp" or record.levelno >= logging.ERROR


def _log_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """A Python warning nobody expected becomes one gexp line (not two raw ones), still shown:
    it may mean something is wrong. Expected ones are silenced where they arise."""
    log.warning("%s: %s (%s:%d)", category.__name__, message, Path(filename).name, lineno)


def _setup_logging(verbose: bool, quiet: bool) -> None:
    """Log lines on stderr; -v shows debug detail, other libraries' records included."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        logging.Formatter("%(asctime)s gexp %(levelname)s: %(message)s", datefmt="%H:%M:%S")
    )
    if not verbose:
        handler.addFilter(_own_or_error)
    level = logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO
    logging.basicConfig(level=level, handlers=[handler])
    warnings.showwarning = _log_warning


# What to do about a resource that failed mid-run; finished steps are kept (atomic outputs).
_ADVICE = {
    errno.ENOSPC: "free space there, or choose another --outdir, and rerun: finished steps are "
    "kept",
    errno.EDQUOT: "free space in your quota and rerun: finished steps are kept",
    errno.EACCES: "check the permissions of that path",
    errno.EPERM: "check the permissions of that path",
    errno.EROFS: "that file system is mounted read-only; choose a writable --outdir",
    errno.EIO: "the device reported an input/output error; check the disk, then rerun",
}


def resource_failure(exc: OSError) -> str:
    """An OSError as one line: the path, the system's own words, and what to do."""
    where = exc.filename if exc.filename is not None else "a file"
    words = exc.strerror or str(exc)
    advice = _ADVICE.get(exc.errno or 0)
    return f"{where}: {words}" + (f" ({advice})" if advice else "")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser(_named_command(argv))
    args = parser.parse_args(argv)
    _setup_logging(args.verbose, args.quiet)
    log.debug("numeric kernels pinned (kernels.py): %s", kernels.PINNED or "already so")
    try:
        args.func(args)
    except GexpError as exc:
        print(f"gexp: error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:  # the machine's, not gexp's: a full disk, a read-only mount, EIO
        print(f"gexp: error: {resource_failure(exc)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("gexp: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
