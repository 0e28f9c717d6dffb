"""The samplesheet: one row per sample, validated before any work starts.

Relative paths resolve against the samplesheet's own folder, so a samplesheet
and its data can be moved together. Remote sources (URLs, ENCODE and SRA/ENA
accessions) are kept as they are for the fetch step. Object-store paths (s3://,
gs://, az://) are kept as they are too: Nextflow stages them, as nf-core pipelines
rely on; `gexp run` reads local files only and refuses them up front. A samplesheet
in object storage (Nextflow passes its folder as `--base-dir s3://…`) resolves its
relative paths into the same bucket.
"""

from __future__ import annotations

import csv
import io
import posixpath
import re
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import GexpError
from ..files import read_text
from .ids import SAMPLE_ID

COLUMNS = [
    "sample",
    "group",
    "donor",
    "rna_1",
    "rna_2",
    "rna_tpm",
    "atac",
    "fragment_length",
    "fragment_sd",
    "multiome_h5",
    "fragments",
    "cells",
]
# A multiome row is one library (Cell Ranger ARC outputs and the user's cell table) that
# `gexp pseudobulk` turns into samples; it has these three and none of the bulk inputs. A row
# with fragments and cells but no multiome_h5 is a scATAC-only library: its pseudobulk samples
# have ATAC-seq only, and are predicted.
MULTIOME = ("multiome_h5", "fragments", "cells")
LIBRARY = ("fragments", "cells")  # what every library row needs
BULK_INPUTS = ("rna_1", "rna_2", "rna_tpm", "atac", "fragment_length", "fragment_sd")
# provenance: where a row came from (encode-samplesheet); single_end: written by write_validated.
EXTRA_COLUMNS = ("provenance", "single_end")
REMOTE = re.compile(r"^(https?://|ftp://|ENCFF[0-9]{3}[A-Z]{3}$|[SED]RR[0-9]{6,}$)")
OBJECT_STORE = re.compile(r"^(s3|gs|az)://")
URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")  # any scheme: never a relative path


@dataclass
class Sample:
    sample: str
    group: str = ""
    donor: str = ""
    rna_1: list[str] = field(default_factory=list)
    rna_2: list[str] = field(default_factory=list)
    rna_tpm: str = ""
    atac: str = ""
    fragment_length: float | None = None
    fragment_sd: float | None = None
    multiome_h5: str = ""
    fragments: str = ""
    cells: str = ""
    line: int = 0

    @property
    def is_multiome(self) -> bool:
        return bool(self.multiome_h5 or self.fragments or self.cells)

    @property
    def paired(self) -> bool:
        return bool(self.rna_2)

    @property
    def has_rna(self) -> bool:
        return bool(self.rna_1 or self.rna_tpm)

    @property
    def scatac_only(self) -> bool:
        """A single-cell ATAC library without RNA: its pseudobulk samples are to predict."""
        return self.is_multiome and not self.multiome_h5

    @property
    def to_predict(self) -> bool:
        """A bulk row with ATAC-seq and no RNA: predicted by the trained model, never trained
        on (pseudobulk rows read back from a library's samplesheet always have RNA)."""
        return not self.is_multiome and not self.has_rna


def is_remote(source: str) -> bool:
    return bool(REMOTE.match(source))


def is_object_store(source: str) -> bool:
    return bool(OBJECT_STORE.match(source))


def _resolve(value: str, base: Path | str) -> str:
    if not value or is_remote(value) or URI.match(value):
        return value
    p = Path(value).expanduser()
    if p.is_absolute():
        return str(p)
    if isinstance(base, str):  # a URI folder: join within it, keeping the scheme
        scheme, _, rest = base.partition("://")
        return f"{scheme}://{posixpath.normpath(posixpath.join('/' + rest, value)).lstrip('/')}"
    return str((base / p).resolve())


def _runs(values: dict[str, str], column: str, base: Path | str) -> list[str]:
    """Several runs of one sample are `;`-separated."""
    return [_resolve(v.strip(), base) for v in values.get(column, "").split(";") if v.strip()]


def _number(value: str, column: str, where: str) -> float | None:
    if value == "":
        return None
    try:
        number = float(value)
    except ValueError:
        raise GexpError(f"{where}: {column} must be a number, got '{value}'") from None
    if number <= 0:
        raise GexpError(f"{where}: {column} must be positive, got '{value}'")
    return number


