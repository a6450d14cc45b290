"""The evsys-slurm plugin: registers the ``slurm`` executor. Imports neither submitit nor the executor
module until an executor is looked up (``evsys list`` and ``evsys validate`` stay light)."""

from __future__ import annotations

from typing import Any

from evsys_sdk import hookimpl


@hookimpl
def evsys_register_executors(registry: Any) -> None:
    from evsys_slurm.executor import SlurmExecutor

    registry.add(SlurmExecutor)
