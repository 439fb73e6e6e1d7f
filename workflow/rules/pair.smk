# Pair: clip-level narrations, phase-level keysteps and video-level abstracts from the lecture corpus.


rule pair:
    input:
        acquired("corpus"),
    output:
        clip=f"{PAIRS}/clip.parquet",
        phase=f"{PAIRS}/phase.parquet",
        video=f"{PAIRS}/video.parquet",
        stats=f"{PAIRS}/{layout.PAIR_STATS}",
        stamp=STAMP_PAIR,  # tells pretraining that the pairs were made again
        figure=report(f"{PAIRS}/{layout.PAIR_STATS_FIGURE}", caption="../report/pairs.rst", category="Data"),
    params:
        file=config_file,
        corpus=CORPUS,
        corpus_version=lambda wc: DATA.corpus(),  # what pairing reads, by content
        out=lambda wc, output: os.path.dirname(output.clip),
        pairing=P.pairing.to_dict(),
    log:
        f"{LOGS}/pair.log",
    benchmark:
        f"{LOGS}/benchmarks/pair.tsv"
    conda:
        ENV
    shell:
        "hecvl pair {params.corpus} --params {params.file} --out {params.out} --no-progress > {log} 2>&1 && touch {output.stamp}"