def read_samplesheet(path: str | Path, base_dir: str | Path | None = None) -> list[Sample]:
    """Parse and validate; every problem names the samplesheet line. A bulk row with atac
    and no RNA column filled is a sample to predict (Sample.to_predict).

    `base_dir` is where relative paths resolve (default: the samplesheet's folder);
    Nextflow passes the folder of the samplesheet the user gave, not of its staged copy.
    """
    path = Path(path)
    text = read_text(path, "samplesheet").replace("\r\n", "\n").replace("\r", "\n")
    rows = list(csv.reader(io.StringIO(text)))
    if not rows or not any(cell.strip() for cell in rows[0]):
        raise GexpError(f"samplesheet {path}: empty file")
    header = [h.strip() for h in rows[0]]
    unknown = [h for h in header if h not in COLUMNS and h not in EXTRA_COLUMNS]
    if unknown:
        raise GexpError(
            f"samplesheet {path}: unknown column(s) {', '.join(unknown)}; "
            f"expected {', '.join(COLUMNS)}"
        )
    if "sample" not in header:
        raise GexpError(f"samplesheet {path}: missing required column 'sample'")
    multiome = all(c in header for c in LIBRARY)
    if not multiome and any(c in header for c in MULTIOME):
        absent = ", ".join(c for c in LIBRARY if c not in header)
        raise GexpError(
            f"samplesheet {path}: single-cell libraries need columns {', '.join(LIBRARY)} "
            f"(and multiome_h5 for a multiome one); missing {absent}"
        )
    if "atac" not in header and not multiome:
        raise GexpError(f"samplesheet {path}: missing required column 'atac'")

    if base_dir and URI.match(str(base_dir)):
        base: Path | str = str(base_dir).rstrip("/")
    else:
        base = Path(base_dir).resolve() if base_dir else path.resolve().parent
    samples: list[Sample] = []
    seen: dict[str, int] = {}
    for lineno, row in enumerate(rows[1:], start=2):
        if not any(cell.strip() for cell in row):
            continue
        where = f"samplesheet {path} line {lineno}"
        if len(row) != len(header):
            raise GexpError(f"{where}: {len(row)} fields, header has {len(header)}")
        values = {h: cell.strip() for h, cell in zip(header, row, strict=False)}
        sample_id = values.get("sample", "")
        if not sample_id:
            raise GexpError(f"{where}: missing sample id")
        if not SAMPLE_ID.match(sample_id):
            raise GexpError(
                f"{where}: invalid sample id '{sample_id}' "
                "(use letters, digits, '.', '_' and '-', starting with a letter or digit)"
            )
        if sample_id in seen:
            raise GexpError(
                f"{where}: duplicate sample id '{sample_id}' (first on line {seen[sample_id]})"
            )
        seen[sample_id] = lineno
        where = f"{where} (sample {sample_id})"

        sample = Sample(
            sample=sample_id,
            group=values.get("group", ""),
            donor=values.get("donor", ""),
            rna_1=_runs(values, "rna_1", base),
            rna_2=_runs(values, "rna_2", base),
            rna_tpm=_resolve(values.get("rna_tpm", ""), base),
            atac=_resolve(values.get("atac", ""), base),
            fragment_length=_number(values.get("fragment_length", ""), "fragment_length", where),
            fragment_sd=_number(values.get("fragment_sd", ""), "fragment_sd", where),
            multiome_h5=_resolve(values.get("multiome_h5", ""), base),
            fragments=_resolve(values.get("fragments", ""), base),
            cells=_resolve(values.get("cells", ""), base),
            line=lineno,
        )
        if sample.is_multiome:
            _check_multiome(sample, values, where)
            samples.append(sample)
            continue
        if not sample.atac:
            raise GexpError(f"{where}: missing atac (peaks or BAM)")
        if sample.rna_2 and len(sample.rna_2) != len(sample.rna_1):
            raise GexpError(
                f"{where}: {len(sample.rna_1)} rna_1 run(s) but {len(sample.rna_2)} rna_2 run(s)"
            )
        if sample.rna_1 and sample.rna_tpm:
            raise GexpError(f"{where}: give either rna_1/rna_2 FASTQ or rna_tpm, not both")
        samples.append(sample)
    if not samples:
        raise GexpError(f"samplesheet {path}: no samples")
    return samples


