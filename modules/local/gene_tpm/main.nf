process GENE_TPM {
    tag "$meta.id"
    label 'process_single'

    conda "${moduleDir}/../../../envs/gexp.yml"
    container "${ params.gexp_container }"

    input:
    tuple val(meta), path(quant, stageAs: 'quant/*')  // a table named genes.tsv must not collide
    path tx2gene
    path genes

    output:
    tuple val(meta), path("${meta.id}.gene_tpm.tsv"), emit: tpm
    path "versions.yml"                              , emit: versions

    when:
    task.ext.when == null || task.ext.when

    script:
    // The file name carries the sample id into DATASET, so it is not configurable.
    def args = task.ext.args ?: ''
    """
    gexp gene-tpm \\
        --quant $quant \\
        --tx2gene $tx2gene \\
        --genes $genes \\
        --sample ${meta.id} \\
        --out ${meta.id}.gene_tpm.tsv \\
        $args

    cat <<-END_VERSIONS > versions.yml
    "${task.process}":
        gexp: \$(gexp --version | sed 's/^gexp //')
    END_VERSIONS
    """

    stub:
    """
    printf 'gene_id\\ttpm\\n' > ${meta.id}.gene_tpm.tsv

    cat <<-END_VERSIONS > versions.yml
    "${task.process}":
        gexp: \$(gexp --version | sed 's/^gexp //')
    END_VERSIONS
    """
}
