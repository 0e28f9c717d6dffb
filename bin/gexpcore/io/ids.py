"""Identifier conventions shared by every step.

Gene and transcript ids are joined without their version suffix: the proof of
concept lost most genes because ENSG….12 in one table never matched ENSG….13 in
another. GENCODE's chrY pseudo-autosomal copies (`…_PAR_Y`) keep their suffix so
that they stay distinct from the chrX gene once the version is gone.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # imported where used: peak-bins reads chromosome names without pandas
    import pandas as pd

_VERSION = re.compile(r"\.\d+(?=(_PAR_Y)?$)")
SAMPLE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def strip_version(identifier: str) -> str:
    return _VERSION.sub("", identifier)


def strip_versions(ids: pd.Series) -> pd.Series:
    return ids.astype(str).str.replace(_VERSION, "", regex=True)


def first_field(ids: pd.Series) -> pd.Series:
    """GENCODE FASTA headers (`ENST…|ENSG…|…|`) become kallisto target ids whole."""
    return ids.astype(str).str.split("|", n=1).str[0]


def harmonise_chroms(names: pd.Series, known: set[str]) -> tuple[pd.Series, dict[str, str]]:
    """Map `1`↔`chr1` (and `MT`↔`chrM`) onto the naming of `known`.

    Returns the mapped names and the renames that were applied, so callers can
    warn once. Names that match neither form are returned unchanged.
    """
    import pandas as pd

    renames = chrom_renames(pd.unique(names), known)
    if not renames:
        return names, renames
    return names.replace(renames), renames


def chrom_renames(names, known: set[str]) -> dict[str, str]:
    """The renames harmonise_chroms applies to these distinct names, in their order."""
    renames: dict[str, str] = {}
    for name in names:
        if name in known:
            continue
        if name.startswith("chr"):
            alt = name[3:]
            alt = "MT" if alt == "M" and "MT" in known else alt
        else:
            alt = "chr" + ("M" if name == "MT" else name)
        if alt in known:
            renames[name] = alt
    return renames
