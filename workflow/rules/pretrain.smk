# Pretrain: one HecVL model per (variant, seed), on a GPU when there is one.


rule pretrain:
    input:
        clip=ancient(f"{PAIRS}/clip.parquet"),
        phase=ancient(f"{PAIRS}/phase.parquet"),
        video=ancient(f"{PAIRS}/video.parquet"),
    output:
        weights=f"{MODELS}/{{variant}}/seed{{seed}}/model.safetensors",
        config=f"{MODELS}/{{variant}}/seed{{seed}}/config.json",
        losses=f"{MODELS}/{{variant}}/seed{{seed}}/losses.csv",
    params:
        variant=lambda wc: resolve_variant(P, wc.variant),
        out=lambda wc: f"{MODELS}/{wc.variant}/seed{wc.seed}",
    log:
        f"{LOGS}/pretrain/{{variant}}/seed{{seed}}.log",
    benchmark:
        f"{LOGS}/benchmarks/pretrain/{{variant}}/seed{{seed}}.tsv"
    resources:
        gpu=1,
    threads: 1
    shell:
        "hecvl pretrain --params {PARAMS_FILE} --variant {wildcards.variant} --seed {wildcards.seed} "
        "--pairs {PAIRS} --out {params.out} > {log} 2>&1"
