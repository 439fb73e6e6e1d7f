"""The GPUs a DAG's jobs may ask their executor for, shared with jobs that run on other machines.

`--resources gpu=N` (a profile's `resources:`) is Snakemake's count of the GPUs there are, and it caps each
job's request where Snakemake schedules. A job on a cluster node reads the workflow again without
--resources and would ask its `srun` for the uncapped count: the cap travels to it in HECVL_MAX_GPUS (the
SLURM plugin submits with --export=ALL).
"""

from __future__ import annotations

import os

from hecvl.errors import HecvlError

MAX_GPUS_ENV = "HECVL_MAX_GPUS"


def gpu_cap(gpus_there: int | None) -> int | None:
    """The cap on every job's GPU request: `gpus_there` (exported for the jobs), else the exported one."""
    if gpus_there is not None:
        os.environ[MAX_GPUS_ENV] = str(gpus_there)
    value = os.environ.get(MAX_GPUS_ENV)
    if value is None:
        return None
    if not value.isdigit():
        raise HecvlError(f"{MAX_GPUS_ENV}={value!r}: expected a whole number of GPUs, 0 or more")
    return int(value)
