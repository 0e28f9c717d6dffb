process REFERENCE {
    tag "$gtf"
    label 'process_low'

    conda "${moduleDir}/../../../envs/gexp.yml"
    container "${ params.gexp_container }"

    input:
    path gtf

    output:
    path "reference/tx2gene.tsv", emit: tx2gene
    path "reference/genes.tsv"  , emit: genes
    path "versions.yml"         , emit: versions

    when:
    task.ext.when == null || task.ext.when

    script:
    def args = task.ext.args ?: ''
    """
    gexp reference \\
        --gtf $gtf \\
        --outdir reference \\
        $args

    cat <<-END_VERSIONS > versions.yml
    "${task.process}":
        gexp: \$(gexp --version | sed 's/^gexp //')
    END_VERSIONS
    """

    stub:
    """
    mkdir -p reference
    touch reference/tx2gene.tsv reference/genes.tsv

    cat <<-END_VERSIONS > versions.yml
    "${task.process}":
        gexp: \$(gexp --version | sed 's/^gexp //')
    END_VERSIONS
    """
}
