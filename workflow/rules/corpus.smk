# A public pretraining corpus (data.corpus_source: SurgLaVi-β or SurgAtlas): import its annotations into
# data.corpus, then fetch the videos they name. Without data.corpus_source these rules are not in the DAG
# and data.corpus is used as it is (the synthetic study's corpus).
#
# The download is its own job because it is long and fails in parts: `hecvl corpus download` is
# resumable (a rerun skips what is on disk, resumes partial files), records every video's hash or error
# in data.corpus/downloads.json after each one, and one unavailable video never fails it. Its output is
# the availability report (what survived, per level), which `acquire` waits for.

if P.data.corpus_source is not None:
    SOURCE = P.data.corpus_source

    rule corpus_import:
        input:
            source=SOURCE.file,
            map=[SOURCE.surgatlas.map] if SOURCE.importer == "surgatlas" and SOURCE.surgatlas.map else [],
        output:
            record=f"{CORPUS}/import.json",
        params:
            file=config_file,
            importer=SOURCE.importer,
            corpus=CORPUS,
            # the importer's options (read from the file): a change re-imports (downloaded videos are kept)
            options=SOURCE.to_dict(),
        log:
            f"{LOGS}/corpus_import.log",
        benchmark:
            f"{LOGS}/benchmarks/corpus_import.tsv"
        conda:
            ENV
        shell:
            # touch: the importer leaves an unchanged import.json as it was, which would look stale
            "hecvl corpus import {params.importer} {input.source} --out {params.corpus} --params {params.file} "
            "> {log} 2>&1 && touch {output.record}"

    rule corpus_download:
        input:
            record=f"{CORPUS}/import.json",
        output:
            report=layout.CORPUS_AVAILABILITY,
        params:
            file=config_file,
            corpus=CORPUS,
            download=P.data.download.to_dict(),
        log:
            f"{LOGS}/corpus_download.log",
        benchmark:
            f"{LOGS}/benchmarks/corpus_download.tsv"
        conda:
            ENV
        shell:
            "(hecvl corpus download {params.corpus} --params {params.file} --no-progress && "
            "hecvl corpus report {params.corpus} --params {params.file} --out {output.report} --no-progress) "
            "> {log} 2>&1"
