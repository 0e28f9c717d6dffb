"""`gexp encode-samplesheet`: pair ENCODE ATAC-seq and RNA-seq experiments by biosample.

Queries the portal's search for released human ATAC-seq and RNA-seq experiments
(RNA-seq is `assay_title` "total RNA-seq" or "polyA plus RNA-seq"; there is no
plain "RNA-seq"), reads each experiment with its embedded files, and writes one
samplesheet row per biosample that has both:

- atac: one `bed narrowPeak` file of the assembly, released, preferring
  `preferred_default`, then pseudoreplicated, conservative IDR thresholded and
  IDR thresholded peaks;
- rna_1/rna_2: the FASTQ files of one biological replicate (the lowest numbered
  with released reads), read 2 matched to read 1 through `paired_with`;
  single-ended files have no `paired_end` key.

When a biosample has several experiments, a pair from the same donor is preferred.
The `provenance` column records the experiment and file accessions of each row.
"""

from __future__ import annotations

import argparse
import csv
import logging
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlencode

from ..errors import GexpError
from ..files import atomic_write
from ..io.samplesheet import COLUMNS
from .fetch import Fetcher, fetcher, network_options
from .options import positive_int

log = logging.getLogger("gexp")

RNA_ASSAYS = ("total RNA-seq", "polyA plus RNA-seq")
PEAK_PREFERENCE = (
    "pseudoreplicated peaks",
    "conservative IDR thresholded peaks",
    "IDR thresholded peaks",
)


@dataclass
class Experiment:
    accession: str
    biosample: str
    classification: str
    donors: set[str] = field(default_factory=set)
    files: list[dict] = field(default_factory=list)


def _donor_ids(exp: dict) -> set[str]:
    donors = set()
    for rep in exp.get("replicates") or []:
        if not isinstance(rep, dict):
            continue
        donor = ((rep.get("library") or {}).get("biosample") or {}).get("donor")
        if isinstance(donor, dict):
            donor = donor.get("accession") or donor.get("@id")
        if isinstance(donor, str) and donor:
            donors.add(donor.rstrip("/").split("/")[-1])
    return donors


def _experiment(exp: dict) -> Experiment:
    ontology = exp.get("biosample_ontology") or {}
    if not isinstance(ontology, dict):
        ontology = {}
    return Experiment(
        accession=exp["accession"],
        biosample=ontology.get("term_name") or exp.get("biosample_term_name") or "unknown",
        classification=ontology.get("classification") or exp.get("biosample_type") or "",
        donors=_donor_ids(exp),
        files=[f for f in exp.get("files") or [] if isinstance(f, dict)],
    )


def pick_peaks(exp: Experiment, assembly: str) -> dict | None:
    candidates = [
        f
        for f in exp.files
        if f.get("file_type") == "bed narrowPeak"
        and f.get("assembly") == assembly
        and f.get("status") == "released"
        and (f.get("preferred_default") or f.get("output_type") in PEAK_PREFERENCE)
    ]

    def rank(f: dict) -> tuple:
        kind = f.get("output_type")
        order = PEAK_PREFERENCE.index(kind) if kind in PEAK_PREFERENCE else len(PEAK_PREFERENCE)
        return (not f.get("preferred_default"), order, f["accession"])

    return min(candidates, key=rank) if candidates else None


def _replicate(f: dict) -> int:
    reps = f.get("biological_replicates") or []
    if reps:
        return int(reps[0])
    rep = f.get("replicate")
    if isinstance(rep, dict) and rep.get("biological_replicate_number") is not None:
        return int(rep["biological_replicate_number"])
    return 10**6


def pick_fastqs(exp: Experiment) -> tuple[list[str], list[str]] | None:
    """(read 1 accessions, read 2 accessions in the same order) of one replicate."""
    reads = [
        f for f in exp.files if f.get("file_format") == "fastq" and f.get("status") == "released"
    ]
    for rep in sorted({_replicate(f) for f in reads}):
        files = sorted((f for f in reads if _replicate(f) == rep), key=lambda f: f["accession"])
        by_path = {f"/files/{f['accession']}/": f for f in files}
        pairs = []
        for f in files:
            if f.get("paired_end") == "1":
                mate = by_path.get(f.get("paired_with") or "")
                if mate and mate.get("paired_end") == "2":
                    pairs.append((f["accession"], mate["accession"]))
        if pairs:
            return [a for a, _ in pairs], [b for _, b in pairs]
        single = [f["accession"] for f in files if "paired_end" not in f]
        if single:
            return single, []
    return None


def _sample_id(biosample: str, taken: set[str]) -> str:
    base = re.sub(r"[^A-Za-z0-9._-]+", "_", biosample).strip("._-") or "biosample"
    if not base[0].isalnum():
        base = f"s{base}"
    name, n = base, 2
    while name in taken:
        name, n = f"{base}_{n}", n + 1
    taken.add(name)
    return name


