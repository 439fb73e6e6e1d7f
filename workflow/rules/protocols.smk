# Protocol sensitivity: each model of the main comparison (and any released weights configured) scored
# under every named evaluation protocol (`hecvl protocols`) and under each protocol's choices alone, then
# one table and figure of how far each choice moves accuracy and F1 (results/paper/protocol_sensitivity.*).
# A separate target, `snakemake protocol_sensitivity`, outside `rule all`: frames are decoded once per
# protocol transform and embedded once per (transform, normalisation); windows pool cached embeddings.

SWEEP_MODELS = [(STUDY.canonical(v), s) for v in (STUDY.baseline, STUDY.main) for s in STUDY.seeds]


rule protocol_sweep:
    input:
        weights=lambda wc: f"{STUDY.model_dir(wc.model, int(wc.seed))}/{layout.WEIGHTS}",
        frames=[f"{FRAMES}/{d}.json" for d in STUDY.datasets],
        data=acquired(*STUDY.datasets),
    output:
        layout.protocol_sweep("{model}", "{seed}"),
    params:
        file=config_file,
        data=lambda wc: DATA.datasets(STUDY.datasets),
        weights=lambda wc, input: os.path.dirname(input.weights),
        datasets=" ".join(STUDY.datasets),
        out=lambda wc, output: os.path.dirname(output[0]),
    log:
        f"{LOGS}/protocols/{{model}}/seed{{seed}}.log",
    wildcard_constraints:
        seed=r"\d+",
    conda:
        ENV
    shell:
        "hecvl evaluate --params {params.file} --variant {wildcards.model} --weights {params.weights} "
        "--seed {wildcards.seed} --dataset {params.datasets} --sensitivity --out {params.out} > {log} 2>&1"


rule protocol_sweep_released:
    input:
        data=released_data(STUDY.datasets),
        weights=lambda wc: RELEASED_WEIGHTS[wc.name],
        vocab=lambda wc: f"{RELEASED.bert_dir}/vocab.txt",
    output:
        layout.protocol_sweep("released_{name}", "released"),
    params:
        file=config_file,
        main=MAIN,
        bert_dir=lambda wc, input: os.path.dirname(input.vocab),
        datasets=" ".join(STUDY.datasets),
        out=lambda wc, output: os.path.dirname(output[0]),
    log:
        f"{LOGS}/protocols/released_{{name}}.log",
    wildcard_constraints:
        name="|".join(RELEASED_WEIGHTS) or "(?!)",
    conda:
        ENV
    shell:
        "hecvl evaluate --params {params.file} --variant {params.main} --format surgvlp --weights {input.weights} "
        "--bert-dir {params.bert_dir} --name {wildcards.name} --dataset {params.datasets} --sensitivity "
        "--out {params.out} > {log} 2>&1"


rule protocol_sensitivity:
    input:
        [layout.protocol_sweep(m, s) for m, s in SWEEP_MODELS]
        + [layout.protocol_sweep(f"released_{n}", "released") for n in RELEASED_WEIGHTS],
    output:
        table=layout.PROTOCOL_SENSITIVITY[0],
        summary=layout.PROTOCOL_SENSITIVITY[1],
        figure=report(layout.PROTOCOL_SENSITIVITY[2], caption="../report/protocol_sensitivity.rst",
                      category="Figures"),
    params:
        file=config_file,
        out=lambda wc, output: os.path.dirname(output.table),
    log:
        f"{LOGS}/protocols/sensitivity.log",
    conda:
        ENV
    shell:
        "hecvl paper sensitivity --params {params.file} --out {params.out} {input} > {log} 2>&1"
