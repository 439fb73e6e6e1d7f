# Acquire: generate the embedded synthetic world, or register local copies of the real datasets
# (and a lecture corpus) named in params.yaml, verifying expected files and checksums.


rule acquire:
    output:
        inventory=layout.ACQUIRED,
    params:
        file=RESOLVED,
        data=P.data.to_dict(),
    log:
        f"{LOGS}/acquire.log",
    benchmark:
        f"{LOGS}/benchmarks/acquire.tsv"
    threads: 2
    conda:
        ENV
    shell:
        "hecvl acquire --params {params.file} --workers {threads} --out {output.inventory} > {log} 2>&1"
