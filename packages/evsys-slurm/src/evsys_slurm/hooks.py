"""The evsys-slurm plugin: registers the ``slurm`` executor. Imports neither submitit nor the executor
module until an executor is looked up (``evsys list`` and ``evsys validate`` stay light)."""

from __future__ import annotations

from typing import Any

from evsys_sdk import hookimpl


@hookimpl
def evsys_register_executors(registry: Any) -> None:
    registry.add_lazy("slurm", "evsys_slurm.executor:SlurmExecutor")  # imported when an experiment uses it
