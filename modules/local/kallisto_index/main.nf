process KALLISTO_INDEX {
    tag "$transcriptome"
    label 'process_medium'

    conda "${moduleDir}/../../../envs/kallisto.yml"
    container "${ workflow.containerEngine in ['singularity', 'apptainer'] && !task.ext.singularity_pull_docker_container ?
        'https://depot.galaxyproject.org/singularity/kallisto:0.48.0--h15996b6_2' :
        'quay.io/biocontainers/kallisto:0.48.0--h15996b6_2' }"

    input:
    path transcriptome

    output:
    path "transcripts.idx", emit: index
    path "versions.yml"   , emit: versions

    when:
    task.ext.when == null || task.ext.when

    script:
    def args = task.ext.args ?: ''
    """
    kallisto index \\
        $args \\
        -i transcripts.idx \\
        $transcriptome

    cat <<-END_VERSIONS > versions.yml
    "${task.process}":
        kallisto: \$(kallisto version | sed 's/^kallisto, version //')
    END_VERSIONS
    """

    stub:
    """
    touch transcripts.idx

    cat <<-END_VERSIONS > versions.yml
    "${task.process}":
        kallisto: \$(kallisto version | sed 's/^kallisto, version //')
    END_VERSIONS
    """
}
