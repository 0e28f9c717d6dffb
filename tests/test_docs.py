"""The documentation held to the code, so that it cannot drift.

Every `gexp` flag is documented under its subcommand in docs/usage.md, every Nextflow
parameter in its parameter table and every profile in both profile tables; every file a run
writes, and every file the pipeline publishes, under its folder in docs/output.md; the command
lines in the docs use only flags and parameters that exist; the README stays short; and every
relative link and anchor resolves. Names come from the parser, the configs and a real `gexp
run`, never from a list kept here.
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
from pathlib import Path

import pytest
from conftest import ROOT
from gexpcore.cli import build_parser
from nextflow_source import params_declared, processes

README = ROOT / "README.md"
DOCS = ROOT / "docs"
USAGE = DOCS / "usage.md"
OUTPUT = DOCS / "output.md"
MARKDOWN = [README, *sorted(DOCS.glob("*.md"))]
README_LIMIT = 10_000  # bytes: nf-core style, the README is a front page
FENCE = re.compile(r"^\s*```")

PARSER = build_parser()
SUBCOMMANDS = next(a for a in PARSER._actions if isinstance(a, argparse._SubParsersAction)).choices
COMMANDS = {"gexp": PARSER, **{f"gexp {name}": sub for name, sub in SUBCOMMANDS.items()}}
NEXTFLOW_CONFIG = (ROOT / "nextflow.config").read_text()
MODULES_CONFIG = (ROOT / "conf" / "modules.config").read_text()
SCHEMA = json.loads((ROOT / "nextflow_schema.json").read_text())


# -- reading Markdown -------------------------------------------------------------------------


def prose_lines(text: str) -> list[tuple[str, bool]]:
    """Each line with whether it lies inside a fenced code block (fences count as inside)."""
    lines, inside = [], False
    for line in text.splitlines():
        if FENCE.match(line):
            lines.append((line, True))
            inside = not inside
        else:
            lines.append((line, inside))
    return lines


def headings(text: str) -> list[tuple[int, int, str]]:
    """(line number, level, title without code marks) of every heading outside code blocks."""
    found = []
    for number, (line, code) in enumerate(prose_lines(text)):
        match = re.match(r"^(#{1,6})\s+(.*?)\s*#*\s*$", line)
        if match and not code:
            found.append((number, len(match.group(1)), match.group(2).replace("`", "")))
    return found


def section(text: str, title: str) -> str:
    """The text under the one heading titled `title`, down to the next heading of its level or
    above (subsections included)."""
    lines = text.splitlines()
    marks = headings(text)
    matches = [(n, level) for n, level, t in marks if t == title]
    assert len(matches) == 1, f"expected one heading '{title}', found {len(matches)}"
    start, level = matches[0]
    end = next((n for n, lv, _ in marks if n > start and lv <= level), len(lines))
    return "\n".join(lines[start + 1 : end])


def mentions(text: str, name: str) -> bool:
    """`name` appears as a whole word: `--out` is not found in `--outdir`."""
    return re.search(rf"(?<![\w.-]){re.escape(name)}(?![\w-])", text) is not None


def slug(title: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", title.lower()).replace(" ", "-")


def anchors(text: str) -> set[str]:
    seen: dict[str, int] = {}
    found = set()
    for _, _, title in headings(text):
        base = slug(re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", title).replace("*", ""))
        found.add(f"{base}-{seen[base]}" if base in seen else base)
        seen[base] = seen.get(base, 0) + 1
    return found


def links(text: str) -> list[str]:
    """Link targets in prose (not in code blocks or code spans)."""
    targets = []
    for line, code in prose_lines(text):
        if not code:
            line = re.sub(r"`[^`]*`", "", line)
            targets += re.findall(r"\[[^\]]*\]\(([^)\s]+)\)", line)
    return targets


def command_lines(text: str, start: str) -> list[list[str]]:
    """Command lines beginning with `start` in the code blocks, as shell words."""
    lines = []
    for block in re.findall(r"^\s*```\w*\n(.*?)^\s*```", text, re.M | re.S):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split(" #")[0].strip()
            if line.startswith(start):
                lines.append(shlex.split(line))
    return lines


def long_options(words: list[str]) -> list[str]:
    """`--flag` words of a command line, without `=value` or optional-argument brackets."""
    found = []
    for word in words:
        word = word.lstrip("[(").split("=")[0].rstrip("])")
        if word.startswith("--"):
            found.append(word)
    return found


# -- what the code defines --------------------------------------------------------------------


def parser_options(parser: argparse.ArgumentParser) -> list[str]:
    return sorted(
        option
        for action in parser._actions
        if not isinstance(action, argparse._HelpAction)
        for option in action.option_strings
        if option.startswith("--")
    )


def schema_params() -> set[str]:
    return {name for group in SCHEMA["$defs"].values() for name in group["properties"]}


def nextflow_params() -> set[str]:
    return params_declared(NEXTFLOW_CONFIG) | schema_params()


def profiles() -> list[str]:
    block = re.search(r"^profiles\s*\{(.*?)^\}", NEXTFLOW_CONFIG, re.M | re.S).group(1)
    return re.findall(r"^    (\w+)\s*\{", block, re.M)


def placeholders(run: Path) -> dict[str, str]:
    """Names in a run folder that stand for a sample or a model, and their placeholders."""
    qc = json.loads((run / "dataset" / "qc.json").read_text())
    info = json.loads((run / "model" / "model_info.json").read_text())
    return {**{s: "<sample>" for s in qc["samples"]}, **{m: "<model>" for m in info["models"]}}


def generic(name: str, names: dict[str, str]) -> str:
    """`S001.gene_tpm.tsv` → `<sample>.gene_tpm.tsv`; `ridge` → `<model>`."""
    for real, placeholder in names.items():
        name = re.sub(rf"(?<![\w-]){re.escape(real)}(?![\w-])", placeholder, name)
    return name


def entry(path: Path, names: dict[str, str]) -> str:
    return generic(path.name, names) + ("/" if path.is_dir() else "")


def written_by_run(run: Path) -> dict[str, set[str]]:
    """Top-level entry → the entries under it (and under its <sample>/ and <model>/ folders)."""
    names = placeholders(run)
    layout = {}
    for top in sorted(run.iterdir()):
        inside: set[str] = set()
        if top.is_dir():
            for child in top.iterdir():
                inside.add(entry(child, names))
                if child.is_dir() and entry(child, names) in ("<sample>/", "<model>/"):
                    inside |= {entry(grandchild, names) for grandchild in child.iterdir()}
        layout[entry(top, names)] = inside
    return layout


def publish_folder(process: str) -> tuple[str, str] | None:
    """(folder under --outdir, prefix saveAs strips) that conf/modules.config publishes a
    process's outputs to; None when publishing is off."""
    for match in re.finditer(r"withName:\s*'([^']+)'\s*\{(.*?)\n    \}", MODULES_CONFIG, re.S):
        selector, body = match.groups()
        if process in selector.split("|") and "publishDir" in body:
            if re.search(r"enabled:\s*false", body):
                return None
            path = re.search(r'path:\s*\{\s*"\$\{params\.outdir\}([^"]*)"', body).group(1)
            strip = re.search(r"replaceFirst\('([^']+)',\s*''\)", body)
            return path.strip("/"), strip.group(1) if strip else ""
    default = re.search(r'path:\s*\{\s*"\$\{params\.outdir\}/\$\{task\.process', MODULES_CONFIG)
    assert default, "modules.config: no default publishDir"
    return process.lower(), ""


