# Store: every lecture video decoded once into the training frame store (hecvl.video.store), one job per
# lecture, so lectures decode in parallel, locally or on a cluster alike, and a new lecture builds only its
# own pack. The packs of one set of store settings live in data/store/<key>/ (the key names every setting
# that changes pixels); pretraining reads them instead of decoding MP4s. Which lectures there are is known
# once the data is acquired: `acquire` is a checkpoint and the packs a pretraining job needs are listed after it.


rule store:
    input:
        acquired("corpus"),
    output:
        pack=layout.store_pack("{store_key}", "{lecture}", STORE_ROOT),
        sidecar=layout.store_sidecar("{store_key}", "{lecture}", STORE_ROOT),
    params:
        file=config_file,
        variant=lambda wc: STORE_KEYS[wc.store_key],
        # what the pack is made of, by content: the lecture's video (an edited transcript rebuilds nothing)
        version=lambda wc: DATA.files(lecture_video(wc.lecture)),
    log:
        f"{LOGS}/store/{{store_key}}/{{lecture}}.log",
    benchmark:
        f"{LOGS}/benchmarks/store/{{store_key}}/{{lecture}}.tsv"
    conda:
        ENV
    shell:
        "hecvl store build --params {params.file} --variant {params.variant} --lecture {wildcards.lecture} "
        "--out {output.pack} > {log} 2>&1"
