process PARAMS_CHECK {
    tag "nextflow_schema.json"
    label 'process_single'

    conda "${moduleDir}/../../../envs/gexp.yml"
    container "${ params.gexp_container }"

    input:
    val document      // JSON: {"params": …, "exists": {path: found by Nextflow}}, from main.nf
    path schema       // nextflow_schema.json

    output:
    path "params.json" , emit: json
    path "versions.yml", emit: versions

    when:
    task.ext.when == null || task.ext.when

    script:
    def args = task.ext.args ?: ''
    """
    gexp check-params \\
        --schema $schema \\
        --params - \\
        --out params.json \\
        $args <<'END_PARAMS'
    ${document}
    END_PARAMS

    cat <<-END_VERSIONS > versions.yml
    "${task.process}":
        gexp: \$(gexp --version | sed 's/^gexp //')
    END_VERSIONS
    """

    stub:
    // The real check: it is cheap, and a stub run should refuse what a real run refuses.
    def args = task.ext.args ?: ''
    """
    gexp check-params \\
        --schema $schema \\
        --params - \\
        --out params.json \\
        $args <<'END_PARAMS'
    ${document}
    END_PARAMS

    cat <<-END_VERSIONS > versions.yml
    "${task.process}":
        gexp: \$(gexp --version | sed 's/^gexp //')
    END_VERSIONS
    """
}
