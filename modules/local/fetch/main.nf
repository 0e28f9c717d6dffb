process FETCH {
    tag "$source"
    label 'process_single'

    conda "${moduleDir}/../../../envs/gexp.yml"
    container "${ params.gexp_container }"

    input:
    val source

    output:
    tuple val(source), path("fetch/*"), emit: files
    path "versions.yml"               , emit: versions

    when:
    task.ext.when == null || task.ext.when

    script:
    // Each file arrives md5-verified with a .md5 sidecar; -resume reuses finished downloads.
    def args = task.ext.args ?: ''
    """
    gexp fetch \\
        '$source' \\
        --outdir fetch \\
        $args

    cat <<-END_VERSIONS > versions.yml
    "${task.process}":
        gexp: \$(gexp --version | sed 's/^gexp //')
    END_VERSIONS
    """

    stub:
    """
    mkdir -p fetch
    touch fetch/stub.fastq.gz fetch/stub.fastq.gz.md5

    cat <<-END_VERSIONS > versions.yml
    "${task.process}":
        gexp: \$(gexp --version | sed 's/^gexp //')
    END_VERSIONS
    """
}
