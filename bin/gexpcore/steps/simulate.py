"""A small, realistic paired RNA-seq + ATAC-seq cohort with known truth.

Generative model (everything drawn from one numpy Generator seeded by --seed):

Genome and genes
    Genes are laid out along two or more chromosomes (`chr1`, `chr2`, …) with
    15–45 kb between consecutive TSSs, on both strands. Each gene has 2–6 exons
    (150–800 bp) and 1–4 distinct transcripts (the first uses every exon, the
    others skip internal or terminal exons). Exon sequences are uniform random
    bases; transcripts are their concatenation, reverse-complemented on −.
    Ids are GENCODE-like and versioned (`ENSG00000100001.4`), so every consumer
    has to strip versions to join them.

Accessibility
    Every gene has a promoter element at its TSS and 0–4 distal elements within
    ±100 kb; background elements (not linked to any gene) fall every ~25 kb.
    Samples belong to `groups` biosample classes. There is one accessibility
    program per group; a sample's program activities are
    z[s, k] = d·[group(s) = k] + N(0, 0.6²), with d = --group-separation (1.5).
    A small d (0.3, say) makes closely related conditions, as in a time course of
    one cell type: groups differ by less than samples within a group. Each element has a baseline
    logit b ~ N(−0.3, 1.2²) (promoters: N(0, 0.8²), so they vary between
    samples) and, for 60 % of elements, a loading w ~ U(1, 2.5) on one program
    (the rest are constitutive). Its latent accessibility in a sample is
    a = sigmoid(b + w·z[s, program] + ε), with element- and sample-specific
    ε ~ N(0, 1.5²): local variation that genome-wide programs do not explain.
    A peak is called with probability sigmoid(20·(a − 0.5)), centred near the
    element (N(0, 80 bp)), 150–2,000 bp wide, signalValue ≈ 2 + 25·a, and 3 %
    extra noise peaks fall anywhere.
    Peak files are ENCODE-style narrowPeak (10 columns, sorted by pValue).

Expression
    log θ[g, s] = μ_g + Σ_e β_ge·(a[e, s] − ā_e) + N(0, σ_bio²), with
    μ_g ~ N(log 30, 1.3²), promoter β ~ U(2, 4), distal β ~ ±U(0.3, 1)
    (a quarter repressive), σ_bio = --noise (0.3), and 10 % of genes with no
    effects at all. Transcripts share their gene's abundance through fixed Dirichlet(2)
    fractions with per-sample log-normal jitter (σ = 0.1). TPM is
    10⁶·θ_t / Σθ. Truth files hold these TPMs.

Reads
    About `reads` fragments per sample (×U(0.7, 1.3)) are drawn with probability
    ∝ TPM × effective length, fragment length N(200, 20²) clipped to the
    transcript, 75 bp reads from a random strand. Every third sample is
    single-end, the others paired-end. Base qualities fall along the read
    (Phred ≈ 38 − 0.1·position ± 3) and substitution errors occur with
    probability 10^(−Q/10) at each base, so qualities are honest.

truth/ holds gene and transcript TPM (unversioned ids), the elements with their
effects (elements.tsv) and each element's latent accessibility per sample.
"""

from __future__ import annotations

import argparse
import csv
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..files import atomic_write, deterministic_gzip
from .options import non_negative_float, positive_int

log = logging.getLogger("gexp")

READ_LENGTH = 75
FRAGMENT_MEAN = 200
FRAGMENT_SD = 20
WINDOW = 100_000
BASES = np.frombuffer(b"ACGT", dtype=np.uint8)
COMPLEMENT = np.array([3, 2, 1, 0], dtype=np.uint8)


@dataclass
class Gene:
    index: int
    chrom: str
    strand: str
    tss: int  # 0-based position of the first transcribed base
    exons: list[tuple[int, int]]  # 0-based half-open, genomic order
    transcripts: list[list[int]]  # exon indices per transcript

    @property
    def gene_id(self) -> str:
        return f"ENSG{100000 + self.index:011d}"

    @property
    def name(self) -> str:
        return f"SIMG{self.index + 1:05d}"

    def transcript_id(self, t: int) -> str:
        return f"ENST{100000 + 10 * self.index + t:011d}"


