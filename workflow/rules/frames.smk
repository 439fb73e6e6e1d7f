# Frames: decode the 1 fps evaluation frames of every target video once into the shared frame cache.
# Every evaluation and ablation then reads them from the cache instead of decoding again.


rule frames:
    input:
        ancient(layout.ACQUIRED),
    output:
        f"{FRAMES}/{{dataset}}.json",
    params:
        file=RESOLVED,
        frames=P.frames.to_dict(),
    log:
        f"{LOGS}/frames/{{dataset}}.log",
    benchmark:
        f"{LOGS}/benchmarks/frames/{{dataset}}.tsv"
    conda:
        ENV
    shell:
        "hecvl frames --params {params.file} --dataset {wildcards.dataset} --split all "
        "--out {output} > {log} 2>&1"
