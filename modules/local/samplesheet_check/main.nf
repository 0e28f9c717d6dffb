process SAMPLESHEET_CHECK {
    tag "$samplesheet"
    label 'process_single'

    conda "${moduleDir}/../../../envs/gexp.yml"
    container "${ params.gexp_container }"

    input:
    path samplesheet
    val base_dir

    output:
    path "samplesheet.valid.csv", emit: csv
    path "versions.yml"         , emit: versions

    when:
    task.ext.when == null || task.ext.when

    script:
    def args = task.ext.args ?: ''
    """
    gexp samplesheet \\
        --input $samplesheet \\
        --base-dir '$base_dir' \\
        --out samplesheet.valid.csv \\
        $args

    cat <<-END_VERSIONS > versions.yml
    "${task.process}":
        gexp: \$(gexp --version | sed 's/^gexp //')
    END_VERSIONS
    """

    stub:
    // The real command: main.nf reads this file (absolute paths, single_end), and it is cheap.
    def args = task.ext.args ?: ''
    """
    gexp samplesheet \\
        --input $samplesheet \\
        --base-dir '$base_dir' \\
        --out samplesheet.valid.csv \\
        $args

    cat <<-END_VERSIONS > versions.yml
    "${task.process}":
        gexp: \$(gexp --version | sed 's/^gexp //')
    END_VERSIONS
    """
}
