# Ablations: each a named target (`snakemake ablation_heads`) defined in params.yaml under `ablations:`.
# An ablation lists variants and test-time options; runs it shares with others are built once.


rule ablation:
    input:
        lambda wc: paths(STUDY.ablation_entries(wc.ablation)),
    output:
        table=layout.ablation_table("{ablation}"),
    params:
        file=config_file,
        rows=lambda wc: rows(STUDY.ablation_entries(wc.ablation)),
    log:
        f"{LOGS}/ablations/{{ablation}}.log",
    conda:
        ENV
    shell:
        "hecvl paper table --params {params.file} --name {wildcards.ablation} --out {output.table} "
        "{params.rows} > {log} 2>&1"


for _name in STUDY.defined_ablations:  # each a target; rule all builds the active ones

    rule:
        name:
            f"ablation_{_name}"
        input:
            STUDY.ablation_table(_name),
        default_target: False
