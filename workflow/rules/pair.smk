# Pair: clip-level narrations, phase-level keysteps and video-level abstracts from the lecture corpus.


rule pair:
    input:
        ancient(layout.ACQUIRED),
    output:
        clip=f"{PAIRS}/clip.parquet",
        phase=f"{PAIRS}/phase.parquet",
        video=f"{PAIRS}/video.parquet",
        stats=f"{PAIRS}/stats.json",
        figure=report(f"{PAIRS}/stats.png", caption="../report/pairs.rst", category="Data"),
    params:
        file=RESOLVED,
        corpus=CORPUS,
        out=lambda wc, output: os.path.dirname(output.clip),
        pairing=P.pairing.to_dict(),
    log:
        f"{LOGS}/pair.log",
    benchmark:
        f"{LOGS}/benchmarks/pair.tsv"
    conda:
        ENV
    shell:
        "hecvl pair {params.corpus} --params {params.file} --out {params.out} --no-progress > {log} 2>&1"