def _genes(
    rng: np.random.Generator, n_genes: int, n_chroms: int
) -> tuple[list[Gene], dict[str, int]]:
    genes: list[Gene] = []
    sizes: dict[str, int] = {}
    per_chrom = np.array_split(np.arange(n_genes), n_chroms)
    for c, members in enumerate(per_chrom):
        chrom = f"chr{c + 1}"
        position = WINDOW + 20_000
        for i in members:
            strand = "+" if rng.random() < 0.5 else "-"
            n_exons = int(rng.integers(2, 7))
            exon_lengths = rng.integers(150, 801, n_exons)
            intron_lengths = rng.integers(300, 3000, n_exons - 1)
            layout, cursor = [], 0
            for k in range(n_exons):
                layout.append((cursor, cursor + int(exon_lengths[k])))
                cursor += int(exon_lengths[k]) + (int(intron_lengths[k]) if k < n_exons - 1 else 0)
            span = cursor
            if strand == "+":
                tss = position
                exons = [(tss + a, tss + b) for a, b in layout]
            else:
                tss = position + span - 1
                exons = [(position + span - b, position + span - a) for a, b in reversed(layout)]
            genes.append(Gene(int(i), chrom, strand, tss, exons, _transcripts(rng, n_exons)))
            position += span + int(rng.integers(15_000, 45_000))
        sizes[chrom] = position + WINDOW + 20_000
    return genes, sizes


def _transcripts(rng: np.random.Generator, n_exons: int) -> list[list[int]]:
    """1–4 distinct exon subsets; the first is the full-length transcript."""
    wanted = int(rng.integers(1, 5))
    found = [list(range(n_exons))]
    for _ in range(20):
        if len(found) >= wanted or n_exons < 3:
            break
        keep = sorted({0, n_exons - 1} | {k for k in range(1, n_exons - 1) if rng.random() < 0.6})
        if rng.random() < 0.3:
            keep = keep[:-1] if len(keep) > 2 else keep
        if keep not in found:
            found.append(keep)
    return found


def _sequences(rng: np.random.Generator, genes: list[Gene]) -> dict[tuple[int, int], np.ndarray]:
    """Transcript sequences (codes 0–3) in transcript orientation."""
    seqs = {}
    for g in genes:
        exon_seq = [
            rng.choice(4, size=b - a, p=[0.27, 0.23, 0.23, 0.27]).astype(np.uint8)
            for a, b in g.exons
        ]
        for t, members in enumerate(g.transcripts):
            seq = np.concatenate([exon_seq[k] for k in members])
            seqs[(g.index, t)] = COMPLEMENT[seq[::-1]] if g.strand == "-" else seq
    return seqs