def _check_multiome(sample: Sample, values: dict[str, str], where: str) -> None:
    """A library row: fragments and cells (and multiome_h5 unless it is scATAC-only), local or
    in object storage, and nothing else."""
    absent = [c for c in LIBRARY if not values.get(c)]
    if absent:
        raise GexpError(
            f"{where}: a single-cell library needs {', '.join(LIBRARY)} (and multiome_h5 "
            f"for RNA); missing {', '.join(absent)}"
        )
    mixed = [c for c in BULK_INPUTS if values.get(c)]
    if mixed:
        raise GexpError(
            f"{where}: a multiome library (multiome_h5, fragments, cells) cannot also have "
            f"{', '.join(mixed)}; put bulk samples on rows of their own"
        )
    for column in ("group", "donor"):
        if values.get(column):
            raise GexpError(
                f"{where}: {column} of a multiome library comes from its cell table "
                f"(barcode,group[,donor]); leave the samplesheet's {column} empty"
            )
    for column in (c for c in MULTIOME if values.get(c)):
        if is_remote(values[column]):
            raise GexpError(
                f"{where}: {column} '{values[column]}' is a download; multiome inputs must be "
                "local files or object-store paths (fetch them first)"
            )
    if not sample.fragments.endswith(".gz"):
        raise GexpError(
            f"{where}: fragments '{sample.fragments}' must be bgzipped (.tsv.gz) with a tabix "
            "index (.tbi) beside it"
        )


def check_something_to_train(samples: list[Sample], sheet: str | Path, model: bool) -> None:
    """Samples to predict need paired ones to train on, or a trained model (--model), which
    no paired sample may then come with: one rule, and one wording, for both runners."""
    paired = [s.sample for s in samples if not (s.to_predict or s.scatac_only)]
    if model and paired:
        raise GexpError(
            f"samplesheet {sheet}: --model predicts from a trained model, but samples "
            f"{', '.join(paired[:5])} have RNA (to train on): leave out --model to train on "
            "them, or their RNA columns to predict them"
        )
    if not model and not paired:
        raise GexpError(
            f"samplesheet {sheet}: every row is ATAC-seq only (no rna_1, rna_tpm or "
            "multiome_h5), so there is nothing to train on; add paired samples, or predict "
            "these from a trained model with --model DIR"
        )


def check_local_inputs(samples: list[Sample]) -> None:
    """Every local input exists and is readable, before any work starts."""
    from ..files import require_file

    for s in samples:
        for column, values in (
            ("rna_1", s.rna_1),
            ("rna_2", s.rna_2),
            ("rna_tpm", [s.rna_tpm] if s.rna_tpm else []),
            ("atac", [s.atac] if s.atac else []),
            ("multiome_h5", [s.multiome_h5] if s.multiome_h5 else []),
            ("fragments", [s.fragments] if s.fragments else []),
            ("cells", [s.cells] if s.cells else []),
        ):
            for value in values:
                if is_object_store(value):
                    raise GexpError(
                        f"sample {s.sample} {column}: '{value}' is in object storage, which "
                        "`gexp run` does not read; run the pipeline with Nextflow (it stages "
                        "s3://, gs:// and az:// paths) or copy the file locally first"
                    )
                if not is_remote(value):
                    require_file(value, f"sample {s.sample} {column}")
        if s.fragments and not is_remote(s.fragments):
            from .tabix import check_indexed

            check_indexed(Path(s.fragments), f"sample {s.sample} fragments")


def write_validated(samples: list[Sample], out: str | Path) -> None:
    """The samplesheet as the pipeline consumes it: absolute paths and explicit defaults."""
    from ..files import atomic_write

    with atomic_write(out) as fh:
        writer = csv.writer(fh, lineterminator="\n")
        multiome = any(s.is_multiome for s in samples)
        donors = any(s.donor for s in samples)
        columns = [
            c for c in COLUMNS if (c != "donor" or donors) and (c not in MULTIOME or multiome)
        ]  # multiome_h5 stays, empty for a scATAC-only library
        writer.writerow([*columns, "single_end"])
        for s in samples:
            row = dict(
                sample=s.sample,
                group=s.group,
                donor=s.donor,
                rna_1=";".join(s.rna_1),
                rna_2=";".join(s.rna_2),
                rna_tpm=s.rna_tpm,
                atac=s.atac,
                fragment_length="" if s.fragment_length is None else f"{s.fragment_length:g}",
                fragment_sd="" if s.fragment_sd is None else f"{s.fragment_sd:g}",
                multiome_h5=s.multiome_h5,
                fragments=s.fragments,
                cells=s.cells,
            )
            single_end = str(bool(s.rna_1) and not s.paired).lower()
            writer.writerow([*(row[c] for c in columns), single_end])


def remote_sources(samples: list[Sample]) -> list[str]:
    """Every remote source in the samplesheet, once, in a stable order."""
    found: dict[str, None] = {}
    for s in samples:
        for value in (*s.rna_1, *s.rna_2, s.rna_tpm, s.atac):
            if value and is_remote(value):
                found[value] = None
    return list(found)
