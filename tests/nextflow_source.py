"""Reading Nextflow sources for the static pipeline tests (no Nextflow runtime here).

reftrace parses the DSL2 structure (processes, directives, includes); these helpers
pull out what it does not expose: the script block of a process, its output
declarations, and whether delimiters balance outside strings and comments.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def strip_strings_and_comments(text: str) -> str:
    """Replace string literals and comments by spaces, keeping line structure."""
    out, i, n = [], 0, len(text)
    while i < n:
        two, three = text[i : i + 2], text[i : i + 3]
        if two == "//":
            j = text.find("\n", i)
            i = n if j < 0 else j
        elif two == "/*":
            j = text.find("*/", i + 2)
            if j < 0:
                raise ValueError("unterminated /* comment")
            out.append("\n" * text.count("\n", i, j + 2))
            i = j + 2
        elif three in ('"""', "'''"):
            j = text.find(three, i + 3)
            if j < 0:
                raise ValueError(f"unterminated {three} string at offset {i}")
            out.append('""' + "\n" * text.count("\n", i, j + 3))
            i = j + 3
        elif text[i] in "\"'":
            j = _string_end(text, i)
            out.append('""' + "\n" * text.count("\n", i, j))
            i = j
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def _string_end(text: str, start: int) -> int:
    """Offset just past a one-line string; `${ … }` inside a GString may span lines."""
    quote, j, n = text[start], start + 1, len(text)
    while j < n and text[j] != quote:
        if text[j] == "\\":
            j += 2
        elif quote == '"' and text.startswith("${", j):
            depth, j = 1, j + 2
            while j < n and depth:
                if text[j] in "'\"":
                    j = _string_end(text, j)
                    continue
                depth += {"{": 1, "}": -1}.get(text[j], 0)
                j += 1
        elif text[j] == "\n":
            raise ValueError(f"unterminated string at offset {start}")
        else:
            j += 1
    if j >= n:
        raise ValueError(f"unterminated string at offset {start}")
    return j + 1


def unbalanced(text: str) -> str | None:
    """The first delimiter problem outside strings and comments, or None."""
    try:
        code = strip_strings_and_comments(text)
    except ValueError as exc:
        return str(exc)
    pairs, stack = {")": "(", "]": "[", "}": "{"}, []
    for lineno, line in enumerate(code.splitlines(), start=1):
        for ch in line:
            if ch in "([{":
                stack.append((ch, lineno))
            elif ch in ")]}":
                if not stack or stack[-1][0] != pairs[ch]:
                    return f"unmatched '{ch}' on line {lineno}"
                stack.pop()
    return f"unclosed '{stack[-1][0]}' from line {stack[-1][1]}" if stack else None


@dataclass
class ProcessSource:
    name: str
    path: Path
    text: str

    def section(self, name: str) -> str:
        """The text of one section (`input:`, `output:`, `script:`, `stub:`)."""
        match = re.search(
            rf"^\s*{name}:\s*$(.*?)(?=^\s*(input|output|when|script|stub):\s*$|\Z)",
            self.text,
            re.M | re.S,
        )
        return match.group(1) if match else ""

    def script_body(self, section: str = "script") -> str:
        body = self.section(section)
        match = re.search(r'"""(.*?)"""', body, re.S)
        return match.group(1) if match else ""

    def commands(self, tool: str, section: str = "script") -> list[list[str]]:
        """Each call of `tool` in the script, as words, with line continuations joined."""
        body = without_heredoc_text(self.script_body(section)).replace("\\\\\n", " ")
        calls = []
        for line in body.splitlines():
            words = line.split()
            if words and words[0] == tool:
                calls.append(words)
        return calls

    def emits(self) -> dict[str, str]:
        out = {}
        for line in self.section("output").splitlines():
            match = re.search(r"emit:\s*(\w+)", line)
            if match:
                out[match.group(1)] = line
        return out

    def output_paths(self) -> list[str]:
        return re.findall(r'path\(?\s*"([^"]+)"', self.section("output"))


def without_heredoc_text(script: str) -> str:
    """A shell script with the text of its here-documents (`<<'END' … END`) left out: that
    text is data fed to the command, not further commands."""
    return re.sub(r"<<-?'?(\w+)'?([^\n]*)\n.*?^\s*\1\s*$", r"\2", script, flags=re.M | re.S)


def processes() -> list[ProcessSource]:
    found = []
    for path in sorted((ROOT / "modules" / "local").glob("*/main.nf")):
        text = path.read_text()
        match = re.search(r"^process\s+(\w+)\s*\{", text, re.M)
        assert match, f"{path}: no process"
        found.append(ProcessSource(match.group(1), path, text))
    return found


def workflow_calls(text: str, workflow: str) -> list[str]:
    """Process names called in a workflow body, in order of first call."""
    match = re.search(rf"^workflow\s+{workflow}\s*\{{(.*?)^\}}", text, re.M | re.S)
    assert match, f"no workflow {workflow}"
    main = match.group(1).split("emit:")[0]
    calls = []
    for name in re.findall(r"^\s*([A-Z][A-Z0-9_]+)\s*\(", main, re.M):
        if name not in calls:
            calls.append(name)
    return calls


def params_used(text: str) -> set[str]:
    # not PARAMS_CHECK's output file, params.json
    return set(re.findall(r"(?<![\w\"'/.])params\.(?!json\b)([A-Za-z_]\w*)", text))


def params_declared(config: str) -> set[str]:
    match = re.search(r"^params\s*\{(.*?)^\}", config, re.M | re.S)
    assert match, "nextflow.config has no params block"
    return set(re.findall(r"^\s*([A-Za-z_]\w*)\s*=", match.group(1), re.M))