def published_by_pipeline() -> list[tuple[str, str]]:
    """(process, path under --outdir) for every output a process publishes, sample ids as
    <sample>; versions.yml files are gathered into one (below)."""
    published = []
    for proc in processes():
        rule = publish_folder(proc.name)
        if rule is None:
            continue
        folder, strip = rule
        for out in proc.output_paths():
            if out == "versions.yml":
                continue
            out = out[len(strip) :] if strip and out.startswith(strip) else out
            # PSEUDOBULK's meta is a library's, and its globs are the library's samples
            if proc.name == "PSEUDOBULK":
                out = re.sub(r"\$\{[^}]+\}", "<library>", out).replace("*", "<sample>")
            out = re.sub(r"\$\{[^}]+\}", "<sample>", out)
            published.append((proc.name, f"{folder}/{out}".strip("/")))
    return published


def pipeline_files() -> list[tuple[str, str]]:
    """(folder, file name pattern) of what Nextflow itself writes under --outdir: the execution
    reports of nextflow.config and the files main.nf collects."""
    found = []
    for folder, stem, ext in re.findall(
        r'file\s*=\s*"\$\{params\.outdir\}/([\w/]+)/(\w+?)_\$\{[^"]*\}(\.\w+)"', NEXTFLOW_CONFIG
    ):
        found.append((folder, rf"{re.escape(stem)}_<[^>]+>{re.escape(ext)}"))
    main = (ROOT / "main.nf").read_text()
    for name, folder in re.findall(
        r"collectFile\(\s*name:\s*'([^']+)',\s*storeDir:\s*\"\$\{params\.outdir\}/([^\"]+)\"", main
    ):
        found.append((folder, re.escape(name)))
    return found


