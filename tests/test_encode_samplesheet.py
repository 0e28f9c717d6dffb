"""`gexp encode-samplesheet` against a local portal built from real ENCODE JSON shapes."""

from __future__ import annotations

import copy

import pandas as pd
import pytest
from conftest import assert_user_error, run_gexp
from encode_portal import Server, experiment, fixture, search_page

ATAC_TEMPLATE = "experiment_TFChIPseq_ENCSR552YGL_full.json"
RNA_TEMPLATE = "experiment_CRISPR-RNAseq_ENCSR416YFB_embedded.json"


def peak_files(*specs):
    """narrowPeak file objects from ENCSR552YGL, relabelled: (accession, output_type, extra)."""
    base = next(f for f in fixture(ATAC_TEMPLATE)["files"] if f["accession"] == "ENCFF769VDQ")
    files = []
    for accession, output_type, extra in specs:
        f = copy.deepcopy(base)
        f.update(
            {
                "accession": accession,
                "@id": f"/files/{accession}/",
                "output_type": output_type,
                **extra,
            }
        )
        files.append(f)
    return files


def paired_fastqs():
    files = copy.deepcopy(fixture(RNA_TEMPLATE)["files"])
    for f in files:
        f["status"] = "released"
    return files


def single_fastqs():
    return [
        f
        for f in fixture("files_list_microRNAseq_ENCSR715NEZ.json")
        if f.get("file_format") == "fastq"
    ]


def cohort():
    atac = [
        # K562: no preferred default; conservative IDR beats optimal IDR, hg19 is ignored
        experiment(
            ATAC_TEMPLATE,
            "ENCSR000AT1",
            "ATAC-seq",
            "K562",
            "cell line",
            "ENCDO000AAD",
            peak_files(
                ("ENCFF100OPT", "optimal IDR thresholded peaks", {}),
                ("ENCFF100CON", "conservative IDR thresholded peaks", {}),
                ("ENCFF100H19", "pseudoreplicated peaks", {"assembly": "hg19"}),
            ),
        ),
        # HepG2: preferred_default wins over pseudoreplicated; a revoked file is ignored
        experiment(
            ATAC_TEMPLATE,
            "ENCSR000AT2",
            "ATAC-seq",
            "HepG2",
            "cell line",
            "ENCDO000SAM",
            peak_files(
                ("ENCFF200PSR", "pseudoreplicated peaks", {}),
                ("ENCFF200DEF", "replicated peaks", {"preferred_default": True}),
                (
                    "ENCFF200REV",
                    "pseudoreplicated peaks",
                    {"status": "revoked", "preferred_default": True},
                ),
            ),
        ),
        experiment(
            ATAC_TEMPLATE,
            "ENCSR000AT3",
            "ATAC-seq",
            "liver",
            "tissue",
            "ENCDO000LIV",
            peak_files(("ENCFF300CON", "conservative IDR thresholded peaks", {})),
        ),
        experiment(
            ATAC_TEMPLATE,
            "ENCSR000AT4",
            "ATAC-seq",
            "lung",
            "tissue",
            "ENCDO000LUN",
            peak_files(("ENCFF400H19", "conservative IDR thresholded peaks", {"assembly": "hg19"})),
        ),
    ]
    rna = [
        experiment(
            RNA_TEMPLATE,
            "ENCSR000RN1",
            "total RNA-seq",
            "K562",
            "cell line",
            "ENCDO000OTH",
            paired_fastqs(),
        ),
        # HepG2: a paired experiment from another donor, and a single-end one from the same donor
        experiment(
            RNA_TEMPLATE,
            "ENCSR000RN2",
            "polyA plus RNA-seq",
            "HepG2",
            "cell line",
            "ENCDO000XXX",
            paired_fastqs(),
        ),
        experiment(
            RNA_TEMPLATE,
            "ENCSR000RN3",
            "total RNA-seq",
            "HepG2",
            "cell line",
            "ENCDO000SAM",
            single_fastqs(),
        ),
        experiment(
            RNA_TEMPLATE,
            "ENCSR000RN4",
            "total RNA-seq",
            "GM12878",
            "cell line",
            "ENCDO000GM1",
            paired_fastqs(),
        ),
        experiment(
            RNA_TEMPLATE,
            "ENCSR000RN5",
            "total RNA-seq",
            "lung",
            "tissue",
            "ENCDO000LUN",
            paired_fastqs(),
        ),
    ]
    return atac, rna


