# Shared helpers of the DAG: validated settings, the study design and the MLflow parent run.

import os

from hecvl.params import resolve_variant, with_preset
from hecvl.study import ABLATIONS, EVAL, FRAMES, MODELS, PAIRS, PAPER, Study


validate(config, "../schemas/params.schema.yaml")

P = with_preset(config)  # the active preset (smoke for tests, default for the study) applied
STUDY = Study(P)
PARAMS_FILE = "params.yaml"
CORPUS = P["data"]["corpus"]
MAIN = STUDY.main
LOGS = "logs"


wildcard_constraints:
    variant=r"[A-Za-z0-9_]+",
    dataset=r"[A-Za-z0-9_]+",
    seed=r"\d+",
    space=r"[a-z]+",
    prompts=r"[a-z_]+",
    ablation=r"[A-Za-z0-9_]+",


def paths(entries):
    return sorted({e.path for e in entries})


def rows(entries):
    """`label=path` arguments: how a table command learns which file is which row."""
    return " ".join(f"{e.label}={e.path}" for e in entries)


# --- MLflow: one experiment per study, a parent run per Snakemake invocation -------------------
onstart:
    from hecvl import tracking

    tracking.init_tracking(STUDY.name)  # schema created once, before jobs run in parallel
    if tracking.enabled() and not os.environ.get("HECVL_PARENT_RUN_ID"):
        os.environ["HECVL_PARENT_RUN_ID"] = tracking.start_parent_run(STUDY.name)


onsuccess:
    from hecvl import tracking

    tracking.end_parent_run(os.environ.get("HECVL_PARENT_RUN_ID"), "FINISHED")


onerror:
    from hecvl import tracking

    tracking.end_parent_run(os.environ.get("HECVL_PARENT_RUN_ID"), "FAILED")
