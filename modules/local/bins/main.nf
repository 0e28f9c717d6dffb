process BINS {
    tag "$chrom_sizes"
    label 'process_single'

    conda "${moduleDir}/../../../envs/gexp.yml"
    container "${ params.gexp_container }"

    input:
    path chrom_sizes

    output:
    path "bins.bed"     , emit: bins
    path "versions.yml" , emit: versions

    when:
    task.ext.when == null || task.ext.when

    script:
    def args = task.ext.args ?: ''
    """
    gexp bins \\
        --chrom-sizes $chrom_sizes \\
        --out bins.bed \\
        $args

    cat <<-END_VERSIONS > versions.yml
    "${task.process}":
        gexp: \$(gexp --version | sed 's/^gexp //')
        bedtools: \$(bedtools --version | sed 's/^bedtools v//')
    END_VERSIONS
    """

    stub:
    """
    touch bins.bed

    cat <<-END_VERSIONS > versions.yml
    "${task.process}":
        gexp: \$(gexp --version | sed 's/^gexp //')
        bedtools: \$(bedtools --version | sed 's/^bedtools v//')
    END_VERSIONS
    """
}