# -- the README -------------------------------------------------------------------------------


def test_readme_is_a_front_page():
    size = len(README.read_bytes())
    assert size <= README_LIMIT, f"README.md is {size} bytes; move detail into docs/"


def test_readme_lists_every_profile_once_and_usage_describes_each():
    readme = section(README.read_text(), "Running with Nextflow")
    usage = section(USAGE.read_text(), "Profiles")
    for name in profiles():
        rows = re.findall(rf"^\| `{name}` \|", readme, re.M)
        assert len(rows) == 1, f"README's profile table: {len(rows)} rows for {name}"
        assert re.search(rf"^\| `{name}` \|", usage, re.M), f"docs/usage.md: profile {name}"


# -- usage: flags and parameters --------------------------------------------------------------


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_flag_is_documented_under_its_command(command):
    text = section(USAGE.read_text(), command)
    missing = [o for o in parser_options(COMMANDS[command]) if not mentions(text, o)]
    assert missing == [], f"docs/usage.md, section '{command}': {missing}"


def test_every_nextflow_parameter_is_in_the_parameter_table():
    text = section(USAGE.read_text(), "Parameters")
    assert len(nextflow_params()) >= 30  # the parse found the params block and the schema
    missing = sorted(p for p in nextflow_params() if not mentions(text, f"--{p}"))
    assert missing == [], f"docs/usage.md, section 'Parameters': {missing}"


@pytest.mark.parametrize("path", MARKDOWN, ids=lambda p: p.name)
def test_command_lines_in_the_docs_use_only_real_options(path):
    text = path.read_text()
    for words in command_lines(text, "gexp "):
        known = parser_options(COMMANDS[f"gexp {words[1]}"]) + ["--help", "--verbose", "--quiet"]
        unknown = [o for o in long_options(words) if o not in known]
        assert unknown == [], f"{path.name}: {' '.join(words[:2])}: {unknown}"
    for words in command_lines(text, "nextflow run"):
        unknown = [o for o in long_options(words) if o[2:] not in nextflow_params()]
        assert unknown == [], f"{path.name}: nextflow run: {unknown}"


# -- output: every file a run writes and the pipeline publishes --------------------------------


def test_every_file_a_run_writes_is_documented_under_its_folder(run_result):
    doc = OUTPUT.read_text()
    layout = written_by_run(run_result)
    assert {"model/", "dataset/", "pipeline_info/", "report.html"} <= set(layout), layout
    for top, inside in layout.items():
        text = section(doc, top)
        missing = sorted(name for name in inside if not mentions(text, name))
        assert missing == [], f"docs/output.md, section '{top}': {missing}"


