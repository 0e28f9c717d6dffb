process FETCH {
    tag "$source"
    label 'process_single'

    conda "${moduleDir}/../../../envs/gexp.yml"
    container "${ params.gexp_container }"

    input:
    // `local`: [] for the remote sources main.nf sends. A local file (the nf-test) arrives
    // staged, since a container sees only staged inputs, never a host path given by name.
    tuple val(source), path(local, stageAs: 'local/*')

    output:
    tuple val(source), path("fetch/*"), emit: files
    path "versions.yml"               , emit: versions

    when:
    task.ext.when == null || task.ext.when

    script:
    // Each file arrives md5-verified with a .md5 sidecar; -resume reuses finished downloads.
    def args = task.ext.args ?: ''
    def target = local ?: source
    """
    gexp fetch \\
        '$target' \\
        --outdir fetch \\
        $args

    cat <<-END_VERSIONS > versions.yml
    "${task.process}":
        gexp: \$(gexp --version | sed 's/^gexp //')
    END_VERSIONS
    """

    stub:
    // No download; an empty gzip under the name the real fetch stores the source under, so
    // that LOCALISE (the real command in the stub too) finds each source's own file.
    def target = local ?: source
    """
    gexp fetch \\
        '$target' \\
        --outdir fetch \\
        --stub

    cat <<-END_VERSIONS > versions.yml
    "${task.process}":
        gexp: \$(gexp --version | sed 's/^gexp //')
    END_VERSIONS
    """
}
