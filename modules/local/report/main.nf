process REPORT {
    tag "report"
    label 'process_single'

    conda "${moduleDir}/../../../envs/gexp.yml"
    container "${ params.gexp_container }"

    input:
    // Staged in the layout of a `gexp run` output folder, which is what `gexp report` reads.
    path dataset    , stageAs: 'run/dataset'
    path model      , stageAs: 'run/model'
    path kallisto   , stageAs: 'run/kallisto/*'
    path samplesheet, stageAs: 'run/pipeline_info/samplesheet.local.csv'
    // PREDICTIONS' tables, when the samplesheet has samples with ATAC-seq only (else none)
    path predictions, stageAs: 'run/predictions/*'
    // Each sample's peaks, counted for the QC table: a task (in a container, on a cloud
    // node) sees only staged files, never the host paths the samplesheet names.
    tuple val(peak_samples), path(peaks, stageAs: 'peaks/*/*', arity: '1..*')

    output:
    path "run/report.html", emit: html
    path "run/multiqc/*"  , emit: multiqc
    path "versions.yml"   , emit: versions

    when:
    task.ext.when == null || task.ext.when

    script:
    def args = task.ext.args ?: ''
    def peak_args = [peak_samples, peaks].transpose().collect { sample, file -> "'${sample}=${file}'" }.join(' ')
    """
    gexp report \\
        --run run \\
        --peaks ${peak_args} \\
        $args

    cat <<-END_VERSIONS > versions.yml
    "${task.process}":
        gexp: \$(gexp --version | sed 's/^gexp //')
    END_VERSIONS
    """

    stub:
    """
    mkdir -p run/multiqc
    touch run/report.html run/multiqc/gexp_qc_mqc.tsv

    cat <<-END_VERSIONS > versions.yml
    "${task.process}":
        gexp: \$(gexp --version | sed 's/^gexp //')
    END_VERSIONS
    """
}
