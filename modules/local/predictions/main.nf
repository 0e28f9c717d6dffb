process PREDICTIONS {
    tag "predictions"
    label 'process_single'

    conda "${moduleDir}/../../../envs/gexp.yml"
    container "${ params.gexp_container }"

    input:
    // Every PREDICT task's table and summary, each in a folder of its own (matched by sample)
    path tables   , stageAs: 'tables/*/*', arity: '1..*'
    path summaries, stageAs: 'summaries/*/*', arity: '1..*'

    output:
    path "predicted_tpm.tsv", emit: table
    path "similarity.tsv"   , emit: similarity
    path "versions.yml"     , emit: versions

    when:
    task.ext.when == null || task.ext.when

    script:
    def args = task.ext.args ?: ''
    """
    gexp predictions \\
        --predictions tables/*/*.predicted_tpm.tsv \\
        --summaries summaries/*/*.prediction.json \\
        --outdir . \\
        $args

    cat <<-END_VERSIONS > versions.yml
    "${task.process}":
        gexp: \$(gexp --version | sed 's/^gexp //')
    END_VERSIONS
    """

    stub:
    """
    touch predicted_tpm.tsv similarity.tsv

    cat <<-END_VERSIONS > versions.yml
    "${task.process}":
        gexp: \$(gexp --version | sed 's/^gexp //')
    END_VERSIONS
    """
}
