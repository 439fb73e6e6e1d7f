# Paper: the main table (datasets x methods, mean +/- std over seeds), the ablation table, the
# published numbers as labelled reference rows, and the figures, under results/paper/.


def paper_inputs():
    main = STUDY.main_entries()
    return {
        "main": paths(main),
        "ablations": [STUDY.ablation_table(a) for a in STUDY.ablations],
        "predictions": sorted({e.path.replace("metrics.json", "predictions.parquet") for e in main}),
        "losses": sorted({f"{STUDY.model_dir(e.variant, e.seed)}/losses.csv" for e in main}),
        "pairs": f"{PAIRS}/stats.json",
    }


PAPER_TABLES = [
    f"{PAPER}/{name}.{ext}" for name in ("main_table", "ablation_table") for ext in ("csv", "md", "tex")
] + [f"{PAPER}/protocol.md"]
PAPER_FIGURES = [
    f"{PAPER}/{name}.png"
    for name in ("accuracy_f1", "per_phase_f1", "confusion", "timelines", "training_curves")
]


def paper_outputs():
    return PAPER_TABLES + PAPER_FIGURES


rule paper:
    input:
        unpack(lambda wc: paper_inputs()),
    output:
        tables=[report(t, caption="../report/tables.rst", category="Tables") for t in PAPER_TABLES],
        accuracy=report(f"{PAPER}/accuracy_f1.png", caption="../report/accuracy_f1.rst", category="Figures"),
        per_phase=report(f"{PAPER}/per_phase_f1.png", caption="../report/per_phase_f1.rst", category="Figures"),
        confusion=report(f"{PAPER}/confusion.png", caption="../report/confusion.rst", category="Figures"),
        timelines=report(f"{PAPER}/timelines.png", caption="../report/timelines.rst", category="Figures"),
        curves=report(f"{PAPER}/training_curves.png", caption="../report/training_curves.rst", category="Figures"),
    params:
        main=lambda wc: rows(STUDY.main_entries()),
    log:
        f"{LOGS}/paper.log",
    shell:
        "hecvl paper build --params {PARAMS_FILE} --out {PAPER} > {log} 2>&1"