def ext_args(modules_config: str) -> dict[str, list[str]]:
    """The flags that conf/modules.config adds per process selector."""
    result: dict[str, list[str]] = {}
    for match in re.finditer(r"withName:\s*'([^']+)'\s*\{(.*?)\n    \}", modules_config, re.S):
        selector, body = match.groups()
        args = re.search(r"ext\.args\s*=\s*\{(.*?)\}\s*$", body, re.S | re.M)
        if args:
            result[selector] = re.findall(r"(--[a-z][a-z0-9-]*)", args.group(1))
    return result


def shell_words(text: str) -> list[str]:
    return shlex.split(text)


@dataclass
class Input:
    """One declared process input: `val x`, or `path x` with its options (stageAs, arity)."""

    process: str
    kind: str  # val | path | env | stdin
    name: str
    options: dict[str, str]
    slot: int  # position in the process's input list (what input[slot] feeds in nf-test)

    @property
    def arity(self) -> tuple[int, float] | None:
        """(min, max) files from `arity:`, or None when not declared."""
        text = self.options.get("arity")
        if text is None:
            return None
        lo, _, hi = text.partition("..")
        hi = hi or lo
        return int(lo), float("inf") if hi == "*" else int(hi)

    @property
    def always_a_list(self) -> bool:
        """Nextflow binds a list only when arity allows several files; one file is a bare path."""
        return self.arity is not None and self.arity[1] > 1


def _split_top(text: str) -> list[str]:
    """Split on commas outside brackets and quotes."""
    parts, depth, quote, cur = [], 0, None, []
    for ch in text:
        if quote:
            quote = None if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append("".join(cur).strip())
            cur = []
            continue
        cur.append(ch)
    if "".join(cur).strip():
        parts.append("".join(cur).strip())
    return parts


def _one_input(process: str, text: str, slot: int) -> Input:
    pattern = re.match(r'path\s*\(\s*"([^"]+)"', text)  # path("reads/???/${meta.id}", ...)
    if pattern:  # a file name pattern, which may use the tuple's values: its stageAs
        options = dict(re.findall(r"(\w+)\s*:\s*'([^']*)'", text))
        return Input(
            process, "path", pattern.group(1), {**options, "stageAs": pattern.group(1)}, slot
        )
    match = re.match(r"(val|path|env|stdin)\s*\(?\s*([\w'\"]+)?", text)
    assert match, f"{process}: cannot read input '{text}'"
    kind, name = match.group(1), (match.group(2) or "").strip("'\"")
    options = dict(re.findall(r"(\w+)\s*:\s*'([^']*)'", text))
    return Input(process, kind, name, options, slot)


def process_inputs(proc: ProcessSource) -> list[list[Input]]:
    """The inputs of a process, one list per slot (a tuple holds several)."""
    slots = []
    for line in proc.section("input").splitlines():
        line = line.split("//")[0].strip()
        if not line:
            continue
        slot = len(slots)
        if line.startswith("tuple"):
            slots.append([_one_input(proc.name, p, slot) for p in _split_top(line[5:].strip())])
        else:
            head, *rest = _split_top(line)
            joined = ", ".join([head, *rest]) if rest else head
            slots.append([_one_input(proc.name, joined, slot)])
    return slots


def statements(text: str, workflow: str) -> list[str]:
    """The top-level statements of a workflow's body, each with its continuation lines."""
    match = re.search(rf"^workflow\s+{workflow}\s*\{{(.*?)^\}}", text, re.M | re.S)
    assert match, f"no workflow {workflow}"
    found: list[str] = []
    for line in match.group(1).splitlines():
        if re.match(r"^    [^\s)\]}.]", line):
            found.append(line.strip())
        elif line.strip() and found:
            found[-1] += "\n" + line.strip()
    return found


def channels_derived_from(text: str, workflow: str, needle: str) -> set[str]:
    """Channel variables whose items are built with `needle`, directly or from such a channel.

    A channel that takes `.first()` of one and maps it to something else (the transcriptome
    channel, started by the first sample with reads) carries other items and is not followed.
    """
    assigned = [
        (m.group(1), m.group(2))
        for s in statements(text, workflow)
        if (m := re.match(r"(ch_\w+)\s*=\s*(.*)", s, re.S))
    ]
    found: set[str] = set()
    changed = True
    while changed:
        changed = False
        for name, rhs in assigned:
            if name not in found and (
                needle in rhs
                or (".first()" not in rhs and any(re.search(rf"\b{c}\b", rhs) for c in found))
            ):
                found.add(name)
                changed = True
    return found


def entry_process_calls(text: str) -> dict[str, list[str]]:
    """Process calls of the entry workflow (`workflow { … }`), at any depth of its if/else."""
    match = re.search(r"^workflow\s*\{(.*?)^\}", text, re.M | re.S)
    assert match, "no entry workflow"
    calls = {}
    for call in re.finditer(r"^\s+([A-Z][A-Z0-9_]+)\((.*)\)\s*$", match.group(1), re.M):
        calls[call.group(1)] = _split_top(call.group(2))
    return calls


def process_calls(text: str, workflow: str) -> dict[str, list[str]]:
    """Each process call in a workflow body and its argument expressions."""
    calls = {}
    for s in statements(text, workflow):
        match = re.match(r"([A-Z][A-Z0-9_]+)\s*\((.*)\)\s*$", s, re.S)
        if match:
            calls[match.group(1)] = _split_top(match.group(2).replace("\n", " "))
    return calls
