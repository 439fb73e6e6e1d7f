# Released weights: the authors' SurgVLP / HecVL / PeskaVLP checkpoints (params.yaml `released:`),
# each evaluated on every study dataset through our zero-shot protocol with their own frame transform
# and forward pass. Only the models whose files are configured and on disk are targets
# (ReleasedRuns.entries); the others are named, with the reason, in run_protocol.md.
# `snakemake released` evaluates them alone (no corpus or pretraining needed with local data).

from hecvl.released_runs import RELEASED_SPACE

RELEASED_WEIGHTS = RELEASED.weights()
RELEASED_PATTERN = layout.released_dir("{name}", "{dataset}", f"{RELEASED_SPACE}-{{prompts}}")

for _note in RELEASED.notes(configured_only=True):  # configured but unusable: say so now
    print(f"hecvl: {_note}", file=sys.stderr)


rule evaluate_released:
    input:
        data=lambda wc: released_data([wc.dataset]),
        weights=lambda wc: RELEASED_WEIGHTS[wc.name],
        vocab=lambda wc: f"{RELEASED.bert_dir}/vocab.txt",
    output:
        metrics=f"{RELEASED_PATTERN}/{layout.METRICS}",
        predictions=f"{RELEASED_PATTERN}/{layout.PREDICTIONS}",
    params:
        file=config_file,
        main=MAIN,
        bert_dir=lambda wc, input: os.path.dirname(input.vocab),
        out=lambda wc, output: os.path.dirname(output.metrics),
        # what changes these results besides the inputs (not frames.transform: they use their own)
        decoding={"fps": P.frames.fps, "backend": P.frames.backend},
        prompt_file=P.eval.prompt_file,
        version=lambda wc: DATA.dataset(wc.dataset),  # what is scored, by content
    log:
        f"{LOGS}/evaluate/released/{{name}}/{{dataset}}/{RELEASED_SPACE}-{{prompts}}.log",
    benchmark:
        f"{LOGS}/benchmarks/evaluate/released/{{name}}/{{dataset}}/{RELEASED_SPACE}-{{prompts}}.tsv"
    wildcard_constraints:
        name="|".join(RELEASED_WEIGHTS) or "(?!)",
    conda:
        ENV
    shell:
        "hecvl evaluate --params {params.file} --variant {params.main} --format surgvlp "
        "--weights {input.weights} --bert-dir {params.bert_dir} --name {wildcards.name} "
        "--dataset {wildcards.dataset} --prompts {wildcards.prompts} "
        "--out {params.out} > {log} 2>&1"


rule released:
    input:
        paths(RELEASED.entries()),
    default_target: False
