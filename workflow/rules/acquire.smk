# Acquire: generate the embedded synthetic world, or register local copies of the real datasets
# (and a lecture corpus) named in params.yaml, verifying expected files and checksums.


# A checkpoint: the lectures it brings are read after it runs (the frame store's jobs, store.smk).
checkpoint acquire:
    input:
        # a public corpus (corpus.smk): validated once its videos are fetched
        corpus=[layout.CORPUS_AVAILABILITY] if P.data.corpus_source is not None else [],
    output:
        inventory=layout.ACQUIRED,
        stamp=STAMP_ACQUIRE,  # tells the readers of the data that it was made again (hecvl.provenance)
    params:
        file=config_file,
        # what acquire depends on (a public corpus's import and download are corpus.smk's jobs)
        data=acquire_settings(),
    log:
        f"{LOGS}/acquire.log",
    benchmark:
        f"{LOGS}/benchmarks/acquire.tsv"
    threads: 2
    conda:
        ENV
    shell:
        "hecvl acquire --params {params.file} --workers {threads} --out {output.inventory} > {log} 2>&1 && touch {output.stamp}"


# The synthetic world's sanity figures and criteria (pixel linear probe >= 60 % on every target, tool tips
# >= 2 px, site colours beyond the colour jitter, ...): the findings say whether the world the study ran
# on is learnable at the model's resolution. Only for data.source: synthetic.
rule world_check:
    input:
        acquired(),
    output:
        report=layout.WORLD_CHECK,
    params:
        world=P.data.root,
        version=lambda wc: DATA.folder(P.data.root),  # the whole world, by content
    log:
        f"{LOGS}/world_check.log",
    benchmark:
        f"{LOGS}/benchmarks/world_check.tsv"
    conda:
        ENV
    shell:
        "hecvl synth --check {params.world} --report-only --out {output.report} > {log} 2>&1"
