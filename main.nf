#!/usr/bin/env nextflow
/*
 * gexp: predict gene expression from chromatin accessibility.
 *
 * The same steps as `gexp run`, as Nextflow processes: every process is a thin
 * call of kallisto or of one `gexp` subcommand (bin/gexp), so the Python tests
 * exercise exactly the code this pipeline runs.
 */

nextflow.enable.dsl = 2

include { PARAMS_CHECK      } from './modules/local/params_check'
include { SAMPLESHEET_CHECK } from './modules/local/samplesheet_check'
include { FETCH             } from './modules/local/fetch'
include { LOCALISE          } from './modules/local/localise'
include { REFERENCE         } from './modules/local/reference'
include { BINS              } from './modules/local/bins'
include { PSEUDOBULK        } from './modules/local/pseudobulk'
include { KALLISTO_INDEX    } from './modules/local/kallisto_index'
include { FASTQ_CHECK       } from './modules/local/fastq_check'
include { KALLISTO_QUANT    } from './modules/local/kallisto_quant'
include { GENE_TPM          } from './modules/local/gene_tpm'
include { PEAK_BINS         } from './modules/local/peak_bins'
include { DATASET           } from './modules/local/dataset'
include { TRAIN             } from './modules/local/train'
include { PREDICT           } from './modules/local/predict'
include { PREDICTIONS       } from './modules/local/predictions'
include { REPORT            } from './modules/local/report'

// One row of the validated samplesheet (absolute paths, from `gexp samplesheet`) as a meta map.
def sampleMeta(row) {
    [
        id             : row.sample,
        group          : row.group,
        single_end     : row.single_end == 'true',
        fragment_length: row.fragment_length ?: params.fragment_length,
        fragment_sd    : row.fragment_sd ?: params.fragment_sd,
    ]
}

// The same rule as is_remote() in bin/gexpcore/io/samplesheet.py (a test compares them).
// Object-store paths (s3://, gs://, az://) are not remote here: file() stages them.
def isRemote(String value) {
    value ==~ '^(https?://|ftp://).*|^ENCFF[0-9]{3}[A-Z]{3}$|^[SED]RR[0-9]{6,}$'
}

def remoteSources(row) {
    ['rna_1', 'rna_2', 'rna_tpm', 'atac']
        .collectMany { column -> (row[column] ?: '').tokenize(';') }
        .findAll { value -> isRemote(value) }
}

// --chrom_sizes, or the sizes bundled for --genome: the same names and files as GENOMES in
// bin/gexpcore/io/genome.py (a test compares them).
def chromSizes() {
    if (params.chrom_sizes) {
        return params.chrom_sizes
    }
    def bundled = [
        GRCh38: 'GRCh38.chrom.sizes',
        hg38  : 'GRCh38.chrom.sizes',
        GRCh37: 'GRCh37.chrom.sizes',
        hg19  : 'GRCh37.chrom.sizes',
        GRCm39: 'GRCm39.chrom.sizes',
        mm39  : 'GRCm39.chrom.sizes',
        GRCm38: 'GRCm38.chrom.sizes',
        mm10  : 'GRCm38.chrom.sizes',
    ]
    if (bundled.containsKey(params.genome)) {
        return "${projectDir}/assets/${bundled[params.genome]}"
    }
    error "Give --chrom_sizes FILE or --genome (one of: ${bundled.keySet().join(', ')})"
}

def runFiles(String runs) {
    runs ? runs.tokenize(';').collect { run -> file(run, checkIfExists: true) } : []
}

