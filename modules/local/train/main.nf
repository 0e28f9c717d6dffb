process TRAIN {
    tag "$dataset"
    label 'process_gpu'

    conda "${moduleDir}/../../../envs/gexp.yml"
    container "${ params.gexp_container }"

    input:
    path dataset

    output:
    path "model"       , emit: model
    path "versions.yml", emit: versions

    when:
    task.ext.when == null || task.ext.when

    script:
    // --device auto uses a GPU when the task has one (-profile gpu), with mixed precision.
    def args = task.ext.args ?: ''
    """
    gexp train \\
        --dataset $dataset \\
        --outdir model \\
        --threads $task.cpus \\
        $args

    cat <<-END_VERSIONS > versions.yml
    "${task.process}":
        gexp: \$(gexp --version | sed 's/^gexp //')
        torch: \$(python3 -c 'import torch; print(torch.__version__)')
    END_VERSIONS
    """

    stub:
    """
    mkdir -p model
    touch model/metrics.json model/predictions.tsv model/model_info.json

    cat <<-END_VERSIONS > versions.yml
    "${task.process}":
        gexp: \$(gexp --version | sed 's/^gexp //')
        torch: \$(python3 -c 'import torch; print(torch.__version__)')
    END_VERSIONS
    """
}