@pytest.fixture
def portal():
    atac, rna = cohort()
    with Server() as server:

        def search(query):
            titles = set(query.get("assay_title", []))
            hits = atac if titles == {"ATAC-seq"} else rna if titles else []
            wanted = query.get("biosample_ontology.classification")
            if wanted:
                hits = [e for e in hits if e["biosample_ontology"]["classification"] in wanted]
            return search_page(hits)

        server.json["/search/"] = search
        for exp in atac + rna:
            server.json[f"/experiments/{exp['accession']}/"] = exp
        yield server


def build(portal, tmp_path, *extra, name="samplesheet.csv"):
    out = tmp_path / name
    proc = run_gexp(
        "encode-samplesheet", "--out", out, "--encode-url", portal.url, "--retry-wait", 0.01, *extra
    )
    return proc, out


def test_pairs_biosamples_and_picks_files(portal, tmp_path):
    proc, out = build(portal, tmp_path)
    assert proc.returncode == 0, proc.stderr
    sheet = pd.read_csv(out, keep_default_na=False, dtype=str).set_index("sample")
    assert sorted(sheet.index) == ["HepG2", "K562"]
    k562 = sheet.loc["K562"]
    assert k562["atac"] == "ENCFF100CON" and k562["group"] == "cell line"
    # replicate 1 of ENCSR416YFB: R1 ENCFF168ZWJ is paired_with R2 ENCFF177PKE
    assert (k562["rna_1"], k562["rna_2"]) == ("ENCFF168ZWJ", "ENCFF177PKE")
    hepg2 = sheet.loc["HepG2"]
    assert hepg2["atac"] == "ENCFF200DEF"
    singles = sorted(
        f["accession"]
        for f in single_fastqs()
        if f["status"] == "released" and f["biological_replicates"] == [1]
    )
    assert hepg2["rna_1"].split(";") == singles and hepg2["rna_2"] == ""
    assert "ENCSR000RN3" in hepg2["provenance"] and "same donor" in hepg2["provenance"]
    assert "ENCSR000AT1" in k562["provenance"] and "ENCFF177PKE" in k562["provenance"]
    assert "paired 2 biosample(s); skipped 3" in proc.stderr
    for reason in (
        "1 no ATAC-seq experiment",
        "1 no RNA-seq experiment",
        "1 no released GRCh38 narrowPeak",
    ):
        assert reason in proc.stderr


def test_queries_use_the_portal_rna_assay_titles(portal, tmp_path):
    proc, _ = build(portal, tmp_path)
    assert proc.returncode == 0, proc.stderr
    searches = [r.query for r in portal.hits("/search/")]
    titles = sorted(tuple(sorted(q["assay_title"])) for q in searches)
    assert titles == [("ATAC-seq",), ("polyA plus RNA-seq", "total RNA-seq")]
    for q in searches:
        assert q["limit"] == ["all"] and q["status"] == ["released"] and q["format"] == ["json"]
        assert q["replicates.library.biosample.donor.organism.scientific_name"] == ["Homo sapiens"]


def test_the_samplesheet_is_valid_for_the_pipeline(portal, tmp_path):
    from gexpcore.io.samplesheet import read_samplesheet, remote_sources

    proc, out = build(portal, tmp_path)
    assert proc.returncode == 0, proc.stderr
    samples = read_samplesheet(out)
    assert all(s.atac.startswith("ENCFF") for s in samples)
    assert "ENCFF168ZWJ" in remote_sources(samples)


def test_biosample_type_and_limit(portal, tmp_path):
    proc, out = build(portal, tmp_path, "--limit", 1)
    assert proc.returncode == 0, proc.stderr
    assert len(pd.read_csv(out)) == 1
    proc, out = build(portal, tmp_path, "--biosample-type", "tissue", name="tissue.csv")
    assert_user_error(
        proc,
        "no biosample has both ATAC-seq and RNA-seq",
        "1 no RNA-seq experiment",
        "1 no released GRCh38 narrowPeak",
    )
    assert not out.exists()
    assert all(
        q["biosample_ontology.classification"] == ["tissue"]
        for q in (r.query for r in portal.hits("/search/")[-2:])
    )
