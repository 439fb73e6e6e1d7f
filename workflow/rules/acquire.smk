# Acquire: generate the embedded synthetic world, or register local copies of the real datasets
# (and a lecture corpus) named in params.yaml, verifying expected files and checksums.


rule acquire:
    output:
        inventory="data/acquired.json",
    params:
        data=P["data"],
    log:
        f"{LOGS}/acquire.log",
    benchmark:
        f"{LOGS}/benchmarks/acquire.tsv"
    threads: workflow.cores
    shell:
        "hecvl acquire --params {PARAMS_FILE} --out {output.inventory} > {log} 2>&1"
