process KALLISTO_QUANT {
    tag "$meta.id"
    label 'process_medium'

    conda "${moduleDir}/../../../envs/kallisto.yml"
    container "${ workflow.containerEngine in ['singularity', 'apptainer'] && !task.ext.singularity_pull_docker_container ?
        'https://depot.galaxyproject.org/singularity/kallisto:0.48.0--h15996b6_2' :
        'quay.io/biocontainers/kallisto:0.48.0--h15996b6_2' }"

    input:
    // One folder per file (reads/001/, reads/002/, …, in channel order: runs may share a file
    // name), each file staged under the sample's id: kallisto's log names its inputs, MultiQC's
    // kallisto module names the sample after the first, and quantify.py names them alike for
    // the one-machine runner, so both runners write one kallisto.log.
    tuple val(meta), path("reads/???/${meta.id}", arity: '1..*')
    path index

    output:
    tuple val(meta), path("${prefix}"), emit: results  // abundance.tsv, run_info.json
    path "${prefix}.kallisto.log"     , emit: log      // kallisto's report, for MultiQC
    path "versions.yml"               , emit: versions

    when:
    task.ext.when == null || task.ext.when

    script:
    def args = task.ext.args ?: ''
    prefix = task.ext.prefix ?: "${meta.id}"
    // Paired runs arrive interleaved (r1a r2a r1b r2b), the order kallisto pairs them in.
    def single = meta.single_end ? "--single -l ${meta.fragment_length} -s ${meta.fragment_sd}" : ''
    // The inputs in staging order (reads/001/…, reads/002/…: a glob sorts them so). kallisto's
    // report (stderr; stdout is dropped, as the runner drops it) goes through a pipe to tee,
    // which bash waits for, and pipefail (nextflow.config) keeps kallisto's exit status. Not
    // `2> >(tee …)`: bash does not wait for a process substitution, and a task once ended
    // before tee had made the log (a podman run in CI: "Missing output file").
    """
    kallisto quant \\
        -i $index \\
        -o $prefix \\
        -t $task.cpus \\
        $single \\
        $args \\
        reads/*/${meta.id} \\
        2>&1 >/dev/null | tee ${prefix}.kallisto.log >&2

    cat <<-END_VERSIONS > versions.yml
    "${task.process}":
        kallisto: \$(kallisto version | sed 's/^kallisto, version //')
    END_VERSIONS
    """

    stub:
    prefix = task.ext.prefix ?: "${meta.id}"
    """
    mkdir -p $prefix
    touch $prefix/abundance.tsv $prefix/run_info.json ${prefix}.kallisto.log

    cat <<-END_VERSIONS > versions.yml
    "${task.process}":
        kallisto: \$(kallisto version | sed 's/^kallisto, version //')
    END_VERSIONS
    """
}