def _elements(rng: np.random.Generator, genes: list[Gene], sizes: dict[str, int]) -> pd.DataFrame:
    rows = []
    for g in genes:
        rows.append((g.chrom, g.tss, g.index, "promoter"))
        for _ in range(int(rng.integers(0, 5))):
            offset = int(rng.integers(-WINDOW + 2000, WINDOW - 2000))
            rows.append((g.chrom, g.tss + offset, g.index, "distal"))
    for chrom, size in sizes.items():
        for pos in rng.integers(5000, size - 5000, size // 25_000):
            rows.append((chrom, int(pos), -1, "background"))
    return pd.DataFrame(rows, columns=["chrom", "pos", "gene", "kind"])


def simulate(
    outdir: str | Path,
    seed: int = 1,
    samples: int = 12,
    genes: int = 300,
    groups: int = 4,
    reads: int = 100_000,
    noise: float = 0.3,
    group_separation: float = 1.5,
) -> Path:
    """Write the cohort under `outdir` and return the samplesheet path."""
    rng = np.random.default_rng(seed)
    out = Path(outdir)
    n_chroms = 2 if genes < 1500 else 3
    gene_list, sizes = _genes(rng, genes, n_chroms)
    seqs = _sequences(rng, gene_list)
    elements = _elements(rng, gene_list, sizes)
    n_el = len(elements)

    sample_ids = [f"S{i + 1:03d}" for i in range(samples)]
    group_of = np.arange(samples) % max(1, groups)
    z = group_separation * np.eye(max(1, groups))[group_of] + rng.normal(
        0, 0.6, (samples, max(1, groups))
    )
    base = rng.normal(-0.3, 1.2, n_el)
    is_promoter = (elements["kind"] == "promoter").to_numpy()
    base[is_promoter] = rng.normal(0.0, 0.8, is_promoter.sum())  # promoters vary between samples
    program = rng.integers(0, max(1, groups), n_el)
    loading = np.where(rng.random(n_el) < 0.6, rng.uniform(1.0, 2.5, n_el), 0.0)
    logits = base[None, :] + loading[None, :] * z[:, program] + rng.normal(0, 1.5, (samples, n_el))
    access = 1 / (1 + np.exp(-logits))  # samples × elements

    effects = np.zeros(n_el)
    linked = elements["gene"].to_numpy() >= 0
    promoter = (elements["kind"] == "promoter").to_numpy()
    effects[promoter] = rng.uniform(2.0, 4.0, promoter.sum())
    distal = (elements["kind"] == "distal").to_numpy()
    sign = np.where(rng.random(distal.sum()) < 0.25, -1.0, 1.0)
    effects[distal] = sign * rng.uniform(0.3, 1.0, distal.sum())
    unaffected = rng.random(genes) < 0.1
    effects[linked & unaffected[np.clip(elements["gene"].to_numpy(), 0, None)]] = 0.0
    elements["effect"] = effects

    mu = rng.normal(np.log(30), 1.3, genes)
    centred = access - access.mean(axis=0, keepdims=True)
    log_expr = np.tile(mu, (samples, 1)) + rng.normal(0, noise, (samples, genes))
    idx = np.flatnonzero(linked & (effects != 0))
    np.add.at(
        log_expr.T, elements["gene"].to_numpy()[idx], (effects[idx, None] * centred[:, idx].T)
    )

    tx_keys = list(seqs)
    tx_gene = np.array([k[0] for k in tx_keys])
    fractions = np.zeros(len(tx_keys))
    for g in gene_list:
        members = [i for i, k in enumerate(tx_keys) if k[0] == g.index]
        fractions[members] = rng.dirichlet(np.full(len(members), 2.0))
    jitter = np.exp(rng.normal(0, 0.1, (samples, len(tx_keys))))
    theta = np.exp(log_expr)[:, tx_gene] * fractions[None, :] * jitter
    tx_tpm = 1e6 * theta / theta.sum(axis=1, keepdims=True)
    gene_tpm = np.zeros((samples, genes))
    np.add.at(gene_tpm.T, tx_gene, tx_tpm.T)

    _write_reference(out / "reference", gene_list, seqs, sizes)
    _write_truth(out / "truth", gene_list, tx_keys, sample_ids, gene_tpm, tx_tpm, elements)
    with atomic_write(out / "truth" / "element_accessibility.tsv.gz") as fh:
        pd.DataFrame(access.T, columns=sample_ids).to_csv(
            fh, sep="\t", index_label="element", float_format="%.4f"
        )
    rows = []
    for s, sample in enumerate(sample_ids):
        paired = s % 3 != 2
        fastqs = _write_reads(rng, out / "fastq", sample, seqs, tx_keys, tx_tpm[s], reads, paired)
        peaks = _write_peaks(rng, out / "peaks", sample, elements, access[s], sizes)
        rows.append(
            {
                "sample": sample,
                "group": f"group{group_of[s] + 1}",
                "rna_1": fastqs[0],
                "rna_2": fastqs[1] if paired else "",
                "rna_tpm": "",
                "atac": peaks,
                "fragment_length": "" if paired else FRAGMENT_MEAN,
                "fragment_sd": "" if paired else FRAGMENT_SD,
            }
        )
        log.info("simulate: %s (%s-end) written", sample, "paired" if paired else "single")
    sheet = out / "samplesheet.csv"
    with atomic_write(sheet) as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    return sheet


def _write_reference(ref: Path, genes: list[Gene], seqs: dict, sizes: dict[str, int]) -> None:
    with atomic_write(ref / "chrom.sizes") as fh:
        fh.writelines(f"{c}\t{s}\n" for c, s in sizes.items())
    with atomic_write(ref / "transcripts.fa.gz") as fh:
        for g in genes:
            for t in range(len(g.transcripts)):
                seq = BASES[seqs[(g.index, t)]].tobytes().decode()
                header = "|".join(
                    [
                        f"{g.transcript_id(t)}.{1 + g.index % 3}",
                        f"{g.gene_id}.{2 + g.index % 5}",
                        f"OTTHUMG{g.index:011d}.1",
                        f"OTTHUMT{g.index * 10 + t:011d}.1",
                        f"{g.name}-{201 + t}",
                        g.name,
                        str(len(seq)),
                        "protein_coding",
                    ]
                )
                fh.write(f">{header}|\n")
                fh.writelines(seq[i : i + 60] + "\n" for i in range(0, len(seq), 60))
    with atomic_write(ref / "genes.gtf.gz") as fh:
        fh.write("##description: gexp simulated annotation (GENCODE-style)\n##provider: gexp\n")
        for g in genes:
            gid = f'gene_id "{g.gene_id}.{2 + g.index % 5}"'
            common = f'{gid}; gene_type "protein_coding"; gene_name "{g.name}"; level 2;'
            start, end = g.exons[0][0] + 1, g.exons[-1][1]
            fh.write(f"{g.chrom}\tHAVANA\tgene\t{start}\t{end}\t.\t{g.strand}\t.\t{common}\n")
            for t, members in enumerate(g.transcripts):
                tid = f'transcript_id "{g.transcript_id(t)}.{1 + g.index % 3}"'
                ex = [g.exons[k] for k in members]
                attrs = (
                    f'{gid}; {tid}; gene_type "protein_coding"; gene_name "{g.name}"; '
                    f'transcript_type "protein_coding"; transcript_name "{g.name}-{201 + t}"; '
                    "level 2;"
                )
                fh.write(
                    f"{g.chrom}\tHAVANA\ttranscript\t{ex[0][0] + 1}\t{ex[-1][1]}\t.\t"
                    f"{g.strand}\t.\t{attrs}\n"
                )
                order = ex if g.strand == "+" else ex[::-1]
                for n, (a, b) in enumerate(order, start=1):
                    fh.write(
                        f"{g.chrom}\tHAVANA\texon\t{a + 1}\t{b}\t.\t{g.strand}\t.\t"
                        f"{attrs} exon_number {n};\n"
                    )


def _write_truth(
    truth: Path,
    genes: list[Gene],
    tx_keys: list,
    samples: list[str],
    gene_tpm: np.ndarray,
    tx_tpm: np.ndarray,
    elements: pd.DataFrame,
) -> None:
    table = pd.DataFrame(gene_tpm.T, columns=samples)
    table.insert(0, "gene_id", [g.gene_id for g in genes])
    with atomic_write(truth / "gene_tpm.tsv") as fh:
        table.to_csv(fh, sep="\t", index=False, float_format="%.4f")
    table = pd.DataFrame(tx_tpm.T, columns=samples)
    table.insert(0, "transcript_id", [genes[g].transcript_id(t) for g, t in tx_keys])
    with atomic_write(truth / "transcript_tpm.tsv") as fh:
        table.to_csv(fh, sep="\t", index=False, float_format="%.4f")
    gene_ids = np.array([g.gene_id for g in genes] + [""])
    out = elements.assign(gene_id=gene_ids[elements["gene"].to_numpy()]).drop(columns="gene")
    with atomic_write(truth / "elements.tsv") as fh:
        out.to_csv(fh, sep="\t", index=False, float_format="%.4f")


def _write_reads(
    rng: np.random.Generator,
    folder: Path,
    sample: str,
    seqs: dict,
    tx_keys: list,
    tpm: np.ndarray,
    reads: int,
    paired: bool,
) -> list[str]:
    lengths = np.array([len(seqs[k]) for k in tx_keys])
    offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    genome = np.concatenate([seqs[k] for k in tx_keys])
    weight = tpm * np.maximum(lengths - FRAGMENT_MEAN + 1, 1)
    n = int(reads * rng.uniform(0.7, 1.3))
    tx = rng.choice(len(tx_keys), size=n, p=weight / weight.sum())
    frag = np.clip(
        np.rint(rng.normal(FRAGMENT_MEAN, FRAGMENT_SD, n)).astype(int), READ_LENGTH, lengths[tx]
    )
    start = offsets[tx] + (rng.random(n) * (lengths[tx] - frag + 1)).astype(int)
    cols = np.arange(READ_LENGTH)
    left = genome[start[:, None] + cols]
    right = COMPLEMENT[genome[(start + frag - 1)[:, None] - cols]]
    flip = rng.random(n) < 0.5
    r1 = np.where(flip[:, None], right, left)
    r2 = np.where(flip[:, None], left, right)
    names = [f"@SIM:{sample}:{i + 1}" for i in range(n)]
    files = []
    for mate, seq in ((1, r1), (2, r2)) if paired else ((1, r1),):
        name = f"{sample}_R{mate}.fastq.gz" if paired else f"{sample}.fastq.gz"
        _write_fastq(rng, folder / name, names, seq, mate if paired else 0)
        files.append(f"fastq/{name}")
    return files


def _write_fastq(
    rng: np.random.Generator, path: Path, names: list[str], codes: np.ndarray, mate: int
) -> None:
    n, length = codes.shape
    q = np.clip(np.rint(38 - 0.1 * np.arange(length) + rng.normal(0, 3, (n, length))), 2, 41)
    error = rng.random((n, length)) < 10 ** (-q / 10)
    codes = np.where(error, (codes + rng.integers(1, 4, (n, length))) % 4, codes).astype(np.uint8)
    newline = np.full((n, 1), ord("\n"), np.uint8)
    plus = np.full((n, 1), ord("+"), np.uint8)
    body = np.hstack([BASES[codes], newline, plus, newline, (q + 33).astype(np.uint8), newline])
    width = body.shape[1]
    block = body.tobytes()
    suffix = f"/{mate}\n" if mate else "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as raw, deterministic_gzip(raw, level=1) as fh:
        fh.write(
            b"".join(
                names[i].encode() + suffix.encode() + block[i * width : (i + 1) * width]
                for i in range(n)
            )
        )
    tmp.replace(path)


def _write_peaks(
    rng: np.random.Generator,
    folder: Path,
    sample: str,
    elements: pd.DataFrame,
    access: np.ndarray,
    sizes: dict[str, int],
) -> str:
    called = rng.random(len(access)) < 1 / (1 + np.exp(-20 * (access - 0.5)))
    el = elements[called]
    a = access[called]
    noise_n = max(1, int(0.03 * len(el)))
    chroms = list(sizes)
    noise_chrom = rng.choice(chroms, noise_n)
    noise_pos = np.array([rng.integers(0, sizes[c]) for c in noise_chrom])
    chrom = np.concatenate([el["chrom"].to_numpy(), noise_chrom])
    centre = np.concatenate([el["pos"].to_numpy() + rng.normal(0, 80, len(el)), noise_pos])
    strength = np.concatenate([a, rng.uniform(0, 0.3, noise_n)])
    width = np.clip(rng.lognormal(np.log(500), 0.5, len(centre)), 150, 2000)
    size = np.array([sizes[c] for c in chrom])
    start = np.clip(np.rint(centre - width / 2), 0, size - 1).astype(int)
    end = np.clip(np.rint(centre + width / 2), start + 1, size).astype(int)
    signal = np.round(2 + 25 * strength + rng.gamma(1.0, 0.5, len(centre)), 5)
    pvalue = np.round(3 + 40 * strength + rng.gamma(1.0, 1.0, len(centre)), 5)
    qvalue = np.round(np.maximum(pvalue - 2, 0.1), 5)
    peaks = pd.DataFrame(
        {
            "chrom": chrom,
            "start": start,
            "end": end,
            "name": "",
            "score": (10 * qvalue).astype(int),
            "strand": ".",
            "signal": signal,
            "p": pvalue,
            "q": qvalue,
            "summit": ((end - start) // 2).astype(int),
        }
    ).sort_values("p", ascending=False)
    peaks["name"] = [f"Peak_{i + 1}" for i in range(len(peaks))]
    name = f"{sample}.narrowPeak.gz"
    with atomic_write(folder / name) as fh:
        peaks.to_csv(fh, sep="\t", header=False, index=False)
    return f"peaks/{name}"


# -- the command line: `gexp simulate` ---------------------------------------------------------


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--outdir", required=True, type=Path, help="folder to write the cohort to")
    p.add_argument("--seed", type=int, default=1, help="random seed")
    p.add_argument("--samples", type=positive_int, default=12, help="samples")
    p.add_argument("--genes", type=positive_int, help="genes (default: 300; 120 with --multiome)")
    p.add_argument("--groups", type=positive_int, default=4, help="biosample groups")
    p.add_argument("--reads", type=positive_int, default=100_000, help="fragments per sample")
    p.add_argument("--noise", type=float, default=0.3, help="biological noise (sd of log TPM)")
    p.add_argument(
        "--group-separation",
        type=non_negative_float,
        default=1.5,
        help="how far apart the groups' accessibility programs are, against a within-group sd "
        "of 0.6; 0.3 makes closely related conditions (a time course of one cell type)",
    )
    p.add_argument(
        "--multiome",
        action="store_true",
        help="write a single-cell multiome experiment instead: per library Cell Ranger ARC's "
        "h5 and fragments, a cell table and per-cell truth; a GTF, chromosome sizes and a "
        "samplesheet (--groups cell types, --donors, --libraries, --genes)",
    )
    p.add_argument("--donors", type=positive_int, default=2, help="--multiome: donors per library")
    p.add_argument("--libraries", type=positive_int, default=1, help="--multiome: libraries")


def run(a: argparse.Namespace) -> None:
    if a.multiome:
        from .simulate_multiome import simulate_multiome

        print(simulate_multiome(a.outdir, seed=a.seed, groups=a.groups, donors=a.donors,
                                genes=a.genes or 120, libraries=a.libraries))  # fmt: skip
        return
    sheet = simulate(
        a.outdir,
        seed=a.seed,
        samples=a.samples,
        genes=a.genes or 300,
        groups=a.groups,
        reads=a.reads,
        noise=a.noise,
        group_separation=a.group_separation,
    )
    print(sheet)
