"""The `gexp` command line: one subcommand per pipeline step, plus `run` and `simulate`.

Subcommand and flag names are the contract with modules/local/*/main.nf; the
pipeline tests check every `gexp` call there against this parser.
"""

from __future__ import annotations

import argparse
import logging
import sys
import warnings
from pathlib import Path

from . import __version__
from .errors import GexpError

log = logging.getLogger("gexp")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got '{text}'") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {value}")
    return value


class _HelpWithDefaults(argparse.HelpFormatter):
    """Every option's help ends with its default, or says that it is required."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        shown = "(default" in text or "%(default)" in text
        if not action.option_strings or action.default is argparse.SUPPRESS or shown:
            return text
        if action.required:
            return f"{text} (required)"
        if action.nargs == 0:  # a switch
            return f"{text} (default: off)"
        if action.default is None:
            return f"{text} (default: none)"
        return f"{text} (default: %(default)s)"


def cmd_simulate(a: argparse.Namespace) -> None:
    from .steps.simulate import simulate

    sheet = simulate(
        a.outdir,
        seed=a.seed,
        samples=a.samples,
        genes=a.genes,
        groups=a.groups,
        reads=a.reads,
        noise=a.noise,
        group_separation=a.group_separation,
    )
    print(sheet)


def cmd_samplesheet(a: argparse.Namespace) -> None:
    from .io.samplesheet import check_local_inputs, read_samplesheet, write_validated

    samples = read_samplesheet(a.input, base_dir=a.base_dir)
    if a.check_files:
        check_local_inputs(samples)
    write_validated(samples, a.out)


def cmd_check_params(a: argparse.Namespace) -> None:
    from .steps.params_check import validate_params_file

    validate_params_file(a.schema, a.params, a.out)


def cmd_check_fastq(a: argparse.Namespace) -> None:
    from .steps.fastq_check import check_fastqs

    reads = check_fastqs(a.sample, a.read1, a.read2 or [])
    print(reads)


def _non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got '{text}'") from None
    if not value >= 0:  # also refuses nan
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {text}")
    return value


def _fetcher(a: argparse.Namespace):
    from .steps.fetch import Fetcher

    return Fetcher(
        encode_url=a.encode_url, ena_url=a.ena_url, retries=a.retries, backoff=a.retry_wait
    )


def cmd_fetch(a: argparse.Namespace) -> None:
    if a.stub:
        from .steps.fetch import write_stub

        if a.outdir is None:
            raise GexpError("fetch --stub writes into --outdir")
        paths = write_stub(a.source, a.outdir)
    else:
        paths = _fetcher(a).fetch(a.source, out=a.out, outdir=a.outdir)
    for path in paths:
        print(path)


def cmd_encode_samplesheet(a: argparse.Namespace) -> None:
    from .steps.encode_samplesheet import write_encode_samplesheet

    write_encode_samplesheet(a.out, _fetcher(a), a.assembly, a.biosample_type, a.limit)


def cmd_localise(a: argparse.Namespace) -> None:
    from .io.samplesheet import (
        fetched_files,
        fetched_map,
        localise,
        read_samplesheet,
        remote_sources,
        write_validated,
    )

    samples = read_samplesheet(a.input)
    sources = remote_sources(samples)
    if a.fetched_map is not None:
        fetched = fetched_map(sources, a.fetched_map)
    else:
        fetched = fetched_files(sources, a.fetched) if sources else {}
    write_validated(localise(samples, fetched), a.out)


def cmd_reference(a: argparse.Namespace) -> None:
    from .steps.reference import write_reference

    write_reference(a.gtf, a.outdir)


def cmd_gene_tpm(a: argparse.Namespace) -> None:
    from .steps.gene_tpm import gene_tpm, write_gene_tpm
    from .steps.reference import read_genes, read_tx2gene

    series = gene_tpm(a.quant, read_tx2gene(a.tx2gene), read_genes(a.genes), a.sample)
    write_gene_tpm(series, a.out)


def cmd_bins(a: argparse.Namespace) -> None:
    from .io.genome import chrom_sizes_for, parse_region, read_chrom_sizes
    from .steps.bins import make_bins

    sizes = chrom_sizes_for(a.chrom_sizes, a.genome)
    region = parse_region(a.region, read_chrom_sizes(sizes)) if a.region else None
    make_bins(sizes, a.bin_size, region, a.out)


def cmd_peak_bins(a: argparse.Namespace) -> None:
    from .files import require_file
    from .steps.peak_bins import bin_bam, bin_peak_values, is_bam, write_peak_bins

    require_file(a.peaks, "peaks")
    if is_bam(a.peaks):
        values = bin_bam(a.peaks, a.bins, min_mapq=a.min_mapq)
    else:
        from .io.genome import chrom_sizes_for

        sizes = chrom_sizes_for(a.chrom_sizes, a.genome) if a.chrom_sizes or a.genome else None
        values = bin_peak_values(a.peaks, a.bins, a.mode, a.min_score, sizes)
    write_peak_bins(values, a.out)


def cmd_dataset(a: argparse.Namespace) -> None:
    from .steps.dataset import build_dataset

    build_dataset(a.expression, a.accessibility, a.bins, a.genes, a.outdir, a.samplesheet)


def _models(text: str | None) -> list[str] | None:
    """None: the default set (dense models that cannot fit are then left out, not refused)."""
    return [m.strip() for m in text.split(",") if m.strip()] if text else None


def _epochs(a: argparse.Namespace) -> dict[str, int]:
    epochs = {}
    if a.mlp_epochs:
        epochs["seed_mlp"] = a.mlp_epochs
    return epochs


def _train_settings(a: argparse.Namespace):
    from .steps.train import TrainSettings

    return TrainSettings(
        models=_models(a.models),
        cv=a.cv,
        device=a.device,
        seed=a.seed,
        window=a.window,
        epochs=_epochs(a),
        early_stopping=a.early_stopping,
    )


def cmd_train(a: argparse.Namespace) -> None:
    from dataclasses import asdict

    from .files import remove_stale_temporaries
    from .lock import folder_lock
    from .steps.train import train_models

    with folder_lock(a.outdir, "gexp train"):
        remove_stale_temporaries(a.outdir)  # left by a killed run; nothing else writes here
        train_models(
            a.dataset,
            a.outdir,
            **asdict(_train_settings(a)),
            threads=a.threads,
            peak_mode=a.peak_mode,
        )


def cmd_predict(a: argparse.Namespace) -> None:
    from .steps.predict import predict

    print(predict(a.model, a.atac, a.outdir, model_name=a.model_name, sample=a.sample))


def cmd_report(a: argparse.Namespace) -> None:
    from .steps.report import write_report

    peaks = None
    if a.peaks is not None:
        pairs = [item.partition("=") for item in a.peaks]
        bad = [
            item for item, (_, eq, path) in zip(a.peaks, pairs, strict=True) if not eq or not path
        ]
        if bad:
            raise GexpError(f"--peaks takes SAMPLE=FILE, got '{bad[0]}'")
        peaks = {sample: path for sample, _, path in pairs}
    print(write_report(a.run, a.out, peaks))


def cmd_run(a: argparse.Namespace) -> None:
    from .io.genome import chrom_sizes_for
    from .steps.run import Runner, RunParams

    params = RunParams(
        input=a.input,
        transcriptome=a.transcriptome,
        gtf=a.gtf,
        chrom_sizes=chrom_sizes_for(a.chrom_sizes, a.genome),
        outdir=a.outdir,
        region=a.region,
        bin_size=a.bin_size,
        threads=a.threads,
        peak_mode=a.peak_mode,
        min_score=a.min_score,
        fragment_length=a.fragment_length,
        fragment_sd=a.fragment_sd,
        max_downloads=a.max_downloads,
        training=_train_settings(a),
    )
    Runner(params, fetcher=_fetcher(a)).run()


def _genome_option(p: argparse.ArgumentParser) -> None:
    from .io.genome import GENOMES

    p.add_argument(
        "--genome",
        choices=GENOMES,
        metavar="NAME",
        help="bundled chromosome sizes instead of --chrom-sizes: "
        + ", ".join(GENOMES)
        + " (primary assemblies; sources in assets/README.md)",
    )


def _network_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--encode-url", help="ENCODE portal (default $GEXP_ENCODE_URL or the portal)")
    p.add_argument("--ena-url", help="ENA (default $GEXP_ENA_URL or ENA's)")
    p.add_argument("--retries", type=int, default=5, help="retries per request or download")
    p.add_argument(
        "--retry-wait",
        type=float,
        default=1.0,
        help="first backoff in seconds, doubled on each retry",
    )


def _training_options(p: argparse.ArgumentParser) -> None:
    from .models import NAMES

    p.add_argument(
        "--models",
        help=f"comma-separated, from {', '.join(NAMES)} (default: all but the opt-in "
        "seed_mlp; dense ones that cannot fit in memory are then left out). The default model "
        "is ensemble, which also trains its members",
    )
    p.add_argument("--cv", type=_positive_int, default=5, help="folds (grouped when possible)")
    p.add_argument(
        "--device",
        default="auto",
        choices=("auto", "cpu", "cuda"),
        help="for torch models (seed_mlp); auto: cuda when available, else cpu",
    )
    p.add_argument("--seed", type=int, default=0, help="random seed for folds and training")
    p.add_argument(
        "--window",
        type=_positive_int,
        default=100_000,
        help="mixture_window: bp on each side of the TSS (default: %(default)s)",
    )
    p.add_argument("--mlp-epochs", type=_positive_int, help="seed_mlp epochs (default: 1000)")
    p.add_argument(
        "--early-stopping",
        action="store_true",
        help="seed_mlp: stop on a validation split of the training samples",
    )
    if not any(a.dest == "threads" for a in p._actions):
        p.add_argument(
            "--threads", type=_positive_int, help="CPU threads for torch (default: torch's)"
        )
    if not any(a.dest == "peak_mode" for a in p._actions):
        p.add_argument(
            "--peak-mode",
            default="signal",
            help="how the dataset's peaks were binned (recorded for predict)",
        )


def build_parser() -> argparse.ArgumentParser:
    from .steps.peak_bins import MODES
    from .tools import default_threads  # not from runner: every step would import all of gexp

    parser = argparse.ArgumentParser(
        prog="gexp", description="Predict gene expression from chromatin accessibility."
    )
    parser.add_argument("--version", action="version", version=f"gexp {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("-q", "--quiet", action="store_true", help="warnings and errors only")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("simulate", help="write a small cohort with known truth")
    p.add_argument("--outdir", required=True, type=Path, help="folder to write the cohort to")
    p.add_argument("--seed", type=int, default=1, help="random seed")
    p.add_argument("--samples", type=_positive_int, default=12, help="samples")
    p.add_argument("--genes", type=_positive_int, default=300, help="genes")
    p.add_argument("--groups", type=_positive_int, default=4, help="biosample groups")
    p.add_argument("--reads", type=_positive_int, default=100_000, help="fragments per sample")
    p.add_argument("--noise", type=float, default=0.3, help="biological noise (sd of log TPM)")
    p.add_argument(
        "--group-separation",
        type=_non_negative_float,
        default=1.5,
        help="how far apart the groups' accessibility programs are, against a within-group sd "
        "of 0.6; 0.3 makes closely related conditions (a time course of one cell type)",
    )
    p.set_defaults(func=cmd_simulate)

    p = sub.add_parser("samplesheet", help="validate a samplesheet; write it with absolute paths")
    p.add_argument("--input", required=True, type=Path, help="samplesheet CSV")
    p.add_argument("--out", required=True, type=Path, help="validated samplesheet to write")
    p.add_argument(
        "--base-dir",  # str: a Path would turn s3://bucket into s3:/bucket
        help="where relative paths resolve (default: its folder; may be s3://, gs://, https://…)",
    )
    p.add_argument("--check-files", action="store_true", help="also require local files to exist")
    p.set_defaults(func=cmd_samplesheet)

    p = sub.add_parser(
        "check-params", help="check the pipeline's parameters against nextflow_schema.json"
    )
    p.add_argument("--schema", required=True, type=Path, help="nextflow_schema.json")
    p.add_argument(
        "--params",
        required=True,
        type=Path,
        help="parameters as JSON, or main.nf's {params, exists} document; - reads stdin",
    )
    p.add_argument("--out", type=Path, help="where to write the checked parameters (JSON)")
    p.set_defaults(func=cmd_check_params)

    p = sub.add_parser(
        "check-fastq", help="validate one sample's FASTQ files (gzip, records, mates)"
    )
    p.add_argument("--sample", required=True, help="sample id, for messages")
    p.add_argument("--read1", required=True, nargs="+", help="read 1 FASTQ, one file per run")
    p.add_argument(
        "--read2", nargs="+", help="read 2 FASTQ in --read1's order (default: none, single-end)"
    )
    p.set_defaults(func=cmd_check_fastq)

    p = sub.add_parser("fetch", help="download a URL, ENCODE file or SRA/ENA run, md5-checked")
    p.add_argument("source", help="local path, http(s) URL, ENCFF… accession or SRR/ERR/DRR run")
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument(
        "--out", type=Path, help="the file to write (a run's mates: _1, _2); or --outdir"
    )
    where.add_argument("--outdir", type=Path, help="a folder; files keep their own names")
    p.add_argument(
        "--stub",
        action="store_true",
        help="no download: an empty placeholder under the stored name (for nextflow -stub)",
    )
    _network_options(p)
    p.set_defaults(func=cmd_fetch)

    p = sub.add_parser("encode-samplesheet", help="pair ENCODE ATAC-seq and RNA-seq by biosample")
    p.add_argument("--out", required=True, type=Path, help="samplesheet CSV to write")
    p.add_argument("--assembly", default="GRCh38", help="assembly of the ATAC-seq peak files")
    p.add_argument(
        "--biosample-type", help='e.g. "tissue", "cell line", "primary cell" (default: any)'
    )
    p.add_argument(
        "--limit", type=_positive_int, help="at most this many biosamples (default: all)"
    )
    _network_options(p)
    p.set_defaults(func=cmd_encode_samplesheet)

    p = sub.add_parser("localise", help="point a samplesheet's remote sources at fetched files")
    p.add_argument("--input", required=True, type=Path, help="validated samplesheet")
    given = p.add_mutually_exclusive_group(required=True)
    given.add_argument("--fetched", type=Path, help="folder of `gexp fetch --outdir`")
    given.add_argument(
        "--fetched-map",
        type=Path,
        help="JSON {source: [file, …]} of where each source was fetched to; - reads stdin",
    )
    p.add_argument("--out", required=True, type=Path, help="samplesheet to write")
    p.set_defaults(func=cmd_localise)

    p = sub.add_parser("reference", help="tx2gene and gene table from a GTF")
    p.add_argument("--gtf", required=True, type=Path, help="GENCODE or Ensembl GTF (.gz)")
    p.add_argument(
        "--outdir", required=True, type=Path, help="folder for tx2gene.tsv and genes.tsv"
    )
    p.set_defaults(func=cmd_reference)

    p = sub.add_parser("gene-tpm", help="gene TPM of one sample from kallisto or a gene table")
    p.add_argument(
        "--quant",
        required=True,
        type=Path,
        help="kallisto abundance.tsv or a gene quantification TSV",
    )
    p.add_argument("--tx2gene", required=True, type=Path, help="tx2gene.tsv from `gexp reference`")
    p.add_argument("--genes", required=True, type=Path, help="genes.tsv from `gexp reference`")
    p.add_argument("--sample", required=True, help="sample id: the output's column")
    p.add_argument("--out", required=True, type=Path, help="<sample>.gene_tpm.tsv to write")
    p.set_defaults(func=cmd_gene_tpm)

    p = sub.add_parser("bins", help="fixed-width bins over the genome or a region")
    p.add_argument("--chrom-sizes", type=Path, help="chrom<TAB>size file; or --genome")
    _genome_option(p)
    p.add_argument("--bin-size", type=_positive_int, default=1000, help="bin width in bp")
    p.add_argument(
        "--region", help="e.g. chr1:1-10000000, 1-based, inclusive (default: whole genome)"
    )
    p.add_argument("--out", required=True, type=Path, help="bins.bed to write")
    p.set_defaults(func=cmd_bins)

    p = sub.add_parser("peak-bins", help="accessibility per bin for one sample")
    p.add_argument("--peaks", required=True, type=Path, help="BED/narrowPeak (.gz) or ATAC BAM")
    p.add_argument("--bins", required=True, type=Path, help="bins.bed from `gexp bins`")
    p.add_argument("--out", required=True, type=Path, help="<sample>.tsv.gz to write")
    p.add_argument("--mode", choices=MODES, default="signal", help="bin value from peaks")
    p.add_argument(
        "--min-score", type=float, help="drop peaks with a BED score below this (default: none)"
    )
    p.add_argument(
        "--chrom-sizes", type=Path, help="genome chromosomes (default: the chromosomes of the bins)"
    )
    _genome_option(p)
    p.add_argument("--min-mapq", type=int, default=30, help="BAM input: minimum MAPQ")
    p.set_defaults(func=cmd_peak_bins)

    p = sub.add_parser("dataset", help="merge samples into training matrices + qc.json")
    p.add_argument("--bins", required=True, type=Path, help="bins.bed from `gexp bins`")
    p.add_argument("--genes", required=True, type=Path, help="genes.tsv from `gexp reference`")
    p.add_argument("--expression", required=True, nargs="+", help="<sample>.gene_tpm.tsv files")
    p.add_argument("--accessibility", required=True, nargs="+", help="<sample>.tsv.gz files")
    p.add_argument(
        "--samplesheet", type=Path, help="for the group column (default: none, no groups)"
    )
    p.add_argument(
        "--outdir",
        required=True,
        type=Path,
        help="run folder: dataset/ and expression/gene_tpm.tsv are written in it",
    )
    p.set_defaults(func=cmd_dataset)

    p = sub.add_parser("train", help="cross-validate and fit the models")
    p.add_argument("--dataset", required=True, type=Path, help="dataset/ from `gexp dataset`")
    p.add_argument("--outdir", required=True, type=Path, help="model folder to write")
    _training_options(p)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("predict", help="expression for a sample with ATAC-seq only")
    p.add_argument("--model", required=True, type=Path, help="model/ folder from `gexp train`")
    p.add_argument(
        "--atac",
        required=True,
        type=Path,
        help="peaks (BED/narrowPeak), ATAC BAM, or a `gexp peak-bins` .tsv.gz",
    )
    p.add_argument(
        "--outdir", required=True, type=Path, help="folder for <sample>.predicted_tpm.tsv"
    )
    p.add_argument(
        "--model-name", help="which model (default: the default model of model_info.json, ensemble)"
    )
    p.add_argument("--sample", help="sample id for the output name (default: from the file)")
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("report", help="HTML report and MultiQC files for a run folder")
    p.add_argument("--run", required=True, type=Path, help="a `gexp run` output folder")
    p.add_argument("--out", type=Path, help="default: RUN/report.html")
    p.add_argument(
        "--peaks",
        nargs="*",
        metavar="SAMPLE=FILE",
        help="each sample's ATAC-seq peaks, counted in the QC table "
        "(default: the files RUN/pipeline_info/samplesheet.local.csv names)",
    )
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("run", help="all steps for every sample on this machine")
    p.add_argument("--input", required=True, type=Path, help="samplesheet CSV")
    p.add_argument(
        "--transcriptome",
        type=Path,
        help="transcript FASTA (.gz) of the GTF's release; needed only when a sample has FASTQ",
    )
    p.add_argument(
        "--gtf", required=True, type=Path, help="GENCODE or Ensembl GTF (.gz), any release"
    )
    p.add_argument("--chrom-sizes", type=Path, help="chrom<TAB>size file; or --genome")
    _genome_option(p)
    p.add_argument(
        "--outdir", required=True, type=Path, help="output folder; one run at a time (locked)"
    )
    p.add_argument("--region", help="e.g. chr1:1-10000000 (default: whole genome)")
    p.add_argument("--bin-size", type=_positive_int, default=1000, help="bin width in bp")
    p.add_argument(
        "--threads",
        type=_positive_int,
        default=default_threads(),
        help="samples at once and torch threads (default: the CPUs available, %(default)s here)",
    )
    p.add_argument("--peak-mode", choices=MODES, default="signal", help="bin value from peaks")
    p.add_argument(
        "--min-score", type=float, help="drop peaks with a BED score below this (default: none)"
    )
    p.add_argument(
        "--fragment-length",
        type=float,
        default=200.0,
        help="single-end reads: kallisto's mean fragment length (a samplesheet column overrides)",
    )
    p.add_argument(
        "--fragment-sd",
        type=float,
        default=20.0,
        help="single-end reads: kallisto's fragment length sd (a samplesheet column overrides)",
    )
    p.add_argument(
        "--max-downloads",
        type=_positive_int,
        default=4,
        help="downloads at once when fetching remote inputs",
    )
    _network_options(p)
    _training_options(p)
    p.set_defaults(func=cmd_run)
    for command in (parser, *sub.choices.values()):
        command.formatter_class = _HelpWithDefaults
    return parser


def _own_or_error(record: logging.LogRecord) -> bool:
    """gexp's records, and other libraries' errors: matplotlib's font cache notes are not news."""
    return record.name.split(".")[0] == "gexp" or record.levelno >= logging.ERROR


def _log_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """A Python warning nobody expected becomes one gexp line (not two raw ones), still shown:
    it may mean something is wrong. Expected ones are silenced where they arise."""
    log.warning("%s: %s (%s:%d)", category.__name__, message, Path(filename).name, lineno)


def _setup_logging(verbose: bool, quiet: bool) -> None:
    """Log lines on stderr; -v shows debug detail, other libraries' records included."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        logging.Formatter("%(asctime)s gexp %(levelname)s: %(message)s", datefmt="%H:%M:%S")
    )
    if not verbose:
        handler.addFilter(_own_or_error)
    level = logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO
    logging.basicConfig(level=level, handlers=[handler])
    warnings.showwarning = _log_warning


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    _setup_logging(args.verbose, args.quiet)
    try:
        args.func(args)
    except GexpError as exc:
        print(f"gexp: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("gexp: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