workflow GEXP {
    take:
    samplesheet // value channel, path: the user's samplesheet.csv. Every single-item channel
                // below derives from it and is a value channel too, read by every task.

    main:
    ch_versions = channel.empty()

    // Nothing else starts until the samplesheet is valid: every input below waits for it.
    // toUriString keeps s3://, gs://, az:// and https:// (toString drops the scheme), so
    // relative entries of a remote samplesheet resolve next to it.
    SAMPLESHEET_CHECK(samplesheet, samplesheet.map { sheet -> sheet.parent.toUriString() })
    ch_versions = ch_versions.mix(SAMPLESHEET_CHECK.out.versions)

    // Remote inputs (URLs, ENCODE files, SRA/ENA runs) are downloaded once each, verified,
    // and the samplesheet is rewritten to point at the downloaded files.
    ch_sources = SAMPLESHEET_CHECK.out.csv
        .splitCsv(header: true)
        .flatMap { row -> remoteSources(row) }
        .unique()
    FETCH(ch_sources.map { source -> [ source, [] ] })
    ch_versions = ch_versions.mix(FETCH.out.versions.first())

    // {source: [file URI, …]} on one line (LOCALISE inlines it), md5 sidecars left out
    ch_fetched = FETCH.out.files
        .map { source, files ->
            [ source, (files instanceof List ? files : [files]).findAll { f -> !f.name.endsWith('.md5') }.collect { f -> f.toUriString() }.sort() ]
        }
        .toSortedList { a, b -> a[0] <=> b[0] }
        .map { pairs -> groovy.json.JsonOutput.toJson(pairs.collectEntries()) }
    LOCALISE(SAMPLESHEET_CHECK.out.csv, ch_fetched)
    ch_versions = ch_versions.mix(LOCALISE.out.versions)
    ch_valid = LOCALISE.out.csv
    ch_rows = ch_valid.splitCsv(header: true)

    ch_gtf = ch_valid.map { file(params.gtf, checkIfExists: true) }
    ch_chrom_sizes = ch_valid.map { file(chromSizes(), checkIfExists: true) }

    REFERENCE(ch_gtf)
    ch_versions = ch_versions.mix(REFERENCE.out.versions)

    BINS(ch_chrom_sizes)
    ch_versions = ch_versions.mix(BINS.out.versions)
    // --model: predict from a trained model folder, with its own bins (BINS' are not used
    // nor published then); DATASET and TRAIN never start, having no paired sample.
    ch_bins = params.model ? ch_valid.map { file("${params.model}/bins.bed", checkIfExists: true) } : BINS.out.bins
    ch_model = params.model ? ch_valid.map { file(params.model, type: 'dir', checkIfExists: true) } : null

    // Each multiome library (a row with multiome_h5, fragments and cells) becomes pseudobulk
    // samples, one task per library, in parallel; they join the bulk samples at GENE_TPM and
    // PEAK_BINS as a gene TPM table and a peak file each.
    // A library row without multiome_h5 is scATAC-only: its samples have ATAC-seq only and
    // are predicted (they never reach DATASET).
    ch_libraries = ch_rows
        .filter { row -> row.fragments }
        .map { row ->
            [
                [ id: row.sample, scatac: !row.multiome_h5 ],
                row.multiome_h5 ? file(row.multiome_h5, checkIfExists: true) : [],
                file(row.fragments, checkIfExists: true),
                file("${row.fragments}.tbi", checkIfExists: true),
                file(row.cells, checkIfExists: true),
            ]
        }
    PSEUDOBULK(ch_libraries, ch_gtf, ch_bins)
    ch_versions = ch_versions.mix(PSEUDOBULK.out.versions.first())

    // [sample id, meta] of every pseudobulk sample, from its library's samples.tsv. Its id must
    // be new: `gexp run` checks before any work; here, as soon as the library's samples are
    // known (the [ids] wrapper keeps combine from spreading the list).
    ch_bulk_ids = ch_rows.filter { row -> !row.fragments }.map { row -> row.sample }.collect().ifEmpty([])
    ch_pseudobulk_meta = PSEUDOBULK.out.samples
        .map { _meta, table -> table }
        .splitCsv(header: true, sep: '\t')
        .combine(ch_bulk_ids.map { ids -> [ids] })
        .map { row, bulk ->
            if (row.sample in bulk) {
                error "pseudobulk sample ${row.sample} of library ${row.library} has the name of a bulk sample of the samplesheet; rename one"
            }
            // samples.tsv has no umis column for a scATAC-only library: samples to predict
            [ row.sample, sampleMeta(row) + [ predict: row.umis == null ] ]
        }
    // its files are named <sample id>.gene_tpm.tsv and <sample id>.narrowPeak.gz
    ch_pseudobulk_tpm = ch_pseudobulk_meta
        .filter { _id, meta -> !meta.predict }
        .join(PSEUDOBULK.out.tpm.flatten().map { f -> [ f.name - ~/\.gene_tpm\.tsv$/, f ] }, failOnMismatch: true, failOnDuplicate: true)
        .map { _id, meta, tpm -> [ meta, tpm ] }
    ch_pseudobulk_peaks = ch_pseudobulk_meta
        .join(PSEUDOBULK.out.peaks.flatten().map { f -> [ f.name - ~/\.narrowPeak\.gz$/, f ] }, failOnMismatch: true, failOnDuplicate: true)
        .map { _id, meta, peaks -> [ meta, peaks ] }

    ch_fastq = ch_rows
        .filter { row -> row.rna_1 }
        .map { row -> [ sampleMeta(row), runFiles(row.rna_1), runFiles(row.rna_2) ] }
    ch_quant_tables = ch_rows
        .filter { row -> row.rna_tpm }
        .map { row -> [ sampleMeta(row), file(row.rna_tpm, checkIfExists: true) ] }
        .mix(ch_pseudobulk_tpm)
    // A bulk row without RNA is a sample to predict: binned like the rest, kept out of
    // DATASET and TRAIN, predicted after them (Sample.to_predict in io/samplesheet.py).
    ch_atac = ch_rows
        .filter { row -> row.atac }
        .map { row -> [ sampleMeta(row) + [ predict: !(row.rna_1 || row.rna_tpm) ], file(row.atac, checkIfExists: true) ] }
        .mix(ch_pseudobulk_peaks)

    // The index is built once, and only when some sample has reads; only then is
    // --transcriptome needed (the words of require_transcriptome() in bin/gexpcore/steps/run.py).
    ch_transcriptome = ch_fastq.first().map { meta, _read1, _read2 ->
        if (!params.transcriptome) {
            error "samples with FASTQ (rna_1, first: ${meta.id}) need --transcriptome (the transcript FASTA of the GTF's release) to be quantified with kallisto; give it, or give these samples' gene or transcript TPM tables as rna_tpm"
        }
        file(params.transcriptome, checkIfExists: true)
    }
    KALLISTO_INDEX(ch_transcriptome)
    ch_versions = ch_versions.mix(KALLISTO_INDEX.out.versions)

    FASTQ_CHECK(ch_fastq)
    ch_versions = ch_versions.mix(FASTQ_CHECK.out.versions.first())

    ch_reads = ch_fastq
        .join(FASTQ_CHECK.out.checked)
        .map { meta, read1, read2, _checked ->
            [ meta, meta.single_end ? read1 : [read1, read2].transpose().flatten() ]
        }
    KALLISTO_QUANT(ch_reads, KALLISTO_INDEX.out.index)
    ch_versions = ch_versions.mix(KALLISTO_QUANT.out.versions.first())

    ch_abundance = KALLISTO_QUANT.out.results.map { meta, dir -> [ meta, dir.resolve('abundance.tsv') ] }
    GENE_TPM(
        ch_abundance.mix(ch_quant_tables),
        REFERENCE.out.tx2gene,
        REFERENCE.out.genes
    )
    ch_versions = ch_versions.mix(GENE_TPM.out.versions.first())

    PEAK_BINS(ch_atac, ch_bins, ch_chrom_sizes)
    ch_versions = ch_versions.mix(PEAK_BINS.out.versions.first())

    DATASET(
        GENE_TPM.out.tpm.map { _meta, tpm -> tpm }.collect(),
        PEAK_BINS.out.accessibility.filter { meta, _acc -> !meta.predict }.map { _meta, acc -> acc }.collect(),
        BINS.out.bins,
        REFERENCE.out.genes,
        ch_valid,
        PSEUDOBULK.out.samples.filter { meta, _table -> !meta.scatac }.map { _meta, table -> table }.toSortedList { a, b -> a.name <=> b.name }
    )
    ch_versions = ch_versions.mix(DATASET.out.versions)

    // Cross-validated models (on a GPU with -profile gpu), then the HTML report.
    TRAIN(DATASET.out.dataset)
    ch_versions = ch_versions.mix(TRAIN.out.versions)

    // Samples with ATAC-seq only: one task each, in parallel, with the trained model; then
    // one table of them all (neither runs when the samplesheet has none).
    PREDICT(
        PEAK_BINS.out.accessibility.filter { meta, _acc -> meta.predict },
        ch_model ?: TRAIN.out.model.first()
    )
    ch_versions = ch_versions.mix(PREDICT.out.versions.first())
    PREDICTIONS(
        PREDICT.out.prediction.map { _meta, table, _summary -> table }.collect(),
        PREDICT.out.prediction.map { _meta, _table, summary -> summary }.collect()
    )
    ch_versions = ch_versions.mix(PREDICTIONS.out.versions)

    // [sample ids, peak files] in one order, sorted by sample for a stable task hash
    ch_peaks = ch_atac
        .toSortedList { a, b -> a[0].id <=> b[0].id }
        .map { pairs -> [ pairs.collect { meta, _peaks -> meta.id }, pairs.collect { _meta, peaks -> peaks } ] }
    REPORT(
        DATASET.out.dataset,
        TRAIN.out.model,
        KALLISTO_QUANT.out.results.map { _meta, dir -> dir }.collect().ifEmpty([]),
        ch_valid,
        PREDICTIONS.out.table.mix(PREDICTIONS.out.similarity).collect().ifEmpty([]),
        ch_peaks
    )
    ch_versions = ch_versions.mix(REPORT.out.versions)

    ch_all_versions = ch_versions.unique()
    ch_all_versions
        .collectFile(name: 'versions.yml', storeDir: "${params.outdir}/pipeline_info", sort: true)
    // The same under the name MultiQC's software_versions module finds (`*_mqc_versions.yml`).
    ch_all_versions
        .collectFile(name: 'gexp_software_mqc_versions.yml', storeDir: "${params.outdir}/pipeline_info", sort: true)

    emit:
    dataset  = DATASET.out.dataset
    gene_tpm = DATASET.out.gene_tpm
    model    = TRAIN.out.model
    report   = REPORT.out.html
}

