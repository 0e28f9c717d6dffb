"""The simulator: deterministic, realistic, and expression truly depends on accessibility."""

from __future__ import annotations

import gzip
import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
from conftest import run_gexp
from gexpcore.steps.simulate import simulate


def _digest(folder):
    return {
        p.relative_to(folder).as_posix(): hashlib.md5(
            gzip.decompress(p.read_bytes()) if p.suffix == ".gz" else p.read_bytes()
        ).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_deterministic_for_a_seed(tmp_path):
    for name in ("a", "b"):
        proc = run_gexp(
            "simulate",
            "--outdir",
            tmp_path / name,
            "--seed",
            5,
            "--samples",
            3,
            "--genes",
            20,
            "--reads",
            2000,
        )
        assert proc.returncode == 0, proc.stderr
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b")
    proc = run_gexp(
        "simulate",
        "--outdir",
        tmp_path / "c",
        "--seed",
        6,
        "--samples",
        3,
        "--genes",
        20,
        "--reads",
        2000,
    )
    assert _digest(tmp_path / "c") != _digest(tmp_path / "a")


def test_reference_files_look_like_gencode(sim):
    gtf = pd.read_csv(sim / "reference" / "genes.gtf.gz", sep="\t", comment="#", header=None)
    assert set(gtf[2]) == {"gene", "transcript", "exon"}
    assert set(gtf[6]) == {"+", "-"}
    assert gtf[0].nunique() >= 2
    genes = gtf[gtf[2] == "gene"]
    assert genes[8].str.contains(r'gene_id "ENSG\d{11}\.\d+"').all()
    per_gene = gtf[gtf[2] == "transcript"][8].str.extract(r'gene_id "([^"]+)"')[0].value_counts()
    assert per_gene.min() >= 1 and per_gene.max() <= 4 and per_gene.max() > 1
    with gzip.open(sim / "reference" / "transcripts.fa.gz", "rt") as fh:
        headers = [ln for ln in fh if ln.startswith(">")]
    assert len(headers) == per_gene.sum()
    fields = headers[0][1:].rstrip("\n").split("|")
    assert fields[0].startswith("ENST") and fields[1].startswith("ENSG") and fields[-1] == ""
    sizes = pd.read_csv(sim / "reference" / "chrom.sizes", sep="\t", header=None)
    assert (gtf.groupby(0)[4].max() <= sizes.set_index(0)[1]).all()


def test_samplesheet_fastq_and_peaks(sim):
    sheet = pd.read_csv(sim / "samplesheet.csv", keep_default_na=False)
    assert list(sheet.columns[:6]) == ["sample", "group", "rna_1", "rna_2", "rna_tpm", "atac"]
    paired = sheet["rna_2"] != ""
    assert paired.any() and (~paired).any()
    assert (sheet.loc[~paired, "fragment_length"] != "").all()
    assert sheet["group"].nunique() > 1
    with gzip.open(sim / sheet["rna_1"][0], "rt") as fh:
        head = [next(fh) for _ in range(8)]
    assert head[0].startswith("@") and head[2] == "+\n" and len(head[1]) == len(head[3])
    quals = {ord(c) - 33 for c in head[3].strip()}
    assert min(quals) >= 2 and max(quals) <= 41 and len(quals) > 3
    peaks = pd.read_csv(sim / sheet["atac"][0], sep="\t", header=None)
    assert peaks.shape[1] == 10
    assert (peaks[2] > peaks[1]).all() and (peaks[5] == ".").all()
    assert peaks[7].is_monotonic_decreasing


def test_truth_tpm_sums_and_depends_on_accessibility(sim):
    genes = pd.read_csv(sim / "truth" / "gene_tpm.tsv", sep="\t", index_col=0)
    tx = pd.read_csv(sim / "truth" / "transcript_tpm.tsv", sep="\t", index_col=0)
    assert np.allclose(genes.sum(), 1e6, rtol=1e-3) and np.allclose(tx.sum(), 1e6, rtol=1e-3)
    # Promoter peaks predict expression: genes are more expressed where their promoter is open.
    sheet = pd.read_csv(sim / "samplesheet.csv", keep_default_na=False)
    elements = pd.read_csv(sim / "truth" / "elements.tsv", sep="\t", keep_default_na=False)
    promoters = elements[(elements["kind"] == "promoter") & (elements["effect"] > 0)]
    diffs = []
    for sample, path in zip(sheet["sample"], sheet["atac"], strict=True):
        peaks = pd.read_csv(sim / path, sep="\t", header=None)
        for _, p in promoters.iterrows():
            near = peaks[
                (peaks[0] == p["chrom"])
                & (peaks[1] <= p["pos"] + 300)
                & (peaks[2] >= p["pos"] - 300)
            ]
            diffs.append((p["gene_id"], sample, not near.empty))
    table = pd.DataFrame(diffs, columns=["gene", "sample", "open"])
    table["log_tpm"] = [
        np.log1p(genes.loc[g, s]) for g, s in zip(table["gene"], table["sample"], strict=True)
    ]
    table["centred"] = table["log_tpm"] - table.groupby("gene")["log_tpm"].transform("mean")
    gap = table.groupby("open")["centred"].mean()
    assert gap[True] - gap[False] > 0.5


def _between_group_share(out: Path) -> float:
    """Median over elements of the share of their (logit) accessibility variance that the
    samples' groups explain: the truth the option controls, computed from truth/ alone."""
    access = pd.read_csv(out / "truth" / "element_accessibility.tsv.gz", sep="\t", index_col=0)
    groups = pd.read_csv(out / "samplesheet.csv").set_index("sample")["group"]
    logit = np.log(access / (1 - access))
    centred = logit.sub(logit.mean(axis=1), axis=0)
    between = logit.T.groupby(groups).transform("mean").T.sub(logit.mean(axis=1), axis=0)
    return float(((between**2).sum(axis=1) / (centred**2).sum(axis=1)).median())


def test_group_separation_makes_closely_related_conditions(tmp_path):
    shares = {}
    for separation in (1.5, 0.3):
        out = tmp_path / str(separation)
        simulate(out, seed=5, samples=16, genes=60, reads=500, group_separation=separation)
        shares[separation] = _between_group_share(out)
    # Same seed, same elements: only how far apart the groups are changes.
    assert shares[0.3] < 0.6 * shares[1.5], shares


def test_group_separation_must_not_be_negative(tmp_path):
    proc = run_gexp("simulate", "--outdir", tmp_path / "s", "--group-separation", "-1")
    assert proc.returncode == 2 and "must be 0 or more" in proc.stderr, proc.stderr
    assert not (tmp_path / "s").exists()
