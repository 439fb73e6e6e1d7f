# Paper: the main table (datasets x methods, mean +/- std over seeds), the ablation table, the
# published numbers as labelled reference rows, the paired main-minus-baseline differences
# (paired.csv/.md), and the figures, under results/paper/. The tables' files are PAPER_TABLES
# (hecvl.layout), the list `hecvl paper build` writes.


rule paper:
    input:
        unpack(lambda wc: paper_inputs()),
    output:
        tables=[report(t, caption="../report/tables.rst", category="Tables") for t in PAPER_TABLES],
        accuracy=report(f"{PAPER}/accuracy_f1.png", caption="../report/accuracy_f1.rst", category="Figures"),
        per_phase=report(f"{PAPER}/per_phase_f1.png", caption="../report/per_phase_f1.rst", category="Figures"),
        confusion=report(f"{PAPER}/confusion.png", caption="../report/confusion.rst", category="Figures"),
        timelines=report(f"{PAPER}/timelines.png", caption="../report/timelines.rst", category="Figures"),
        convergence=report(
            f"{PAPER}/convergence.png", caption="../report/convergence.rst", category="Figures"
        ),
    params:
        file=config_file,
        out=lambda wc, output: os.path.dirname(output.accuracy),
    log:
        f"{LOGS}/paper.log",
    conda:
        ENV
    shell:
        "hecvl paper build --params {params.file} --out {params.out} > {log} 2>&1"