// nextflow_schema.json's parameters (name → definition): the pipeline needs no plugin
// (nf-schema) to read them, so it runs where no plugin registry is reachable.
def schemaParams() {
    def schema = new groovy.json.JsonSlurper().parse(file("${projectDir}/nextflow_schema.json").toFile())
    schema['$defs'].values().inject([:]) { found, group -> found + (group['properties'] ?: [:]) }
}

// What PARAMS_CHECK checks: the parameters, and which of the paths the schema says must exist
// Nextflow can see (it stages them; a container or a cloud task could not tell).
def paramsDocument() {
    def exists = [:]
    schemaParams().each { name, spec ->
        def value = params[name]
        if (spec['exists'] && value) {
            exists[value.toString()] = file(value.toString(), glob: false).exists()
        }
    }
    groovy.json.JsonOutput.toJson([params: params, exists: exists])  // one line: the task script inlines it
}

def helpText() {
    def lines = ["Usage: nextflow run main.nf -profile <docker|podman|singularity|conda|test|slurm|gpu> --input samplesheet.csv --gtf genes.gtf.gz --genome GRCh38 --outdir results", '']
    schemaParams().each { name, spec ->
        def shown = spec['default'] != null ? " [default: ${spec['default']}]" : ''
        lines << "  --${name.padRight(22)} ${spec['description'] ?: ''}${shown}"
    }
    lines << '' << 'Every parameter and input: docs/usage.md and nextflow_schema.json; every output: docs/output.md.'
    lines.join('\n')
}

