# Pretrain: one HecVL model per (variant, seed), on a GPU when there is one; with train.gpus > 1
# the job launches DDP through torchrun (same command, batch sizes stay global).


MODEL = layout.model_dir("{variant}", "{seed}")


rule pretrain:
    input:
        clip=ancient(f"{PAIRS}/clip.parquet"),
        phase=ancient(f"{PAIRS}/phase.parquet"),
        video=ancient(f"{PAIRS}/video.parquet"),
        stamp=STAMP_PAIR,
        # the lecture videos the clips are cut from
        corpus=acquired("corpus"),
        # their frames, decoded once into the frame store (store.smk), unless train.store is off
        store=lambda wc: store_packs(wc.variant),
        # validation frames (train.validation): decoded once by `frames`, read from the frame cache
        frames=lambda wc: validation_frames(wc.variant),
    output:
        weights=f"{MODEL}/{layout.WEIGHTS}",
        config=f"{MODEL}/{layout.MODEL_CONFIG}",
        losses=f"{MODEL}/{layout.LOSSES}",
        validation=f"{MODEL}/{layout.VALIDATION}",
    params:
        file=config_file,
        pairs=lambda wc, input: os.path.dirname(input.clip),
        # what the run reads, by content: the pairs and the lecture videos
        data=lambda wc: {"pairs": DATA.files(PAIR_FILES), "corpus": DATA.corpus()},
        # what decides the run (a change reruns it); study lists, eval and paper settings do not
        settings=lambda wc: STUDY.training_settings(wc.variant),
        out=lambda wc, output: os.path.dirname(output.weights),
        launcher=lambda wc: launcher(wc.variant),
    log:
        f"{LOGS}/pretrain/{{variant}}/seed{{seed}}.log",
    benchmark:
        f"{LOGS}/benchmarks/pretrain/{{variant}}/seed{{seed}}.tsv"
    resources:
        gpu=lambda wc: gpu_request(gpus(wc.variant)),
    threads: 1
    conda:
        ENV
    shell:
        "{params.launcher} pretrain --params {params.file} --variant {wildcards.variant} --restart-if-changed "
        "--seed {wildcards.seed} --pairs {params.pairs} --out {params.out} > {log} 2>&1"
