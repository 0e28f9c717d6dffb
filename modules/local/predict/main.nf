process PREDICT {
    tag "$meta.id"
    label 'process_single'

    conda "${moduleDir}/../../../envs/gexp.yml"
    container "${ params.gexp_container }"

    input:
    // A sample with ATAC-seq only, binned by PEAK_BINS like every other, and the trained model
    tuple val(meta), path(accessibility, stageAs: 'sample/*')
    path model

    output:
    tuple val(meta), path("${meta.id}.predicted_tpm.tsv"), path("${meta.id}.prediction.json"), emit: prediction
    path "versions.yml", emit: versions

    when:
    task.ext.when == null || task.ext.when

    script:
    def args = task.ext.args ?: ''
    """
    gexp predict \\
        --model $model \\
        --atac $accessibility \\
        --sample ${meta.id} \\
        --outdir . \\
        $args

    cat <<-END_VERSIONS > versions.yml
    "${task.process}":
        gexp: \$(gexp --version | sed 's/^gexp //')
    END_VERSIONS
    """

    stub:
    """
    touch ${meta.id}.predicted_tpm.tsv ${meta.id}.prediction.json

    cat <<-END_VERSIONS > versions.yml
    "${task.process}":
        gexp: \$(gexp --version | sed 's/^gexp //')
    END_VERSIONS
    """
}