// The parameters that differ from their defaults, printed at the start as nf-core pipelines do.
def paramsSummary() {
    def shown = schemaParams().findAll { name, spec -> params[name] != null && params[name] != spec['default'] }
    (["gexp ${workflow.manifest.version} with Nextflow ${nextflow.version}"] +
        shown.collect { name, _spec -> "  --${name.padRight(22)} ${params[name]}" }).join('\n')
}

workflow {
    // With a conda recipe set, Wave builds from it and ignores the container; the gpu
    // profile's CUDA environment cannot be solved without a GPU, so refuse the pair up front.
    if (workflow.profile.tokenize(',').containsAll(['gpu', 'wave'])) {
        error "-profile gpu cannot be combined with wave: Wave would build TRAIN from envs/gexp-gpu.yml, which cannot be solved without a GPU; use gpu with docker or singularity and the CUDA image (docs/usage.md: GPU)"
    }
    // .toString().toBoolean(): Nextflow 25.10's strict parser passes --flag false as "false"
    if (params.help.toString().toBoolean()) {
        log.info helpText()
    } else {
        log.info paramsSummary()
        // Nothing starts until the parameters are valid: GEXP waits for PARAMS_CHECK.
        def ch_checked = channel.value('unchecked')
        if (params.validate_params.toString().toBoolean()) {
            PARAMS_CHECK(paramsDocument(), file("${projectDir}/nextflow_schema.json", checkIfExists: true))
            ch_checked = PARAMS_CHECK.out.json
        } else {
            log.warn "--validate_params false: the parameters are not checked against nextflow_schema.json"
        }
        GEXP(ch_checked.map { file(params.input, checkIfExists: true) })
    }
}
