# Evaluate: zero-shot phase recognition of every (variant, seed) on every target dataset, and the
# reference points (untrained model, linear probe on frozen embeddings), through the same metrics.


rule evaluate:
    input:
        weights=lambda wc: f"{STUDY.model_dir(wc.variant, wc.seed)}/model.safetensors",
        frames=f"{FRAMES}/{{dataset}}.json",
    output:
        metrics=f"{EVAL}/{{variant}}/seed{{seed}}/{{dataset}}/{{space}}-{{prompts}}/metrics.json",
        predictions=f"{EVAL}/{{variant}}/seed{{seed}}/{{dataset}}/{{space}}-{{prompts}}/predictions.parquet",
    params:
        file=PARAMS_FILE,
        weights=lambda wc, input: os.path.dirname(input.weights),
        out=lambda wc, output: os.path.dirname(output.metrics),
        eval=P["eval"],
    log:
        f"{LOGS}/evaluate/{{variant}}/seed{{seed}}/{{dataset}}/{{space}}-{{prompts}}.log",
    benchmark:
        f"{LOGS}/benchmarks/evaluate/{{variant}}/seed{{seed}}/{{dataset}}/{{space}}-{{prompts}}.tsv"
    conda:
        ENV
    shell:
        "hecvl evaluate --params {params.file} --weights {params.weights} --dataset {wildcards.dataset} "
        "--split test --space {wildcards.space} --prompts {wildcards.prompts} "
        "--variant {wildcards.variant} --out {params.out} > {log} 2>&1"


rule evaluate_untrained:
    input:
        frames=f"{FRAMES}/{{dataset}}.json",
    output:
        metrics=f"{EVAL}/untrained/seed{{seed}}/{{dataset}}/metrics.json",
        predictions=f"{EVAL}/untrained/seed{{seed}}/{{dataset}}/predictions.parquet",
    params:
        file=PARAMS_FILE,
        main=MAIN,
        out=lambda wc, output: os.path.dirname(output.metrics),
    log:
        f"{LOGS}/evaluate/untrained/seed{{seed}}/{{dataset}}.log",
    conda:
        ENV
    shell:
        "hecvl evaluate --params {params.file} --untrained --seed {wildcards.seed} --variant {params.main} "
        "--dataset {wildcards.dataset} --split test --out {params.out} > {log} 2>&1"


rule linear_probe:
    input:
        weights=lambda wc: f"{STUDY.model_dir(MAIN, wc.seed)}/model.safetensors",
        frames=f"{FRAMES}/{{dataset}}.json",
    output:
        metrics=f"{EVAL}/linear_probe/seed{{seed}}/{{dataset}}/metrics.json",
        predictions=f"{EVAL}/linear_probe/seed{{seed}}/{{dataset}}/predictions.parquet",
    params:
        file=PARAMS_FILE,
        main=MAIN,
        weights=lambda wc, input: os.path.dirname(input.weights),
        out=lambda wc, output: os.path.dirname(output.metrics),
    log:
        f"{LOGS}/evaluate/linear_probe/seed{{seed}}/{{dataset}}.log",
    conda:
        ENV
    shell:
        "hecvl evaluate --params {params.file} --weights {params.weights} --linear-probe "
        "--variant {params.main} --dataset {wildcards.dataset} --split test --out {params.out} > {log} 2>&1"
