"""`gexp run`: every step for every sample on one machine, in the order main.nf runs them.

REFERENCE, BINS and KALLISTO_INDEX run once; PSEUDOBULK runs per multiome library
and turns it into samples; KALLISTO_QUANT, GENE_TPM and PEAK_BINS run per sample,
several samples at a time; DATASET merges the paired ones and TRAIN fits the models.
Samples with ATAC-seq only (rows without RNA) are binned like the rest, never enter
DATASET or TRAIN, and are predicted after it (PREDICT per sample, PREDICTIONS merging
them into predictions/predicted_tpm.tsv). Each
step writes atomically and records what it was run on (resume.py), so rerunning
the same command after an interruption redoes only what is missing or stale.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..errors import GexpError
from ..files import remove_stale_temporaries, require_file
from ..io.genome import chrom_sizes_for, parse_region, read_chrom_sizes
from ..io.samplesheet import (
    Sample,
    check_local_inputs,
    check_something_to_train,
    read_samplesheet,
    remote_sources,
    write_validated,
)
from ..lock import folder_lock
from ..models import NAMES
from ..resume import StepCache, fingerprint
from ..tools import default_threads
from ..versions import write_pipeline_info
from .bins import make_bins, read_bin_layout
from .dataset import (
    ACCESSIBILITY_SUFFIX,
    EXPRESSION_SUFFIX,
    build_dataset,
    require_genes_in_bins,
)
from .fetch import fetcher, network_options
from .gene_tpm import gene_tpm, write_gene_tpm
from .localise import fetched_files, localise
from .options import genome_options, positive_int
from .peak_bins import bin_bam, bin_peak_values, is_bam, peak_options, write_peak_bins
from .pseudobulk import MIN_CELLS, check_library, pseudobulk_options
from .quantify import kallisto_index, kallisto_quant_checked, log_path
from .reference import read_genes, read_tx2gene, write_reference
from .train import TrainSettings, train_settings, training_options

log = logging.getLogger("gexp")

# The steps in the order both runners execute them; main.nf must call the same processes.
STEPS = [
    "SAMPLESHEET_CHECK",
    "FETCH",
    "LOCALISE",
    "REFERENCE",
    "BINS",
    "PSEUDOBULK",
    "KALLISTO_INDEX",
    "FASTQ_CHECK",
    "KALLISTO_QUANT",
    "GENE_TPM",
    "PEAK_BINS",
    "DATASET",
    "TRAIN",
    "PREDICT",
    "PREDICTIONS",
    "REPORT",
]


@dataclass
class RunParams:
    input: Path
    transcriptome: Path | None  # needed only when some sample has FASTQ
    gtf: Path
    chrom_sizes: Path
    outdir: Path
    region: str | None = None
    bin_size: int = 1000
    threads: int = 2
    peak_mode: str = "signal"
    min_score: float | None = None
    fragment_length: float = 200.0
    fragment_sd: float = 20.0
    max_downloads: int = 4
    genome: str | None = None  # checked against multiome h5 files
    min_cells: int = MIN_CELLS
    pseudobulk_replicates: int = 1
    training: TrainSettings = field(default_factory=TrainSettings)
    predict_model: str | None = None  # which model predicts ATAC-only samples (None: default)
    model: Path | None = None  # predict from this trained model folder: no DATASET or TRAIN


class Runner:
    def __init__(self, params: RunParams, fetcher=None) -> None:
        self.p = params
        self.fetcher = fetcher
        self.out = Path(params.outdir)
        self.cache = StepCache(self.out)
        self.executed: list[str] = []  # step kinds, in order: compared with main.nf in tests
        self.libraries: list[str] = []  # multiome libraries with RNA, in samplesheet order

    def record(self, name: str) -> None:
        kind = name.split(".")[0].upper()
        if kind not in self.executed:
            self.executed.append(kind)

    def step(self, name: str, key: str, outputs: list[Path], action) -> bool:
        """Run `action` unless the same step already completed; True when it ran."""
        self.record(name)
        if self.cache.is_done(name, key, outputs):
            log.info("%s: complete, skipped", name)
            return False
        action()
        self.cache.mark(name, key)
        return True

    def run(self) -> Path:
        """Every step, holding the output folder's lock (lock.py) from start to end."""
        # Mistakes in the samplesheet fail before anything is written, the lock included.
        samples = read_samplesheet(self.p.input)
        check_local_inputs(samples)  # remote ones are checked by fetching them
        require_transcriptome(samples, self.p.transcriptome)
        check_sample_names(samples, self.p)
        check_something_to_train(samples, self.p.input, self.p.model is not None)
        if self.p.model:
            require_file(self.p.model / "model_info.json", f"--model {self.p.model}")
        if self.p.predict_model and self.p.predict_model not in NAMES:
            raise GexpError(
                f"--predict-model '{self.p.predict_model}': unknown model; choose from "
                f"{', '.join(NAMES)}"
            )
        with folder_lock(self.out, "gexp run"):
            # model/ has a lock of its own (gexp train's): its temporaries are swept under it.
            _sweep(self.out, skip=("model",))
            return self._run(samples)

    def _run(self, samples: list[Sample]) -> Path:
        p = self.p
        self.record("samplesheet_check")
        info = self.out / "pipeline_info"
        write_validated(samples, info / "samplesheet.valid.csv")
        samples = self.fetch(samples)
        write_validated(samples, info / "samplesheet.local.csv")
        require_file(p.gtf, "GTF")
        require_file(p.chrom_sizes, "chrom sizes")
        region = parse_region(p.region, read_chrom_sizes(p.chrom_sizes)) if p.region else None

        ref = self.out / "reference"
        tx2gene_path, genes_path = ref / "tx2gene.tsv", ref / "genes.tsv"
        self.step(
            "reference",
            fingerprint(p.gtf),
            [tx2gene_path, genes_path],
            lambda: write_reference(p.gtf, ref),
        )
        bins_path = self.out / "accessibility" / "bins.bed"
        if p.model:  # the model's own bins, so that every sample is binned as it was trained
            bins_path = require_file(p.model / "bins.bed", f"--model {p.model}: bins")
        else:
            self.step(
                "bins",
                fingerprint(p.chrom_sizes, bin_size=p.bin_size, region=str(region)),
                [bins_path],
                lambda: make_bins(p.chrom_sizes, p.bin_size, region, bins_path),
            )
        samples = self.pseudobulk(samples, bins_path)
        index = ref / "transcripts.idx"
        if any(s.rna_1 for s in samples):
            require_file(p.transcriptome, "transcriptome FASTA")  # checked to be given in run()
            self.step(
                "kallisto_index",
                fingerprint(p.transcriptome),
                [index],
                lambda: kallisto_index(p.transcriptome, index),
            )

        tx2gene, genes = read_tx2gene(tx2gene_path), read_genes(genes_path)
        require_genes_in_bins(genes, read_bin_layout(bins_path), bins_path)  # before slow steps
        workers = max(1, min(p.threads, len(samples)))
        per_task = max(1, p.threads // workers)
        done = 0
        with ThreadPoolExecutor(max_workers=workers) as pool:
            futures = {
                pool.submit(self.sample, s, index, tx2gene, genes, bins_path, per_task): s
                for s in samples
            }
            try:
                for future in as_completed(futures):
                    future.result()
                    done += 1
                    log.info("[%d/%d] sample %s done", done, len(samples), futures[future].sample)
            except BaseException:
                pool.shutdown(wait=True, cancel_futures=True)
                raise

        if p.model:
            self.predict([s for s in samples if s.to_predict], p.model)
            log.info("run complete (predictions from %s; no training, no report): %s",
                     p.model, self.out)  # fmt: skip
            write_pipeline_info(self.out, {k: str(v) for k, v in vars(p).items()})
            return self.out
        paired = [s for s in samples if not s.to_predict]
        expression = [str(self.gene_tpm_path(s)) for s in paired]
        accessibility = [str(self.accessibility_path(s)) for s in paired]
        # each library's table, written by its pseudobulk step above
        folder = self.out / "pseudobulk"
        tables = sorted(str(folder / f"{lib}.samples.tsv") for lib in self.libraries)
        self.step(
            "dataset",
            fingerprint(bins_path, genes_path, p.input, *expression, *accessibility, *tables),
            [self.out / "dataset" / "qc.json", self.out / "expression" / "gene_tpm.tsv"],
            lambda: build_dataset(
                expression,
                accessibility,
                bins_path,
                genes_path,
                self.out,
                samplesheet=p.input,
                pseudobulk=tables,
            ),  # fmt: skip
        )
        self.train_and_report([s for s in samples if s.to_predict])
        write_pipeline_info(self.out, {k: str(v) for k, v in vars(p).items()})
        log.info("run complete: %s", self.out)
        return self.out

    def train_and_report(self, to_predict: list[Sample]) -> None:
        from ..evaluation.cv import MIN_FOLD
        from .report import write_report

        p, ds, model = self.p, self.out / "dataset", self.out / "model"
        n_samples = json.loads((ds / "qc.json").read_text())["n_samples"]
        if n_samples < 2 * MIN_FOLD:
            log.warning(
                "training skipped: cross-validation needs at least %d samples, the "
                "dataset has %d; the report shows QC only%s",
                2 * MIN_FOLD,
                n_samples,
                f", and the {len(to_predict)} sample(s) with ATAC-seq only are not predicted"
                if to_predict
                else "",
            )
            self.step(
                "report",
                fingerprint(ds / "qc.json"),
                [self.out / "report.html"],
                lambda: write_report(self.out),
            )
            return
        settings = asdict(p.training)
        key = fingerprint(*(ds / n for n in sorted(os.listdir(ds))), **settings)
        self.step(
            "train",
            key,
            [model / "metrics.json", model / "model_info.json"],
            lambda: self._train(ds, model, settings),
        )
        self.predict(to_predict, model)
        self.step(
            "report",
            fingerprint(ds / "qc.json", model / "metrics.json", *self.predicted(to_predict)),
            [self.out / "report.html"],
            lambda: write_report(self.out),
        )

    def _train(self, ds: Path, model: Path, settings: dict) -> None:
        from .train import train_models

        # model/ is also `gexp train`'s output folder: lock it too, so that the two never mix.
        with folder_lock(model, "gexp run"):
            _sweep(model)
            train_models(ds, model, **settings, threads=self.p.threads, peak_mode=self.p.peak_mode)

    def predicted(self, to_predict: list[Sample]) -> list[Path]:
        folder = self.out / "predictions"
        if not to_predict:
            return []
        return [folder / "predicted_tpm.tsv", folder / "similarity.tsv"]

    def predict(self, to_predict: list[Sample], model: Path) -> None:
        """PREDICT each sample with ATAC-seq only (the default model, or --predict-model),
        then PREDICTIONS: one table of them all."""
        from .predict import load_predictor, predict_sample, write_sample
        from .predictions import merge_predictions

        self.record("predict")
        folder, name = self.out / "predictions", self.p.predict_model
        tables, predictor = [], None
        for s in to_predict:
            acc = self.accessibility_path(s)
            table = folder / f"{s.sample}.predicted_tpm.tsv"
            tables.append(table)

            def action(s=s, acc=acc) -> None:
                nonlocal predictor
                predictor = predictor or load_predictor(model, name)  # loaded once, if needed
                write_sample(*predict_sample(predictor, acc, s.sample), folder)

            key = fingerprint(acc, model / "model_info.json", model=name or "")
            outputs = [table, folder / f"{s.sample}.prediction.json"]
            self.step(f"predict.{s.sample}", key, outputs, action)
        self.record("predictions")
        if tables:
            self.step(
                "predictions",
                fingerprint(*tables),
                self.predicted(to_predict),
                lambda: merge_predictions(tables, folder),
            )

    def pseudobulk(self, samples: list[Sample], bins_path: Path) -> list[Sample]:
        """The samples with each multiome library replaced by its pseudobulk samples."""
        from .pseudobulk import pseudobulk

        self.record("pseudobulk")
        p, folder = self.p, self.out / "pseudobulk"
        bulk = [s for s in samples if not s.is_multiome]
        made: list[Sample] = []
        for lib in (s for s in samples if s.is_multiome):
            if not lib.scatac_only:  # its samples.tsv goes into DATASET's sample table
                self.libraries.append(lib.sample)
            sheet = folder / f"{lib.sample}.samplesheet.csv"
            self.step(
                f"pseudobulk.{lib.sample}",
                fingerprint(
                    lib.multiome_h5 or None, lib.fragments, lib.cells, p.gtf, bins_path,
                    min_cells=p.min_cells, replicates=p.pseudobulk_replicates, genome=p.genome,
                ),
                [sheet, folder / f"{lib.sample}.samples.tsv"],
                lambda lib=lib: pseudobulk(
                    lib.sample, lib.multiome_h5 or None, lib.fragments, lib.cells, p.gtf, bins_path,
                    folder, min_cells=p.min_cells, replicates=p.pseudobulk_replicates,
                    genome=p.genome,
                ),
            )  # fmt: skip
            made += read_samplesheet(sheet)
        return bulk + made

    def fetch(self, samples: list[Sample]) -> list[Sample]:
        """Download remote sources into fetch/ (verified files are reused), then localise."""
        self.record("fetch")
        sources = remote_sources(samples)
        folder = self.out / "fetch"
        if sources:
            from .fetch import Fetcher

            fetcher = self.fetcher or Fetcher()
            log.info("fetch: %d remote input(s)", len(sources))
            with ThreadPoolExecutor(max_workers=self.p.max_downloads) as pool:
                futures = [pool.submit(fetcher.fetch, src, outdir=folder) for src in sources]
                for future in futures:
                    future.result()
        self.record("localise")
        return localise(samples, fetched_files(sources, folder) if sources else {})

    def gene_tpm_path(self, s: Sample) -> Path:
        return self.out / "expression" / "samples" / f"{s.sample}{EXPRESSION_SUFFIX}"

    def accessibility_path(self, s: Sample) -> Path:
        return self.out / "accessibility" / f"{s.sample}{ACCESSIBILITY_SUFFIX}"

    def sample(self, s: Sample, index: Path, tx2gene, genes, bins_path: Path, threads: int) -> None:
        p = self.p
        if s.to_predict:  # ATAC-seq only: binned, and predicted after training
            self.peak_bins(s, bins_path)
            return
        quant = Path(s.rna_tpm) if s.rna_tpm else self.out / "kallisto" / s.sample / "abundance.tsv"
        if s.rna_1:
            flen = s.fragment_length or p.fragment_length
            fsd = s.fragment_sd or p.fragment_sd

            def quantify() -> None:  # FASTQ checked as kallisto reads it (one decompression)
                kallisto_quant_checked(
                    s.sample, index, quant.parent, s.rna_1, s.rna_2, flen, fsd, threads
                )

            key = fingerprint(
                index, *s.rna_1, *s.rna_2, **({} if s.paired else {"l": flen, "s": fsd})
            )
            self.record("fastq_check")  # checked inside the quant step, as kallisto reads it
            outputs = [quant, log_path(quant.parent, s.sample)]
            self.step(f"kallisto_quant.{s.sample}", key, outputs, quantify)

        tpm_out = self.gene_tpm_path(s)
        self.step(
            f"gene_tpm.{s.sample}",
            fingerprint(quant, self.out / "reference" / "tx2gene.tsv"),
            [tpm_out],
            lambda: write_gene_tpm(gene_tpm(quant, tx2gene, genes, s.sample), tpm_out),
        )

        self.peak_bins(s, bins_path)

    def peak_bins(self, s: Sample, bins_path: Path) -> None:
        p, acc_out = self.p, self.accessibility_path(s)

        def peak_bins() -> None:
            if is_bam(s.atac):
                values = bin_bam(s.atac, bins_path)
            else:
                values = bin_peak_values(s.atac, bins_path, p.peak_mode, p.min_score, p.chrom_sizes)
            write_peak_bins(values, acc_out)

        self.step(
            f"peak_bins.{s.sample}",
            fingerprint(s.atac, bins_path, p.chrom_sizes, mode=p.peak_mode, min_score=p.min_score),
            [acc_out],
            peak_bins,
        )


def check_sample_names(samples: list[Sample], p: RunParams) -> None:
    """Check each multiome library (check_library) and that its pseudobulk samples' names are
    new, before any work starts."""
    first = {s.sample: f"sample {s.sample} on line {s.line}" for s in samples if not s.is_multiome}
    for lib in (s for s in samples if s.is_multiome):
        names = check_library(
            lib.sample, lib.multiome_h5, lib.cells, p.genome, p.min_cells, p.pseudobulk_replicates
        )
        for name in names:
            if name in first:
                raise GexpError(
                    f"samplesheet {p.input} line {lib.line}: library {lib.sample} makes "
                    f"pseudobulk sample {name}, the same name as {first[name]}; rename one"
                )
            first[name] = f"a sample of library {lib.sample} (line {lib.line})"


# Both runners' words when FASTQ comes without a transcriptome (main.nf says the same).
TRANSCRIPTOME_NEEDED = (
    "need --transcriptome (the transcript FASTA of the GTF's release) to be quantified with "
    "kallisto; give it, or give these samples' gene or transcript TPM tables as rna_tpm"
)


def require_transcriptome(samples: list[Sample], transcriptome: Path | None) -> None:
    """Fail in one line, naming them, when samples with FASTQ have no transcriptome to use."""
    fastq = [s.sample for s in samples if s.rna_1]
    if fastq and not transcriptome:
        named = ", ".join(fastq[:5]) + (f" and {len(fastq) - 5} more" if len(fastq) > 5 else "")
        raise GexpError(f"samples with FASTQ (rna_1: {named}) {TRANSCRIPTOME_NEEDED}")


def _sweep(folder: Path, skip: tuple[str, ...] = ()) -> None:
    """Remove what a killed run left half-written (call with the folder's lock held)."""
    if removed := remove_stale_temporaries(folder, skip=skip):
        log.info("removed %d temporary file(s) left by an interrupted run in %s", removed, folder)


# -- the command line: `gexp run` --------------------------------------------------------------


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--input", required=True, type=Path, help="samplesheet CSV")
    p.add_argument(
        "--transcriptome",
        type=Path,
        help="transcript FASTA (.gz) of the GTF's release; needed only when a sample has FASTQ",
    )
    p.add_argument(
        "--gtf", required=True, type=Path, help="GENCODE or Ensembl GTF (.gz), any release"
    )
    genome_options(p)
    p.add_argument(
        "--outdir", required=True, type=Path, help="output folder; one run at a time (locked)"
    )
    p.add_argument("--region", help="e.g. chr1:1-10000000 (default: whole genome)")
    p.add_argument("--bin-size", type=positive_int, default=1000, help="bin width in bp")
    p.add_argument(
        "--threads",
        type=positive_int,
        default=default_threads(),
        help="samples at once; torch on the CPU trains on one thread (default: the CPUs "
        "available, %(default)s here)",
    )
    peak_options(p, "--peak-mode")
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
        type=positive_int,
        default=4,
        help="downloads at once when fetching remote inputs",
    )
    pseudobulk_options(p, "--pseudobulk-replicates")
    network_options(p)
    training_options(p)
    p.add_argument(
        "--model",
        type=Path,
        help="a trained model folder (model/ of an earlier run): predict the samplesheet's "
        "samples with ATAC-seq only from it, without DATASET or TRAIN",
    )
    p.add_argument(
        "--predict-model",
        help="the model that predicts samples with ATAC-seq only (default: the default model, "
        "ensemble)",
    )


def run(a: argparse.Namespace) -> None:
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
        genome=a.genome,
        min_cells=a.min_cells,
        pseudobulk_replicates=a.pseudobulk_replicates,
        training=train_settings(a),
        predict_model=a.predict_model,
        model=a.model,
    )
    Runner(params, fetcher=fetcher(a)).run()
