process PEAK_BINS {
    tag "$meta.id"
    label 'process_low'

    conda "${moduleDir}/../../../envs/gexp.yml"
    container "${ params.gexp_container }"

    input:
    tuple val(meta), path(atac, stageAs: 'atac/*')  // a peak file named like bins.bed must not collide
    path bins
    path chrom_sizes

    output:
    tuple val(meta), path("${meta.id}.tsv.gz"), emit: accessibility
    path "versions.yml"                        , emit: versions

    when:
    task.ext.when == null || task.ext.when

    script:
    // The file name carries the sample id into DATASET, so it is not configurable.
    def args = task.ext.args ?: ''
    """
    gexp peak-bins \\
        --peaks $atac \\
        --bins $bins \\
        --chrom-sizes $chrom_sizes \\
        --out ${meta.id}.tsv.gz \\
        $args

    cat <<-END_VERSIONS > versions.yml
    "${task.process}":
        gexp: \$(gexp --version | sed 's/^gexp //')
        bedtools: \$(bedtools --version | sed 's/^bedtools v//')
    END_VERSIONS
    """

    stub:
    """
    printf 'bin\\tvalue\\n' | gzip > ${meta.id}.tsv.gz

    cat <<-END_VERSIONS > versions.yml
    "${task.process}":
        gexp: \$(gexp --version | sed 's/^gexp //')
        bedtools: \$(bedtools --version | sed 's/^bedtools v//')
    END_VERSIONS
    """
}
