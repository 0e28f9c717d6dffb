process LOCALISE {
    tag "$samplesheet"
    label 'process_single'

    conda "${moduleDir}/../../../envs/gexp.yml"
    container "${ params.gexp_container }"

    input:
    path samplesheet
    // JSON {source: [URI, …]}: FETCH's files as Nextflow names them (work folder or bucket),
    // valid where main.nf opens this CSV. Not staged: a cloud task's copies exist only there.
    val fetched

    output:
    path "samplesheet.local.csv", emit: csv
    path "versions.yml"         , emit: versions

    when:
    task.ext.when == null || task.ext.when

    script:
    def args = task.ext.args ?: ''
    """
    gexp localise \\
        --input $samplesheet \\
        --fetched-map - \\
        --out samplesheet.local.csv \\
        $args <<'END_FETCHED'
    ${fetched}
    END_FETCHED

    cat <<-END_VERSIONS > versions.yml
    "${task.process}":
        gexp: \$(gexp --version | sed 's/^gexp //')
    END_VERSIONS
    """

    stub:
    // The real command: main.nf opens the files this CSV names, so remote entries must be
    // replaced by the stub downloads as they would be by real ones; it is cheap.
    def args = task.ext.args ?: ''
    """
    gexp localise \\
        --input $samplesheet \\
        --fetched-map - \\
        --out samplesheet.local.csv \\
        $args <<'END_FETCHED'
    ${fetched}
    END_FETCHED

    cat <<-END_VERSIONS > versions.yml
    "${task.process}":
        gexp: \$(gexp --version | sed 's/^gexp //')
    END_VERSIONS
    """
}
