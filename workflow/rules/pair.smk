# Pair: clip-level narrations, phase-level keysteps and video-level abstracts from the lecture corpus.


rule pair:
    input:
        ancient("data/acquired.json"),
    output:
        clip=f"{PAIRS}/clip.parquet",
        phase=f"{PAIRS}/phase.parquet",
        video=f"{PAIRS}/video.parquet",
        stats=f"{PAIRS}/stats.json",
        figure=report(f"{PAIRS}/stats.png", caption="../report/pairs.rst", category="Data"),
    params:
        pairing=P["pairing"],
    log:
        f"{LOGS}/pair.log",
    benchmark:
        f"{LOGS}/benchmarks/pair.tsv"
    shell:
        "hecvl pair {CORPUS} --params {PARAMS_FILE} --out {PAIRS} > {log} 2>&1"
