"""Software versions and run parameters for pipeline_info/, as nf-core pipelines record them."""

from __future__ import annotations

import json
import platform
from pathlib import Path

from . import __version__
from .files import atomic_write
from .tools import tool_version

MULTIQC_VERSIONS = "gexp_software_mqc_versions.yml"


def python_versions() -> dict[str, str]:
    import numpy
    import pandas
    import scipy

    versions = {
        "gexp": __version__,
        "python": platform.python_version(),
        "numpy": numpy.__version__,
        "pandas": pandas.__version__,
        "scipy": scipy.__version__,
    }
    try:
        import pysam

        versions["pysam"] = pysam.__version__
    except ImportError:
        pass
    return versions


def write_pipeline_info(outdir: Path, params: dict) -> None:
    info = outdir / "pipeline_info"
    versions = {
        "GEXP": python_versions(),
        "TOOLS": {t: tool_version(t) for t in ("kallisto", "bedtools", "samtools")},
    }
    # versions.yml as nf-core pipelines keep it; the same under a name MultiQC's
    # software_versions module finds (`*_mqc_versions.yml`), as nf-core's MultiQC step reads it.
    for name in ("versions.yml", MULTIQC_VERSIONS):
        with atomic_write(info / name) as fh:
            for process, tools in versions.items():
                fh.write(f"{process}:\n")
                fh.writelines(f'  {k}: "{v}"\n' for k, v in tools.items())
    with atomic_write(info / "params.json") as fh:
        json.dump(params, fh, indent=2, default=str)
