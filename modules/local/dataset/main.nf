process DATASET {
    tag "${expression.size()} samples"
    label 'process_medium'

    conda "${moduleDir}/../../../envs/gexp.yml"
    container "${ params.gexp_container }"

    input:
    // Always lists (arity), even for one sample; names are unique: <sample id>.<suffix>.
    path expression   , stageAs: 'inputs/expression/*'   , arity: '1..*'
    path accessibility, stageAs: 'inputs/accessibility/*', arity: '1..*'
    path bins
    path genes
    path samplesheet
    // <library>.samples.tsv of each multiome library: groups, donors, cells, fragments
    path pseudobulk   , stageAs: 'inputs/pseudobulk/*'   , arity: '0..*'

    output:
    path "dataset"                , emit: dataset
    path "expression/gene_tpm.tsv", emit: gene_tpm
    path "versions.yml"           , emit: versions

    when:
    task.ext.when == null || task.ext.when

    script:
    def args = task.ext.args ?: ''
    def tables = pseudobulk ? "--pseudobulk ${pseudobulk.join(' ')}" : ''
    """
    gexp dataset \\
        --bins $bins \\
        --genes $genes \\
        --expression $expression \\
        --accessibility $accessibility \\
        --samplesheet $samplesheet \\
        $tables \\
        --outdir . \\
        $args

    cat <<-END_VERSIONS > versions.yml
    "${task.process}":
        gexp: \$(gexp --version | sed 's/^gexp //')
    END_VERSIONS
    """

    stub:
    """
    mkdir -p dataset expression
    touch dataset/accessibility.npz dataset/expression.tsv dataset/genes.tsv dataset/samples.tsv dataset/bins.bed dataset/qc.json expression/gene_tpm.tsv

    cat <<-END_VERSIONS > versions.yml
    "${task.process}":
        gexp: \$(gexp --version | sed 's/^gexp //')
    END_VERSIONS
    """
}
