# The HecVL study: one `snakemake` reruns it end to end (see README.md).
#
# Stages (one file each in workflow/rules/): acquire -> frames -> pair, store -> pretrain -> evaluate -> paper;
# with a public corpus (data.corpus_source), corpus.smk imports it and fetches its videos first.
# Settings: defined once in src/hecvl/config/ (type, default, range, reason); params.yaml holds this
# study's choices (design, data, variants, ablations, presets); --config / --configfile override both.

from snakemake.utils import min_version

min_version("9.0")


configfile: "params.yaml"  # resolved with its preset and the command line in workflow/rules/common.smk


include: "workflow/rules/common.smk"
include: "workflow/rules/corpus.smk"
include: "workflow/rules/acquire.smk"
include: "workflow/rules/frames.smk"
include: "workflow/rules/pair.smk"
include: "workflow/rules/store.smk"
include: "workflow/rules/pretrain.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/ablations.smk"
include: "workflow/rules/paper.smk"
include: "workflow/rules/noise.smk"
include: "workflow/rules/released.smk"
include: "workflow/rules/protocols.smk"


rule all:
    input:
        paper_outputs(),
    default_target: True
