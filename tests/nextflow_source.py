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
        body = self.script_body(section).replace("\\\\\n", " ")
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
    return set(re.findall(r"\bparams\.([A-Za-z_]\w*)", text))


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
