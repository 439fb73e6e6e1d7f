# Frames: decode the 1 fps evaluation frames of every target video once into the shared frame cache.
# Every evaluation and ablation then reads them from the cache instead of decoding again.


rule frames:
    input:
        lambda wc: acquired(wc.dataset),
    output:
        f"{FRAMES}/{{dataset}}.json",
    params:
        file=config_file,
        frames=P.frames.to_dict(),
        version=lambda wc: DATA.dataset(wc.dataset),  # the dataset's videos, labels and splits, by content
    log:
        f"{LOGS}/frames/{{dataset}}.log",
    benchmark:
        f"{LOGS}/benchmarks/frames/{{dataset}}.tsv"
    conda:
        ENV
    shell:
        "hecvl frames --params {params.file} --dataset {wildcards.dataset} --split all "
        "--out {output} > {log} 2>&1"
