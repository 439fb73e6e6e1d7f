# Pretrain: one HecVL model per (variant, seed), on a GPU when there is one; with train.gpus > 1
# the job launches DDP through torchrun (same command, batch sizes stay global).


def gpus(variant):
    return int(resolve_variant(P, variant).get("train", {}).get("gpus", 1) or 1)


def launcher(variant):
    n = gpus(variant)
    return f"torchrun --standalone --nproc_per_node {n} -m hecvl.cli" if n > 1 else "hecvl"


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
        launcher=lambda wc: launcher(wc.variant),
    log:
        f"{LOGS}/pretrain/{{variant}}/seed{{seed}}.log",
    benchmark:
        f"{LOGS}/benchmarks/pretrain/{{variant}}/seed{{seed}}.tsv"
    resources:
        gpu=lambda wc: gpus(wc.variant),
    threads: 1
    shell:
        "{params.launcher} pretrain --params {PARAMS_FILE} --variant {wildcards.variant} --seed {wildcards.seed} "
        "--pairs {PAIRS} --out {params.out} > {log} 2>&1"
