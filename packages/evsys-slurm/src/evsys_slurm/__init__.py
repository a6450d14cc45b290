"""evsys-slurm: run an experiment's arms as Slurm jobs through submitit (``executor: {kind: slurm}``)."""

from __future__ import annotations

from evsys_sdk.base.lazy import lazy_getattr

__version__ = "0.1.0"
__all__ = ["SlurmExecutor"]

# lazy: the config model needs pydantic, and users may only want the hooks
__getattr__ = lazy_getattr(__name__, {"SlurmExecutor": "evsys_slurm.executor"})
