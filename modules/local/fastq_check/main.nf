process FASTQ_CHECK {
    tag "$meta.id"
    label 'process_single'

    conda "${moduleDir}/../../../envs/gexp.yml"
    container "${ params.gexp_container }"

    input:
    // One folder per run (read1/1/, read1/2/, …): runs of one sample may share a file name.
    tuple val(meta), path(read1, stageAs: 'read1/*/*', arity: '1..*'), path(read2, stageAs: 'read2/*/*')

    output:
    tuple val(meta), path("${prefix}.reads.txt"), emit: checked
    path "versions.yml"                          , emit: versions

    when:
    task.ext.when == null || task.ext.when

    script:
    def args = task.ext.args ?: ''
    prefix = task.ext.prefix ?: "${meta.id}"
    // A path input renders as its staged name(s), space-separated; read2 is [] for single-end.
    def mates = read2 ? "--read2 ${read2}" : ''
    """
    gexp check-fastq \\
        --sample ${meta.id} \\
        --read1 ${read1} \\
        $mates \\
        $args \\
        > ${prefix}.reads.txt

    cat <<-END_VERSIONS > versions.yml
    "${task.process}":
        gexp: \$(gexp --version | sed 's/^gexp //')
    END_VERSIONS
    """

    stub:
    prefix = task.ext.prefix ?: "${meta.id}"
    """
    echo 0 > ${prefix}.reads.txt

    cat <<-END_VERSIONS > versions.yml
    "${task.process}":
        gexp: \$(gexp --version | sed 's/^gexp //')
    END_VERSIONS
    """
}
