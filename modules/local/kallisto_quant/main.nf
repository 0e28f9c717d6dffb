process KALLISTO_QUANT {
    tag "$meta.id"
    label 'process_medium'

    conda "${moduleDir}/../../../envs/kallisto.yml"
    container "${ workflow.containerEngine in ['singularity', 'apptainer'] && !task.ext.singularity_pull_docker_container ?
        'https://depot.galaxyproject.org/singularity/kallisto:0.48.0--h15996b6_2' :
        'quay.io/biocontainers/kallisto:0.48.0--h15996b6_2' }"

    input:
    // One folder per file (reads/1/, reads/2/, …), in channel order: runs may share a file name.
    tuple val(meta), path(reads, stageAs: 'reads/*/*', arity: '1..*')
    path index

    output:
    tuple val(meta), path("${prefix}"), emit: results  // abundance.tsv, run_info.json
    path "versions.yml"               , emit: versions

    when:
    task.ext.when == null || task.ext.when

    script:
    def args = task.ext.args ?: ''
    prefix = task.ext.prefix ?: "${meta.id}"
    // Paired runs arrive interleaved (r1a r2a r1b r2b), the order kallisto pairs them in.
    def single = meta.single_end ? "--single -l ${meta.fragment_length} -s ${meta.fragment_sd}" : ''
    """
    kallisto quant \\
        -i $index \\
        -o $prefix \\
        -t $task.cpus \\
        $single \\
        $args \\
        $reads

    cat <<-END_VERSIONS > versions.yml
    "${task.process}":
        kallisto: \$(kallisto version | sed 's/^kallisto, version //')
    END_VERSIONS
    """

    stub:
    prefix = task.ext.prefix ?: "${meta.id}"
    """
    mkdir -p $prefix
    touch $prefix/abundance.tsv $prefix/run_info.json

    cat <<-END_VERSIONS > versions.yml
    "${task.process}":
        kallisto: \$(kallisto version | sed 's/^kallisto, version //')
    END_VERSIONS
    """
}
