process PSEUDOBULK {
    tag "$meta.id"
    label 'process_low'

    conda "${moduleDir}/../../../envs/gexp.yml"
    container "${ params.gexp_container }"

    input:
    // Each input in a folder of its own: Cell Ranger names every library's files alike, and
    // the tabix index must sit beside its fragments file under the same name + .tbi. A
    // scATAC-only library (meta.scatac) has no h5: [] here, and its samples no RNA.
    tuple val(meta), path(h5, stageAs: 'h5/*'), path(fragments, stageAs: 'fragments/*'), path(index, stageAs: 'fragments/*'), path(cells, stageAs: 'cells/*')
    path gtf
    path bins

    output:
    tuple val(meta), path("pseudobulk/${meta.id}.samples.tsv"), emit: samples
    path "pseudobulk/${meta.id}.samplesheet.csv"              , emit: samplesheet
    path "pseudobulk/*.gene_tpm.tsv" , arity: '0..*'           , emit: tpm    // lists, even of one; empty for scATAC
    path "pseudobulk/*.narrowPeak.gz", arity: '1..*'           , emit: peaks
    path "versions.yml"                                       , emit: versions

    when:
    task.ext.when == null || task.ext.when

    script:
    // The library id prefixes every sample's file name, which carries it into DATASET.
    def args = task.ext.args ?: ''
    """
    gexp pseudobulk \\
        --library ${meta.id} \\
        ${h5 ? "--h5 $h5" : ''} \\
        --fragments $fragments \\
        --cells $cells \\
        --gtf $gtf \\
        --bins $bins \\
        --outdir pseudobulk \\
        $args

    cat <<-END_VERSIONS > versions.yml
    "${task.process}":
        gexp: \$(gexp --version | sed 's/^gexp //')
        pysam: \$(python3 -c 'import pysam; print(pysam.__version__)')
        h5py: \$(python3 -c 'import h5py; print(h5py.__version__)')
    END_VERSIONS
    """

    stub:
    """
    mkdir -p pseudobulk
    printf 'sample\\tlibrary\\tgroup\\tdonor\\treplicate\\tcells\\tumis\\tfragments\\n${meta.id}_stub\\t${meta.id}\\tstub\\t\\t1\\t0\\t0\\t0\\n' > pseudobulk/${meta.id}.samples.tsv
    printf 'sample,group,rna_tpm,atac\\n${meta.id}_stub,stub,${meta.id}_stub.gene_tpm.tsv,${meta.id}_stub.narrowPeak.gz\\n' > pseudobulk/${meta.id}.samplesheet.csv
    printf 'gene_id\\ttpm\\n' > pseudobulk/${meta.id}_stub.gene_tpm.tsv
    echo -n | gzip > pseudobulk/${meta.id}_stub.narrowPeak.gz

    cat <<-END_VERSIONS > versions.yml
    "${task.process}":
        gexp: \$(gexp --version | sed 's/^gexp //')
        pysam: \$(python3 -c 'import pysam; print(pysam.__version__)')
        h5py: \$(python3 -c 'import h5py; print(h5py.__version__)')
    END_VERSIONS
    """
}