class EncodeSamplesheet:
    def __init__(
        self, fetcher: Fetcher, assembly: str = "GRCh38", biosample_type: str | None = None
    ) -> None:
        self.fetcher, self.assembly, self.biosample_type = fetcher, assembly, biosample_type

    def search(self, assays: tuple[str, ...]) -> list[str]:
        query = [
            ("type", "Experiment"),
            *(("assay_title", a) for a in assays),
            ("status", "released"),
            ("replicates.library.biosample.donor.organism.scientific_name", "Homo sapiens"),
            ("limit", "all"),
        ]
        if self.biosample_type:
            query.append(("biosample_ontology.classification", self.biosample_type))
        page = self.fetcher.encode_json(f"/search/?{urlencode(query)}", "ENCODE search")
        return sorted(hit["accession"] for hit in page.get("@graph", []) if "accession" in hit)

    def experiments(self, accessions: list[str]) -> list[Experiment]:
        found = []
        for acc in accessions:
            try:
                exp = _experiment(self.fetcher.encode_json(f"/experiments/{acc}/", acc))
            except GexpError as exc:
                log.warning("skipped experiment %s: %s", acc, exc)
                continue
            if self.biosample_type and exp.classification != self.biosample_type:
                continue
            found.append(exp)
        return found

    def build(self, limit: int | None = None) -> tuple[list[dict], Counter]:
        atac = self.experiments(self.search(("ATAC-seq",)))
        rna = self.experiments(self.search(RNA_ASSAYS))
        log.info("ENCODE: %d ATAC-seq and %d RNA-seq experiments", len(atac), len(rna))
        key = lambda e: (e.biosample, e.classification)  # noqa: E731
        biosamples = sorted({key(e) for e in atac} | {key(e) for e in rna})
        rows, skipped, taken = [], Counter(), set()
        for biosample in biosamples:
            peaks = [
                (e, p) for e in atac if key(e) == biosample if (p := pick_peaks(e, self.assembly))
            ]
            reads = [(e, r) for e in rna if key(e) == biosample if (r := pick_fastqs(e))]
            if not any(key(e) == biosample for e in atac):
                skipped["no ATAC-seq experiment"] += 1
            elif not any(key(e) == biosample for e in rna):
                skipped["no RNA-seq experiment"] += 1
            elif not peaks:
                skipped[f"no released {self.assembly} narrowPeak"] += 1
            elif not reads:
                skipped["no released RNA-seq FASTQ"] += 1
            else:
                rows.append(self._row(biosample, peaks, reads, taken))
                if limit and len(rows) >= limit:
                    break
        return rows, skipped

    def _row(self, biosample: tuple[str, str], peaks: list, reads: list, taken: set[str]) -> dict:
        shared = [(a, p, r, q) for a, p in peaks for r, q in reads if a.donors & r.donors]
        atac, peak, rna, (read1, read2) = shared[0] if shared else (*peaks[0], *reads[0])
        donor = "same donor" if shared else "donor differs or unknown"
        return {
            "sample": _sample_id(biosample[0], taken),
            "group": biosample[1],
            "rna_1": ";".join(read1),
            "rna_2": ";".join(read2),
            "rna_tpm": "",
            "atac": peak["accession"],
            "fragment_length": "",
            "fragment_sd": "",
            "provenance": (
                f"ATAC-seq {atac.accession} {peak['accession']} "
                f"({peak.get('output_type')}); RNA-seq {rna.accession} "
                f"{' '.join(read1 + read2)}; {donor}"
            ),
        }


def write_encode_samplesheet(
    out: str | Path,
    fetcher: Fetcher,
    assembly: str = "GRCh38",
    biosample_type: str | None = None,
    limit: int | None = None,
) -> int:
    rows, skipped = EncodeSamplesheet(fetcher, assembly, biosample_type).build(limit)
    reasons = ", ".join(f"{n} {why}" for why, n in skipped.most_common()) or "none"
    if not rows:
        raise GexpError(f"ENCODE: no biosample has both ATAC-seq and RNA-seq (skipped: {reasons})")
    with atomic_write(out) as fh:
        writer = csv.DictWriter(fh, fieldnames=[*COLUMNS, "provenance"], lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    log.info(
        "ENCODE: paired %d biosample(s); skipped %d (%s)", len(rows), sum(skipped.values()), reasons
    )
    return len(rows)


# -- the command line: `gexp encode-samplesheet` -----------------------------------------------


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", required=True, type=Path, help="samplesheet CSV to write")
    p.add_argument("--assembly", default="GRCh38", help="assembly of the ATAC-seq peak files")
    p.add_argument(
        "--biosample-type", help='e.g. "tissue", "cell line", "primary cell" (default: any)'
    )
    p.add_argument("--limit", type=positive_int, help="at most this many biosamples (default: all)")
    network_options(p)


def run(a: argparse.Namespace) -> None:
    write_encode_samplesheet(a.out, fetcher(a), a.assembly, a.biosample_type, a.limit)
