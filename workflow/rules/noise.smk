# Narration noise: the synthetic world's fraction of narrations that describe what is visible is swept
# (study.noise.relevance) for the baseline and HecVL over seeds; zero-shot accuracy against it.
# A separate target, `snakemake narration_noise`, outside `rule all` for the time budget.
# Only the lecture texts change with relevance: target videos and lecture videos are byte-identical,
# so the frame caches are shared with the main study.


NOISE_WORLD = layout.noise_world("{rel}")
NOISE_MODEL = layout.model_dir("{variant}", "{seed}", layout.noise_models("{rel}"))


rule noise_world:
    output:
        manifest=f"{NOISE_WORLD}/manifest.json",
    params:
        file=config_file,
        synthetic=acquire_settings()["synthetic"],  # the study's world, lecture videos included
        out=lambda wc, output: os.path.dirname(output.manifest),
    log:
        f"{LOGS}/noise/rel{{rel}}/world.log",
    threads: 2
    conda:
        ENV
    shell:
        "hecvl synth --params {params.file} --narration-relevance {wildcards.rel} --workers {threads} "
        "--out {params.out} > {log} 2>&1"


rule noise_pair:
    input:
        f"{NOISE_WORLD}/manifest.json",
    output:
        clip=f"{NOISE_WORLD}/pairs/clip.parquet",
        phase=f"{NOISE_WORLD}/pairs/phase.parquet",
        video=f"{NOISE_WORLD}/pairs/video.parquet",
        stats=f"{NOISE_WORLD}/pairs/{layout.PAIR_STATS}",
    params:
        file=config_file,
        corpus=lambda wc, input: os.path.join(os.path.dirname(input[0]), "corpus"),
        out=lambda wc, output: os.path.dirname(output.clip),
    log:
        f"{LOGS}/noise/rel{{rel}}/pair.log",
    conda:
        ENV
    shell:
        "HECVL_RUN_PREFIX=noise/rel{wildcards.rel} "
        "hecvl pair {params.corpus} --params {params.file} --out {params.out} --no-progress > {log} 2>&1"


rule noise_pretrain:
    input:
        clip=f"{NOISE_WORLD}/pairs/clip.parquet",
        frames=lambda wc: validation_frames(wc.variant),  # the study's targets
        # the study's frame store: the sweep's lecture videos are the study's, byte for byte
        store=lambda wc: store_packs(wc.variant),
    output:
        weights=f"{NOISE_MODEL}/{layout.WEIGHTS}",
    params:
        file=config_file,
        pairs=lambda wc, input: os.path.dirname(input.clip),
        corpus=lambda wc, input: os.path.join(os.path.dirname(os.path.dirname(input.clip)), "corpus"),
        out=lambda wc, output: os.path.dirname(output.weights),
    log:
        f"{LOGS}/noise/rel{{rel}}/pretrain/{{variant}}/seed{{seed}}.log",
    resources:
        gpu=gpu_request(1),
    threads: 1
    conda:
        ENV
    shell:
        "HECVL_RUN_PREFIX=noise/rel{wildcards.rel} "
        "hecvl pretrain --params {params.file} --variant {wildcards.variant} --restart-if-changed --seed {wildcards.seed} "
        "--pairs {params.pairs} --corpus {params.corpus} --out {params.out} > {log} 2>&1"


# One evaluation job per (relevance, model, seed) over every dataset, as in evaluate.smk;
# rule names noise_rel<r>_<variant>_seed<N> (0.25 -> 0p25).
for _rel, _job in STUDY.noise_jobs():

    rule:
        name:
            _job.name
        input:
            weights=evaluate_weights(_job, noise_model_dir(_rel)),
            frames=[f"{FRAMES}/{d}.json" for d in _job.datasets],
        output:
            metrics=list(_job.metrics),
        params:
            file=config_file,
            arguments=lambda wc, job=_job, rel=_rel: evaluate_arguments(job, noise_model_dir(rel)),
            # the MLflow run names carry the relevance: the sweep's runs are told apart from the study's
            # (a param: the shell string is formatted when the job runs, after the loop has moved on)
            run_prefix=f"noise/rel{_rel:g}",
            eval=P.eval.to_dict(),
        log:
            f"{LOGS}/noise/rel{_rel:g}/evaluate/{_job.model}/seed{_job.seed}.log",
        resources:
            gpu=gpu_request(1),
        conda:
            ENV
        shell:
            "HECVL_RUN_PREFIX={params.run_prefix} "
            "hecvl evaluate --params {params.file} {params.arguments} > {log} 2>&1"


rule narration_noise:
    input:
        [e.path for _rel, e in STUDY.noise_entries()],
    output:
        table=layout.NOISE_TABLE,
        findings=layout.NOISE_FINDINGS,
        figure=report(f"{PAPER}/narration_noise.png", caption="../report/narration_noise.rst", category="Figures"),
    params:
        file=config_file,
        noise=STUDY.noise,
    log:
        f"{LOGS}/noise/narration_noise.log",
    conda:
        ENV
    shell:
        "hecvl paper noise --params {params.file} --table {output.table} --out {output.figure} --findings {output.findings} > {log} 2>&1"