def test_every_output_the_pipeline_publishes_is_documented_under_its_folder():
    doc = OUTPUT.read_text()
    published = published_by_pipeline()
    assert any(path.startswith("fetch/") for _, path in published), published
    for process, path in published:
        top, *rest = path.split("/")
        folder_like = rest or "." not in top  # `model`, `dataset`: folders; `report.html`: a file
        text = section(doc, top + "/" if folder_like else top)
        for i, part in enumerate(rest):
            last = i == len(rest) - 1
            name = part if last and "." in part else part + "/"
            if part != "*":
                assert mentions(text, name), f"docs/output.md, section '{top}/': {name} ({process})"


def test_what_nextflow_itself_writes_is_documented_under_its_folder():
    doc = OUTPUT.read_text()
    files = pipeline_files()
    assert len(files) >= 5, files  # timeline, report, trace, DAG, versions.yml
    for folder, pattern in files:
        text = section(doc, folder + "/")
        assert re.search(rf"(?<![\w.-]){pattern}(?![\w-])", text), f"{folder}/: {pattern}"


# -- architecture: every step where it lives ---------------------------------------------------


def test_every_step_is_in_the_architecture_table():
    from gexpcore.steps.run import STEPS

    text = section((DOCS / "architecture.md").read_text(), "Steps")
    for proc in processes():
        module = f"`modules/local/{proc.path.parent.name}/`"
        rows = [ln for ln in text.splitlines() if ln.startswith(f"| {proc.name} ")]
        assert len(rows) == 1 and module in rows[0], f"docs/architecture.md: {proc.name}"
    missing = [step for step in STEPS if not re.search(rf"^\| {step} \|", text, re.M)]
    assert missing == [], f"docs/architecture.md: runner steps {missing}"


# -- every document -----------------------------------------------------------------------------


@pytest.mark.parametrize("path", MARKDOWN, ids=lambda p: p.name)
def test_code_fences_are_balanced(path):
    fences = [line for line, _ in prose_lines(path.read_text()) if FENCE.match(line)]
    assert len(fences) % 2 == 0, f"{path.name}: an unclosed ``` block"


@pytest.mark.parametrize("path", MARKDOWN, ids=lambda p: p.name)
def test_every_relative_link_and_anchor_resolves(path):
    broken = []
    for target in links(path.read_text()):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # https:, mailto:
            continue
        file, _, anchor = target.partition("#")
        linked = (path.parent / file).resolve() if file else path
        if not linked.exists():
            broken.append(target)
        elif anchor and linked.suffix == ".md" and anchor not in anchors(linked.read_text()):
            broken.append(target)
    assert broken == [], f"{path.name}: {broken}"


def test_the_rules_catch_what_they_are_for():
    """Each reader above finds a mistake it exists to find."""
    text = "# A\n\n## `gexp run`\n\n`--outdir`\n\n## `gexp train`\n\n`--out`\n"
    assert not mentions(section(text, "gexp run"), "--out")
    assert mentions(section(text, "gexp train"), "--out")
    assert links("[a](x.md#y) `[b](z.md)`\n```\n[c](w.md)\n```\n") == ["x.md#y"]
    assert anchors("# `gexp run`\n## QC that stops the run\n## Set-up: Debian/Ubuntu\n") == {
        "gexp-run",
        "qc-that-stops-the-run",
        "set-up-debianubuntu",
    }
    assert long_options(["gexp", "run", "[--region", "chr1:1-10])", "--x=--y"]) == [
        "--region",
        "--x",
    ]
    assert generic("S001.gene_tpm.tsv", {"S001": "<sample>"}) == "<sample>.gene_tpm.tsv"
    assert generic("S0011.tsv.gz", {"S001": "<sample>"}) == "S0011.tsv.gz"
