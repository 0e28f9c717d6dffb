"""Which steps of `gexp run` are already complete, so an interrupted run resumes.

A step is skipped only when all of its outputs exist and it was last run with
the same inputs (file name, size, modification time) and parameters; change a file
or a parameter and the step, and everything that reads its outputs, runs again.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from .files import atomic_write


def fingerprint(*inputs: str | Path | None, **params: object) -> str:
    parts = []
    for item in inputs:
        if item is None:
            continue
        st = os.stat(item)
        parts.append([Path(item).name, st.st_size, st.st_mtime_ns])
    blob = json.dumps([parts, params], sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


class StepCache:
    def __init__(self, outdir: Path) -> None:
        self.folder = outdir / "pipeline_info" / "steps"

    def _stamp(self, step: str) -> Path:
        return self.folder / f"{step}.json"

    def is_done(self, step: str, key: str, outputs: list[Path]) -> bool:
        stamp = self._stamp(step)
        if not stamp.is_file() or not all(p.exists() for p in outputs):
            return False
        return json.loads(stamp.read_text()).get("key") == key

    def mark(self, step: str, key: str) -> None:
        with atomic_write(self._stamp(step)) as fh:
            json.dump({"key": key}, fh)
